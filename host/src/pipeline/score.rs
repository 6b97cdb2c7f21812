//! How the spectra stage tells its candidates apart.
//!
//! By default, by held-out likelihood over blocks ([`HeldOutBlocks`]): the counts, summed over
//! b×b blocks, are split by binomial thinning into a fit half and a test half; each
//! candidate's maps are fitted to the fit half with its spectra held, and the candidate whose
//! model gives the test half the highest Poisson likelihood is kept. The in-sample objective
//! did not tell them apart at 18 counts/pixel: on espm's self-absorbing phases (128², sampling
//! 42) three of four binned fits had split the matrix in two and lost a particle phase
//! (20–33° mean angle), yet one of them had the lowest full-resolution objective, with the
//! light log penalty (20.7°, seed 9) or with the maps' own regularisation (32.7°). Maps that
//! follow one half's noise predict the other half worse, and summed over blocks a real phase
//! gains coherently while the noise-following cost is divided by b² (as in `rank`): held out,
//! the phase-keeping fit scored highest for every start and both NNDSVD fills, by 99–800
//! log-likelihood units.
//!
//! The thinning draws from a fixed seed: the choice is part of the data's analysis, and the
//! default result does not depend on `--seed`.
//!
//! Non-integer counts cannot be thinned; they are scored as before this module chose by held-out
//! likelihood, by the full-resolution maps objective with the binned fits' light log penalty
//! and no Laplacian (λ = 0), on every pixel of scans up to [`SCORE_PIXELS`] and on an even grid
//! of them on larger ones (pixels do not interact, so the same pixels summed for every
//! candidate rank them as all pixels would, at 1/16 of the cost on a 512² scan).

use super::bin::{auto_bin_for, bin};
use super::held_out::{held_out_loglik, thin};
use crate::io::counts::SpectrumImage;
use anyhow::Result;

/// Seed of the thinning that splits the counts for the candidates' held-out scores.
const THIN_SEED: u64 = 0x5c0e_b10c;

/// How the spectra stage chose among its candidates (results.json's `spectra_choice`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SpectraChoice {
    /// What the candidates were scored by (higher is better).
    pub by: &'static str,
    /// Block side of the held-out halves (1: scored on pixels).
    pub score_bin: usize,
    /// Each candidate's block side and score.
    pub candidates: Vec<(usize, f64)>,
    /// The chosen candidate's block side.
    pub chosen_bin: usize,
    /// Channel groups the binned fits ran on (None: every channel).
    pub channel_groups: Option<usize>,
}

/// A spectrum image summed over blocks and split by thinning into halves of the counts.
pub(super) struct HeldOutBlocks {
    /// Block side.
    pub(super) bin: usize,
    /// The half the candidates' maps are fitted to.
    pub(super) fit: SpectrumImage,
    /// The half they are scored on.
    pub(super) test: SpectrumImage,
}

impl HeldOutBlocks {
    /// The halves of `img` over blocks of the side the pipeline would bin half its counts to
    /// (`first` when the scan is too small for that), or None when the counts are not integers
    /// or the scan cannot be binned.
    pub(super) fn new(img: &SpectrumImage, first: usize) -> Result<Option<Self>> {
        if img.values.iter().any(|v| v.fract() != 0.0) {
            return Ok(None);
        }
        let side = auto_bin_for(img.mean() * img.channels as f64 / 2.0, img.shape);
        let Some((blocks, b)) = [side, first]
            .into_iter()
            .find_map(|b| bin(img, b).map(|(x, _, _)| (x, b)))
        else {
            return Ok(None);
        };
        // Thinning the summed blocks gives the halves' block sums the same law as summing the
        // thinned pixels, with one draw per count either way.
        let (fit, test) = thin(&blocks, 0.5, THIN_SEED)?;
        Ok(Some(HeldOutBlocks { bin: b, fit, test }))
    }

    /// The test half's log-likelihood (without Σ log y!) under spectra `d` (L×K) and maps `h`
    /// fitted to the fit half; −∞ when it is not finite.
    pub(super) fn score(&self, d: &[f64], h: &[f64], k: usize) -> f64 {
        let ll: f64 = held_out_loglik(d, h, k, &self.test, 1.0).iter().sum();
        if ll.is_finite() {
            ll
        } else {
            f64::NEG_INFINITY
        }
    }
}

/// Pixels at most that candidates are scored on (the paper's 128² scan: its choice is made on
/// every pixel, as before the grid existed).
pub const SCORE_PIXELS: usize = 128 * 128;

/// Every `s`-th pixel of every `s`-th row (the middle one of each s×s block), `s` the smallest
/// stride that leaves at most [`SCORE_PIXELS`]; None when the scan has no shape or is already
/// that small, and the candidates are scored on every pixel.
pub(super) fn scoring_pixels(img: &SpectrumImage) -> Option<SpectrumImage> {
    let (rows, cols) = img.shape?;
    if img.pixels <= SCORE_PIXELS {
        return None;
    }
    let mut s = 2;
    while rows.div_ceil(s) * cols.div_ceil(s) > SCORE_PIXELS {
        s += 1;
    }
    let pick = |n: usize| (0..n.div_ceil(s)).map(move |i| (i * s + s / 2).min(n - 1));
    let (sr, sc) = (rows.div_ceil(s), cols.div_ceil(s));
    let mut indptr = Vec::with_capacity(sr * sc + 1);
    indptr.push(0);
    let (mut indices, mut values) = (Vec::new(), Vec::new());
    for r in pick(rows) {
        for c in pick(cols) {
            let px = r * cols + c;
            let span = img.indptr[px]..img.indptr[px + 1];
            indices.extend_from_slice(&img.indices[span.clone()]);
            values.extend_from_slice(&img.values[span]);
            indptr.push(indices.len());
        }
    }
    Some(SpectrumImage {
        channels: img.channels,
        pixels: sr * sc,
        shape: Some((sr, sc)),
        indptr,
        indices,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(rows: usize, cols: usize) -> SpectrumImage {
        // Pixel p holds p + 1 counts in channel p % 3.
        let p = rows * cols;
        SpectrumImage {
            channels: 3,
            pixels: p,
            shape: Some((rows, cols)),
            indptr: (0..=p).collect(),
            indices: (0..p).map(|i| (i % 3) as u32).collect(),
            values: (0..p).map(|i| (i + 1) as f64).collect(),
        }
    }

    /// The per-channel sums of a pixel-major sparse image, pixel by pixel.
    fn dense(img: &SpectrumImage) -> Vec<f64> {
        let mut out = vec![0.0; img.pixels * img.channels];
        for p in 0..img.pixels {
            for i in img.indptr[p]..img.indptr[p + 1] {
                out[p * img.channels + img.indices[i] as usize] += img.values[i];
            }
        }
        out
    }

    #[test]
    fn held_out_halves_split_the_blocks_counts_the_same_way_every_time() {
        // 40x40 pixels with p + 1 counts: ~820 counts a pixel, blocks of 2 for the half.
        let img = image(40, 40);
        let ho = HeldOutBlocks::new(&img, 4)
            .unwrap()
            .expect("integer counts on a binnable scan");
        let (blocks, _, _) = bin(&img, 2).unwrap();
        assert_eq!(ho.fit.shape, blocks.shape);
        assert_eq!(ho.test.shape, blocks.shape);
        let (f, t, b) = (dense(&ho.fit), dense(&ho.test), dense(&blocks));
        assert!(f.iter().zip(&t).zip(&b).all(|((f, t), b)| f + t == *b));
        // About half to each side, and neither side empty.
        let (sf, sb): (f64, f64) = (f.iter().sum(), b.iter().sum());
        assert!((sf / sb - 0.5).abs() < 0.01, "{sf} of {sb}");
        // The split does not depend on anything but the data (no seed of the run).
        let again = HeldOutBlocks::new(&img, 4).unwrap().unwrap();
        assert_eq!(again.fit.values, ho.fit.values);
    }

    #[test]
    fn non_integer_counts_and_unbinnable_scans_have_no_held_out_halves() {
        let mut img = image(40, 40);
        img.values[7] = 2.5;
        assert!(HeldOutBlocks::new(&img, 4).unwrap().is_none());
        // 6x6 pixels: no block side leaves 4x4 blocks.
        assert!(HeldOutBlocks::new(&image(6, 6), 2).unwrap().is_none());
    }

    #[test]
    fn the_model_of_the_test_half_scores_above_a_wrong_one() {
        // Two channels with 8 and 2 counts in every pixel: the right spectrum (0.8, 0.2)
        // must beat a swapped one on the held-out half, the maps being the fit half's totals.
        let (rows, cols) = (16, 16);
        let p = rows * cols;
        let img = SpectrumImage {
            channels: 2,
            pixels: p,
            shape: Some((rows, cols)),
            indptr: (0..=p).map(|i| 2 * i).collect(),
            indices: (0..p).flat_map(|_| [0u32, 1]).collect(),
            values: (0..p).flat_map(|_| [8.0, 2.0]).collect(),
        };
        let ho = HeldOutBlocks::new(&img, 4).unwrap().unwrap();
        let h: Vec<f64> = (0..ho.fit.pixels)
            .map(|q| dense(&ho.fit)[q * 2..q * 2 + 2].iter().sum())
            .collect();
        let right = ho.score(&[0.8, 0.2], &h, 1);
        let wrong = ho.score(&[0.2, 0.8], &h, 1);
        assert!(right > wrong, "{right} vs {wrong}");
    }

    #[test]
    fn small_scans_are_scored_on_every_pixel() {
        assert!(scoring_pixels(&image(128, 128)).is_none());
        assert!(scoring_pixels(&image(100, 160)).is_none());
    }

    #[test]
    fn large_scans_are_scored_on_a_grid_of_their_own_pixels() {
        let img = image(300, 260);
        let s = scoring_pixels(&img).expect("a grid");
        assert!(s.pixels <= SCORE_PIXELS);
        // 300x260 needs stride 3: 100x87 pixels, centres at rows 1, 4, ... and cols 1, 4, ...
        assert_eq!(s.shape, Some((100, 87)));
        assert_eq!(s.pixels, 100 * 87);
        let (r, c) = (7, 11);
        let px = (r * 3 + 1) * 260 + c * 3 + 1;
        let q = r * 87 + c;
        assert_eq!(s.values[s.indptr[q]..s.indptr[q + 1]], [(px + 1) as f64]);
        assert_eq!(s.indices[s.indptr[q]..s.indptr[q + 1]], [(px % 3) as u32]);
        s.as_ref().validate().expect("a valid image");
    }
}
