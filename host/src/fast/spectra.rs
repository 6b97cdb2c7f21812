//! The spectra step of the fast joint fit: W (M×K) with the maps held, by an active-set
//! Newton method over its few M·K unknowns.
//!
//! With H held the Poisson loss is convex in W, and it depends on W only through D = G·W, so
//! its curvature is a K×K block per channel, B_l = Σ_p y_lp·h_p·h_pᵀ / (d_l·h_p)², gathered in
//! one pass over the non-zeros; the Hessian in W is Σ_l (g_l g_lᵀ) ⊗ B_l, at most
//! (M·K)² entries. Each Newton step solves the equality-constrained quadratic model (each
//! phase's element fractions sum to one) on the entries off their bound, releases a bound
//! entry whose multiplier says it should move inward, and is damped by a ratio test (no entry
//! below its bound) and Armijo backtracking on the exact loss, so the loss never increases.
//! The sums over the non-zeros run over a fixed partition of the pixels reduced in order, so
//! the result is the same for any thread count.

// K×K blocks and free-entry lists are indexed on purpose.
#![allow(clippy::needless_range_loop)]

use crate::io::counts::SparseCountsRef;
use anyhow::{anyhow, Result};
use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;

/// Pixel groups of the sums over the non-zeros: fixed, so that the reduction order (and the
/// result) does not depend on the thread count.
const GROUPS: usize = 32;

/// The W subproblem: counts, G, the maps held and which entries of W may move.
pub struct SpectraProblem<'a> {
    /// Counts, per pixel sparse.
    pub y: SparseCountsRef<'a>,
    /// G (L×M, row-major).
    pub g: &'a [f64],
    /// Columns M of G (rows of W).
    pub m: usize,
    /// Components K.
    pub k: usize,
    /// Maps (K×P, component-major), used as max(H, `eps`) as the objective does.
    pub h: &'a [f64],
    /// Rows of W whose entries sum to one in every column (the elements).
    pub simplex_rows: &'a [usize],
    /// Held entries of W (M×K; a value ≥ 0 holds the entry at it, < 0 leaves it free).
    pub fixed: Option<&'a [f64]>,
    /// Lower bound ε of D and H (the core's `log_shift`).
    pub eps: f64,
}

/// What [`newton_w`] did.
#[derive(Debug, Clone, Copy, Default)]
pub struct WReport {
    /// Newton steps taken.
    pub steps: usize,
    /// Passes over the non-zeros (one per curvature gathering and per line-search trial).
    pub passes: usize,
    /// How much the loss fell (≥ 0).
    pub decrease: f64,
}

/// Per-group sums: a_lk = Σ_p y·h_kp/x, B_l (K×K, full) = Σ_p y·h·hᵀ/x².
struct Sums {
    a: Vec<f64>,
    b: Vec<f64>,
}

impl SpectraProblem<'_> {
    pub(super) fn validate(&self, w: &[f64]) -> Result<()> {
        let (l, p, m, k) = (self.y.channels, self.y.pixels, self.m, self.k);
        anyhow::ensure!(k >= 1 && m >= 1, "W must have at least one row and column");
        anyhow::ensure!(
            self.g.len() == l * m,
            "G has {} entries, expected {l}x{m}",
            self.g.len()
        );
        anyhow::ensure!(
            w.len() == m * k,
            "W has {} entries, expected {m}x{k}",
            w.len()
        );
        anyhow::ensure!(
            self.h.len() == k * p,
            "H has {} entries, expected {k}x{p}",
            self.h.len()
        );
        anyhow::ensure!(
            self.y.indptr.len() == p + 1,
            "counts: {} offsets for {p} pixels",
            self.y.indptr.len()
        );
        anyhow::ensure!(
            self.simplex_rows.iter().all(|&r| r < m),
            "a simplex row is outside W's {m} rows"
        );
        if let Some(f) = self.fixed {
            anyhow::ensure!(
                f.len() == m * k,
                "fixed W has {} entries, expected {m}x{k}",
                f.len()
            );
        }
        anyhow::ensure!(
            self.g
                .iter()
                .chain(w)
                .chain(self.h)
                .all(|v| v.is_finite() && *v >= 0.0),
            "G, W or H has a negative or non-finite entry"
        );
        anyhow::ensure!(
            self.y.indices.iter().all(|&c| (c as usize) < l),
            "a count's channel is outside the {l} channels"
        );
        Ok(())
    }

    /// D = G·W (L×K).
    pub(super) fn d_of(&self, w: &[f64]) -> Vec<f64> {
        super::gw(self.g, w, self.y.channels, self.m, self.k)
    }

    pub(super) fn groups(&self) -> Vec<std::ops::Range<usize>> {
        let p = self.y.pixels;
        let size = p.div_ceil(GROUPS).max(1);
        (0..p).step_by(size).map(|s| s..(s + size).min(p)).collect()
    }

    /// Calls `f(channel, y, h̃, x)` for every non-zero count of the pixels `r`, with
    /// h̃ = max(h_p, ε) and x = d̃_l·h̃ (d̃ = max(d, ε)): the one traversal both sums share.
    pub(super) fn each_count(
        &self,
        d: &[f64],
        r: std::ops::Range<usize>,
        mut f: impl FnMut(usize, f64, &[f64], f64),
    ) {
        let (k, eps) = (self.k, self.eps);
        self.each_nonzero(r, |li, y, hv| {
            let row = &d[li * k..][..k];
            let x: f64 = row.iter().zip(hv).map(|(a, b)| a.max(eps) * b).sum();
            f(li, y, hv, x);
        });
    }

    /// Calls `f(channel, y, h̃)` for every non-zero count of the pixels `r`.
    fn each_nonzero(&self, r: std::ops::Range<usize>, mut f: impl FnMut(usize, f64, &[f64])) {
        let (k, p, eps) = (self.k, self.y.pixels, self.eps);
        let mut hv = vec![0.0; k];
        for px in r {
            for c in 0..k {
                hv[c] = self.h[c * p + px].max(eps);
            }
            for i in self.y.indptr[px]..self.y.indptr[px + 1] {
                let y = self.y.values[i];
                if y != 0.0 {
                    f(self.y.indices[i] as usize, y, &hv);
                }
            }
        }
    }

    /// Σ y ln(d̃·h̃) over the non-zeros (the tests' reference for `log_change`).
    #[cfg(test)]
    fn log_term(&self, d: &[f64], pool: &rayon::ThreadPool) -> f64 {
        let parts: Vec<f64> = pool.install(|| {
            self.groups()
                .into_par_iter()
                .map(|r| {
                    let mut s = 0.0;
                    self.each_count(d, r, |_, y, _, x| s += y * x.ln());
                    s
                })
                .collect()
        });
        parts.iter().sum()
    }

    /// The curvature and gradient sums at D (one pass over the non-zeros).
    fn sums(&self, d: &[f64], pool: &rayon::ThreadPool) -> Sums {
        let (l, k) = (self.y.channels, self.k);
        let parts: Vec<Sums> = pool.install(|| {
            self.groups()
                .into_par_iter()
                .map(|r| {
                    let mut s = Sums {
                        a: vec![0.0; l * k],
                        b: vec![0.0; l * k * k],
                    };
                    self.each_count(d, r, |li, y, hv, x| {
                        let r1 = y / x;
                        let r2 = r1 / x;
                        let a = &mut s.a[li * k..][..k];
                        let b = &mut s.b[li * k * k..][..k * k];
                        for c in 0..k {
                            a[c] += r1 * hv[c];
                            let t = r2 * hv[c];
                            for c2 in c..k {
                                b[c * k + c2] += t * hv[c2];
                            }
                        }
                    });
                    s
                })
                .collect()
        });
        let mut out = Sums {
            a: vec![0.0; l * k],
            b: vec![0.0; l * k * k],
        };
        for s in parts {
            out.a.iter_mut().zip(&s.a).for_each(|(o, v)| *o += v);
            out.b.iter_mut().zip(&s.b).for_each(|(o, v)| *o += v);
        }
        mirror_upper(&mut out.b, k);
        out
    }

    /// Which rows of W are on the simplex, and W's entries (M×K, row-major) not held.
    pub(super) fn entries(&self) -> (Vec<bool>, Vec<usize>) {
        let mut simplex = vec![false; self.m];
        for &r in self.simplex_rows {
            simplex[r] = true;
        }
        let held = |i: usize| self.fixed.is_some_and(|f| f[i] >= 0.0);
        let movable = (0..self.m * self.k).filter(|&i| !held(i)).collect();
        (simplex, movable)
    }

    /// Σ_l g_lj per column j of G.
    pub(super) fn g_sums(&self) -> Vec<f64> {
        let (l, m) = (self.y.channels, self.m);
        (0..m)
            .map(|j| (0..l).map(|li| self.g[li * m + j]).sum())
            .collect()
    }

    /// Σ_p max(h_kp, ε) per component.
    pub(super) fn h_sums(&self) -> Vec<f64> {
        let p = self.y.pixels;
        (0..self.k)
            .map(|c| {
                self.h[c * p..(c + 1) * p]
                    .iter()
                    .map(|v| v.max(self.eps))
                    .sum()
            })
            .collect()
    }

    /// The W-dependent loss from D and the column sums of H.
    #[cfg(test)]
    fn loss(&self, d: &[f64], hs: &[f64], pool: &rayon::ThreadPool) -> f64 {
        self.linear_term(d, hs) - self.log_term(d, pool)
    }

    /// Σ y ln(x₁/x₀) over the non-zeros, x = d̃·h̃ at D₀ and D₁: the change of the loss's log
    /// term between them, formed from x₁ − x₀ = (D₁ − D₀)·h̃ so that it does not cancel. Near
    /// convergence the ratios are within 1e-3 of one and ln(1 + u) is a short series, no
    /// logarithm.
    fn log_change(&self, d0: &[f64], d1: &[f64], pool: &rayon::ThreadPool) -> f64 {
        let (k, eps) = (self.k, self.eps);
        let parts: Vec<f64> = pool.install(|| {
            self.groups()
                .into_par_iter()
                .map(|r| {
                    let mut acc = 0.0;
                    self.each_nonzero(r, |li, y, hv| {
                        let (r0, r1) = (&d0[li * k..][..k], &d1[li * k..][..k]);
                        let (mut x0, mut dx) = (0.0, 0.0);
                        for c in 0..k {
                            let (a0, a1) = (r0[c].max(eps), r1[c].max(eps));
                            x0 += a0 * hv[c];
                            dx += (a1 - a0) * hv[c];
                        }
                        acc += y * ln_1p(dx / x0);
                    });
                    acc
                })
                .collect()
        });
        parts.iter().sum()
    }

    /// Σ_k (Σ_l d̃_lk)(Σ_p h̃_kp): the loss's part without the data's logarithms.
    fn linear_term(&self, d: &[f64], hs: &[f64]) -> f64 {
        let k = self.k;
        let mut lin = 0.0;
        for row in d.chunks_exact(k) {
            for c in 0..k {
                lin += row[c].max(self.eps) * hs[c];
            }
        }
        lin
    }
}

/// Improves W (M×K, row-major, in place) with the maps held: at most `steps` Newton steps,
/// stopping early when the predicted decrease is below `tol` relative to the loss.
pub fn newton_w(
    pb: &SpectraProblem<'_>,
    w: &mut [f64],
    steps: usize,
    tol: f64,
    pool: &rayon::ThreadPool,
) -> Result<WReport> {
    pb.validate(w)?;
    let k = pb.k;
    let lb = 0.0;
    let (simplex, movable) = pb.entries();
    // Each column's free element entries sum to one minus its held ones (the start may be off
    // by rounding; an infeasible start would make every step's sum constraint wrong).
    onto_simplex(pb, w);
    let hs = pb.h_sums();
    let gsum = pb.g_sums();
    let mut rep = WReport::default();
    let mut d = pb.d_of(w);
    // The loss is followed as its change from the start (f = 0 there): the line search needs
    // only differences, which `log_change` forms without a logarithm per non-zero.
    let mut f = 0.0;
    let mut lin = pb.linear_term(&d, &hs);
    let scale = lin.abs().max(1.0);
    for _ in 0..steps {
        let s = pb.sums(&d, pool);
        rep.passes += 1;
        // Gradient and Hessian over the movable entries.
        let n = movable.len();
        if n == 0 {
            break;
        }
        let (grad, hess) = w_gradient_hessian(pb, &movable, (&gsum, &hs), (&s.a, &s.b));
        let Some(dir) = qp_step(&hess, &grad, &movable, &simplex, k, |i| w[i] - lb) else {
            break;
        };
        let slope: f64 = grad.iter().zip(&dir).map(|(g, d)| g * d).sum();
        if slope.is_nan() || slope >= 0.0 || -slope <= tol * scale {
            break;
        }
        // The step solves the quadratic model over the feasible set, which is convex: every
        // point between W and W + dir is feasible, so backtracking starts from the full step.
        let mut t = 1.0;
        let mut accepted = false;
        let mut trial = w.to_vec();
        for _ in 0..40 {
            for (a, &i) in movable.iter().enumerate() {
                trial[i] = (w[i] + t * dir[a]).max(lb);
            }
            let dt = pb.d_of(&trial);
            let lin_t = pb.linear_term(&dt, &hs);
            let ft = f + lin_t - lin - pb.log_change(&d, &dt, pool);
            rep.passes += 1;
            if ft.is_finite() && ft <= f + 1e-4 * t * slope {
                w.copy_from_slice(&trial);
                d = dt;
                f = ft;
                lin = lin_t;
                accepted = true;
                break;
            }
            t *= 0.5;
        }
        if !accepted {
            break;
        }
        rep.steps += 1;
    }
    rep.decrease = -f;
    if !f.is_finite() {
        return Err(anyhow!("the spectra step reached a non-finite loss"));
    }
    Ok(rep)
}

/// Fills the lower triangle of each K×K block in `blocks` from its upper one (the sums
/// gather only c ≤ c2).
pub(super) fn mirror_upper(blocks: &mut [f64], k: usize) {
    for bl in blocks.chunks_exact_mut(k * k) {
        for c in 0..k {
            for c2 in 0..c {
                bl[c * k + c2] = bl[c2 * k + c];
            }
        }
    }
}

/// Rescales each column's free element entries of W to sum to one minus its held ones, when
/// they are off by more than rounding.
pub(super) fn onto_simplex(pb: &SpectraProblem<'_>, w: &mut [f64]) {
    let k = pb.k;
    for c in 0..k {
        let held: f64 = pb
            .simplex_rows
            .iter()
            .filter(|&&r| pb.fixed.is_some_and(|f| f[r * k + c] >= 0.0))
            .map(|&r| w[r * k + c])
            .sum();
        let free: f64 = free_simplex_entries(pb.simplex_rows, pb.fixed, k, c)
            .map(|i| w[i])
            .sum();
        let target = 1.0 - held;
        if free > 0.0 && target > 0.0 && (free - target).abs() > 1e-12 * target {
            for i in free_simplex_entries(pb.simplex_rows, pb.fixed, k, c) {
                w[i] *= target / free;
            }
        }
    }
}

/// The loss's gradient and Hessian (n×n, full) in W's `movable` entries with the maps held,
/// from G's column sums, H's row sums (`gsum`, `hs`) and the per-channel sums a_lk, B_l (K×K,
/// full) of one pass over the non-zeros: ∇ = gsum_j·hs_c − Σ_l g_lj·a_lc and
/// ∇² = Σ_l (g_l g_lᵀ) ⊗ B_l.
pub(super) fn w_gradient_hessian(
    pb: &SpectraProblem<'_>,
    movable: &[usize],
    (gsum, hs): (&[f64], &[f64]),
    (a_sum, b_sum): (&[f64], &[f64]),
) -> (Vec<f64>, Vec<f64>) {
    let (l, m, k, n) = (pb.y.channels, pb.m, pb.k, movable.len());
    let grad: Vec<f64> = movable
        .iter()
        .map(|&i| {
            let (j, c) = (i / k, i % k);
            gsum[j] * hs[c]
                - (0..l)
                    .map(|li| pb.g[li * m + j] * a_sum[li * k + c])
                    .sum::<f64>()
        })
        .collect();
    let mut hess = vec![0.0; n * n];
    for li in 0..l {
        let grow = &pb.g[li * m..(li + 1) * m];
        let bl = &b_sum[li * k * k..(li + 1) * k * k];
        for (a, &ia) in movable.iter().enumerate() {
            let ga = grow[ia / k];
            if ga == 0.0 {
                continue;
            }
            let ca = ia % k;
            for (b, &ib) in movable.iter().enumerate().skip(a) {
                let gb = grow[ib / k];
                if gb != 0.0 {
                    hess[a * n + b] += ga * gb * bl[ca * k + ib % k];
                }
            }
        }
    }
    for a in 0..n {
        for b in 0..a {
            hess[a * n + b] = hess[b * n + a];
        }
    }
    (grad, hess)
}

/// Indices in W (M×K, row-major) of column `c`'s entries on the `simplex_rows` that `fixed`
/// (≥ 0: held) leaves free.
pub(crate) fn free_simplex_entries<'a>(
    simplex_rows: &'a [usize],
    fixed: Option<&'a [f64]>,
    k: usize,
    c: usize,
) -> impl Iterator<Item = usize> + 'a {
    let rows = simplex_rows.iter().map(move |&r| r * k + c);
    rows.filter(move |&i| fixed.is_none_or(|f| f[i] < 0.0))
}

/// ln(1 + u): its series to u⁶ for |u| ≤ 1e-3 (truncation below 2e-19 relative), `ln_1p`
/// beyond.
#[inline(always)]
pub(super) fn ln_1p(u: f64) -> f64 {
    if u.abs() <= 1e-3 {
        u * (1.0 - u * (0.5 - u * (1.0 / 3.0 - u * (0.25 - u * (0.2 - u * (1.0 / 6.0))))))
    } else {
        u.ln_1p()
    }
}

/// The Newton step: the minimiser d of the quadratic model gᵀd + ½dᵀHd subject to each
/// phase's element entries summing to zero and d_i ≥ −room(i) (no entry below its bound), by
/// the primal active-set method from d = 0 (at most a few dozen small solves, no pass over the
/// data). None when a system cannot be solved.
pub(super) fn qp_step(
    hess: &[f64],
    grad: &[f64],
    movable: &[usize],
    simplex: &[bool],
    k: usize,
    room: impl Fn(usize) -> f64,
) -> Option<Vec<f64>> {
    let n = movable.len();
    let room: Vec<f64> = movable.iter().map(|&i| room(i).max(0.0)).collect();
    let mut x = vec![0.0; n];
    let mut active: Vec<bool> = room.iter().map(|r| *r <= 0.0).collect();
    for _ in 0..4 * n + 4 {
        // The model's gradient at x.
        let q: Vec<f64> = (0..n)
            .map(|a| grad[a] + (0..n).map(|b| hess[a * n + b] * x[b]).sum::<f64>())
            .collect();
        let (p, nu) = eqp(hess, &q, &active, movable, simplex, k)?;
        let scale = x.iter().chain(&room).fold(1e-300f64, |a, v| a.max(v.abs()));
        if p.iter().all(|v| v.abs() <= 1e-13 * scale) {
            // Stationary on this working set: release the bound entry whose multiplier says
            // the model falls when it moves inward, or stop.
            let mut worst: Option<(usize, f64)> = None;
            for a in (0..n).filter(|&a| active[a]) {
                let i = movable[a];
                let lam = if simplex[i / k] {
                    q[a] + nu[i % k]
                } else {
                    q[a]
                };
                if lam < 0.0 && worst.is_none_or(|(_, v)| lam < v) {
                    worst = Some((a, lam));
                }
            }
            match worst {
                Some((a, _)) => active[a] = false,
                None => return Some(x),
            }
            continue;
        }
        // The longest part of p that keeps every entry at or above its bound.
        let mut alpha = 1.0f64;
        let mut block = None;
        for a in (0..n).filter(|&a| !active[a]) {
            if p[a] < 0.0 {
                let r = (room[a] + x[a]) / -p[a];
                if r < alpha {
                    alpha = r.max(0.0);
                    block = Some(a);
                }
            }
        }
        for a in 0..n {
            x[a] += alpha * p[a];
        }
        if let Some(a) = block {
            x[a] = -room[a];
            active[a] = true;
        }
    }
    Some(x)
}

/// Solves the equality-constrained Newton system on the inactive entries: H_FF·d + E·ν = −g,
/// Eᵀ·d = 0 (E: one column per phase over its free element entries). Returns d over every
/// movable entry (0 on active ones) and ν per phase (0 where a phase has no free element).
fn eqp(
    hess: &[f64],
    grad: &[f64],
    active: &[bool],
    movable: &[usize],
    simplex: &[bool],
    k: usize,
) -> Option<(Vec<f64>, Vec<f64>)> {
    let n = movable.len();
    let free: Vec<usize> = (0..n).filter(|&a| !active[a]).collect();
    let nf = free.len();
    let mut cons: Vec<usize> = Vec::new();
    for c in 0..k {
        if free
            .iter()
            .any(|&a| simplex[movable[a] / k] && movable[a] % k == c)
        {
            cons.push(c);
        }
    }
    let nc = cons.len();
    let dim = nf + nc;
    let mut dv = vec![0.0; n];
    let mut nu = vec![0.0; k];
    if nf == 0 {
        return Some((dv, nu));
    }
    let diag_max = free
        .iter()
        .map(|&a| hess[a * n + a])
        .fold(0.0f64, f64::max)
        .max(1e-300);
    for damping in [0.0, 1e-12, 1e-9, 1e-6] {
        let mut kkt = DMatrix::<f64>::zeros(dim, dim);
        let mut rhs = DVector::<f64>::zeros(dim);
        for (r, &a) in free.iter().enumerate() {
            for (s, &b) in free.iter().enumerate() {
                kkt[(r, s)] = hess[a * n + b];
            }
            kkt[(r, r)] += damping * diag_max;
            rhs[r] = -grad[a];
            let i = movable[a];
            if simplex[i / k] {
                if let Some(q) = cons.iter().position(|&c| c == i % k) {
                    kkt[(r, nf + q)] = 1.0;
                    kkt[(nf + q, r)] = 1.0;
                }
            }
        }
        let Some(sol) = kkt.lu().solve(&rhs) else {
            continue;
        };
        if sol.iter().all(|v| v.is_finite()) {
            for (r, &a) in free.iter().enumerate() {
                dv[a] = sol[r];
            }
            for (q, &c) in cons.iter().enumerate() {
                nu[c] = sol[nf + q];
            }
            return Some((dv, nu));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fast::pool;

    /// A small problem: counts drawn near G·W·H with a known W.
    type Problem = (
        Vec<f64>,
        Vec<f64>,
        Vec<usize>,
        Vec<u32>,
        Vec<f64>,
        usize,
        usize,
        usize,
        usize,
    );

    fn problem() -> Problem {
        let (l, m, k, p) = (40, 5, 2, 30);
        let g: Vec<f64> = (0..l * m)
            .map(|i| {
                let (li, j) = (i / m, i % m);
                let c = 6.0 + 8.0 * j as f64;
                (-(li as f64 - c).powi(2) / 8.0).exp() + 0.05
            })
            .collect();
        let w_true = [0.5, 0.1, 0.3, 0.2, 0.2, 0.3, 0.0, 0.4, 1.0, 2.0];
        let h: Vec<f64> = (0..k * p)
            .map(|i| 20.0 + 30.0 * ((i * 7919) % 13) as f64)
            .collect();
        let mut indptr = vec![0];
        let mut idx = Vec::new();
        let mut val = Vec::new();
        for px in 0..p {
            for li in 0..l {
                let x: f64 = (0..k)
                    .map(|c| {
                        (0..m)
                            .map(|j| g[li * m + j] * w_true[j * k + c])
                            .sum::<f64>()
                            * h[c * p + px]
                    })
                    .sum();
                let y = (x + ((li * 31 + px * 17) % 5) as f64 - 2.0)
                    .round()
                    .max(0.0);
                if y > 0.0 {
                    idx.push(li as u32);
                    val.push(y);
                }
            }
            indptr.push(idx.len());
        }
        (g, h, indptr, idx, val, l, m, k, p)
    }

    #[test]
    fn the_log_series_matches_ln_1p_where_it_is_used() {
        for j in 0..=2000 {
            let u = (j as f64 - 1000.0) * 1e-6;
            let (a, b) = (ln_1p(u), u.ln_1p());
            // A few ulp of rounding, no truncation error.
            assert!((a - b).abs() <= 5e-16 * b.abs(), "{u}: {a} {b}");
        }
    }

    #[test]
    fn loss_falls_and_constraints_hold() {
        let (g, h, indptr, idx, val, l, m, k, p) = problem();
        let y = SparseCountsRef {
            channels: l,
            pixels: p,
            indptr: &indptr,
            indices: &idx,
            values: &val,
        };
        let rows = [0, 1, 2];
        let pb = SpectraProblem {
            y,
            g: &g,
            m,
            k,
            h: &h,
            simplex_rows: &rows,
            fixed: None,
            eps: 1e-14,
        };
        let mut w = vec![0.2, 0.5, 0.4, 0.3, 0.4, 0.2, 0.5, 0.5, 0.5, 0.5];
        let pool = pool(1).unwrap();
        let hs = pb.h_sums();
        let loss = |w: &[f64]| pb.loss(&pb.d_of(w), &hs, &pool);
        let mut last = loss(&w);
        for _ in 0..6 {
            let r = newton_w(&pb, &mut w, 1, 0.0, &pool).unwrap();
            let now = loss(&w);
            assert!(r.decrease >= 0.0 && now <= last, "{r:?}");
            // The decrease reported, from differences, is the decrease of the loss.
            assert!(
                (last - now - r.decrease).abs() <= 1e-9 * last.abs(),
                "{r:?}"
            );
            last = now;
        }
        for c in 0..k {
            let s: f64 = rows.iter().map(|&r| w[r * k + c]).sum();
            assert!((s - 1.0).abs() < 1e-12, "column {c} sums to {s}");
        }
        assert!(w.iter().all(|v| *v >= 0.0 && v.is_finite()));
        // Converged: another run of steps moves nothing (the KKT point of a convex problem).
        let before = w.clone();
        let r = newton_w(&pb, &mut w, 5, 1e-14, &pool).unwrap();
        assert!(r.decrease <= 1e-9 * last.abs(), "{r:?}");
        let moved = before
            .iter()
            .zip(&w)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(moved < 1e-4, "moved {moved}");
    }

    #[test]
    fn same_result_for_any_thread_count_and_fixed_entries_stay() {
        let (g, h, indptr, idx, val, l, m, k, p) = problem();
        let y = SparseCountsRef {
            channels: l,
            pixels: p,
            indptr: &indptr,
            indices: &idx,
            values: &val,
        };
        let rows = [0, 1, 2];
        let mut fixed = vec![-1.0; m * k];
        fixed[3 * k] = 0.25;
        let pb = SpectraProblem {
            y,
            g: &g,
            m,
            k,
            h: &h,
            simplex_rows: &rows,
            fixed: Some(&fixed),
            eps: 1e-14,
        };
        let start = vec![0.2, 0.5, 0.4, 0.3, 0.4, 0.2, 0.25, 0.5, 0.5, 0.5];
        let mut a = start.clone();
        let mut b = start.clone();
        newton_w(&pb, &mut a, 8, 0.0, &pool(1).unwrap()).unwrap();
        newton_w(&pb, &mut b, 8, 0.0, &pool(2).unwrap()).unwrap();
        assert_eq!(a, b);
        assert_eq!(a[3 * k], 0.25);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let (g, h, indptr, idx, val, l, m, k, p) = problem();
        let y = SparseCountsRef {
            channels: l,
            pixels: p,
            indptr: &indptr,
            indices: &idx,
            values: &val,
        };
        let pb = SpectraProblem {
            y,
            g: &g,
            m,
            k,
            h: &h,
            simplex_rows: &[0, 9],
            fixed: None,
            eps: 1e-14,
        };
        let mut w = vec![0.1; m * k];
        assert!(newton_w(&pb, &mut w, 1, 0.0, &pool(1).unwrap()).is_err());
        let pb = SpectraProblem {
            y,
            g: &g[1..],
            m,
            k,
            h: &h,
            simplex_rows: &[0],
            fixed: None,
            eps: 1e-14,
        };
        assert!(newton_w(&pb, &mut w, 1, 0.0, &pool(1).unwrap()).is_err());
        let mut w = vec![f64::NAN; m * k];
        let pb = SpectraProblem {
            y,
            g: &g,
            m,
            k,
            h: &h,
            simplex_rows: &[0],
            fixed: None,
            eps: 1e-14,
        };
        assert!(newton_w(&pb, &mut w, 1, 0.0, &pool(1).unwrap()).is_err());
    }
}
