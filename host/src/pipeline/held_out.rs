//! Held-out Poisson likelihood: counts split by binomial thinning into two independent
//! Poisson images of the same sample, and the log-likelihood of one under a model fitted to the
//! other. `rank` chooses K with it and the spectra stage chooses among its candidates with it.

use crate::io::counts::SpectrumImage;
use anyhow::{bail, Result};
use edxs_core::rng::Rng;

/// Splits integer counts by binomial thinning: each count goes to the first image with
/// probability `fraction`. Deterministic for a seed (one sequential stream over pixels and
/// channels in storage order); non-integer counts are refused, since thinning needs counts.
pub fn thin(
    img: &SpectrumImage,
    fraction: f64,
    seed: u64,
) -> Result<(SpectrumImage, SpectrumImage)> {
    if !(fraction > 0.0 && fraction < 1.0) {
        bail!("the fit fraction must lie strictly between 0 and 1, got {fraction}");
    }
    if let Some(v) = img.values.iter().find(|v| v.fract() != 0.0) {
        bail!("held-out likelihood needs integer counts; the data hold {v}");
    }
    let mut rng = Rng::new(seed ^ 0x7417_c0de_5eed_0001);
    let empty = || SpectrumImage {
        channels: img.channels,
        pixels: img.pixels,
        shape: img.shape,
        indptr: vec![0],
        indices: Vec::new(),
        values: Vec::new(),
    };
    let (mut a, mut b) = (empty(), empty());
    for p in 0..img.pixels {
        let r = img.indptr[p]..img.indptr[p + 1];
        for (&c, &v) in img.indices[r.clone()].iter().zip(&img.values[r]) {
            let n = v as u64;
            let k = (0..n).filter(|_| rng.uniform() < fraction).count() as f64;
            if k > 0.0 {
                a.indices.push(c);
                a.values.push(k);
            }
            if v - k > 0.0 {
                b.indices.push(c);
                b.values.push(v - k);
            }
        }
        a.indptr.push(a.indices.len());
        b.indptr.push(b.indices.len());
    }
    Ok((a, b))
}

/// Per-pixel Poisson log-likelihood of `test` under the mean `scale`·D·H (D = G·W: L×K;
/// H: K×P), without Σ log y!. A zero mean where a count was seen is clamped to
/// 1e-300 so that the result stays finite (and very low).
pub fn held_out_loglik(
    d: &[f64],
    h: &[f64],
    k: usize,
    test: &SpectrumImage,
    scale: f64,
) -> Vec<f64> {
    let (l, p) = (test.channels, test.pixels);
    let colsum: Vec<f64> = (0..k).map(|c| (0..l).map(|i| d[i * k + c]).sum()).collect();
    (0..p)
        .map(|px| {
            let total: f64 = (0..k).map(|c| colsum[c] * h[c * p + px]).sum::<f64>() * scale;
            let r = test.indptr[px]..test.indptr[px + 1];
            let hit: f64 = test.indices[r.clone()]
                .iter()
                .zip(&test.values[r])
                .map(|(&ch, &y)| {
                    let mu: f64 = (0..k)
                        .map(|c| d[ch as usize * k + c] * h[c * p + px])
                        .sum::<f64>()
                        * scale;
                    y * mu.max(1e-300).ln()
                })
                .sum();
            hit - total
        })
        .collect()
}
