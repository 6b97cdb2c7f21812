//! The W update (espm's `multiplicative_step_w`).
//!
//! W ← max(W ⊙ Gᵀ[(Y⊘GWH)Hᵀ] / ((Gᵀ1)(H1)ᵀ + ν), ε) with ν per component on the simplex rows;
//! (Y⊘GWH)Hᵀ is accumulated as an L×K matrix over the non-zeros only.

// Lane-wise loops index several arrays by lane and component on purpose.
#![allow(clippy::needless_range_loop)]

use super::data::{PixelCounts, LANES};
use super::h_step::{at_least, finite_or, with_k, DRows, RowMajor};
use super::params::SimplexSolver;
use super::simplex::Fix;
use super::{simplex, Solver, Work};
use crate::float::Float;
use crate::view::MatRef;

/// Adds one pixel's share of R = (Y⊘DH)Hᵀ to `r` (L×K) with `h` its abundances: each
/// non-zero adds y/max(D_l·h, ε)·h to row l.
#[inline(always)]
pub(crate) fn add_stats<T: Float, C: PixelCounts<T>, const K: usize>(
    y: &C,
    px: usize,
    d: impl DRows<T, K>,
    h: &[T; K],
    eps: T,
    r: &mut [T],
) {
    for c in y.chunks(px) {
        let c = &c;
        let dg = d.gather(&c.channels);
        let mut dh = [T::ZERO; LANES];
        for k in 0..K {
            for j in 0..LANES {
                dh[j] += dg[k][j] * h[k];
            }
        }
        let mut q = [T::ZERO; LANES];
        for j in 0..LANES {
            q[j] = c.counts[j] / at_least(dh[j], eps);
        }
        // Measured, not needed for the result (the bits are the same either way): the
        // serial iteration of scripts/callgrind.sh (128×128×1980, 293 counts/px) takes
        // 483.3 M instructions with this hint and 489.1 M without (−1.2 %), because the
        // quotients then reach the scatter below as four plain values. The host's AVX2
        // kernels do not run this code (107.0 M either way).
        let q = core::hint::black_box(q);
        for (j, &ch) in c.channels.iter().enumerate() {
            let row = &mut r[ch as usize * K..][..K];
            for k in 0..K {
                row[k] += q[j] * h[k];
            }
        }
    }
}

impl<T: Float> Solver<'_, T> {
    pub(crate) fn w_step<C: PixelCounts<T>>(
        &self,
        y: &C,
        g: &[T],
        w: &mut [T],
        h: &[T],
        work: &mut Work<'_, T>,
    ) {
        let p = self.p;
        work.r.iter_mut().for_each(|v| *v = T::ZERO);
        for (c, s) in work.rowsum_h.iter_mut().enumerate() {
            *s = h[c * p..(c + 1) * p].iter().fold(T::ZERO, |a, &v| a + v);
        }
        for px in 0..p {
            self.add_pixel_stats(y, work.d, h, px, work.r);
        }
        self.w_from_stats(g, w, work);
    }

    /// Adds pixel `px`'s share of R = (Y⊘DH)Hᵀ to `r` (L×K): one pass over its non-zeros.
    #[inline]
    pub(crate) fn add_pixel_stats<C: PixelCounts<T>>(
        &self,
        y: &C,
        d: &[T],
        h: &[T],
        px: usize,
        r: &mut [T],
    ) {
        let (k, p) = (self.k, self.p);
        let eps = self.params.log_shift;
        with_k!(k, K => {
            let hp: [T; K] = core::array::from_fn(|c| h[c * p + px]);
            add_stats::<T, C, K>(y, px, RowMajor(d), &hp, eps, r);
        }, _ => {
            for c in y.chunks(px) {
                let c = &c;
                for (&li, &yv) in c.channels.iter().zip(&c.counts) {
                    let li = li as usize;
                    let drow = &d[li * k..(li + 1) * k];
                    let mut dh = T::ZERO;
                    for (c, dv) in drow.iter().enumerate() {
                        dh += *dv * h[c * p + px];
                    }
                    let q = yv / dh.max(eps);
                    for (c, rv) in r[li * k..(li + 1) * k].iter_mut().enumerate() {
                        *rv += q * h[c * p + px];
                    }
                }
            }
        })
    }

    /// The W update from the statistics R = (Y⊘GWH)Hᵀ in `work.r` (L×K) and H1 in
    /// `work.rowsum_h`, however they were gathered (a batch pass or a stream).
    pub(crate) fn w_from_stats(&self, g: &[T], w: &mut [T], work: &mut Work<'_, T>) {
        let (l, m, k) = (self.l, self.m, self.k);
        let prm = &self.params;
        let eps = prm.log_shift;
        // num = W ⊙ (Gᵀ R), colsum_g = Gᵀ1.
        work.num_w.iter_mut().for_each(|v| *v = T::ZERO);
        work.colsum_g.iter_mut().for_each(|v| *v = T::ZERO);
        // G is read row by row (a column walk misses the cache on every entry of a large G,
        // such as plain NMF's identity) and its zeros are skipped: sums start at +0, so adding
        // ±0 or 0·R (when R is finite) would not change a bit, and 0·∞ must not be added.
        if prm.g_identity() {
            // What an explicit identity gives: Gᵀ1 = 1 and GᵀR = R, bit for bit.
            work.colsum_g.iter_mut().for_each(|v| *v = T::ONE);
            work.num_w.copy_from_slice(&work.r[..m * k]);
        }
        let g = if prm.g_identity() { &[] } else { g };
        for (grow, rrow) in g.chunks_exact(m).zip(work.r.chunks_exact(k)).take(l) {
            for ((gv, cs), nrow) in grow
                .iter()
                .zip(work.colsum_g.iter_mut())
                .zip(work.num_w.chunks_exact_mut(k))
            {
                if *gv != T::ZERO {
                    *cs += *gv;
                    for (nv, rv) in nrow.iter_mut().zip(rrow) {
                        *nv += *gv * *rv;
                    }
                }
            }
        }
        for (nv, wv) in work.num_w.iter_mut().zip(w.iter()) {
            *nv *= *wv;
        }
        // ν per component, added to the denominators of the simplex rows.
        let nu = &mut work.bis[..4 * k];
        nu.iter_mut().for_each(|v| *v = T::ZERO);
        let rows = prm.simplex_w_rows();
        let den = |j: usize, c: usize| work.colsum_g[j] * work.rowsum_h[c];
        let newton = prm.simplex_solver == SimplexSolver::Newton;
        // With Newton, fixed entries are imposed, so only the free rows share what they leave
        // (espm's bisection spreads 1 over all the rows and overwrites the fixed ones after).
        let fixed = |j: usize, c: usize| {
            prm.fixed_w
                .filter(|_| newton)
                .map(|f| f[j * k + c])
                .filter(|v| *v >= T::ZERO)
        };
        let target = |c: usize| {
            T::ONE
                - rows
                    .iter()
                    .filter_map(|&j| fixed(j, c))
                    .fold(T::ZERO, |a, v| a + v)
        };
        if prm.simplex_w() {
            match prm.simplex_solver {
                SimplexSolver::EspmBisection => {
                    let s = rows.len();
                    for (i, &j) in rows.iter().enumerate() {
                        for c in 0..k {
                            work.num_s[i * k + c] = work.num_w[j * k + c];
                            work.den_s[i * k + c] = den(j, c);
                        }
                    }
                    let (nu_k, rest) = nu.split_at_mut(k);
                    simplex::espm_bisection(
                        MatRef::of(work.num_s, s, k),
                        MatRef::of(work.den_s, s, k),
                        eps,
                        T::from_f64(1e-5),
                        nu_k,
                        rest,
                    );
                }
                SimplexSolver::Newton => {
                    for (c, nu_c) in nu[..k].iter_mut().enumerate() {
                        let target = target(c);
                        let free = rows.iter().filter(|&&j| fixed(j, c).is_none());
                        let n_free = free.clone().count();
                        if n_free == 0 {
                            continue;
                        }
                        let col = free.clone().map(|&j| (work.num_w[j * k + c], den(j, c)));
                        match simplex::newton(col, n_free, eps, target) {
                            Some(v) => *nu_c = v,
                            None => {
                                // No evidence for this component: spread its fraction evenly.
                                let share = target / T::from_usize(n_free);
                                for &j in free {
                                    work.num_w[j * k + c] = share * den(j, c);
                                }
                            }
                        }
                    }
                }
            }
        }
        // Per component, the rounding guard of its simplex column (simplex::repair) in
        // bis[k..4k].
        let (nu, fix) = nu.split_at_mut(k);
        let tol = simplex::tol_of(prm.simplex_solver);
        if prm.simplex_w() {
            for c in 0..k {
                let free = rows.iter().filter(|&&j| fixed(j, c).is_none());
                let n = free.clone().count();
                let col = free.map(|&j| (work.num_w[j * k + c], den(j, c)));
                let f = simplex::repair(col, n, nu[c], eps, target(c), tol);
                let (f0, rest) = fix.split_at_mut(k);
                let (f1, f2) = rest.split_at_mut(k);
                Fix::store(f, [&mut f0[c], &mut f1[c], &mut f2[c]]);
            }
        }
        let in_simplex = |j: usize| prm.simplex_w() && rows.contains(&j);
        for j in 0..m {
            let s = in_simplex(j);
            for (c, &nu_k) in nu[..k].iter().enumerate() {
                let i = j * k + c;
                let mut v = if s {
                    let f = Fix::load(fix[c], fix[k + c], fix[2 * k + c]);
                    simplex::value(work.num_w[i], den(j, c), nu_k, eps, f)
                } else {
                    (work.num_w[i] / (den(j, c) + T::ZERO)).max(eps)
                };
                v = finite_or(v, w[i]);
                if let Some(fw) = prm.fixed_w {
                    if fw[i] >= T::ZERO {
                        v = fw[i];
                    }
                }
                w[i] = v;
            }
        }
    }
}
