//! The two bremsstrahlung columns, with absorption and detector efficiency on the whole axis.
//!
//! As espm: b0(E) = A·D·(E0 − E)/(E0·E)·(1 − (E0 − E)/E0) (linear in E once the 1/E cancels)
//! and b1(E) = A·D·(E0 − E)²/(E0²·E), with A computed for the given composition.

use super::absorption::{Absorption, Mac};
use super::axis::EnergyAxis;
use super::detector::Detector;
use crate::error::ModelError;
use crate::float::Float;

/// Scratch regions the bremsstrahlung needs.
pub(crate) struct BremsScratch<'s, T> {
    /// Mixture attenuation on the axis (length L).
    pub mu: &'s mut [T],
    /// Spline second derivatives of one MAC table.
    pub mac_m: &'s mut [T],
    /// Spline solver work space.
    pub work: &'s mut [T],
}

/// What the bremsstrahlung depends on: the axis, the beam, the specimen and the detector.
pub(crate) struct Source<'a, T, I> {
    /// The energy axis.
    pub axis: &'a EnergyAxis,
    /// Beam energy E0 (keV).
    pub e0: T,
    /// The specimen's absorption, if modelled.
    pub absorption: Option<&'a Absorption>,
    /// `(Z, amount)` of the specimen.
    pub composition: I,
    /// Where the per-channel efficiency and attenuation values come from.
    pub tables: Tables<'a, T>,
}

/// Where [`write_columns`] reads the detector efficiency and each composition entry's mass
/// attenuation at every channel: evaluated from their splines, or read from a cache that
/// [`fill_cache`] filled from the same splines (the same values bit for bit, without the spline
/// set-ups and evaluations that dominate an update).
#[derive(Clone, Copy)]
pub(crate) enum Tables<'a, T> {
    /// The detector curve; each element's MAC table is set up in the scratch when needed.
    Splines(&'a Detector<'a, T>),
    /// L efficiencies, then L attenuations per composition entry (with absorption); its length
    /// is checked where it enters the model (`EdxsModel::check_brems_cache`).
    Cached(&'a [T]),
}

/// Fills `cache` with what [`Tables::Cached`] holds for `axis`: the efficiency at every
/// channel, then, when `zs` is given, each element's mass attenuation at every channel. The
/// caller sizes `cache` to those rows ([`EdxsModel::brems_cache_len`](super::EdxsModel::brems_cache_len)).
pub(crate) fn fill_cache<T: Float>(
    axis: &EnergyAxis,
    detector: &Detector<'_, T>,
    zs: Option<impl Iterator<Item = u8>>,
    scratch: BremsScratch<'_, T>,
    cache: &mut [T],
) -> Result<(), ModelError> {
    let l = axis.channels;
    let mut rows = cache.chunks_exact_mut(l);
    for (i, v) in rows.next().into_iter().flatten().enumerate() {
        *v = detector.efficiency(T::from_f64(axis.energy(i)))?;
    }
    for (z, row) in zs.into_iter().flatten().zip(rows) {
        let mac = Mac::new(z, &mut *scratch.mac_m, &mut *scratch.work)?;
        for (i, v) in row.iter_mut().enumerate() {
            *v = mac.at(T::from_f64(axis.energy(i)))?;
        }
    }
    Ok(())
}

/// Writes b0/(div0·s) and b1/(div1·s) into columns `stride−2` and `stride−1` of the row-major
/// `g`, where s is `a_scale` or, when that is `None`, the smallest power of two ≥ 1 above every
/// absorption factor on the axis; returns the s used.
///
/// The factor s exists because espm's MAC spline rings below zero next to edges, which makes
/// A = (1 − e^−χ)/χ grow like e^|χ|: far beyond f32's range for thick films at low take-off
/// angles. Physical factors are ≤ 1, so s = 1; a power of two keeps the normalised columns espm's.
///
/// `composition` yields `(Z, amount)`; amounts are atomic or weight fractions as
/// `absorption.atomic_fraction` says, in any scale.
pub(crate) fn write_columns<T: Float, I>(
    g: &mut [T],
    stride: usize,
    source: Source<'_, T, I>,
    scratch: BremsScratch<'_, T>,
    div: (T, T),
    a_scale: Option<f64>,
) -> Result<f64, ModelError>
where
    I: Iterator<Item = (u8, T)> + Clone,
{
    let Source {
        axis,
        e0,
        absorption,
        composition,
        tables,
    } = source;
    let l = axis.channels;
    let mu = &mut scratch.mu[..l];
    let mut rho = T::ZERO;
    if let Some(abs) = absorption {
        mu.iter_mut().for_each(|v| *v = T::ZERO);
        let total: T = composition
            .clone()
            .fold(T::ZERO, |s, (z, c)| s + abs.weight(z, c));
        if !(total > T::ZERO && total.is_finite()) {
            return Err(ModelError::InvalidComposition);
        }
        for (e, (z, c)) in composition.clone().enumerate() {
            let w = abs.weight(z, c);
            match tables {
                Tables::Splines(_) => {
                    let mac = Mac::new(z, &mut *scratch.mac_m, &mut *scratch.work)?;
                    for (i, m) in mu.iter_mut().enumerate() {
                        *m += w * mac.at(T::from_f64(axis.energy(i)))? / total;
                    }
                }
                Tables::Cached(cache) => {
                    let row = &cache[(e + 1) * l..(e + 2) * l];
                    for (m, &a) in mu.iter_mut().zip(row) {
                        *m += w * a / total;
                    }
                }
            }
        }
        rho = abs.density_of(composition.map(|(z, c)| (z, abs.weight(z, c))));
        if !(rho > T::ZERO && rho.is_finite()) {
            return Err(ModelError::NonFinite {
                what: "mixture density",
            });
        }
    }
    let factor = |i: usize| match absorption {
        Some(abs) => abs.factor(mu[i].to_f64(), rho.to_f64()),
        None => 1.0,
    };
    let scale = match a_scale {
        Some(s) => s,
        None => libm::ldexp(
            1.0,
            super::g::power_of_two_above((0..l).map(factor).fold(1.0f64, f64::max)),
        ),
    };
    if !(scale >= 1.0 && scale.is_finite()) {
        return Err(ModelError::NonFinite {
            what: "bremsstrahlung absorption factor (attenuation spline overshoot)",
        });
    }
    for (i, row) in g.chunks_exact_mut(stride).take(l).enumerate() {
        let x = T::from_f64(axis.energy(i));
        let a = T::from_f64(factor(i) / scale);
        let eff = match tables {
            Tables::Splines(detector) => detector.efficiency(x)?,
            Tables::Cached(cache) => cache[i],
        };
        let ad = a * eff;
        let d0 = e0 - x;
        let b0 = ad * (d0 / (e0 * x) * (T::ONE - d0 / e0));
        let b1 = ad * (d0 * d0 / (e0 * e0 * x));
        row[stride - 2] = b0 / div.0;
        row[stride - 1] = b1 / div.1;
        if !(row[stride - 2].is_finite() && row[stride - 1].is_finite()) {
            return Err(ModelError::NonFinite {
                what: "bremsstrahlung column (absorption beyond the build-time range)",
            });
        }
    }
    Ok(scale)
}
