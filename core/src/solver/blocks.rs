//! Pixel-block pieces of an iteration, so that a host can spread the passes over the counts
//! across threads: every pixel's H step and its share of the W statistics are independent
//! given D = GW and the old H, and the shares are added by the caller in a fixed order.
//!
//! One iteration with these functions: [`Solver::prepare`]; [`Solver::h_block`] over all
//! blocks; write the new H; [`Solver::prepare`] again is not needed (D depends on W only);
//! [`Solver::r_block`] over all blocks, summed in block order; [`Solver::w_from_r`]. The loss:
//! [`Solver::prepare`] at the new W, [`Solver::log_term_block`] summed in block order,
//! [`Solver::loss_from_log_term`].

use super::data::Counts;
use super::loss::LossTerms;
use super::{simplex, Solver};
use crate::error::SolverError;
use crate::float::Float;
use core::ops::Range;

impl<T: Float> Solver<'_, T> {
    /// Length of the per-iteration buffer shared (read-only) by the blocks: D (L×K), its column
    /// sums (K) and the row maxima of H (K).
    pub fn shared_len(&self) -> usize {
        self.l * self.k + 2 * self.k
    }

    fn split_shared<'s>(&self, shared: &'s [T]) -> (&'s [T], &'s [T], &'s [T]) {
        let (l, k) = (self.l, self.k);
        let (d, rest) = shared.split_at(l * k);
        let (colsum_d, max_h) = rest.split_at(k);
        (d, colsum_d, &max_h[..k])
    }

    /// Fills `shared` at (W, H): D = GW, Dᵀ1 and the row maxima of H.
    pub fn prepare(&self, g: &[T], w: &[T], h: &[T], shared: &mut [T]) -> Result<(), SolverError> {
        let (l, m, k, p) = (self.l, self.m, self.k, self.p);
        if shared.len() < self.shared_len()
            || g.len() != l * m
            || w.len() != m * k
            || h.len() != k * p
        {
            return Err(SolverError::DimensionMismatch {
                buffer: "shared",
                expected: self.shared_len(),
                got: shared.len(),
            });
        }
        let (d, rest) = shared.split_at_mut(l * k);
        let (colsum_d, rest) = rest.split_at_mut(k);
        let max_h = &mut rest[..k];
        for (grow, drow) in g.chunks_exact(m).zip(d.chunks_exact_mut(k)) {
            drow.iter_mut().for_each(|v| *v = T::ZERO);
            for (gv, wrow) in grow.iter().zip(w.chunks_exact(k)) {
                if *gv != T::ZERO {
                    for (dv, wv) in drow.iter_mut().zip(wrow) {
                        *dv += *gv * *wv;
                    }
                }
            }
        }
        colsum_d.iter_mut().for_each(|v| *v = T::ZERO);
        for drow in d.chunks_exact(k) {
            for (s, v) in colsum_d.iter_mut().zip(drow) {
                *s += *v;
            }
        }
        for (c, mh) in max_h.iter_mut().enumerate() {
            *mh = h[c * p..(c + 1) * p].iter().fold(-T::MAX, |a, &v| a.max(v));
        }
        Ok(())
    }

    /// The new H of the pixels in `range` (pixel-major, `range.len()×K` values in `out`), from
    /// the old H; `acc` holds 2K values of scratch. With `simplex_h` each pixel is solved to
    /// machine precision (the joint espm bisection is only in the serial solver).
    #[allow(clippy::too_many_arguments)]
    pub fn h_block(
        &self,
        y: &Counts<'_, T>,
        shared: &[T],
        h: &[T],
        range: Range<usize>,
        out: &mut [T],
        acc: &mut [T],
    ) {
        let k = self.k;
        let prm = &self.params;
        let eps = prm.log_shift;
        let (d, colsum_d, max_h) = self.split_shared(shared);
        let simplex_h = prm.simplex_h && !prm.simplex_w;
        for (i, px) in range.enumerate() {
            let o = &mut out[i * k..(i + 1) * k];
            let (scratch, den) = acc.split_at_mut(k);
            self.pixel_terms(y, d, colsum_d, max_h, h, px, scratch, |c, n, dn| {
                o[c] = n;
                den[c] = dn;
            });
            let mut nu = T::ZERO;
            if simplex_h {
                let col = o.iter().copied().zip(acc[k..2 * k].iter().copied());
                match simplex::newton(col, k, eps, T::ONE) {
                    Some(v) => nu = v,
                    None => {
                        o.iter_mut().for_each(|v| *v = T::ONE);
                        acc[k..2 * k].iter_mut().for_each(|v| *v = T::from_usize(k));
                    }
                }
            }
            for c in 0..k {
                let mut v = (o[c] / (acc[k + c] + nu)).max(eps);
                if let Some(fh) = prm.fixed_h {
                    let f = fh[c * self.p + px];
                    if f >= T::ZERO {
                        v = f;
                    }
                }
                o[c] = v;
            }
        }
    }

    /// Adds the share of R = (Y⊘DH)Hᵀ (L×K) of the pixels in `range` to `r`.
    pub fn r_block(
        &self,
        y: &Counts<'_, T>,
        shared: &[T],
        h: &[T],
        range: Range<usize>,
        r: &mut [T],
    ) {
        let (d, _, _) = self.split_shared(shared);
        for px in range {
            self.add_pixel_stats(y, d, h, px, r);
        }
    }

    /// The W step from a complete R (L×K) and H; `ws` holds `exec_len()` values.
    pub fn w_from_r(
        &self,
        g: &[T],
        w: &mut [T],
        h: &[T],
        r: &[T],
        ws: &mut [T],
    ) -> Result<(), SolverError> {
        let (l, k, p) = (self.l, self.k, self.p);
        let mut work = self.work(ws)?;
        work.r.copy_from_slice(&r[..l * k]);
        for (c, s) in work.rowsum_h.iter_mut().enumerate() {
            *s = h[c * p..(c + 1) * p].iter().fold(T::ZERO, |a, &v| a + v);
        }
        self.w_from_stats(g, w, &mut work);
        Ok(())
    }

    /// Σ y·ln(D̃H̃) over the non-zeros of the pixels in `range` (the data part of the loss).
    pub fn log_term_block(
        &self,
        y: &Counts<'_, T>,
        shared: &[T],
        h: &[T],
        range: Range<usize>,
    ) -> f64 {
        let (d, _, _) = self.split_shared(shared);
        self.log_term_pixels(y, d, h, range)
    }

    /// The loss terms from the summed log part and the data's KL constant (O((L+P)·K)).
    pub fn loss_from_log_term(
        &self,
        shared: &[T],
        h: &[T],
        log_term: f64,
        kl_constant: f64,
    ) -> LossTerms {
        let (d, _, _) = self.split_shared(shared);
        self.loss_from_parts(d, h, log_term, kl_constant)
    }
}
