//! The iteration loop: stopping rules, G updates, best-iterate bookkeeping, reporting.

use super::data::Counts;
use super::loss::LossTerms;
use super::params::{GModel, Stopping};
use super::Solver;
use crate::error::{ModelError, SolverError};
use crate::float::Float;

/// Something that refreshes G from the current W (espm's `NMF_update`).
pub trait GUpdate<T> {
    /// Rewrites `g` (L×M) for the composition `w` (M×K).
    fn update(&mut self, g: &mut [T], w: &[T], k: usize) -> Result<(), ModelError>;
}

/// G stays as given.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoGUpdate;

impl<T> GUpdate<T> for NoGUpdate {
    fn update(&mut self, _g: &mut [T], _w: &[T], _k: usize) -> Result<(), ModelError> {
        Ok(())
    }
}

/// Why the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StopReason {
    /// `max_iter` iterations were run.
    MaxIter,
    /// The loss changed by less than the tolerance.
    LossConverged,
    /// (espm) the largest relative change of W and H fell below the tolerance.
    IterateConverged,
    /// (espm) the loss increased; the worse iterate is kept as espm does.
    LossIncreased,
    /// (espm) the loss became NaN.
    NotANumber,
}

/// What one iteration reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IterReport {
    /// Iteration number, from 1.
    pub iter: usize,
    /// Loss terms after the iteration (averaged over L·P).
    pub loss: LossTerms,
    /// max |ΔW| / (W + tol·mean W) (espm's rel_W).
    pub rel_w: f64,
    /// max |ΔH| / (H + tol·mean H) (espm's rel_H).
    pub rel_h: f64,
}

/// The outcome of [`Solver::run`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RunSummary {
    /// Iterations run.
    pub iterations: usize,
    /// Why the loop stopped.
    pub reason: StopReason,
    /// Loss at the start.
    pub initial_loss: f64,
    /// Loss of the returned W, H.
    pub final_loss: f64,
    /// espm's `const_KL_` (unaveraged).
    pub kl_constant: f64,
}

fn rel_change<T: Float>(new: &[T], old: &[T], tol: f64) -> f64 {
    let mean = new.iter().map(|v| v.to_f64()).sum::<f64>() / new.len().max(1) as f64;
    new.iter()
        .zip(old)
        .map(|(n, o)| (n.to_f64() - o.to_f64()).abs() / (n.to_f64() + tol * mean))
        .fold(0.0, f64::max)
}

/// How one iteration and the loss are computed: serially by [`SerialExec`], or by a host that
/// spreads the pixel passes over threads with the block functions of [`Solver`].
///
/// An error (a buffer of the wrong length, say) is returned, never swallowed: a step that
/// did nothing or a zero loss would look like convergence to the loop.
pub trait Exec<T> {
    /// One iteration (H, then W with the new H), in place.
    fn step(&mut self, g: &[T], w: &mut [T], h: &mut [T]) -> Result<(), SolverError>;
    /// The loss terms at (W, H).
    fn loss(&mut self, g: &[T], w: &[T], h: &[T]) -> Result<LossTerms, SolverError>;
    /// espm's `const_KL_` of the data (Σ y ln y − Σ y).
    fn kl_constant(&self) -> f64;
}

/// The single-threaded [`Exec`] over the solver's own buffers.
pub struct SerialExec<'s, 'y, 'w, T> {
    solver: &'s Solver<'s, T>,
    y: Counts<'y, T>,
    ws: &'w mut [T],
    c: f64,
}

impl<'s, 'y, 'w, T: Float> SerialExec<'s, 'y, 'w, T> {
    /// Validates the counts (against the solver's dimensions too) and takes `exec_len()`
    /// values of workspace.
    pub fn new(
        solver: &'s Solver<'s, T>,
        y: Counts<'y, T>,
        ws: &'w mut [T],
    ) -> Result<Self, SolverError> {
        y.validate()?;
        solver.check_counts(&y)?;
        solver.work(ws)?;
        let c = y.kl_constant();
        Ok(SerialExec { solver, y, ws, c })
    }
}

impl<T: Float> Exec<T> for SerialExec<'_, '_, '_, T> {
    fn step(&mut self, g: &[T], w: &mut [T], h: &mut [T]) -> Result<(), SolverError> {
        self.solver.check_lens(g, w, h)?;
        let mut work = self.solver.work(self.ws)?;
        self.solver.step(&self.y, g, w, h, &mut work);
        Ok(())
    }

    fn loss(&mut self, g: &[T], w: &[T], h: &[T]) -> Result<LossTerms, SolverError> {
        self.solver.check_lens(g, w, h)?;
        let mut work = self.solver.work(self.ws)?;
        Ok(self.solver.loss_terms(&self.y, g, w, h, self.c, &mut work))
    }

    fn kl_constant(&self) -> f64 {
        self.c
    }
}

/// G (L×M), W (M×K) and H (K×P) of one problem, their lengths checked against a planned
/// solver's dimensions by [`Solver::factors`] (faer's views that carry their dimensions): what
/// [`Solver::run_with`] and [`Solver::drive`] update in place.
#[derive(Debug)]
pub struct Factors<'f, T> {
    g: &'f mut [T],
    w: &'f mut [T],
    h: &'f mut [T],
}

impl<T> Factors<'_, T> {
    /// G (empty, or anything, for an identity G).
    pub fn g(&self) -> &[T] {
        self.g
    }

    /// W, M×K row-major.
    pub fn w(&self) -> &[T] {
        self.w
    }

    /// H, K×P row-major.
    pub fn h(&self) -> &[T] {
        self.h
    }
}

/// G as the loop sees it: fixed, or with the update that rewrites it.
enum GBuf<'g, 'u, T> {
    Fixed(&'g [T]),
    Updated(&'g mut [T], &'u mut dyn GUpdate<T>),
}

impl<T> GBuf<'_, '_, T> {
    fn get(&self) -> &[T] {
        match self {
            GBuf::Fixed(g) => g,
            GBuf::Updated(g, _) => g,
        }
    }
}

impl<'a, T: Float> Solver<'a, T> {
    /// G, W and H viewed as the [`Factors`] of this solver's problem; checks their lengths.
    pub fn factors<'f>(
        &self,
        g: &'f mut [T],
        w: &'f mut [T],
        h: &'f mut [T],
    ) -> Result<Factors<'f, T>, SolverError> {
        self.check_lens(g, w, h)?;
        Ok(Factors { g, w, h })
    }

    /// Runs iterations from the W, H given until the stopping rule fires, with G kept as
    /// given: the common case. [`Solver::run_with`] also updates G and reports every
    /// iteration.
    pub fn run(
        &self,
        y: &Counts<'_, T>,
        g: &[T],
        w: &mut [T],
        h: &mut [T],
        ws: &mut [T],
    ) -> Result<RunSummary, SolverError> {
        let (exec_ws, drv) = self.split_run_ws(y, g, w, h, ws)?;
        let mut exec = SerialExec::new(self, *y, exec_ws)?;
        self.drive_g(&mut exec, GBuf::Fixed(g), w, h, drv, &mut |_| {})
    }

    /// [`Solver::run`] that updates G every [`GModel::Matrix`] `update_every` iterations
    /// through `g_update` (espm's `NMF_update`:
    /// [`BremsstrahlungUpdate`](crate::physics::BremsstrahlungUpdate)); `on_iter` sees every
    /// iteration.
    pub fn run_with(
        &self,
        y: &Counts<'_, T>,
        f: Factors<'_, T>,
        ws: &mut [T],
        g_update: &mut dyn GUpdate<T>,
        on_iter: &mut dyn FnMut(&IterReport),
    ) -> Result<RunSummary, SolverError> {
        let Factors { g, w, h } = f;
        let (exec_ws, drv) = self.split_run_ws(y, g, w, h, ws)?;
        let mut exec = SerialExec::new(self, *y, exec_ws)?;
        self.drive_g(&mut exec, GBuf::Updated(g, g_update), w, h, drv, on_iter)
    }

    /// Checks the inputs of a run and splits its workspace into the iteration buffers and the
    /// loop's.
    fn split_run_ws<'w>(
        &self,
        y: &Counts<'_, T>,
        g: &[T],
        w: &[T],
        h: &[T],
        ws: &'w mut [T],
    ) -> Result<(&'w mut [T], &'w mut [T]), SolverError> {
        y.validate()?;
        self.check_buffers(y, g, w, h)?;
        if ws.len() < self.workspace_len() {
            return Err(SolverError::DimensionMismatch {
                buffer: "workspace",
                expected: self.workspace_len(),
                got: ws.len(),
            });
        }
        Ok(ws.split_at_mut(self.exec_len()))
    }

    /// The iteration loop over any [`Exec`]: stopping rules, G updates every
    /// [`GModel::Matrix`] `update_every` iterations, best-iterate bookkeeping; `drv` holds
    /// `driver_len()` values. Every error of `exec` ends the loop and is returned.
    pub fn drive(
        &self,
        exec: &mut dyn Exec<T>,
        f: Factors<'_, T>,
        drv: &mut [T],
        g_update: &mut dyn GUpdate<T>,
        on_iter: &mut dyn FnMut(&IterReport),
    ) -> Result<RunSummary, SolverError> {
        let Factors { g, w, h } = f;
        self.drive_g(exec, GBuf::Updated(g, g_update), w, h, drv, on_iter)
    }

    /// [`Solver::drive`] over a fixed or an updated G.
    fn drive_g(
        &self,
        exec: &mut dyn Exec<T>,
        mut g: GBuf<'_, '_, T>,
        w: &mut [T],
        h: &mut [T],
        drv: &mut [T],
        on_iter: &mut dyn FnMut(&IterReport),
    ) -> Result<RunSummary, SolverError> {
        let k = self.k;
        let [w_prev, h_prev, w_best, h_best] =
            self.driver_layout().carve_mut("driver workspace", drv)?;
        self.check_lens(g.get(), w, h)?;
        let prm = &self.params;
        let tol = prm.tol.to_f64();
        let c = exec.kl_constant();
        let initial = exec.loss(g.get(), w, h)?.total();
        let mut before = f64::INFINITY;
        // The start may violate the constraints, so only iterates compete for "best".
        let mut best = f64::INFINITY;
        let mut reason = StopReason::MaxIter;
        let mut it = 0;
        while it < prm.max_iter {
            w_prev.copy_from_slice(w);
            h_prev.copy_from_slice(h);
            exec.step(g.get(), w, h)?;
            it += 1;
            let terms = exec.loss(g.get(), w, h)?;
            let after = terms.total();
            let report = IterReport {
                iter: it,
                loss: terms,
                rel_w: rel_change(w, w_prev, tol),
                rel_h: rel_change(h, h_prev, tol),
            };
            // Firmware often has no `on_iter` consumer; this shows progress on a probe.
            #[cfg(feature = "defmt")]
            defmt::debug!("iteration {=usize}: loss {=f64}", it, after);
            on_iter(&report);
            if after < best {
                best = after;
                w_best.copy_from_slice(w);
                h_best.copy_from_slice(h);
            }
            if it >= prm.max_iter {
                reason = StopReason::MaxIter;
                break;
            }
            let stop = match prm.stopping {
                Stopping::Espm => {
                    if report.rel_w.max(report.rel_h) < tol {
                        Some(StopReason::IterateConverged)
                    } else if ((before - after) / initial).abs() < tol {
                        Some(StopReason::LossConverged)
                    } else if after.is_nan() {
                        Some(StopReason::NotANumber)
                    } else if before - after < 0.0 {
                        Some(StopReason::LossIncreased)
                    } else {
                        None
                    }
                }
                Stopping::Relative => {
                    if (before - after).abs() <= tol * after.abs() {
                        Some(StopReason::LossConverged)
                    } else {
                        None
                    }
                }
            };
            if let Some(r) = stop {
                reason = r;
                break;
            }
            let update = match prm.g {
                GModel::Matrix { update_every } => update_every > 0 && it % update_every == 0,
                GModel::Identity => false,
            };
            if let (true, GBuf::Updated(g, g_update)) = (update, &mut g) {
                g_update.update(g, w, k)?;
                before = exec.loss(g, w, h)?.total();
            } else {
                before = after;
            }
        }
        let mut final_loss = exec.loss(g.get(), w, h)?.total();
        if prm.stopping == Stopping::Relative && it > 0 && !(final_loss <= best) {
            w.copy_from_slice(w_best);
            h.copy_from_slice(h_best);
            final_loss = exec.loss(g.get(), w, h)?.total();
        }
        Ok(RunSummary {
            iterations: it,
            reason,
            initial_loss: initial,
            final_loss,
            kl_constant: c,
        })
    }
}
