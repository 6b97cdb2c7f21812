//! Gaussian peak profiles of characteristic lines.

use super::axis::EnergyAxis;
use crate::float::Float;

/// espm's FWHM → σ divisor (truncated 2√(2 ln 2)); kept for parity.
const FWHM_TO_SIGMA: f64 = 2.3548;

/// One characteristic line as it enters G.
#[derive(Clone, Copy)]
pub(crate) struct Peak<T> {
    /// Line energy (keV).
    pub energy: T,
    /// FWHM at the line energy (keV).
    pub fwhm: T,
    /// Production cross-section (cm²).
    pub cs: T,
    /// Detector efficiency at the line energy.
    pub d: T,
    /// Absorption factor at the line energy.
    pub a: T,
}

/// Adds `cs · g(x; energy) · d · a` to every channel of one column of a row-major buffer, where g
/// is the normalised Gaussian of the peak's FWHM sampled at channel energies.
///
/// `col` indexes the column and `stride` is the row length (number of columns).
pub(crate) fn add_peak<T: Float>(
    out: &mut [T],
    stride: usize,
    col: usize,
    axis: &EnergyAxis,
    peak: &Peak<T>,
) {
    let Peak {
        energy,
        fwhm,
        cs,
        d,
        a,
    } = *peak;
    let sigma = fwhm / T::from_f64(FWHM_TO_SIGMA);
    let inv = T::ONE / (sigma * T::from_f64((2.0 * core::f64::consts::PI).sqrt()));
    let two_s2 = T::from_f64(2.0) * (sigma * sigma);
    for (i, row) in out.chunks_exact_mut(stride).take(axis.channels).enumerate() {
        let dx = T::from_f64(axis.energy(i)) - energy;
        let g = inv * (-(dx * dx) / two_s2).exp();
        // espm's order: (cs · g) · D · A
        row[col] += cs * g * d * a;
    }
}
