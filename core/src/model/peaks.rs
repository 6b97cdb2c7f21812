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

/// e^x is exactly 0 in f64 (and f32) for x below this: the Gaussian's channels beyond
/// √(2·746)·σ ≈ 39 σ of the line would add exact zeros.
const EXP_ZERO_BELOW: f64 = -746.0;

/// The channels `lo..hi` within reach of a line at `energy` of width `sigma` (keV): outside
/// them exp(−dx²/2σ²) is exactly 0, so skipping them leaves G bit-identical while building it
/// costs a few exp per line instead of one per channel (the calibration builds G hundreds of
/// times). The 5 % margin covers rounding of dx in f32; a non-finite width keeps every channel.
fn reach(axis: &EnergyAxis, energy: f64, sigma: f64) -> (usize, usize) {
    let r = 1.05 * (-EXP_ZERO_BELOW * 2.0 * sigma * sigma).sqrt();
    if !(r.is_finite() && energy.is_finite()) {
        return (0, axis.channels);
    }
    // The axis is increasing: the first channel at or above `e`, by bisection.
    let first_at = |e: f64| {
        let (mut a, mut b) = (0, axis.channels);
        while a < b {
            let mid = a + (b - a) / 2;
            if axis.energy(mid) < e {
                a = mid + 1;
            } else {
                b = mid;
            }
        }
        a
    };
    (
        first_at(energy - r),
        first_at(energy + r).saturating_add(1).min(axis.channels),
    )
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
    let (lo, hi) = reach(axis, energy.to_f64(), sigma.to_f64());
    let rows = out.chunks_exact_mut(stride).take(axis.channels).enumerate();
    for (i, row) in rows.skip(lo).take(hi.saturating_sub(lo)) {
        let dx = T::from_f64(axis.energy(i)) - energy;
        let g = inv * (-(dx * dx) / two_s2).exp();
        // espm's order: (cs · g) · D · A
        row[col] += cs * g * d * a;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::axis::Compat;

    /// Every channel, as before the window: the reference the windowed sum must equal.
    fn every_channel<T: Float>(
        out: &mut [T],
        stride: usize,
        col: usize,
        axis: &EnergyAxis,
        p: &Peak<T>,
    ) {
        let sigma = p.fwhm / T::from_f64(FWHM_TO_SIGMA);
        let inv = T::ONE / (sigma * T::from_f64((2.0 * core::f64::consts::PI).sqrt()));
        let two_s2 = T::from_f64(2.0) * (sigma * sigma);
        for (i, row) in out.chunks_exact_mut(stride).take(axis.channels).enumerate() {
            let dx = T::from_f64(axis.energy(i)) - p.energy;
            let g = inv * (-(dx * dx) / two_s2).exp();
            row[col] += p.cs * g * p.d * p.a;
        }
    }

    fn check<T: Float>() {
        let axis = EnergyAxis {
            offset: 0.2,
            scale: 0.01,
            channels: 1980,
            compat: Compat::Espm,
        };
        // Narrow and wide lines, inside, at the edges and outside the axis.
        for energy in [-3.0, 0.1, 0.2, 0.5, 1.7404, 9.9, 19.99, 20.0, 20.5, 40.0] {
            for fwhm in [0.0005, 0.02, 0.13, 0.9, 6.0] {
                let peak = Peak {
                    energy: T::from_f64(energy),
                    fwhm: T::from_f64(fwhm),
                    cs: T::from_f64(3.1e-21),
                    d: T::from_f64(0.93),
                    a: T::from_f64(0.71),
                };
                let mut got = [T::ZERO; 2 * 1980];
                let mut want = got;
                add_peak(&mut got, 2, 1, &axis, &peak);
                every_channel(&mut want, 2, 1, &axis, &peak);
                for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        a.to_f64().to_bits() == b.to_f64().to_bits(),
                        "E {energy} FWHM {fwhm}, entry {i}: {a:?} vs {b:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_window_leaves_every_entry_bit_identical_in_f64_and_f32() {
        check::<f64>();
        check::<f32>();
    }
}
