//! One pixel's abundances by projected Newton steps on a convex majorizer of the objective,
//! each step guarded so that the objective cannot rise.
//!
//! With the spectra and the neighbours held, pixel p's share of the objective is
//! f_p(h) = Σ_k c_k h_k + ½q·|h|² − Σ_nz y·ln(d_l·h) + Σ_k μ_k ln(h_k + ε_reg) (+ const),
//! with c = s − λ·(sum of the neighbours' h) and q = λ·(number of neighbours). The log term is
//! concave: the step is Newton's on f where f's Hessian is positive definite on the free
//! variables, else on the convex surrogate ψ that replaces the log term by its tangent (a
//! majorizer, equal at the current point). A step is kept when ψ's slope along it is still ≤ 0
//! at its end (then ψ fell all along the segment, by convexity, and f(h₁) ≤ ψ(h₁) ≤ ψ(h₀) =
//! f(h₀)), or when the computed change of f passes Armijo's test; otherwise it is halved.
//!
//! One pass over the pixel's non-zeros gives the value Σ y·ln(d·h) (as the core sums
//! logarithms, [`LogSum`]), the gradient Σ y·d/(d·h) and the Hessian Σ y·ddᵀ/(d·h)² at once;
//! the pass at a step's end serves both its test and the next step.

// K×K blocks are indexed by component on purpose; `!(x > 0)` also catches NaN on purpose.
#![allow(clippy::needless_range_loop, clippy::neg_cmp_op_on_partial_ord)]

use edxs_core::solver::{LogSum, LANES};
use std::sync::atomic::{AtomicBool, Ordering};

/// The data part of one pixel at its current abundances: Σ y·d/(d·h) (`g`), Σ y·ddᵀ/(d·h)²
/// (`hs`, full K×K) and Σ y·ln(d·h) (`logv`).
#[derive(Debug, Clone, Copy)]
pub struct PixelStats<const K: usize> {
    /// Σ y·d/(d·h).
    pub g: [f64; K],
    /// Σ y·ddᵀ/(d·h)².
    pub hs: [[f64; K]; K],
    /// Σ y·ln(d·h).
    pub logv: f64,
}

impl<const K: usize> Default for PixelStats<K> {
    fn default() -> Self {
        PixelStats {
            g: [0.0; K],
            hs: [[0.0; K]; K],
            logv: 0.0,
        }
    }
}

/// Set: [`pass`] runs [`pass_scalar`] on every CPU.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
static PORTABLE: AtomicBool = AtomicBool::new(false);

/// Makes [`pass`] run the portable loop on every CPU (`true`) or the CPU's fastest (`false`,
/// the default), so that a whole solve on the portable path can be tested on a machine with
/// AVX2. Process-wide: a test that sets it needs a test binary of its own.
#[doc(hidden)]
pub fn force_portable_pass(on: bool) {
    PORTABLE.store(on, Ordering::Relaxed);
}

/// One pass over a pixel's non-zeros (`idx`, `val`) with D̃ (`d`, L×K clipped at ε) at `h`:
/// the AVX2 kernel (`newton_avx2`) when the CPU has AVX2 and FMA and K ≤ 8, else
/// [`pass_scalar`]. Σ y·ln(d·h) is the same bit for bit either way; the gradient and Hessian
/// are summed in another order, so they differ in the last bits.
#[inline(always)]
pub fn pass<const K: usize>(idx: &[u32], val: &[f64], d: &[f64], h: &[f64; K]) -> PixelStats<K> {
    #[cfg(target_arch = "x86_64")]
    if K <= super::newton_avx2::MAX_K
        && !PORTABLE.load(Ordering::Relaxed)
        && super::newton_avx2::available()
    {
        // SAFETY: the CPU has AVX2 and FMA.
        return unsafe { super::newton_avx2::pass::<K>(idx, val, d, h) };
    }
    pass_scalar(idx, val, d, h)
}

/// [`pass`] on any CPU: one non-zero at a time.
#[inline(always)]
pub fn pass_scalar<const K: usize>(
    idx: &[u32],
    val: &[f64],
    d: &[f64],
    h: &[f64; K],
) -> PixelStats<K> {
    let mut st = PixelStats::<K>::default();
    let mut logs = LogBatch::new();
    for (&li, &y) in idx.iter().zip(val) {
        let row: &[f64; K] = d[li as usize * K..][..K].try_into().unwrap();
        let mut a = 0.0;
        for c in 0..K {
            a += row[c] * h[c];
        }
        let inv = 1.0 / a;
        let r = y * inv;
        let w = r * inv;
        for i in 0..K {
            st.g[i] += row[i] * r;
            let wi = row[i] * w;
            for j in i..K {
                st.hs[i][j] += wi * row[j];
            }
        }
        logs.push(y, a);
    }
    for i in 0..K {
        for j in 0..i {
            st.hs[i][j] = st.hs[j][i];
        }
    }
    st.logv = one_ln(&logs.finish());
    st
}

/// Terms y·ln(x) fed one at a time into the lanes of a [`LogSum`], [`LANES`] at a time (the
/// last batch padded with y = 0, x = 1), for the loops that meet their terms one by one.
pub(crate) struct LogBatch {
    sum: LogSum,
    y: [f64; LANES],
    x: [f64; LANES],
    n: usize,
}

impl LogBatch {
    /// No terms yet.
    #[inline(always)]
    pub(crate) fn new() -> Self {
        LogBatch {
            sum: LogSum::new(),
            y: [0.0; LANES],
            x: [1.0; LANES],
            n: 0,
        }
    }

    /// Adds y·ln(x).
    #[inline(always)]
    pub(crate) fn push(&mut self, y: f64, x: f64) {
        self.y[self.n] = y;
        self.x[self.n] = x;
        self.n += 1;
        if self.n == LANES {
            self.sum.add(self.y, self.x);
            self.n = 0;
        }
    }

    /// The sum with the last, partial batch added.
    #[inline(always)]
    pub(crate) fn finish(mut self) -> LogSum {
        if self.n > 0 {
            for j in self.n..LANES {
                self.y[j] = 0.0;
                self.x[j] = 1.0;
            }
            self.sum.add(self.y, self.x);
        }
        self.sum
    }
}

/// Σ ln(h[px·K + c] + shift) over the pixels `range` of pixel-major `h`, through [`LogBatch`]
/// (a multiplication per entry instead of an `ln`).
pub(crate) fn sum_ln_of<const K: usize>(
    h: &[f64],
    c: usize,
    range: std::ops::Range<usize>,
    shift: f64,
) -> f64 {
    let mut acc = LogBatch::new();
    for px in range {
        acc.push(1.0, h[px * K + c] + shift);
    }
    acc.finish().total()
}

/// [`LogSum::total`] with one logarithm instead of one per lane: the lanes' products (each in
/// [1, 2)) multiplied together, their exponents added. A pixel has tens of non-zeros, so four
/// logarithms were a tenth of its vector pass; the three products add ~2 ulp to the argument,
/// i.e. ~4e-16 to the sum.
#[inline(always)]
pub(crate) fn one_ln(s: &LogSum) -> f64 {
    let p = s.prod.iter().fold(1.0, |p, &x| p * x);
    let e: i64 = s.expo.iter().sum();
    (p.ln() + e as f64 * core::f64::consts::LN_2) + s.rest
}

/// What the neighbours and the regularisation contribute to one pixel's problem.
#[derive(Debug, Clone, Copy)]
pub struct PixelTerms<const K: usize> {
    /// s − λ·(neighbours' sum), per component.
    pub c: [f64; K],
    /// λ·(number of neighbours) (λ for the identity Laplacian).
    pub q: f64,
    /// μ per component.
    pub mu: [f64; K],
    /// ε_reg.
    pub epsilon_reg: f64,
    /// Lower bound ε.
    pub eps: f64,
}

/// How one pixel's update went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PixelOutcome {
    /// Passes over the pixel's non-zeros.
    pub passes: u32,
    /// Steps halved by the guard.
    pub halvings: u32,
    /// A step the guard refused entirely (the pixel kept its abundances).
    pub refused: bool,
}

/// Solves `a x = b` for the symmetric positive definite `a` restricted to `free` (Cholesky,
/// with a ridge when a pivot vanishes); entries outside `free` get 0.
fn solve_free<const K: usize>(a: &[[f64; K]; K], b: &[f64; K], free: &[bool; K]) -> [f64; K] {
    let idx: [usize; K] = core::array::from_fn(|i| i);
    let mut map = [0usize; K];
    let mut n = 0;
    for &i in &idx {
        if free[i] {
            map[n] = i;
            n += 1;
        }
    }
    let mut x = [0.0; K];
    if n == 0 {
        return x;
    }
    let maxd = (0..n).map(|i| a[map[i]][map[i]]).fold(0.0f64, f64::max);
    let mut ridge = (1e-13 * maxd).max(1e-30);
    'retry: for _ in 0..8 {
        let mut l = [[0.0f64; K]; K];
        for i in 0..n {
            for j in 0..=i {
                let mut s = a[map[i]][map[j]] + if i == j { ridge } else { 0.0 };
                for t in 0..j {
                    s -= l[i][t] * l[j][t];
                }
                if i == j {
                    if !(s > 0.0) {
                        ridge *= 1e4;
                        continue 'retry;
                    }
                    l[i][i] = s.sqrt();
                } else {
                    l[i][j] = s / l[j][j];
                }
            }
        }
        let mut z = [0.0f64; K];
        for i in 0..n {
            let mut s = b[map[i]];
            for t in 0..i {
                s -= l[i][t] * z[t];
            }
            z[i] = s / l[i][i];
        }
        for i in (0..n).rev() {
            let mut s = z[i];
            for t in i + 1..n {
                s -= l[t][i] * x[map[t]];
            }
            x[map[i]] = s / l[i][i];
        }
        return x;
    }
    x
}

/// Whether `a` restricted to `free` is positive definite (a Cholesky factorisation succeeds
/// with pivots clear of rounding).
pub(crate) fn is_pd<const K: usize>(a: &[[f64; K]; K], free: &[bool; K]) -> bool {
    let mut map = [0usize; K];
    let mut n = 0;
    for (i, &f) in free.iter().enumerate() {
        if f {
            map[n] = i;
            n += 1;
        }
    }
    let mut l = [[0.0f64; K]; K];
    for i in 0..n {
        for j in 0..=i {
            let mut s = a[map[i]][map[j]];
            for t in 0..j {
                s -= l[i][t] * l[j][t];
            }
            if i == j {
                if !(s > 1e-12 * a[map[i]][map[i]].abs()) {
                    return false;
                }
                l[i][i] = s.sqrt();
            } else {
                l[i][j] = s / l[j][j];
            }
        }
    }
    true
}

/// Largest number of halvings of one step before the guard gives up on it.
pub const MAX_HALVINGS: u32 = 40;

/// Up to `steps` guarded projected Newton steps on one pixel from `h` (≥ ε), whose data part
/// is `st`; both are updated in place. Stops early once a step's predicted decrease falls
/// under the rounding of the pixel's objective.
#[inline(always)]
pub fn newton_pixel<const K: usize>(
    idx: &[u32],
    val: &[f64],
    d: &[f64],
    t: &PixelTerms<K>,
    h: &mut [f64; K],
    st: &mut PixelStats<K>,
    steps: u32,
) -> PixelOutcome {
    let mut out = PixelOutcome::default();
    for _ in 0..steps {
        // The surrogate's linear part at h₀ = h: the log term's tangent.
        let mut c = t.c;
        for i in 0..K {
            c[i] += t.mu[i] / (h[i] + t.epsilon_reg);
        }
        let mut g = [0.0; K];
        let mut free = [true; K];
        for i in 0..K {
            g[i] = c[i] + t.q * h[i] - st.g[i];
            free[i] = !(h[i] <= t.eps && g[i] >= 0.0);
        }
        // The surrogate's Hessian (positive semi-definite), and the objective's own, which
        // adds the log term's negative curvature: Newton on the objective where that is
        // positive definite on the free variables converges where the tangent alone crawls
        // (maps that go to zero under a strong log term).
        let mut a = st.hs;
        for (i, row) in a.iter_mut().enumerate() {
            row[i] += t.q;
        }
        let mut exact = a;
        for (i, row) in exact.iter_mut().enumerate() {
            let e = h[i] + t.epsilon_reg;
            row[i] -= t.mu[i] / (e * e);
        }
        if is_pd(&exact, &free) {
            a = exact;
        }
        let neg: [f64; K] = core::array::from_fn(|i| -g[i]);
        let mut delta = solve_free(&a, &neg, &free);
        // A variable at its bound that the step would push further down is held too (else
        // the step's length would be 0); the reduced direction stays a descent direction.
        for _ in 0..K {
            let mut changed = false;
            for i in 0..K {
                if free[i] && h[i] <= t.eps && delta[i] < 0.0 {
                    free[i] = false;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
            delta = solve_free(&a, &neg, &free);
        }
        let slope: f64 = (0..K).map(|i| g[i] * delta[i]).sum();
        let sq: f64 = (0..K).map(|i| h[i] * h[i]).sum();
        let scale = 1.0 + st.logv.abs() + (0..K).map(|i| (c[i] * h[i]).abs()).sum::<f64>();
        if !(slope < -1e-15 * scale) {
            break;
        }
        // Ratio test: the longest step along δ that keeps every h ≥ ε.
        let mut tmax = 1.0f64;
        let mut block = K;
        for i in 0..K {
            if delta[i] < 0.0 {
                let r = (h[i] - t.eps) / -delta[i];
                if r < tmax {
                    tmax = r;
                    block = i;
                }
            }
        }
        let mut step = tmax;
        let mut accepted = false;
        for _ in 0..=MAX_HALVINGS {
            let mut h1 = [0.0; K];
            for i in 0..K {
                h1[i] = (h[i] + step * delta[i]).max(t.eps);
            }
            if step == tmax && block < K {
                h1[block] = t.eps;
            }
            let st1 = pass::<K>(idx, val, d, &h1);
            out.passes += 1;
            // ψ's slope along δ at the step's end, and its computed change.
            let mut dphi = 0.0;
            let mut dpsi = -(st1.logv - st.logv);
            let mut sq1 = 0.0;
            for i in 0..K {
                dphi += delta[i] * (c[i] + t.q * h1[i] - st1.g[i]);
                dpsi += c[i] * (h1[i] - h[i]);
                sq1 += h1[i] * h1[i];
            }
            dpsi += 0.5 * t.q * (sq1 - sq);
            // The objective's own change: the log term exactly instead of its tangent.
            let mut df = dpsi;
            for i in 0..K {
                if t.mu[i] != 0.0 {
                    df += t.mu[i] * ((h1[i] + t.epsilon_reg).ln() - (h[i] + t.epsilon_reg).ln())
                        - t.mu[i] / (h[i] + t.epsilon_reg) * (h1[i] - h[i]);
                }
            }
            if dphi <= 0.0 || df <= 1e-4 * step * slope {
                *h = h1;
                *st = st1;
                accepted = true;
                break;
            }
            out.halvings += 1;
            step *= 0.5;
        }
        if !accepted {
            out.refused = true;
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_logarithm_per_pixel_agrees_with_one_per_lane() {
        // Products of many terms (exponents far from 0), fallback terms included.
        let mut s = LogSum::new();
        let mut direct = 0.0;
        for i in 0..301u32 {
            let x = [
                1e-7 * (1.0 + i as f64),
                3.7e5 / (1.0 + i as f64),
                0.9,
                1e-5 + i as f64,
            ];
            let y = [(i % 4) as f64, 1.0, 7.0, if i % 5 == 0 { 2.5 } else { 3.0 }];
            s.add(y, x);
            direct += (0..LANES).map(|j| y[j] * x[j].ln()).sum::<f64>();
        }
        let (one, per_lane) = (one_ln(&s), s.total());
        assert!(s.rest != 0.0 && s.expo.iter().all(|&e| e != 0));
        assert!(
            (one - per_lane).abs() <= 1e-14 * per_lane.abs(),
            "{one} vs {per_lane}"
        );
        assert!(
            (one - direct).abs() <= 1e-12 * direct.abs(),
            "{one} vs {direct}"
        );
    }
}
