//! The multiplicative updates of the spectra stage's binned fits with the loss evaluated every
//! `every` iterations instead of after each one.
//!
//! The iterates are the core driver's (`Solver::drive`) to the bit: the same steps and the same
//! G update every third iteration; only the stopping test is sparser. On the binned fits the
//! loss (a logarithm per non-zero) cost more than the update itself (35 % of a default run's
//! CPU against 17 % for the H update, `perf` on a 128² map at 18 counts/pixel), and it is only
//! needed for the stopping rule. The rule becomes: stop when the objective changed by at most
//! `every`·tol·|f| over the last `every` iterations (the mean change per iteration ≤ tol·|f|,
//! the core's `Relative` rule averaged over the window), so a run stops at most about `every`
//! iterations after the core's rule would. The run also stops when the KKT residuals of W
//! ([`crate::fast::kkt_w`]) and of H ([`crate::fast::kkt`]) are both at most `kkt_tol`
//! (checked at every [`KKT_EVERY_CHECKS`]-th loss check once the loss change is within 100×
//! the tolerance). As in the core's driver, the best checked iterate is returned if the last
//! is worse.

use super::fit::history_row;
use crate::fast::kkt_w::w_kkt_residual;
use crate::fast::spectra::SpectraProblem;
use crate::fast::{gw, kkt_residual, MapsProblem};
use crate::io::counts::SpectrumImage;
use anyhow::{anyhow, Result};
use edxs_core::solver::{Exec, GUpdate, IterReport, Laplacian, RunSummary, StopReason};

/// Loss checks between two KKT tests near convergence. Each test is a pass over the
/// non-zeros for W and one for H, 1.5 updates' worth; tested at every check they took a sixth
/// of a 512² map's CPU, and on the paper's data a binned fit ends by the loss rule at a W
/// residual of 6e-5–5e-4, before the 1e-6 test could end it (996 tests, none stopping a
/// fit). One test in ten stops a fit at most 100 iterations after the residual got there.
pub const KKT_EVERY_CHECKS: usize = 10;

/// How a sparse-check run is stopped and measured.
pub(super) struct SparseStop<'a> {
    /// Iterations between loss evaluations.
    pub every: usize,
    /// Mean relative loss change per iteration at which the run stops.
    pub tol: f64,
    /// KKT residual (W and H both) at which the run stops (0: never on it).
    pub kkt_tol: f64,
    /// The problem's data and constants for the KKT residuals.
    pub kkt: KktData<'a>,
}

/// What the KKT residuals of a joint state need besides G, W and H.
pub(super) struct KktData<'a> {
    /// The image fitted.
    pub img: &'a SpectrumImage,
    /// Element rows of W (simplex).
    pub simplex_rows: &'a [usize],
    /// Held entries of W.
    pub fixed: Option<&'a [f64]>,
    /// μ (raw units).
    pub mu: &'a [f64],
    /// ε_reg (raw units).
    pub epsilon_reg: f64,
    /// λ (raw units).
    pub lambda: f64,
    /// Worker threads.
    pub threads: usize,
}

impl KktData<'_> {
    /// (KKT of W with H held, KKT of H with W held) at (G, W, H).
    pub fn residuals(&self, g: &[f64], w: &[f64], h: &[f64], k: usize) -> Result<(f64, f64)> {
        let (l, m) = (self.img.channels, w.len() / k);
        let y = self.img.as_ref();
        let pool = crate::fast::pool(self.threads)?;
        let sp = SpectraProblem {
            y,
            g,
            m,
            k,
            h,
            simplex_rows: self.simplex_rows,
            fixed: self.fixed,
            eps: 1e-14,
        };
        let kw = w_kkt_residual(&sp, w, &pool)?;
        let d = gw(g, w, l, m, k);
        let laplacian = match self.img.shape {
            Some((rows, cols)) => Laplacian::Grid { rows, cols },
            None => Laplacian::Identity,
        };
        let pb = MapsProblem {
            y,
            d: &d,
            k,
            mu: self.mu,
            epsilon_reg: self.epsilon_reg,
            lambda: self.lambda,
            laplacian,
            eps: 1e-14,
        };
        Ok((kw, kkt_residual(&pb, h)))
    }
}

/// A sparse-check run: its summary, one history row per check and the final KKT residuals
/// (W, H).
pub(super) type SparseRun = (RunSummary, Vec<[f64; 6]>, (f64, f64));

/// Runs the solver behind `exec` from (G, W, H) with the loss checked every `stop.every`
/// iterations; returns the summary, one history row per check and the final KKT residuals
/// (W, H).
pub(super) fn drive_sparse(
    exec: &mut dyn Exec<f64>,
    (g, w, h): (&mut [f64], &mut [f64], &mut [f64]),
    update_every: usize,
    g_update: &mut dyn GUpdate<f64>,
    max_iter: usize,
    stop: &SparseStop<'_>,
) -> Result<SparseRun> {
    let k = h.len() / stop.kkt.img.pixels;
    let every = stop.every.max(1);
    let err = |e: edxs_core::SolverError| anyhow!("{e}");
    let gerr = |e: edxs_core::ModelError| anyhow!("{e}");
    let initial = exec.loss(g, w, h).map_err(err)?.total();
    let (mut w_best, mut h_best) = (w.to_vec(), h.to_vec());
    let mut best = f64::INFINITY;
    let mut last_check = initial;
    let mut history = Vec::new();
    let mut reason = StopReason::MaxIter;
    let mut it = 0;
    while it < max_iter {
        exec.step(g, w, h).map_err(err)?;
        it += 1;
        let check = it % every == 0 || it == max_iter;
        if check {
            let terms = exec.loss(g, w, h).map_err(err)?;
            let f = terms.total();
            history.push(history_row(&IterReport {
                iter: it,
                loss: terms,
                rel_w: f64::NAN,
                rel_h: f64::NAN,
            }));
            if f < best {
                best = f;
                w_best.copy_from_slice(w);
                h_best.copy_from_slice(h);
            }
            if it >= max_iter {
                break;
            }
            let change = (last_check - f).abs() / (every as f64 * f.abs());
            if change <= stop.tol {
                reason = StopReason::LossConverged;
                break;
            }
            // Near the loss test only, and sparsely: each residual costs a pass over the
            // non-zeros.
            let kkt_turn = (it / every).is_multiple_of(KKT_EVERY_CHECKS);
            if stop.kkt_tol > 0.0 && change <= 100.0 * stop.tol && kkt_turn {
                let (kw, kh) = stop.kkt.residuals(g, w, h, k)?;
                if kw.max(kh) <= stop.kkt_tol {
                    reason = StopReason::LossConverged;
                    break;
                }
            }
            last_check = f;
        }
        if update_every > 0 && it % update_every == 0 {
            g_update.update(g, w, k).map_err(gerr)?;
            if check {
                // The core's driver compares against the loss after the G update.
                last_check = exec.loss(g, w, h).map_err(err)?.total();
            }
        }
    }
    let mut final_loss = exec.loss(g, w, h).map_err(err)?.total();
    let worse = final_loss.is_nan() || final_loss > best;
    if worse && best.is_finite() {
        w.copy_from_slice(&w_best);
        h.copy_from_slice(&h_best);
        final_loss = exec.loss(g, w, h).map_err(err)?.total();
    }
    let kkt = stop.kkt.residuals(g, w, h, k)?;
    Ok((
        RunSummary {
            iterations: it,
            reason,
            initial_loss: initial,
            final_loss,
            kl_constant: exec.kl_constant(),
        },
        history,
        kkt,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::ParallelExec;
    use edxs_core::solver::{GModel, Laplacian, NoGUpdate, Simplex, SimplexSolver};
    use edxs_core::{Solver, SolverParams};
    use edxs_suite::synthetic;

    struct Run {
        w: Vec<f64>,
        h: Vec<f64>,
        summary: RunSummary,
        history: Vec<[f64; 6]>,
        kkt: (f64, f64),
    }

    /// The sparse driver on a synthetic 19×21 scan, K = 3, the binned fits' penalties.
    fn run(threads: usize, every: usize, tol: f64, max_iter: usize, core: bool) -> Run {
        run_kkt(threads, every, tol, 0.0, max_iter, core)
    }

    /// As [`run`], also stopping at a KKT residual of `kkt_tol`.
    fn run_kkt(
        threads: usize,
        every: usize,
        tol: f64,
        kkt_tol: f64,
        max_iter: usize,
        core: bool,
    ) -> Run {
        let s = synthetic(19, 21, 150.0, 5);
        let (k, p) = (3, s.rows * s.cols);
        let img = SpectrumImage::from_dense("t", &s.dense, p, s.l, Some((s.rows, s.cols))).unwrap();
        let mus = [0.05];
        let mut prm = SolverParams::new(k, &s.simplex_rows);
        prm.mu = &mus;
        prm.epsilon_reg = 0.5;
        prm.lambda_l = 0.0;
        prm.laplacian = Laplacian::Grid {
            rows: s.rows,
            cols: s.cols,
        };
        prm.simplex = Simplex::W {
            rows: &s.simplex_rows,
        };
        prm.simplex_solver = SimplexSolver::Newton;
        prm.max_iter = max_iter;
        prm.tol = tol;
        prm.g = GModel::Matrix { update_every: 0 };
        let solver = Solver::new(prm, s.l, s.m, p).unwrap();
        let mut w: Vec<f64> = (0..s.m * k).map(|i| 0.05 + (i % 7) as f64 * 0.01).collect();
        let mut h: Vec<f64> = (0..k * p).map(|i| 20.0 + (i % 5) as f64).collect();
        let mut g = s.g.clone();
        let mut exec = ParallelExec::new(&solver, img.counts(), threads).unwrap();
        let stop = SparseStop {
            every,
            tol,
            kkt_tol,
            kkt: KktData {
                img: &img,
                simplex_rows: &s.simplex_rows,
                fixed: None,
                mu: &mus,
                epsilon_reg: 0.5,
                lambda: 0.0,
                threads,
            },
        };
        if core {
            let mut drv = vec![0.0; solver.driver_len()];
            let summary = solver
                .drive(
                    &mut exec,
                    solver.factors(&mut g, &mut w, &mut h).unwrap(),
                    &mut drv,
                    &mut NoGUpdate,
                    &mut |_| {},
                )
                .unwrap();
            let kkt = stop.kkt.residuals(&g, &w, &h, k).unwrap();
            return Run {
                w,
                h,
                summary,
                history: vec![],
                kkt,
            };
        }
        let (summary, history, kkt) = drive_sparse(
            &mut exec,
            (&mut g, &mut w, &mut h),
            0,
            &mut NoGUpdate,
            max_iter,
            &stop,
        )
        .unwrap();
        Run {
            w,
            h,
            summary,
            history,
            kkt,
        }
    }

    #[test]
    fn iterates_are_the_core_drivers_and_thread_count_does_not_change_them() {
        let core = run(1, 1, 0.0, 60, true);
        for threads in [1, 2] {
            let sparse = run(threads, 7, 0.0, 60, false);
            assert_eq!(sparse.summary.iterations, 60);
            assert_eq!(
                (&sparse.w, &sparse.h),
                (&core.w, &core.h),
                "{threads} threads"
            );
            assert_eq!(sparse.summary.final_loss, core.summary.final_loss);
            assert_eq!(sparse.kkt, core.kkt);
        }
    }

    #[test]
    fn checked_losses_never_rise_and_the_tolerance_stops_the_run_near_the_core_rule() {
        let core = run(1, 1, 1e-6, 5000, true);
        assert_eq!(core.summary.reason, StopReason::LossConverged);
        let sparse = run(1, 10, 1e-6, 5000, false);
        assert_eq!(sparse.summary.reason, StopReason::LossConverged);
        for pair in sparse.history.windows(2) {
            assert!(pair[1][0] <= pair[0][0], "{pair:?}");
        }
        // The window's mean change reaches tol within a few windows of the last change doing so.
        let (a, b) = (core.summary.iterations, sparse.summary.iterations);
        assert!(b + 200 >= a && b <= a + 200, "core {a}, sparse {b}");
        let rel = (sparse.summary.final_loss - core.summary.final_loss).abs()
            / core.summary.final_loss.abs();
        assert!(
            rel < 1e-4,
            "objectives {} and {}",
            sparse.summary.final_loss,
            core.summary.final_loss
        );
        // Further along, the residuals fall.
        let long = run(1, 10, 1e-10, 20000, false);
        assert!(
            long.kkt.0 < sparse.kkt.0 && long.kkt.1 < sparse.kkt.1,
            "{:?} {:?}",
            long.kkt,
            sparse.kkt
        );
    }

    #[test]
    fn the_kkt_test_stops_a_run_on_its_turn_once_both_residuals_are_small() {
        // The KKT test runs once the change is within 100× the tolerance: at 1e-9, from about
        // where a 1e-7 run stops by the loss rule. Its target is that run's residuals.
        let loose = run(1, 10, 1e-7, 20000, false);
        let target = 1.01 * loose.kkt.0.max(loose.kkt.1);
        let by_loss = run(1, 10, 1e-9, 20000, false);
        let by_kkt = run_kkt(1, 10, 1e-9, target, 20000, false);
        assert_eq!(by_kkt.summary.reason, StopReason::LossConverged);
        assert!(
            by_kkt.summary.iterations < by_loss.summary.iterations,
            "{} {}",
            by_kkt.summary.iterations,
            by_loss.summary.iterations
        );
        assert!(by_kkt.summary.iterations >= loose.summary.iterations);
        // Only on its turn, and it stopped there because both residuals were small.
        assert_eq!(by_kkt.summary.iterations % (10 * KKT_EVERY_CHECKS), 0);
        assert!(by_kkt.kkt.0.max(by_kkt.kkt.1) <= target, "{:?}", by_kkt.kkt);
    }
}
