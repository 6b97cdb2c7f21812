//! A spectrum image as a reader returns it: the counts and what the file says about the
//! acquisition ([`FileMeta`], in keV, degrees, cm and g/cm³).

use super::counts::SpectrumImage;
use crate::model_options::FileMeta;
use anyhow::{bail, Result};

/// A spectrum image with what its file says about the acquisition (None where it says nothing).
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The counts.
    pub image: SpectrumImage,
    /// What the file says about the acquisition.
    pub meta: FileMeta,
}

impl Loaded {
    /// Counts alone, with no metadata.
    pub fn bare(image: SpectrumImage) -> Self {
        Loaded {
            image,
            meta: FileMeta::default(),
        }
    }

    /// Rejects metadata no model could use, naming the file and the field, so that a bad file
    /// is reported as such rather than as a bad model parameter later on.
    pub fn check(&self, what: &str) -> Result<()> {
        let m = &self.meta;
        let fields = [
            (
                "energy offset (keV)",
                m.offset_kev,
                f64::NEG_INFINITY,
                false,
            ),
            ("energy scale (keV)", m.scale_kev, 0.0, true),
            ("beam energy (keV)", m.e0_kev, 0.0, true),
            (
                "take-off angle (degrees)",
                m.toa_deg,
                f64::NEG_INFINITY,
                false,
            ),
            ("thickness (cm)", m.thickness_cm, 0.0, false),
            ("density (g/cm3)", m.density, 0.0, true),
        ];
        for (name, v, min, strict) in fields {
            if let Some(v) = v {
                let ok = v.is_finite() && if strict { v > min } else { v >= min };
                if !ok {
                    let need = match (min == 0.0, strict) {
                        (false, _) => "finite",
                        (true, true) => "finite and > 0",
                        (true, false) => "finite and >= 0",
                    };
                    bail!("{what}: {name} is {v}; it must be {need}");
                }
            }
        }
        Ok(())
    }
}

/// exspy's take-off angle in degrees from the stage tilts and the detector azimuth and
/// elevation (all degrees): 90° − arccos(sin α cos β cos φ cos θ − sin β sin φ cos θ −
/// cos α cos β sin θ) with β = −tilt_beta and θ = −elevation.
pub fn take_off_angle_deg(tilt_alpha: f64, azimuth: f64, elevation: f64, tilt_beta: f64) -> f64 {
    let a = tilt_alpha.to_radians();
    let b = -tilt_beta.to_radians();
    let phi = azimuth.to_radians();
    let theta = -elevation.to_radians();
    let c = a.sin() * b.cos() * phi.cos() * theta.cos()
        - b.sin() * phi.sin() * theta.cos()
        - a.cos() * b.cos() * theta.sin();
    90.0 - c.clamp(-1.0, 1.0).acos().to_degrees()
}
