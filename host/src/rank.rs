//! Choosing the number of phases K by held-out Poisson likelihood.
//!
//! The counts are split by binomial thinning: each count goes to the fit half with probability
//! `fit_fraction`, else to the test half, so the two halves are independent Poisson images of
//! the same sample (means scaled by f and 1 − f). For each K from 1 to `k_max`:
//! 1. the phase spectra G·W come from the fit half with `decompose`'s default method;
//! 2. with those spectra held, the maps are refitted on the fit half summed over b×b blocks
//!    (b: the pipeline's first block side for the fit half's counts per pixel);
//! 3. the score is the Poisson log-likelihood of the test half, summed over the same blocks,
//!    under that model times (1 − f)/f.
//!
//! Why blocks: scored pixel by pixel, each extra phase pays for maps that follow the fit half's
//! noise at every pixel, and at 18 counts/pixel that cost beat the gain of the true third phase
//! (128², N = 18: K = 1 scored highest). Even the full-resolution maps summed over blocks
//! scored below K = 1, on the fit half too: per-pixel maps at ~9 counts are biased by their
//! non-negativity. Maps fitted on the blocks themselves have ~300 counts each, so the score
//! measures what the spectra explain; a spurious spectrum still costs a parameter per block and
//! whatever it misdescribes.
//!
//! The rule: the smallest K whose held-out log-likelihood is within [`MARGIN_SE`] standard
//! errors of the best K's, the error being that of the summed per-block difference between the
//! two (blocks of the test half are independent given the fits). Measured on the paper's
//! phases (README "Choosing K"): one phase too many never came within 2.8 standard errors of
//! the true K, while at 18 counts/pixel on 64×64 scans (74 000 counts) the third phase gained
//! 0.3–2.6 errors over two where it won; of 8 such runs the best K was 3 in 7 and a margin of
//! 0.5 or 1 error chose 3 in 6. Half an error is kept so that a flat tail (real data) resolves
//! to the smaller K. At 128×128 and 18 counts/pixel (8 runs) K = 3 was chosen every time,
//! 2.7–7.0 errors above K = 2 and 2.8–7.6 above K = 4; at 293 counts/pixel the gaps are wider.

use crate::io::counts::SpectrumImage;
pub use crate::pipeline::held_out::{held_out_loglik, thin};
use crate::pipeline::{self, Method, Prepared, SpectraCache};
use anyhow::{bail, Result};
use edxs_core::EdxsModel;
use rayon::prelude::*;
use serde::Serialize;

/// Margin of the rule in standard errors of the difference to the best K (see the module
/// documentation for the measurement behind it).
pub const MARGIN_SE: f64 = 0.5;

/// How [`choose_k`] runs.
#[derive(Debug, Clone, Copy)]
pub struct RankOptions {
    /// Largest K tried (from 1).
    pub k_max: usize,
    /// Share of the counts in the fit half (the rest is the test half).
    pub fit_fraction: f64,
    /// Seed of the thinning and of the fits.
    pub seed: u64,
    /// Iteration cap of each fit (of each stage of a two-stage fit; None: [`PIPELINE_LIMITS`]
    /// for the pipeline, `decompose`'s for a joint fit).
    pub max_iter: Option<usize>,
    /// Stopping tolerance of each fit (None: as for `max_iter`).
    pub tol: Option<f64>,
    /// Worker threads (0 = one per core); the curve is the same for every count.
    pub threads: usize,
    /// Block side over which test counts and model are summed before scoring (0: the
    /// spectra stage's block side for the fit half; 1: single pixels).
    pub eval_bin: usize,
}

impl Default for RankOptions {
    fn default() -> Self {
        RankOptions {
            k_max: 6,
            fit_fraction: 0.5,
            seed: 0,
            max_iter: None,
            tol: None,
            threads: 0,
            eval_bin: 0,
        }
    }
}

/// One K of the curve.
#[derive(Debug, Clone, Serialize)]
pub struct RankPoint {
    /// Number of phases.
    pub k: usize,
    /// Test-half Poisson log-likelihood, without the K-independent Σ log y! term.
    pub test_loglik: f64,
    /// `test_loglik` minus the best K's.
    pub delta_from_best: f64,
    /// Standard error of `delta_from_best` from the per-block differences (0 for the best).
    pub std_error: f64,
    /// Seconds spent fitting this K.
    pub seconds: f64,
}

/// The held-out likelihood curve and the K it picks.
#[derive(Debug, Clone, Serialize)]
pub struct RankReport {
    /// The chosen number of phases.
    pub chosen: usize,
    /// The K with the highest held-out log-likelihood.
    pub best: usize,
    /// The rule that chose.
    pub rule: String,
    /// How each K was fitted ("two-stage, blocks from B" or "joint").
    pub method: String,
    /// Block side over which the test half was scored.
    pub eval_bin: usize,
    /// Share of the counts in the fit half.
    pub fit_fraction: f64,
    /// Seed of the thinning.
    pub seed: u64,
    /// Counts in the fit and test halves.
    pub fit_counts: f64,
    /// Counts in the test half.
    pub test_counts: f64,
    /// The curve, K = 1 … k_max.
    pub curve: Vec<RankPoint>,
}

/// Iteration cap and tolerance of the pipeline's fits here, rather than `decompose`'s 10000
/// to 1e-8: the full-resolution maps are refitted per block, and on the 64×64 paper scan at
/// 293 counts/pixel the curve kept its shape (K = 2 and K = 4 at −926 and −427 from K = 3
/// against −1010 and −483) in a quarter of the time (30 s against 117 s for K ≤ 4).
pub const PIPELINE_LIMITS: (usize, f64) = (2000, 1e-6);

/// The number of phases for `img` under `model` by held-out Poisson likelihood (see the module
/// documentation), with the whole curve.
///
/// How to call it for `decompose -k auto`: load and crop the input as `decompose` does, build
/// the model (`spec.model()?`), then
/// `let report = edxs::rank::choose_k(&model, &data, &RankOptions { seed, threads, ..Default::default() })?;`
/// and decompose the full data with `report.chosen` phases; put `serde_json::to_value(&report)?`
/// in results.json under `"rank"` and draw the curve with
/// [`crate::report::rank_plot::rank_png`]. It fits `k_max` models on half the counts, so it
/// costs about `k_max` decompositions. Errors: non-integer counts, `k_max` of 0 or larger than
/// the data allow, and any fit's error.
pub fn choose_k(
    model: &EdxsModel<'_>,
    img: &SpectrumImage,
    opts: &RankOptions,
) -> Result<RankReport> {
    let limit = img.channels.min(img.pixels);
    if opts.k_max == 0 || opts.k_max > limit {
        bail!(
            "--k-max {} must be between 1 and {limit} ({} pixels x {} channels)",
            opts.k_max,
            img.pixels,
            img.channels
        );
    }
    let f = opts.fit_fraction;
    let (fit, test) = thin(img, f, opts.seed)?;
    // The fit `decompose` runs by default: the two-stage pipeline where the fit half can be
    // binned, else the joint fit.
    let (kind, recipe, mut set, _) = pipeline::default_recipe(&fit, opts.seed, opts.threads);
    if kind == Method::TwoStage {
        (set.max_iter, set.tol) = PIPELINE_LIMITS;
    }
    set.max_iter = opts.max_iter.unwrap_or(set.max_iter);
    set.tol = opts.tol.unwrap_or(set.tol);
    let method = match kind {
        Method::TwoStage => format!("two-stage, blocks from {}", recipe.two_stage_bin),
        Method::Joint => "joint".to_string(),
    };
    let l = img.channels;
    let b = match opts.eval_bin {
        0 => recipe.two_stage_bin.max(1),
        b => b,
    };
    // Scored over b×b blocks: each pixel's maps follow its own noise in the fit half, which
    // costs every extra phase a little at every pixel, while a real phase gains coherently over
    // a block; summing over blocks keeps the gain and divides that cost by b².
    let blocks = block_map(img, b);
    let (fit_b, test_b) = match (&blocks, pipeline::bin(&fit, b), pipeline::bin(&test, b)) {
        (Some(_), Some((f, _, _)), Some((t, _, _))) => (f, t),
        _ => (fit.clone(), test.clone()),
    };
    let mut lls = Vec::new();
    let mut curve = Vec::new();
    for k in 1..=opts.k_max {
        let t0 = std::time::Instant::now();
        let prep = Prepared::new(model, k)?;
        let r = pipeline::fit(&prep, &fit, &recipe, &set, &mut SpectraCache::default())?;
        let d = r.d(l, k);
        let mut h = match &blocks {
            Some(map) => {
                let (p, pb) = (img.pixels, fit_b.pixels);
                let mut hb = vec![0.0; k * pb];
                for c in 0..k {
                    for (px, &q) in map.iter().enumerate() {
                        hb[c * pb + q] += r.h[c * p + px];
                    }
                }
                hb
            }
            None => r.h.clone(),
        };
        refit_maps(&d, &mut h, k, &fit_b, 1000);
        let ll = held_out_loglik(&d, &h, k, &test_b, (1.0 - f) / f);
        curve.push(RankPoint {
            k,
            test_loglik: ll.iter().sum(),
            delta_from_best: 0.0,
            std_error: 0.0,
            seconds: t0.elapsed().as_secs_f64(),
        });
        lls.push(ll);
    }
    let best = (0..curve.len())
        .max_by(|&a, &b| curve[a].test_loglik.total_cmp(&curve[b].test_loglik))
        .unwrap_or(0);
    for (i, pt) in curve.iter_mut().enumerate() {
        pt.delta_from_best = pt.test_loglik - lls_total(&lls[best]);
        pt.std_error = paired_std_error(&lls[i], &lls[best]);
    }
    let chosen = curve
        .iter()
        .find(|pt| pt.delta_from_best >= -MARGIN_SE * pt.std_error)
        .map_or(best + 1, |pt| pt.k);
    Ok(RankReport {
        chosen,
        best: best + 1,
        rule: format!("smallest K within {MARGIN_SE} standard error (paired over blocks) of the best held-out log-likelihood"),
        method,
        eval_bin: if blocks.is_some() { b } else { 1 },
        fit_fraction: f,
        seed: opts.seed,
        fit_counts: fit.values.iter().sum(),
        test_counts: test.values.iter().sum(),
        curve,
    })
}

/// Block index of each pixel for b×b blocks, as [`pipeline::bin`] sums them (None where it
/// does not bin).
fn block_map(img: &SpectrumImage, b: usize) -> Option<Vec<usize>> {
    let (rows, cols) = img.shape?;
    let (br, bc) = (rows.div_ceil(b), cols.div_ceil(b));
    if b < 2 || br < 4 || bc < 4 {
        return None;
    }
    Some(
        (0..img.pixels)
            .map(|px| (px / cols / b) * bc + (px % cols) / b)
            .collect(),
    )
}

/// Fits the maps H (K×P) of `y` with the spectra D = G·W (L×K) held, by KL multiplicative updates
/// from the given H (each pixel independently; at most `max_iter` sweeps, stopping when no
/// entry moves by more than 1e-6 relative).
pub fn refit_maps(d: &[f64], h: &mut [f64], k: usize, y: &SpectrumImage, max_iter: usize) {
    let (l, p) = (y.channels, y.pixels);
    let colsum: Vec<f64> = (0..k)
        .map(|c| (0..l).map(|i| d[i * k + c]).sum::<f64>().max(1e-300))
        .collect();
    let pixels: Vec<Vec<f64>> = (0..p)
        .into_par_iter()
        .map(|px| {
            let r = y.indptr[px]..y.indptr[px + 1];
            let (idx, val) = (&y.indices[r.clone()], &y.values[r]);
            let mut hp: Vec<f64> = (0..k).map(|c| h[c * p + px].max(1e-12)).collect();
            if idx.is_empty() {
                return vec![0.0; k];
            }
            let mut num = vec![0.0; k];
            for _ in 0..max_iter {
                num.iter_mut().for_each(|v| *v = 0.0);
                for (&ch, &v) in idx.iter().zip(val) {
                    let ch = ch as usize;
                    let mu: f64 = (0..k).map(|c| d[ch * k + c] * hp[c]).sum();
                    let ratio = v / mu.max(1e-300);
                    for c in 0..k {
                        num[c] += d[ch * k + c] * ratio;
                    }
                }
                let mut moved = 0.0f64;
                for c in 0..k {
                    let new = hp[c] * num[c] / colsum[c];
                    moved = moved.max((new - hp[c]).abs() / hp[c].max(1e-12));
                    hp[c] = new;
                }
                if moved < 1e-6 {
                    break;
                }
            }
            hp
        })
        .collect();
    for (px, hp) in pixels.iter().enumerate() {
        for c in 0..k {
            h[c * p + px] = hp[c];
        }
    }
}

fn lls_total(ll: &[f64]) -> f64 {
    ll.iter().sum()
}

/// Standard error of Σ_p (a_p − b_p) from the spread of the differences.
fn paired_std_error(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let diff: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let mean = diff.iter().sum::<f64>() / n;
    let var = diff.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (n * var).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(values: &[f64], pixels: usize, channels: usize) -> SpectrumImage {
        SpectrumImage::from_dense("t", values, pixels, channels, None).unwrap()
    }

    #[test]
    fn thinning_splits_every_count_and_is_binomial() {
        let data: Vec<f64> = (0..2000).map(|i| (i % 7) as f64 * 3.0).collect();
        let img = image(&data, 100, 20);
        let (a, b) = thin(&img, 0.3, 5).unwrap();
        let (sa, sb) = (a.sum_spectrum(), b.sum_spectrum());
        let total: f64 = data.iter().sum();
        let st = img.sum_spectrum();
        for c in 0..20 {
            assert_eq!(sa[c] + sb[c], st[c], "channel {c}");
        }
        // Binomial(n, 0.3) of the total: within 5 standard deviations of 0.3 n.
        let fa: f64 = sa.iter().sum();
        let sd = (total * 0.3 * 0.7).sqrt();
        assert!((fa - 0.3 * total).abs() < 5.0 * sd, "{fa} of {total}");
        // Deterministic for a seed, different for another.
        let (a2, _) = thin(&img, 0.3, 5).unwrap();
        assert_eq!(a.values, a2.values);
        let (a3, _) = thin(&img, 0.3, 6).unwrap();
        assert_ne!(a.values, a3.values);
        let e = thin(&image(&[1.5, 2.0], 1, 2), 0.5, 0).unwrap_err();
        assert!(
            e.to_string().contains("integer counts; the data hold 1.5"),
            "{e}"
        );
        assert!(thin(&img, 1.0, 0).is_err());
    }

    #[test]
    fn loglik_is_the_poisson_likelihood_and_peaks_at_the_true_mean() {
        // One pixel, two channels, one component: mean (2, 3)·h·scale.
        let test = image(&[4.0, 1.0], 1, 2);
        let d = [2.0, 3.0];
        let ll = held_out_loglik(&d, &[1.0], 1, &test, 0.5)[0];
        let want = 4.0 * 1.0f64.ln() + 1.0 * 1.5f64.ln() - 2.5;
        assert!((ll - want).abs() < 1e-12, "{ll} vs {want}");
        // The likelihood in h peaks where the mean's total equals the counts' (h = 5/2.5 = 2).
        let at = |h: f64| held_out_loglik(&d, &[h], 1, &test, 0.5)[0];
        assert!(at(2.0) > at(1.9) && at(2.0) > at(2.1));
    }

    #[test]
    fn paired_error_is_the_spread_of_the_sum() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [0.0; 4];
        // var = 5/3, n·var = 20/3.
        assert!((paired_std_error(&a, &b) - (20.0f64 / 3.0).sqrt()).abs() < 1e-12);
    }
}
