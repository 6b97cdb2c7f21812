//! Thin-film self-absorption A(E) = (1 − e^−χ)/χ with χ = μ(E)·ρ·t / sin(take-off angle).
//!
//! μ(E) is the weight-fraction mixture of the elements' mass attenuation coefficients, each a
//! not-a-knot cubic spline through the NIST FFAST table (as espm does via SciPy).

use crate::element::Element;
use crate::error::ModelError;
use crate::float::Float;

/// Sample absorption parameters (espm's `Abs` dictionary).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Absorption {
    /// Sample thickness in cm (> 0; espm's default 1e-5 cm = 100 nm).
    pub thickness: f64,
    /// Sample density in g/cm³; `None` estimates it from the composition (harmonic mixture of
    /// the elements' densities, as espm does).
    pub density: Option<f64>,
    /// Take-off angle in degrees, in (0, 90].
    pub toa: f64,
    /// Treat compositions as atomic fractions and convert them to weight fractions first.
    pub atomic_fraction: bool,
}

impl Default for Absorption {
    fn default() -> Self {
        Absorption {
            thickness: 100.0e-7,
            density: None,
            toa: 22.0,
            atomic_fraction: false,
        }
    }
}

impl Absorption {
    /// Checks thickness, density and angle.
    pub fn validate(&self) -> Result<(), ModelError> {
        if !(self.thickness > 0.0 && self.thickness.is_finite()) {
            return Err(ModelError::NonPositiveThickness {
                thickness: self.thickness,
            });
        }
        if let Some(density) = self.density {
            if !(density > 0.0 && density.is_finite()) {
                return Err(ModelError::NonPositiveDensity { density });
            }
        }
        if !(self.toa > 0.0 && self.toa <= 90.0) {
            return Err(ModelError::InvalidTakeOffAngle { toa: self.toa });
        }
        Ok(())
    }

    /// Checks that element `z` has the data absorption needs (MAC table; density if none given).
    pub fn check_element(&self, el: Element) -> Result<(), ModelError> {
        let z = el.z();
        if !has_mac(z) {
            return Err(ModelError::NoAbsorptionData { z });
        }
        if self.density.is_none() && !(el.data().density > 0.0) {
            return Err(ModelError::UnknownDensity { z });
        }
        Ok(())
    }

    /// Weight fraction of element `z` given its amount `c` (atomic or weight, per the flag),
    /// before normalisation by the sum.
    pub(crate) fn weight<T: Float>(&self, z: u8, c: T) -> T {
        if self.atomic_fraction {
            c * T::from_f64(edxs_tables::ELEMENTS[z as usize].atomic_weight)
        } else {
            c
        }
    }

    /// Density of a composition given as unnormalised weights: the given density, or the
    /// harmonic mixture Σw / Σ(w/ρ) (espm via exspy `density_of_mixture`).
    pub(crate) fn density_of<T: Float>(&self, weights: impl Iterator<Item = (u8, T)>) -> T {
        if let Some(d) = self.density {
            return T::from_f64(d);
        }
        let (mut sw, mut swr) = (T::ZERO, T::ZERO);
        for (z, w) in weights {
            sw += w;
            swr += w / T::from_f64(edxs_tables::ELEMENTS[z as usize].density);
        }
        if swr == T::ZERO {
            T::ZERO
        } else {
            sw / swr
        }
    }

    /// A(E) for attenuation `mu` (cm²/g) and density `rho` (g/cm³).
    pub(crate) fn factor<T: Float>(&self, mu: T, rho: T) -> T {
        let sin_toa = (T::from_f64(self.toa) * T::from_f64(core::f64::consts::PI / 180.0)).sin();
        let chi = mu * rho * T::from_f64(self.thickness) / sin_toa;
        // −expm1(−χ)/χ equals espm's (1 − e^−χ)/χ without its cancellation for small χ. χ can be
        // negative: the cubic spline rings below zero next to absorption edges (e.g. Cu L3 at
        // 0.9295 keV gives μ = −295 cm²/g) and espm then yields A > 1; compat keeps that.
        if chi != T::ZERO {
            -(-chi).exp_m1() / chi
        } else {
            T::ONE
        }
    }
}

/// True when element `z` has mass attenuation data in this build.
pub fn has_mac(z: u8) -> bool {
    #[cfg(feature = "absorption")]
    {
        edxs_tables::mac_table(z).is_some()
    }
    #[cfg(not(feature = "absorption"))]
    {
        let _ = z;
        false
    }
}

/// Largest number of knots of any mass attenuation table in this build (0 without tables).
pub(crate) fn max_mac_knots() -> usize {
    #[cfg(feature = "absorption")]
    {
        edxs_tables::MAC_TABLES
            .iter()
            .map(|t| t.energies.len())
            .max()
            .unwrap_or(0)
    }
    #[cfg(not(feature = "absorption"))]
    {
        0
    }
}

/// The attenuation spline of one element, with its second derivatives in caller scratch.
pub(crate) struct Mac<'s, T> {
    #[cfg(feature = "absorption")]
    table: &'static edxs_tables::MacTable,
    #[cfg(feature = "absorption")]
    m: &'s [T],
    #[cfg(not(feature = "absorption"))]
    _m: core::marker::PhantomData<&'s T>,
}

impl<'s, T: Float> Mac<'s, T> {
    /// Solves the spline of element `z` into `m` using `work` (both ≥ [`max_mac_knots`]).
    pub(crate) fn new(z: u8, m: &'s mut [T], work: &mut [T]) -> Result<Self, ModelError> {
        #[cfg(feature = "absorption")]
        {
            let table = edxs_tables::mac_table(z).ok_or(ModelError::NoAbsorptionData { z })?;
            let n = table.energies.len();
            super::spline::second_derivatives(table.energies, table.mac, &mut m[..n], work);
            Ok(Mac { table, m: &m[..n] })
        }
        #[cfg(not(feature = "absorption"))]
        {
            let _ = (m, work);
            Err(ModelError::NoAbsorptionData { z })
        }
    }

    /// Mass attenuation coefficient (cm²/g) at `e` keV.
    pub(crate) fn at(&self, e: T) -> Result<T, ModelError> {
        #[cfg(feature = "absorption")]
        {
            super::spline::eval(self.table.energies, self.table.mac, self.m, e).ok_or(
                ModelError::NonFinite {
                    what: "mass attenuation (energy outside the table)",
                },
            )
        }
        #[cfg(not(feature = "absorption"))]
        {
            let _ = e;
            Err(ModelError::NonFinite {
                what: "mass attenuation",
            })
        }
    }
}
