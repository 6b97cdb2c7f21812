//! The multiplicative updates of the spectra stage's binned fits with the loss evaluated every
//! `every` iterations instead of after each one.
//!
//! Without the accelerations below, the iterates are the core driver's (`Solver::drive`) to
//! the bit: the same steps and the same G update every third iteration; only the stopping test
//! is sparser. On the binned fits the
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
//!
//! Two accelerations, both on by default in the spectra stage (`Recipe::two_stage`): the
//! iterates are extrapolated between updates once past their transient ([`Extrapolation`],
//! guarded at each check), and every few checks W takes a Newton step with H held
//! ([`crate::fast::spectra::newton_w`]), which moves entries near zero that the updates move
//! only by a factor per iteration. Together they end the paper's binned fits in about a third
//! of the iterations, at a smaller W residual (`docs/speed/spectra_stage.md`). Optionally
//! (`SparseStop::newton_tail`, `decompose --solver newton-tail`, not the default) the fits end
//! by coupled Newton steps on W and H ([`crate::fast::schur`]) once the updates slow down:
//! far fewer iterations to a stationary point, spectra no nearer the truth
//! (`docs/speed/joint_newton.md`).

use super::fit::history_row;
use super::recipe::{CheckPoint, Observer};
use crate::fast::kkt_w::w_kkt_residual;
use crate::fast::schur::{coupled_step, LogTerm};
use crate::fast::spectra::{free_simplex_entries, newton_w, SpectraProblem};
use crate::fast::{gw, kkt_residual, solve_maps, MapsOptions, MapsProblem};
use crate::io::counts::SpectrumImage;
use anyhow::{anyhow, Result};
use edxs_core::solver::{Exec, GUpdate, IterReport, Laplacian, LossTerms, RunSummary, StopReason};

/// Loss checks between two KKT tests near convergence. Each test is a pass over the
/// non-zeros for W and one for H, 1.5 updates' worth; tested at every check they took a sixth
/// of a 512² map's CPU, and on the paper's data a binned fit ends by the loss rule at a W
/// residual of 6e-5–5e-4, before the 1e-6 test could end it (996 tests, none stopping a
/// fit). One test in ten stops a fit at most 100 iterations after the residual got there.
pub const KKT_EVERY_CHECKS: usize = 10;

/// Newton steps on W at each of its turns: one takes most of the decrease, as the maps move
/// under it anyway (two took longer for the same spectra on the paper's data).
const W_NEWTON_STEPS: usize = 1;

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
    /// Extrapolate the iterates between updates (guarded at the loss checks).
    pub extrapolate: bool,
    /// Loss checks between two Newton steps on W with H held (0: none).
    pub w_newton_every: usize,
    /// A benchmark's observer of every check (None: no residuals computed).
    pub observe: Option<Observer>,
    /// Mean relative loss change per iteration below which the run goes on by coupled Newton
    /// steps on W and H ([`crate::fast::schur`]) instead of the updates (None: never; only
    /// for independent pixels, λ = 0).
    pub newton_tail: Option<f64>,
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
    /// The W subproblem at (G, H): the Newton step's and the W residual's.
    fn spectra<'b>(&'b self, g: &'b [f64], h: &'b [f64], m: usize, k: usize) -> SpectraProblem<'b> {
        SpectraProblem {
            y: self.img.as_ref(),
            g,
            m,
            k,
            h,
            simplex_rows: self.simplex_rows,
            fixed: self.fixed,
            eps: 1e-14,
        }
    }

    /// (KKT of W with H held, KKT of H with W held) at (G, W, H), on `pool`'s threads.
    pub fn residuals(
        &self,
        (g, w, h): (&[f64], &[f64], &[f64]),
        k: usize,
        pool: &rayon::ThreadPool,
    ) -> Result<(f64, f64)> {
        let (l, m) = (self.img.channels, w.len() / k);
        let sp = self.spectra(g, h, m, k);
        let kw = w_kkt_residual(&sp, w, pool)?;
        let d = gw(g, w, l, m, k);
        Ok((kw, kkt_residual(&self.maps(&d, k), h)))
    }

    /// The maps subproblem at D = G·W.
    fn maps<'b>(&'b self, d: &'b [f64], k: usize) -> MapsProblem<'b> {
        let laplacian = match self.img.shape {
            Some((rows, cols)) => Laplacian::Grid { rows, cols },
            None => Laplacian::Identity,
        };
        MapsProblem {
            y: self.img.as_ref(),
            d,
            k,
            mu: self.mu,
            epsilon_reg: self.epsilon_reg,
            lambda: self.lambda,
            laplacian,
            eps: 1e-14,
        }
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
    let mut checks = Checks::new(w, h);
    let mut last_check = initial;
    let mut reason = StopReason::MaxIter;
    let mut it = 0;
    let mut ex = stop.extrapolate.then(|| Extrapolation::new(w, h));
    let pool = crate::fast::pool(stop.kkt.threads)?;
    let clock = std::time::Instant::now();
    // The observer's own time (its residuals), left out of the seconds it is shown.
    let mut observed = std::time::Duration::ZERO;
    let observe = |iteration: usize,
                   loss: f64,
                   (g, w, h): (&[f64], &[f64], &[f64]),
                   observed: &mut std::time::Duration|
     -> Result<bool> {
        let Some(Observer(see)) = stop.observe else {
            return Ok(false);
        };
        let seconds = (clock.elapsed() - *observed).as_secs_f64();
        let t = std::time::Instant::now();
        let (kkt_w, kkt_h) = stop.kkt.residuals((g, w, h), k, &pool)?;
        let done = see(&CheckPoint {
            pixels: stop.kkt.img.pixels,
            iteration,
            seconds,
            loss,
            kkt_w,
            kkt_h,
            held: stop.kkt.fixed.is_some(),
        });
        *observed += t.elapsed();
        Ok(done)
    };
    let tail_from = stop.newton_tail.filter(|_| stop.kkt.lambda == 0.0);
    let mut tail = false;
    while it < max_iter {
        exec.step(g, w, h).map_err(err)?;
        it += 1;
        let check = it % every == 0 || it == max_iter;
        if check {
            let mut terms = exec.loss(g, w, h).map_err(err)?;
            if let Some(x) = ex.as_mut() {
                if !x.plain && terms.total() > last_check {
                    // The extrapolated steps went uphill: back to the last checked iterate,
                    // on from there by plain updates for one window, then a smaller step.
                    x.restart(w, h);
                    if update_every > 0 {
                        g_update.update(g, w, k).map_err(gerr)?;
                    }
                    last_check = exec.loss(g, w, h).map_err(err)?.total();
                    continue;
                }
            }
            let newton_turn = stop.w_newton_every > 0
                && (it / every).is_multiple_of(stop.w_newton_every)
                && it < max_iter;
            if newton_turn {
                // An entry of W near zero leaves it at the multiplicative updates' pace, a
                // factor per iteration; the Newton step moves it as far as its gradient says.
                let sp = stop.kkt.spectra(g, h, w.len() / k, k);
                newton_w(&sp, w, W_NEWTON_STEPS, 0.0, &pool)?;
                terms = exec.loss(g, w, h).map_err(err)?;
            }
            if let Some(x) = ex.as_mut() {
                x.accept(w, h, newton_turn);
            }
            let f = checks.record(it, terms, w, h);
            if observe(it, f, (g, w, h), &mut observed)? {
                reason = StopReason::LossConverged;
                break;
            }
            if it >= max_iter {
                break;
            }
            let change = (last_check - f).abs() / (every as f64 * f.abs());
            if let Some(x) = ex.as_mut() {
                x.on |= change <= Extrapolation::START_CHANGE;
            }
            if change <= stop.tol {
                reason = StopReason::LossConverged;
                break;
            }
            if tail_from.is_some_and(|t| change <= t) {
                tail = true;
                last_check = f;
                break;
            }
            // Near the loss test only, and sparsely: each residual costs a pass over the
            // non-zeros.
            let kkt_turn = (it / every).is_multiple_of(KKT_EVERY_CHECKS);
            if stop.kkt_tol > 0.0 && change <= 100.0 * stop.tol && kkt_turn {
                let (kw, kh) = stop.kkt.residuals((g, w, h), k, &pool)?;
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
        if let Some(x) = ex.as_mut() {
            x.extrapolate(w, h, (stop.kkt.simplex_rows, stop.kkt.fixed), k);
        }
    }
    if tail {
        // Near a minimum the updates crawl (a factor per iteration on the slow directions);
        // Newton on W and H together converges there in a few steps. Each step starts from
        // the maps solved with W held; the G update follows each step as it follows the
        // updates.
        let (l, m) = (stop.kkt.img.channels, w.len() / k);
        let reg = LogTerm {
            mu: stop.kkt.mu,
            epsilon_reg: stop.kkt.epsilon_reg,
        };
        let opt = MapsOptions {
            max_sweeps: 1,
            kkt_tol: crate::fast::held::KKT_TOL,
            tol: 0.0,
            inner: 0,
            threads: stop.kkt.threads,
        };
        let mut damping = 1e-6;
        while it < max_iter {
            let d = gw(g, w, l, m, k);
            solve_maps(&stop.kkt.maps(&d, k), h, &opt)?;
            let sp = stop.kkt.spectra(g, &[], m, k);
            // A refused step (the reduced model not convex enough to give a descent
            // direction) is tried again with more damping, towards a scaled gradient step.
            let mut cr = coupled_step(&sp, &reg, w, h, &mut damping, &pool)?;
            for _ in 0..8 {
                if cr.taken {
                    break;
                }
                cr = coupled_step(&sp, &reg, w, h, &mut damping, &pool)?;
            }
            if update_every > 0 {
                g_update.update(g, w, k).map_err(gerr)?;
            }
            it += 1;
            let terms = exec.loss(g, w, h).map_err(err)?;
            let f = checks.record(it, terms, w, h);
            if observe(it, f, (g, w, h), &mut observed)? {
                reason = StopReason::LossConverged;
                break;
            }
            // One Newton step stands for a window of updates in the stopping rule.
            let change = (last_check - f).abs() / f.abs();
            last_check = f;
            if change <= every as f64 * stop.tol {
                reason = StopReason::LossConverged;
                break;
            }
        }
    }
    let mut final_loss = exec.loss(g, w, h).map_err(err)?.total();
    let worse = final_loss.is_nan() || final_loss > checks.best;
    if worse && checks.best.is_finite() {
        w.copy_from_slice(&checks.w_best);
        h.copy_from_slice(&checks.h_best);
        final_loss = exec.loss(g, w, h).map_err(err)?.total();
    }
    let kkt = stop.kkt.residuals((g, w, h), k, &pool)?;
    Ok((
        RunSummary {
            iterations: it,
            reason,
            initial_loss: initial,
            final_loss,
            kl_constant: exec.kl_constant(),
        },
        checks.history,
        kkt,
    ))
}

/// The checked losses of a run (one history row each) and its best checked iterate.
struct Checks {
    history: Vec<[f64; 6]>,
    best: f64,
    w_best: Vec<f64>,
    h_best: Vec<f64>,
}

impl Checks {
    fn new(w: &[f64], h: &[f64]) -> Self {
        Checks {
            history: Vec::new(),
            best: f64::INFINITY,
            w_best: w.to_vec(),
            h_best: h.to_vec(),
        }
    }

    /// Records the loss terms checked at iteration `it` on (W, H); returns the objective.
    fn record(&mut self, it: usize, terms: LossTerms, w: &[f64], h: &[f64]) -> f64 {
        let f = terms.total();
        self.history.push(history_row(&IterReport {
            iter: it,
            loss: terms,
            rel_w: f64::NAN,
            rel_h: f64::NAN,
        }));
        if f < self.best {
            self.best = f;
            self.w_best.copy_from_slice(w);
            self.h_best.copy_from_slice(h);
        }
        f
    }
}

/// Momentum on the multiplicative updates (Ang & Gillis 2019, "Accelerating nonnegative
/// matrix factorization algorithms using extrapolation"): the next update starts from
/// X + β(X − X_prev) instead of the last update's output X. β grows while the checked losses
/// fall and shrinks, with a return to the last checked iterate, when one rises. Checked only
/// every few iterations, a β near 1 oscillated and stalled the fits far from their minimum
/// (a 1e-3 higher loss where they stopped), hence the cap. From a cold start the momentum
/// carried the fits into other local minima (on a synthetic scan, 4e-5 higher than the
/// updates' own; in the pipeline, phases 0.4° further from the truth), so it starts once
/// the updates have left their transient ([`Self::START_CHANGE`]).
struct Extrapolation {
    /// Past the transient: the steps are extrapolated.
    on: bool,
    /// The window after a return runs plain updates and is accepted whatever its loss: the
    /// continuum update of G between checks can raise the loss by itself, and rejecting that
    /// window again and again held a fit at one iterate until its iteration cap (seen with a
    /// Newton step every fifth check).
    plain: bool,
    beta: f64,
    beta_max: f64,
    prev_w: Vec<f64>,
    prev_h: Vec<f64>,
    ck_w: Vec<f64>,
    ck_h: Vec<f64>,
}

impl Extrapolation {
    /// Mean relative loss change per iteration over a check window below which the momentum
    /// starts (a warm-started fit is below it from its first check).
    const START_CHANGE: f64 = 1e-5;
    const BETA0: f64 = 0.4;
    const BETA_CAP: f64 = 0.8;
    const GROW: f64 = 1.05;
    const GROW_MAX: f64 = 1.01;
    const SHRINK: f64 = 1.5;
    /// An extrapolated entry never falls below this fraction of the update's value: the
    /// multiplicative updates cannot leave zero.
    const FLOOR: f64 = 0.1;

    fn new(w: &[f64], h: &[f64]) -> Self {
        Self {
            on: false,
            plain: false,
            beta: Self::BETA0,
            beta_max: Self::BETA_CAP,
            prev_w: w.to_vec(),
            prev_h: h.to_vec(),
            ck_w: w.to_vec(),
            ck_h: h.to_vec(),
        }
    }

    /// The checked iterate (w, h) did not rise: it becomes the return point. After a jump that
    /// was not an update (`jumped`), the momentum starts again from it.
    fn accept(&mut self, w: &[f64], h: &[f64], jumped: bool) {
        self.plain = false;
        self.ck_w.copy_from_slice(w);
        self.ck_h.copy_from_slice(h);
        if jumped {
            self.prev_w.copy_from_slice(w);
            self.prev_h.copy_from_slice(h);
        }
        self.beta_max = (self.beta_max * Self::GROW_MAX).min(Self::BETA_CAP);
    }

    /// Back to the last accepted iterate, with a smaller step and a lower cap, after a window
    /// of plain updates.
    fn restart(&mut self, w: &mut [f64], h: &mut [f64]) {
        w.copy_from_slice(&self.ck_w);
        h.copy_from_slice(&self.ck_h);
        self.prev_w.copy_from_slice(w);
        self.prev_h.copy_from_slice(h);
        self.beta_max = self.beta;
        self.beta /= Self::SHRINK;
        self.plain = true;
    }

    /// (w, h), the last update's output, moves on by β times its step; the free entries of
    /// each column's simplex rows are rescaled to the sum they had (the floor can change it).
    fn extrapolate(
        &mut self,
        w: &mut [f64],
        h: &mut [f64],
        (simplex_rows, fixed): (&[usize], Option<&[f64]>),
        k: usize,
    ) {
        if !self.on || self.plain {
            self.prev_w.copy_from_slice(w);
            self.prev_h.copy_from_slice(h);
            return;
        }
        let free_sum = |w: &[f64], c: usize| -> f64 {
            free_simplex_entries(simplex_rows, fixed, k, c)
                .map(|i| w[i])
                .sum()
        };
        let beta = self.beta;
        let step = |x: &mut [f64], prev: &mut [f64]| {
            for (xi, pi) in x.iter_mut().zip(prev.iter_mut()) {
                let cur = *xi;
                *xi = (cur + beta * (cur - *pi)).max(Self::FLOOR * cur);
                *pi = cur;
            }
        };
        let sums: Vec<f64> = (0..k).map(|c| free_sum(w, c)).collect();
        step(w, &mut self.prev_w);
        step(h, &mut self.prev_h);
        for (c, &target) in sums.iter().enumerate() {
            let now = free_sum(w, c);
            if now > 0.0 {
                for i in free_simplex_entries(simplex_rows, fixed, k, c) {
                    w[i] *= target / now;
                }
            }
        }
        self.beta = (self.beta * Self::GROW).min(self.beta_max);
    }
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
        run_with(
            threads,
            every,
            (tol, kkt_tol),
            max_iter,
            core,
            (false, 0, None),
            None,
        )
    }

    /// As [`run_kkt`], with the acceleration (extrapolation, W Newton every so many checks)
    /// and held entries of W.
    fn run_with(
        threads: usize,
        every: usize,
        (tol, kkt_tol): (f64, f64),
        max_iter: usize,
        core: bool,
        (extrapolate, w_newton_every, newton_tail): (bool, usize, Option<f64>),
        fixed: Option<&[f64]>,
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
        prm.fixed_w = fixed;
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
                fixed,
                mu: &mus,
                epsilon_reg: 0.5,
                lambda: 0.0,
                threads,
            },
            extrapolate,
            w_newton_every,
            observe: None,
            newton_tail,
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
            let pool = crate::fast::pool(threads).unwrap();
            let kkt = stop.kkt.residuals((&g, &w, &h), k, &pool).unwrap();
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

    /// The run stopped on its loss rule and no checked loss rose.
    fn converged_with_checked_losses_falling(r: &Run) {
        assert_eq!(r.summary.reason, StopReason::LossConverged);
        for pair in r.history.windows(2) {
            assert!(pair[1][0] <= pair[0][0], "{pair:?}");
        }
    }

    /// `fast` took fewer than 1/`factor` of `slow`'s iterations.
    fn fewer_iterations(fast: &Run, slow: &Run, factor: usize) {
        assert!(
            factor * fast.summary.iterations < slow.summary.iterations,
            "{} {}",
            fast.summary.iterations,
            slow.summary.iterations
        );
    }

    #[test]
    fn extrapolation_and_newton_steps_stop_sooner_no_higher_with_checked_losses_falling() {
        let plain = run_with(1, 10, (1e-9, 0.0), 20000, false, (false, 0, None), None);
        let fast = run_with(1, 10, (1e-9, 0.0), 20000, false, (true, 3, None), None);
        for r in [
            &fast,
            &run_with(1, 10, (1e-9, 0.0), 20000, false, (true, 0, None), None),
        ] {
            converged_with_checked_losses_falling(r);
        }
        fewer_iterations(&fast, &plain, 2);
        assert!(
            fast.summary.final_loss <= plain.summary.final_loss,
            "{} {}",
            fast.summary.final_loss,
            plain.summary.final_loss
        );
        // The Newton steps settle W where the updates alone leave it moving.
        assert!(fast.kkt.0 < plain.kkt.0, "{:?} {:?}", fast.kkt, plain.kkt);
    }

    #[test]
    fn a_newton_tail_reaches_a_stationary_point_in_few_iterations() {
        let plain = run_with(1, 10, (1e-9, 0.0), 20000, false, (false, 0, None), None);
        let tail_on = |threads| {
            let tail = Some(1e-5);
            run_with(
                threads,
                10,
                (1e-9, 0.0),
                20000,
                false,
                (false, 0, tail),
                None,
            )
        };
        let tail = tail_on(1);
        // No G update here, and both steps (maps solve, coupled step) are guarded.
        converged_with_checked_losses_falling(&tail);
        fewer_iterations(&tail, &plain, 20);
        // Both residuals an order of magnitude below the updates' own at their stop (2e-5,
        // 7e-5). Not asserted: a lower objective. This scan's updates sit on a plateau when
        // the tail starts, and the Newton steps leave it for a minimum 1.6e-4 (relative)
        // above the one the updates creep to in 2 800 iterations: why the tail is not the
        // default.
        assert!(
            tail.kkt.0 < 1e-6 && tail.kkt.1 < 1e-5,
            "{:?} {:?}",
            tail.kkt,
            plain.kkt
        );
        assert!(
            (tail.summary.final_loss - plain.summary.final_loss).abs()
                < 1e-3 * plain.summary.final_loss
        );
        let two = tail_on(2);
        assert_eq!((&tail.w, &tail.h), (&two.w, &two.h));
    }

    #[test]
    fn accelerated_runs_do_not_depend_on_the_thread_count() {
        let one = run_with(1, 10, (1e-8, 1e-6), 20000, false, (true, 3, None), None);
        let two = run_with(2, 10, (1e-8, 1e-6), 20000, false, (true, 3, None), None);
        assert_eq!((&one.w, &one.h), (&two.w, &two.h));
        assert_eq!(one.summary.iterations, two.summary.iterations);
        assert_eq!(one.summary.final_loss, two.summary.final_loss);
    }

    #[test]
    fn accelerated_runs_keep_held_entries_and_each_phase_summing_to_one() {
        let s = synthetic(19, 21, 150.0, 5);
        let k = 3;
        let mut fixed = vec![-1.0; s.m * k];
        fixed[k] = 0.05; // Ca in phase 0
        fixed[6 * k + 1] = 0.0; // Hf in phase 1
        let r = run_with(
            1,
            10,
            (1e-8, 0.0),
            5000,
            false,
            (true, 3, None),
            Some(&fixed),
        );
        assert_eq!(r.w[k], 0.05);
        assert_eq!(r.w[6 * k + 1], 0.0);
        for c in 0..k {
            let sum: f64 = s.simplex_rows.iter().map(|&row| r.w[row * k + c]).sum();
            assert!((sum - 1.0).abs() < 1e-9, "phase {c}: {sum}");
        }
        assert!(r.w.iter().chain(&r.h).all(|v| v.is_finite() && *v >= 0.0));
    }

    #[test]
    fn after_a_return_one_window_runs_plain_then_the_momentum_resumes() {
        let rows = [0, 1];
        let (k, w0, h0) = (1, vec![0.5, 0.5, 2.0], vec![1.0, 2.0]);
        let mut x = Extrapolation::new(&w0, &h0);
        x.on = true;
        // An update moved (w, h); the extrapolation carries them further.
        let (mut w, mut h) = (vec![0.6, 0.4, 2.5], vec![1.5, 1.5]);
        x.extrapolate(&mut w, &mut h, (&rows, None), k);
        assert!(w[0] > 0.6 && h[0] > 1.5 && w[2] > 2.5, "{w:?} {h:?}");
        assert!((w[0] + w[1] - 1.0).abs() < 1e-12);
        // Uphill at the check: back to the checked point, and the next window is plain.
        x.restart(&mut w, &mut h);
        assert_eq!((&w, &h), (&w0, &h0));
        let (mut w2, mut h2) = (vec![0.7, 0.3, 3.0], vec![2.0, 1.0]);
        let before = (w2.clone(), h2.clone());
        x.extrapolate(&mut w2, &mut h2, (&rows, None), k);
        assert_eq!((&w2, &h2), (&before.0, &before.1));
        // Accepted whatever its loss; then the momentum resumes, with a smaller step.
        x.accept(&w2, &h2, false);
        let beta = x.beta;
        assert!(beta < Extrapolation::BETA0);
        let (mut w3, mut h3) = (vec![0.8, 0.2, 3.5], vec![2.5, 0.5]);
        x.extrapolate(&mut w3, &mut h3, (&rows, None), k);
        assert!((h3[0] - (2.5 + beta * 0.5)).abs() < 1e-12, "{h3:?}");
    }
}
