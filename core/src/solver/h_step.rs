//! The H update (espm's `multiplicative_step_h`, log-surrogate algorithm).
//!
//! H ← max(H ⊙ (Dᵀ(Y⊘DH) + λσm) / (Dᵀ1 + μ/(H+ε_reg) + λσm + λ·HΔ + ν), ε) with D = GW, m the
//! row maxima of H and ν the per-pixel simplex multiplier with [`Simplex::H`](super::Simplex::H).

// Lane-wise loops index several arrays by lane and component on purpose.
#![allow(clippy::needless_range_loop)]

use super::data::{Chunk, PixelCounts, LANES};
use super::loss::{is_f64, LogSum};
use super::params::{Laplacian, SimplexSolver};
use super::simplex::Fix;
use super::{laplacian, simplex, Solver, Work};
use crate::float::Float;
use crate::view::MatRef;

/// Calls `$body` with `$K` bound to the number of components as a constant for K = 1…4 (the
/// lane kernels), or evaluates `$other` for larger K.
macro_rules! with_k {
    ($k:expr, $K:ident => $body:expr, _ => $other:expr) => {
        match $k {
            1 => {
                const $K: usize = 1;
                $body
            }
            2 => {
                const $K: usize = 2;
                $body
            }
            3 => {
                const $K: usize = 3;
                $body
            }
            4 => {
                const $K: usize = 4;
                $body
            }
            _ => $other,
        }
    };
}
pub(crate) use with_k;

/// The updated entry `v`, or the entry's previous value when the update overflowed.
///
/// A G column (or a D column) whose entries are near the bottom of the float range asks for a
/// W (or H) entry beyond its top (crash-f78a4f9f: a subnormal G entry under an H row at ε
/// gave W ← ∞). Each multiplicative update majorizes the loss entry by entry, so keeping one
/// entry's old value never increases the loss, and W and H stay finite.
#[inline(always)]
pub(crate) fn finite_or<T: Float>(v: T, old: T) -> T {
    if v <= T::MAX {
        v
    } else {
        old
    }
}

/// max(v, ε) for a finite ε, as `Float::max` (a NaN v gives ε) in a form that compiles to a
/// compare and a blend.
#[inline(always)]
pub(crate) fn at_least<T: Float>(v: T, eps: T) -> T {
    if v >= eps {
        v
    } else {
        eps
    }
}

/// D (L×K) as the lane kernels read it: the entries of the chunk's channels, component-major
/// (`out[k][lane]`).
pub(crate) trait DRows<T: Float, const K: usize>: Copy {
    /// D's rows of the channels `ch`.
    fn gather(&self, ch: &[u32; LANES]) -> [[T; LANES]; K];
}

/// D stored row-major (L×K).
#[derive(Clone, Copy)]
pub(crate) struct RowMajor<'a, T>(pub &'a [T]);

impl<T: Float, const K: usize> DRows<T, K> for RowMajor<'_, T> {
    #[inline(always)]
    fn gather(&self, ch: &[u32; LANES]) -> [[T; LANES]; K] {
        let mut g = [[T::ZERO; LANES]; K];
        for (j, &c) in ch.iter().enumerate() {
            let row = &self.0[c as usize * K..][..K];
            for k in 0..K {
                g[k][j] = row[k];
            }
        }
        g
    }
}

/// D stored component-major (K×L), one slice per component: each lane's load is independent of
/// the others, which lets the compiler keep the lanes in one vector.
#[derive(Clone, Copy)]
pub(crate) struct ColMajor<'a, T, const K: usize>(pub [&'a [T]; K]);

impl<T: Float, const K: usize> DRows<T, K> for ColMajor<'_, T, K> {
    #[inline(always)]
    fn gather(&self, ch: &[u32; LANES]) -> [[T; LANES]; K] {
        let mut g = [[T::ZERO; LANES]; K];
        for k in 0..K {
            for j in 0..LANES {
                g[k][j] = self.0[k][ch[j] as usize];
            }
        }
        g
    }
}

/// D = G·W (L×K) with its column sums Dᵀ1 (K) and the row maxima of H (K): what the H
/// update of one pixel reads besides its counts and H.
#[derive(Clone, Copy)]
pub(crate) struct DStats<'a, T> {
    /// D, L×K row-major.
    pub d: &'a [T],
    /// Dᵀ1.
    pub colsum_d: &'a [T],
    /// The row maxima of H.
    pub max_h: &'a [T],
}

/// What the data pass over one pixel also adds to the loss's Σ y·ln(D̃H̃).
pub(crate) enum LogPart<'a> {
    /// Nothing.
    None,
    /// The products D·h of the pass itself (valid when T is f64 and D, h ≥ ε, so that
    /// clipping at ε changes nothing).
    Same(&'a mut LogSum),
    /// max(D, ε)·max(h, ε) formed in f64, with max(h, ε) given.
    Clipped(&'a mut LogSum, &'a [f64]),
}

/// One chunk of [`data_term`]: adds Dᵀ(y⊘max(Dh, ε)) lane-wise to `acc` and, for `MODE` 1
/// (the products themselves) or 2 (clipped products from `hc`), the chunk's log part to `sum`.
#[inline(always)]
fn data_chunk<T: Float, const K: usize, const MODE: u8>(
    c: &Chunk<T>,
    d: impl DRows<T, K>,
    h: &[T; K],
    eps: T,
    acc: &mut [[T; LANES]; K],
    sum: &mut LogSum,
    hc: &[f64],
) {
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
    for k in 0..K {
        for j in 0..LANES {
            acc[k][j] += dg[k][j] * q[j];
        }
    }
    if MODE != 0 {
        let mut x = [0.0f64; LANES];
        let mut yv = [0.0f64; LANES];
        for j in 0..LANES {
            yv[j] = c.counts[j].to_f64();
            x[j] = if MODE == 1 {
                dh[j].to_f64()
            } else {
                let mut v = 0.0f64;
                for k in 0..K {
                    v += dg[k][j].max(eps).to_f64() * hc[k];
                }
                v
            };
        }
        sum.add(yv, x);
    }
}

/// Dᵀ(y⊘max(Dh, ε)) of one pixel with `h` its abundances: per lane partial sums over the
/// non-zeros, added in lane order; optionally with the log part of the loss.
#[inline(always)]
pub(crate) fn data_term<T: Float, C: PixelCounts<T>, const K: usize>(
    y: &C,
    px: usize,
    d: impl DRows<T, K>,
    h: &[T; K],
    eps: T,
    log: LogPart<'_>,
) -> [T; K] {
    let mut acc = [[T::ZERO; LANES]; K];
    match log {
        LogPart::None => {
            let mut unused = LogSum::new();
            for c in y.chunks(px) {
                let c = &c;
                data_chunk::<T, K, 0>(c, d, h, eps, &mut acc, &mut unused, &[])
            }
        }
        LogPart::Same(sum) => {
            for c in y.chunks(px) {
                let c = &c;
                data_chunk::<T, K, 1>(c, d, h, eps, &mut acc, sum, &[]);
            }
        }
        LogPart::Clipped(sum, hc) => {
            for c in y.chunks(px) {
                let c = &c;
                data_chunk::<T, K, 2>(c, d, h, eps, &mut acc, sum, hc);
            }
        }
    }
    let mut out = [T::ZERO; K];
    for k in 0..K {
        let mut s = acc[k][0];
        for v in &acc[k][1..] {
            s += *v;
        }
        out[k] = s;
    }
    out
}

/// Which [`LogPart`] a pass over pixel `px` may use: `Same` needs T = f64, D ≥ ε and h ≥ ε.
#[inline(always)]
pub(crate) fn log_part_for<'a, T: Float, const K: usize>(
    sum: &'a mut LogSum,
    d_clear: bool,
    h: &[T; K],
    eps: T,
    hc: &'a mut [f64; K],
) -> LogPart<'a> {
    let mut h_clear = true;
    for k in 0..K {
        h_clear &= h[k] >= eps;
        hc[k] = h[k].max(eps).to_f64();
    }
    if is_f64::<T>() && d_clear && h_clear {
        LogPart::Same(sum)
    } else {
        LogPart::Clipped(sum, hc)
    }
}

impl<T: Float> Solver<'_, T> {
    /// Dᵀ(y⊘max(Dh, ε)) of pixel `px` (K values into `acc`) for any K: the lane kernel for
    /// K ≤ 4, a plain loop otherwise.
    #[inline]
    pub(crate) fn data_term_any<C: PixelCounts<T>>(
        &self,
        y: &C,
        d: &[T],
        h: &[T],
        px: usize,
        acc: &mut [T],
    ) {
        let (k, p) = (self.k, self.p);
        let eps = self.params.log_shift;
        with_k!(k, K => {
            let hp: [T; K] = core::array::from_fn(|c| h[c * p + px]);
            let a = data_term::<T, C, K>(y, px, RowMajor(d), &hp, eps, LogPart::None);
            acc[..K].copy_from_slice(&a);
        }, _ => {
            let acc = &mut acc[..k];
            acc.iter_mut().for_each(|v| *v = T::ZERO);
            for c in y.chunks(px) {
                let c = &c;
                for (&l, &yv) in c.channels.iter().zip(&c.counts) {
                    let drow = &d[l as usize * k..(l as usize + 1) * k];
                    let mut dh = T::ZERO;
                    for (c, dv) in drow.iter().enumerate() {
                        dh += *dv * h[c * p + px];
                    }
                    let q = yv / dh.max(eps);
                    for (a, dv) in acc.iter_mut().zip(drow) {
                        *a += *dv * q;
                    }
                }
            }
        })
    }

    /// The multiplicative numerator and denominator of pixel `px` from its data term
    /// Dᵀ(y⊘Dh) in `acc` (K values), handed to `out(component, num, den)`.
    #[inline]
    pub(crate) fn terms_from_data(
        &self,
        st: DStats<'_, T>,
        h: &[T],
        px: usize,
        acc: &[T],
        mut out: impl FnMut(usize, T, T),
    ) {
        let p = self.p;
        let prm = &self.params;
        let lambda = prm.lambda_l;
        // The pixel's place on the grid, found once for all components.
        let grid = match prm.laplacian {
            Laplacian::Grid { rows, cols } => Some((px / cols, px % cols, rows, cols)),
            Laplacian::Identity => None,
        };
        for (c, &a) in acc[..self.k].iter().enumerate() {
            let hv = h[c * p + px];
            let mut num = a;
            let mut den = st.colsum_d[c] + prm.mu_of(c) / (hv + prm.epsilon_reg);
            if lambda != T::ZERO {
                let reg = lambda * prm.sigma_l * st.max_h[c];
                num += reg;
                let row = &h[c * p..(c + 1) * p];
                let lap = match grid {
                    Some((r, col, rows, cols)) => laplacian::grid_at(row, px, r, col, rows, cols),
                    None => row[px],
                };
                den += reg + lambda * lap;
            }
            out(c, hv * num, den);
        }
    }

    /// The multiplicative numerator H⊙(Dᵀ(y⊘Dh) + λσm) and denominator of pixel `px`, handed
    /// to `out(component, num, den)`; `acc` holds K values of scratch.
    #[inline]
    pub(crate) fn pixel_terms<C: PixelCounts<T>>(
        &self,
        y: &C,
        st: DStats<'_, T>,
        h: &[T],
        px: usize,
        acc: &mut [T],
        out: impl FnMut(usize, T, T),
    ) {
        self.data_term_any(y, st.d, h, px, acc);
        self.terms_from_data(st, h, px, acc, out);
    }

    pub(crate) fn h_step<C: PixelCounts<T>>(&self, y: &C, h: &mut [T], work: &mut Work<'_, T>) {
        let (k, p) = (self.k, self.p);
        let prm = &self.params;
        let eps = prm.log_shift;
        let lambda = prm.lambda_l;
        let smooth = lambda != T::ZERO;
        let simplex_h = prm.simplex_h();
        if smooth {
            for (c, mh) in work.max_h.iter_mut().enumerate() {
                *mh = h[c * p..(c + 1) * p].iter().fold(-T::MAX, |a, &v| a.max(v));
            }
        }
        for px in 0..p {
            let (h_new, h_den) = (&mut *work.h_new, &mut *work.h_den);
            let st = DStats {
                d: work.d,
                colsum_d: work.colsum_d,
                max_h: work.max_h,
            };
            self.pixel_terms(y, st, h, px, work.acc, |c, num, den| {
                h_new[c * p + px] = num;
                h_den[c * p + px] = den;
            });
        }
        if simplex_h {
            match prm.simplex_solver {
                SimplexSolver::Newton => {
                    for px in 0..p {
                        let (num, den) = (&*work.h_new, &*work.h_den);
                        let col = (0..k).map(|c| (num[c * p + px], den[c * p + px]));
                        match simplex::newton(col, k, eps, T::ONE) {
                            Some(nu) => work.bis[px] = nu,
                            None => {
                                // No evidence in this pixel: spread it evenly.
                                for c in 0..k {
                                    work.h_new[c * p + px] = T::ONE;
                                    work.h_den[c * p + px] = T::from_usize(k);
                                }
                                work.bis[px] = T::ZERO;
                            }
                        }
                    }
                }
                SimplexSolver::EspmBisection => {
                    let (nu, rest) = work.bis.split_at_mut(p);
                    simplex::espm_bisection(
                        MatRef::of(work.h_new, k, p),
                        MatRef::of(work.h_den, k, p),
                        eps,
                        T::from_f64(1e-5),
                        nu,
                        rest,
                    );
                }
            }
        }
        if simplex_h {
            // The rounding guard of each pixel's simplex (simplex::repair) in bis[p..4p], free
            // after the solve.
            let (nu, fix) = work.bis.split_at_mut(p);
            let tol = simplex::tol_of(prm.simplex_solver);
            for px in 0..p {
                let col = (0..k).map(|c| (work.h_new[c * p + px], work.h_den[c * p + px]));
                let f = simplex::repair(col, k, nu[px], eps, T::ONE, tol);
                let (f0, rest) = fix.split_at_mut(p);
                let (f1, f2) = rest.split_at_mut(p);
                Fix::store(f, [&mut f0[px], &mut f1[px], &mut f2[px]]);
            }
        }
        for c in 0..k {
            for px in 0..p {
                let i = c * p + px;
                let mut v = if simplex_h {
                    let b = &work.bis;
                    let f = Fix::load(b[p + px], b[2 * p + px], b[3 * p + px]);
                    simplex::value(work.h_new[i], work.h_den[i], b[px], eps, f)
                } else {
                    (work.h_new[i] / (work.h_den[i] + T::ZERO)).max(eps)
                };
                v = finite_or(v, h[i]);
                if let Some(fh) = prm.fixed_h {
                    if fh[i] >= T::ZERO {
                        v = fh[i];
                    }
                }
                h[i] = v;
            }
        }
    }
}
