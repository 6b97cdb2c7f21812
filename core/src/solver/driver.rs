//! The iteration loop: stopping rules, G updates, best-iterate bookkeeping, reporting.

use super::data::Counts;
use super::loss::LossTerms;
use super::params::Stopping;
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

impl<T: Float> Solver<'_, T> {
    /// Runs iterations from the W, H given until the stopping rule fires, updating G every
    /// `g_update_every` iterations through `g_update`; `on_iter` sees every iteration.
    #[allow(clippy::too_many_arguments)]
    pub fn run(
        &self,
        y: &Counts<'_, T>,
        g: &mut [T],
        w: &mut [T],
        h: &mut [T],
        ws: &mut [T],
        g_update: &mut dyn GUpdate<T>,
        on_iter: &mut dyn FnMut(&IterReport),
    ) -> Result<RunSummary, SolverError> {
        y.validate()?;
        self.check_buffers(y, g, w, h)?;
        let mut work = self.work(ws)?;
        let prm = &self.params;
        let tol = prm.tol.to_f64();
        let c = y.kl_constant();
        let initial = self.loss_terms(y, g, w, h, c, &mut work).total();
        let mut before = f64::INFINITY;
        // The start may violate the constraints, so only iterates compete for "best".
        let mut best = f64::INFINITY;
        let mut reason = StopReason::MaxIter;
        let mut it = 0;
        while it < prm.max_iter {
            work.w_prev.copy_from_slice(w);
            work.h_prev.copy_from_slice(h);
            self.step(y, g, w, h, &mut work);
            it += 1;
            let terms = self.loss_terms(y, g, w, h, c, &mut work);
            let after = terms.total();
            let report = IterReport {
                iter: it,
                loss: terms,
                rel_w: rel_change(w, work.w_prev, tol),
                rel_h: rel_change(h, work.h_prev, tol),
            };
            on_iter(&report);
            let improved = after < best;
            if improved {
                best = after;
                work.w_best.copy_from_slice(w);
                work.h_best.copy_from_slice(h);
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
            if prm.g_update_every > 0 && it % prm.g_update_every == 0 {
                g_update.update(g, w, self.k)?;
                before = self.loss_terms(y, g, w, h, c, &mut work).total();
            } else {
                before = after;
            }
        }
        let mut final_loss = self.loss_terms(y, g, w, h, c, &mut work).total();
        if prm.stopping == Stopping::Relative && it > 0 && !(final_loss <= best) {
            w.copy_from_slice(work.w_best);
            h.copy_from_slice(work.h_best);
            final_loss = self.loss_terms(y, g, w, h, c, &mut work).total();
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
