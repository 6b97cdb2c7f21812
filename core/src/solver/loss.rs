//! The objective, evaluated in O(nnz·K + (L+P)·K) without any dense L×P pass.
//!
//! KL = Σ_k (Σ_l D̃_lk)(Σ_p H̃_kp) − Σ_nz y·ln(D̃H̃) + C, with D̃ = max(GW, ε), H̃ = max(H, ε) and
//! C = Σ y ln y − Σ y (espm's `const_KL_`); plus Σ μ_k ln(H + ε_reg) and ½λ·tr(HΔHᵀ). espm
//! reports each term divided by L·P, and so do we.

use super::data::Counts;
use super::{laplacian, Solver, Work};
use crate::float::Float;

/// The terms of the loss, each divided by L·P as espm reports them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LossTerms {
    /// Generalised KL divergence between Y and GWH (with the constant).
    pub kl: f64,
    /// Σ μ ln(H + ε_reg).
    pub log_reg: f64,
    /// ½λ·tr(HΔHᵀ).
    pub laplacian: f64,
}

impl LossTerms {
    /// The total loss.
    pub fn total(&self) -> f64 {
        self.kl + self.log_reg + self.laplacian
    }
}

impl<T: Float> Solver<'_, T> {
    /// The loss terms at (W, H) with `kl_constant` = [`Counts::kl_constant`]; accumulates in f64.
    pub(crate) fn loss_terms(
        &self,
        y: &Counts<'_, T>,
        g: &[T],
        w: &[T],
        h: &[T],
        kl_constant: f64,
        work: &mut Work<'_, T>,
    ) -> LossTerms {
        self.compute_d(g, w, work);
        let log_term = self.log_term_pixels(y, work.d, h, 0..self.p);
        self.loss_from_parts(work.d, h, log_term, kl_constant)
    }

    /// Σ y·ln(D̃H̃) over the non-zeros of the pixels in `range`, with D̃ = max(D, ε) and
    /// H̃ = max(H, ε) (the data-dependent part of the KL divergence).
    pub(crate) fn log_term_pixels(
        &self,
        y: &Counts<'_, T>,
        d: &[T],
        h: &[T],
        range: core::ops::Range<usize>,
    ) -> f64 {
        let (k, p) = (self.k, self.p);
        let eps = self.params.log_shift;
        let mut log_term = 0.0f64;
        for px in range {
            y.for_each_nz(px, |li, yv| {
                let mut dh = 0.0f64;
                for c in 0..k {
                    dh += d[li * k + c].max(eps).to_f64() * h[c * p + px].max(eps).to_f64();
                }
                log_term += yv.to_f64() * libm::log(dh);
            });
        }
        log_term
    }

    /// The loss terms from the data's log part (summed over all pixels) and the KL constant;
    /// the rest costs O((L+P)·K).
    pub(crate) fn loss_from_parts(
        &self,
        d: &[T],
        h: &[T],
        log_term: f64,
        kl_constant: f64,
    ) -> LossTerms {
        let (l, k, p) = (self.l, self.k, self.p);
        let prm = &self.params;
        let eps = prm.log_shift;
        let mut lin = 0.0f64;
        for c in 0..k {
            let sd: f64 = (0..l).map(|li| d[li * k + c].max(eps).to_f64()).sum();
            let sh: f64 = h[c * p..(c + 1) * p]
                .iter()
                .map(|v| v.max(eps).to_f64())
                .sum();
            lin += sd * sh;
        }
        let mut reg = 0.0f64;
        let mut lap = 0.0f64;
        for c in 0..k {
            let row = &h[c * p..(c + 1) * p];
            let mu = prm.mu_of(c).to_f64();
            if mu != 0.0 {
                let eps_reg = prm.epsilon_reg.to_f64();
                reg += mu
                    * row
                        .iter()
                        .map(|v| libm::log(v.to_f64() + eps_reg))
                        .sum::<f64>();
            }
            if prm.lambda_l != T::ZERO {
                lap += (0..p)
                    .map(|px| row[px].to_f64() * laplacian::apply(prm.laplacian, row, px).to_f64())
                    .sum::<f64>();
            }
        }
        let n = (l * p) as f64;
        LossTerms {
            kl: (lin - log_term + kl_constant) / n,
            log_reg: reg / n,
            laplacian: 0.5 * prm.lambda_l.to_f64() * lap / n,
        }
    }

    /// The loss at (W, H). Validates inputs.
    pub fn loss(
        &self,
        y: &Counts<'_, T>,
        g: &[T],
        w: &[T],
        h: &[T],
        ws: &mut [T],
    ) -> Result<LossTerms, crate::error::SolverError> {
        y.validate()?;
        self.check_buffers(y, g, w, h)?;
        let mut work = self.work(ws)?;
        Ok(self.loss_terms(y, g, w, h, y.kl_constant(), &mut work))
    }
}
