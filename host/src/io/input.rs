//! One entry point for spectrum-image files, chosen by extension, returning the counts together
//! with whatever acquisition metadata the file carries.
//!
//! Units: energies in keV (eV axes are converted), take-off angle in degrees, thickness in cm
//! (espm's convention: espm's `set_analysis_parameters(thickness=1e-5)` stores
//! `Sample.thickness` in cm and passes it unchanged to its absorption model), density in g/cm³.

use super::counts::SpectrumImage;
use super::{hspy, ripple};
use anyhow::{bail, Result};
use std::path::Path;

/// A spectrum image with what its file says about the acquisition (None where it says nothing).
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The counts.
    pub image: SpectrumImage,
    /// Energy of channel 0 in keV.
    pub offset_kev: Option<f64>,
    /// Channel width in keV.
    pub scale_kev: Option<f64>,
    /// Beam energy in keV.
    pub e0_kev: Option<f64>,
    /// Element symbols as the file lists them (HyperSpy's `Sample.elements`).
    pub elements: Vec<String>,
    /// Take-off angle in degrees, stored or computed from the detector and stage angles.
    pub toa_deg: Option<f64>,
    /// Sample thickness in cm.
    pub thickness_cm: Option<f64>,
    /// Sample density in g/cm³.
    pub density: Option<f64>,
}

impl Loaded {
    /// Counts alone, with no metadata.
    pub fn bare(image: SpectrumImage) -> Self {
        Loaded {
            image,
            offset_kev: None,
            scale_kev: None,
            e0_kev: None,
            elements: Vec::new(),
            toa_deg: None,
            thickness_cm: None,
            density: None,
        }
    }

    /// Rejects metadata no model could use, naming the file and the field, so that a bad file
    /// is reported as such rather than as a bad model parameter later on.
    pub fn check(&self, what: &str) -> Result<()> {
        let fields = [
            (
                "energy offset (keV)",
                self.offset_kev,
                f64::NEG_INFINITY,
                false,
            ),
            ("energy scale (keV)", self.scale_kev, 0.0, true),
            ("beam energy (keV)", self.e0_kev, 0.0, true),
            (
                "take-off angle (degrees)",
                self.toa_deg,
                f64::NEG_INFINITY,
                false,
            ),
            ("thickness (cm)", self.thickness_cm, 0.0, false),
            ("density (g/cm3)", self.density, 0.0, true),
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

/// Opens .npy (Y×X×L or P×L with `shape`), .rpl (+.raw beside it) or .hspy/.hdf5 by extension.
pub fn load(path: &Path, shape: Option<(usize, usize)>) -> Result<Loaded> {
    let what = path.display().to_string();
    if !path.exists() {
        bail!("{what}: no such file");
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "npy" => Ok(Loaded::bare(SpectrumImage::read_npy(path, shape)?)),
        "rpl" => ripple::load(path, shape),
        "raw" => {
            // The counts alone mean nothing without their header; take it if it is there.
            let rpl = ["rpl", "RPL"]
                .iter()
                .map(|e| path.with_extension(e))
                .find(|p| p.exists());
            match rpl {
                Some(rpl) => ripple::load(&rpl, shape),
                None => bail!(
                    "{what}: a .raw file needs its Ripple header {} beside it",
                    path.with_extension("rpl").display()
                ),
            }
        }
        "hspy" | "hdf5" | "h5" => hspy::load(path, shape),
        _ => bail!(
            "{what}: unknown extension '{ext}'; expected .npy, .rpl (with its .raw), .hspy or .hdf5"
        ),
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
