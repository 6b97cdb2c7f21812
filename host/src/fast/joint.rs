//! The fast joint fit: W and H together by alternating exact-ish block solves, the maps by
//! the per-pixel Newton solver ([`super::maps`]) and the spectra by the active-set Newton
//! method ([`super::spectra`]), instead of thousands of multiplicative updates.
//!
//! Each block step decreases the objective (the maps solver and the spectra step both
//! guard their steps), so the objective falls monotonically between G updates; the
//! bremsstrahlung columns of G follow W after each spectra step as espm's `NMF_update` does
//! every third iteration. The loop stops when the objective changes by less than `tol`
//! relative, as the multiplicative driver's `Relative` rule does.

use super::held::KKT_TOL;
use super::maps::{solve_maps, MapsOptions};
use super::objective::{kl_constant, objective, MapsProblem};
use super::spectra::{newton_w, SpectraProblem};
use super::{gw, pool};
use crate::io::counts::{SparseCountsRef, SpectrumImage};
use anyhow::{anyhow, Result};
use edxs_core::solver::{Laplacian, RunSummary, StopReason};
use edxs_core::{EdxsModel, Normalisation};

/// Newton steps on W per outer iteration: the spectra subproblem is convex and small, two
/// steps take most of its decrease while the maps still move.
const W_STEPS: usize = 2;

/// What a joint run needs besides the data and the start.
pub struct JointRun<'a, 'm> {
    /// The model, for the bremsstrahlung update of G (None: G stays as given).
    pub g_update: Option<(&'a EdxsModel<'m>, Normalisation<f64>)>,
    /// Rows of W whose entries sum to one per column (the elements).
    pub simplex_rows: &'a [usize],
    /// Held entries of W (M×K; ≥ 0 holds the entry, < 0 leaves it free).
    pub fixed: Option<&'a [f64]>,
    /// μ (raw units): one value or one per component.
    pub mu: &'a [f64],
    /// λ (raw units).
    pub lambda: f64,
    /// ε_reg (raw units).
    pub epsilon_reg: f64,
    /// Outer-iteration cap.
    pub max_iter: usize,
    /// Relative objective change that stops the run.
    pub tol: f64,
    /// Worker threads (0 = one per core).
    pub threads: usize,
}

/// The outcome of [`fit_joint`].
pub struct JointFit {
    /// G (bremsstrahlung columns updated from the final W when asked).
    pub g: Vec<f64>,
    /// W (M×K).
    pub w: Vec<f64>,
    /// H (K×P).
    pub h: Vec<f64>,
    /// The run in the driver's terms (iterations = outer iterations).
    pub summary: RunSummary,
    /// One `losses.csv` row per outer iteration: (total, kl, log_reg, laplacian, rel_w, rel_h).
    pub history: Vec<[f64; 6]>,
    /// KKT residual of the maps at the end (W held).
    pub kkt: f64,
}

fn rel_change(new: &[f64], old: &[f64]) -> f64 {
    let num: f64 = new.iter().zip(old).map(|(a, b)| (a - b) * (a - b)).sum();
    let den: f64 = old.iter().map(|v| v * v).sum();
    (num / den.max(1e-300)).sqrt()
}

/// Fits W and H of `img` from (G, W, H), W's held entries kept.
pub fn fit_joint(
    run: &JointRun<'_, '_>,
    img: &SpectrumImage,
    mut g: Vec<f64>,
    mut w: Vec<f64>,
    mut h: Vec<f64>,
    k: usize,
) -> Result<JointFit> {
    let (l, p) = (img.channels, img.pixels);
    anyhow::ensure!(
        k >= 1 && w.len().is_multiple_of(k),
        "W does not have {k} columns"
    );
    let m = w.len() / k;
    anyhow::ensure!(
        g.len() == l * m,
        "G has {} entries, expected {l}x{m}",
        g.len()
    );
    anyhow::ensure!(
        h.len() == k * p,
        "H has {} entries, expected {k}x{p}",
        h.len()
    );
    anyhow::ensure!(run.max_iter >= 1, "the iteration cap must be at least 1");
    let y = img.as_ref();
    let laplacian = match img.shape {
        Some((rows, cols)) => Laplacian::Grid { rows, cols },
        None => Laplacian::Identity,
    };
    let eps = 1e-14;
    fn problem<'a>(
        y: SparseCountsRef<'a>,
        d: &'a [f64],
        k: usize,
        run: &'a JointRun<'_, '_>,
        laplacian: Laplacian,
        eps: f64,
    ) -> MapsProblem<'a> {
        MapsProblem {
            y,
            d,
            k,
            mu: run.mu,
            epsilon_reg: run.epsilon_reg,
            lambda: run.lambda,
            laplacian,
            eps,
        }
    }
    let workers = pool(run.threads)?;
    let mut scratch = run
        .g_update
        .map(|(model, _)| vec![0.0; model.scratch_len()])
        .unwrap_or_default();
    let mut update_g = |g: &mut Vec<f64>, w: &[f64]| -> Result<()> {
        if let Some((model, norm)) = run.g_update {
            model
                .update_bremsstrahlung(&norm, w, k, g, &mut scratch)
                .map_err(|e| anyhow!("bremsstrahlung update: {e}"))?;
        }
        Ok(())
    };
    update_g(&mut g, &w)?;
    // D = G·W of the current (G, W): the loss after each round and the next maps step use it.
    let mut d = gw(&g, &w, l, m, k);
    let initial = objective(&problem(y, &d, k, run, laplacian, eps), &h).total();
    anyhow::ensure!(initial.is_finite(), "the start's loss is not finite");
    // One sweep solves every pixel's convex K-variable problem when the maps are not coupled
    // (λ = 0); with the Laplacian a few sweeps move the coupled problem most of the way.
    let sweeps = if run.lambda == 0.0 { 1 } else { 5 };
    let opt = MapsOptions {
        max_sweeps: sweeps,
        kkt_tol: KKT_TOL,
        tol: 0.0,
        inner: 0,
        threads: run.threads,
    };
    let mut last = initial;
    let mut history = Vec::new();
    let mut reason = StopReason::MaxIter;
    let mut iterations = 0;
    let mut kkt = f64::NAN;
    for _ in 0..run.max_iter {
        iterations += 1;
        let h_old = h.clone();
        let w_old = w.clone();
        let rep = solve_maps(&problem(y, &d, k, run, laplacian, eps), &mut h, &opt)?;
        kkt = rep.kkt;
        let sp = SpectraProblem {
            y,
            g: &g,
            m,
            k,
            h: &h,
            simplex_rows: run.simplex_rows,
            fixed: run.fixed,
            eps,
        };
        newton_w(&sp, &mut w, W_STEPS, 0.0, &workers)?;
        update_g(&mut g, &w)?;
        d = gw(&g, &w, l, m, k);
        let terms = objective(&problem(y, &d, k, run, laplacian, eps), &h);
        let f = terms.total();
        anyhow::ensure!(f.is_finite(), "the joint fit reached a non-finite loss");
        history.push([
            f,
            terms.kl,
            terms.log_reg,
            terms.laplacian,
            rel_change(&w, &w_old),
            rel_change(&h, &h_old),
        ]);
        let change = (last - f).abs() / f.abs().max(1e-300);
        last = f;
        if change < run.tol {
            reason = StopReason::LossConverged;
            break;
        }
    }
    Ok(JointFit {
        g,
        w,
        h,
        summary: RunSummary {
            iterations,
            reason,
            initial_loss: initial,
            final_loss: last,
            kl_constant: kl_constant(&y),
        },
        history,
        kkt,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 6×5 scan of two phases over 30 channels and four columns (three elements, one
    /// continuum), counts near G·W·H.
    fn data() -> (SpectrumImage, Vec<f64>, Vec<f64>, Vec<f64>) {
        let (l, m, k, rows, cols) = (30, 4, 2, 6, 5);
        let p = rows * cols;
        let g: Vec<f64> = (0..l * m)
            .map(|i| {
                let (li, j) = (i / m, i % m);
                if j == 3 {
                    0.2 + 0.01 * li as f64
                } else {
                    (-(li as f64 - 5.0 - 9.0 * j as f64).powi(2) / 6.0).exp()
                }
            })
            .collect();
        let w_true = [0.6, 0.1, 0.3, 0.2, 0.1, 0.7, 0.5, 0.3];
        let h_true: Vec<f64> = (0..k * p)
            .map(|i| if (i % p) % 3 == (i / p) { 90.0 } else { 15.0 })
            .collect();
        let mut y = vec![0.0; p * l];
        for px in 0..p {
            for li in 0..l {
                let x: f64 = (0..k)
                    .map(|c| {
                        (0..m)
                            .map(|j| g[li * m + j] * w_true[j * k + c])
                            .sum::<f64>()
                            * h_true[c * p + px]
                    })
                    .sum();
                y[px * l + li] = (x + ((li * 7 + px * 3) % 5) as f64 - 2.0).round().max(0.0);
            }
        }
        let img = SpectrumImage::from_dense("t", &y, p, l, Some((rows, cols))).unwrap();
        let w0 = vec![0.3, 0.4, 0.3, 0.3, 0.4, 0.3, 1.0, 1.0];
        let h0 = vec![40.0; k * p];
        (img, g, w0, h0)
    }

    fn run<'a>(mu: &'a [f64], lambda: f64, threads: usize) -> JointRun<'a, 'static> {
        JointRun {
            g_update: None,
            simplex_rows: &[0, 1, 2],
            fixed: None,
            mu,
            lambda,
            epsilon_reg: 1.0,
            max_iter: 40,
            tol: 0.0,
            threads,
        }
    }

    #[test]
    fn objective_never_increases_and_w_stays_on_the_simplex() {
        let (img, g, w0, h0) = data();
        for (mu, lambda) in [(0.0, 0.0), (0.5, 0.0), (0.5, 2.0)] {
            let mus = [mu];
            let fit = fit_joint(
                &run(&mus, lambda, 1),
                &img,
                g.clone(),
                w0.clone(),
                h0.clone(),
                2,
            )
            .unwrap();
            let losses: Vec<f64> = fit.history.iter().map(|r| r[0]).collect();
            assert!(fit.summary.final_loss < fit.summary.initial_loss);
            for pair in losses.windows(2) {
                assert!(
                    pair[1] <= pair[0] * (1.0 + 1e-12),
                    "mu {mu} lambda {lambda}: {pair:?}"
                );
            }
            for c in 0..2 {
                let s: f64 = (0..3).map(|j| fit.w[j * 2 + c]).sum();
                assert!((s - 1.0).abs() < 1e-9, "column {c} sums to {s}");
            }
            assert!(fit
                .w
                .iter()
                .chain(&fit.h)
                .all(|v| v.is_finite() && *v >= 0.0));
        }
    }

    #[test]
    fn bit_identical_for_any_thread_count() {
        let (img, g, w0, h0) = data();
        let mus = [0.5];
        let a = fit_joint(
            &run(&mus, 2.0, 1),
            &img,
            g.clone(),
            w0.clone(),
            h0.clone(),
            2,
        )
        .unwrap();
        let b = fit_joint(&run(&mus, 2.0, 2), &img, g, w0, h0, 2).unwrap();
        assert_eq!(a.w, b.w);
        assert_eq!(a.h, b.h);
    }
}
