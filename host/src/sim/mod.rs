//! Simulated spectrum images as espm builds them (spec §3): phase spectra, abundance maps,
//! Poisson counts.
//!
//! Y[p, l] ~ Poisson(N · Σ_k H[k, p] · density_k · phase_k(l)), drawn pixel by pixel (row-major)
//! and channel by channel, as espm's `generate_spim`.

// `!(x > 0.0)` is deliberate throughout: unlike `x <= 0.0` it also rejects NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod maps;
pub mod phases;
pub mod poisson;
pub mod presets;

use edxs_core::rng::Rng;

/// espm's truth spectra `GW` (K×L): N · density_k · phase_k.
pub fn spectra_counts(phases: &[f64], densities: &[f64], n: f64, channels: usize) -> Vec<f64> {
    phases
        .chunks_exact(channels)
        .zip(densities)
        .flat_map(|(row, d)| row.iter().map(move |v| n * (v * d)))
        .collect()
}

/// The noiseless spectrum of pixel `px` (espm's `Xdot`), written into `out` (L):
/// N · Σ_k H[k, px] · (phase_k · density_k). `maps` is K×P.
pub fn expected_pixel(
    phases: &[f64],
    densities: &[f64],
    maps: &[f64],
    n: f64,
    px: usize,
    out: &mut [f64],
) {
    let l = out.len();
    let k = densities.len();
    let p = maps.len() / k;
    out.iter_mut().for_each(|v| *v = 0.0);
    for c in 0..k {
        let h = maps[c * p + px];
        if h == 0.0 {
            continue;
        }
        let d = densities[c];
        for (o, ph) in out.iter_mut().zip(&phases[c * l..(c + 1) * l]) {
            *o += h * (ph * d);
        }
    }
    out.iter_mut().for_each(|v| *v *= n);
}

/// Replaces every expected count in `lam` by a Poisson draw.
pub fn draw_counts(rng: &mut Rng, lam: &mut [f64]) {
    for v in lam.iter_mut() {
        *v = poisson::poisson(rng, *v) as f64;
    }
}
