//! Maps coupled by the Laplacian (λ > 0 on a scan grid): projected Newton steps on all of H at
//! once, each direction from preconditioned conjugate gradients.
//!
//! Where λ·(number of neighbours) outweighs a pixel's own curvature (the paper's λ = 1 in
//! normalised units, at any dose), pixel-by-pixel sweeps (Gauss–Seidel, red-black) shrink the
//! smooth part of the error by a tiny factor per sweep and need thousands of sweeps, like the
//! multiplicative updates. The Newton system couples the pixels exactly: its matrix is the
//! per-pixel data curvature (K×K blocks, from the same pass that gives the gradient) plus λ·Δ,
//! applied in O(P·K²) without touching the counts, and solved inexactly by conjugate
//! gradients preconditioned by the per-pixel blocks. One pass over the non-zeros per trial
//! step then gives the objective, the next gradient and the next blocks.
//!
//! Bounds: variables at ε with a positive gradient are held; the step is projected onto H ≥ ε
//! (Bertsekas' projection arc) and halved until Armijo's test on the objective itself passes,
//! so the objective never rises. Every sum is formed per fixed pixel group and added in group
//! order: bit-identical for any thread count.

// K×K blocks are indexed by component on purpose; `!(x > 0)` also catches NaN on purpose.
#![allow(clippy::needless_range_loop, clippy::neg_cmp_op_on_partial_ord)]

use super::maps::lap_vec;
use super::newton::{is_pd, pass, sum_ln_of, PixelStats};
use super::objective::MapsProblem;
use rayon::prelude::*;

/// Pixels per group of the reductions.
const GROUP: usize = 1024;

/// Everything a Newton step needs that stays fixed in a run.
pub(crate) struct Ctx<'a, const K: usize> {
    pub pb: &'a MapsProblem<'a>,
    pub dc: &'a [f64],
    pub s: [f64; K],
    pub mu: [f64; K],
    pub pool: &'a rayon::ThreadPool,
}

/// How a Newton step went.
pub(crate) struct StepOutcome {
    /// Non-zeros visited.
    pub visited: f64,
    /// Halvings of the step.
    pub halvings: u64,
    /// The step was refused (no decrease found): the run has stalled at rounding level.
    pub refused: bool,
    /// Conjugate-gradient iterations.
    pub cg: usize,
}

fn groups(p: usize) -> usize {
    p.div_ceil(GROUP)
}

/// Σ over groups (in group order) of `f(range)`.
fn sum_groups(
    pool: &rayon::ThreadPool,
    p: usize,
    f: impl Fn(std::ops::Range<usize>) -> f64 + Sync,
) -> f64 {
    let parts: Vec<f64> = pool.install(|| {
        (0..groups(p))
            .into_par_iter()
            .map(|g| f(g * GROUP..((g + 1) * GROUP).min(p)))
            .collect()
    });
    in_group_order(&parts)
}

/// Per-group partial sums added in group order: the order every reduction here keeps, so that
/// results do not depend on the thread count.
fn in_group_order(parts: &[f64]) -> f64 {
    parts.iter().fold(0.0, |a, v| a + v)
}

/// Σ a·b over one group's entries, in entry order.
#[inline(always)]
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut s = 0.0;
    for (x, y) in a.iter().zip(b) {
        s += x * y;
    }
    s
}

/// Cholesky factor (lower) of `a` on `free` (entries off `free` left 0), with a ridge that
/// grows until the factorisation succeeds.
fn chol<const K: usize>(a: &[[f64; K]; K], free: &[bool; K]) -> [[f64; K]; K] {
    let maxd = (0..K)
        .filter(|&i| free[i])
        .map(|i| a[i][i])
        .fold(0.0f64, f64::max);
    let mut ridge = (1e-13 * maxd).max(1e-300);
    'retry: for _ in 0..40 {
        let mut l = [[0.0f64; K]; K];
        for i in (0..K).filter(|&i| free[i]) {
            for j in (0..=i).filter(|&j| free[j]) {
                let mut s = a[i][j] + if i == j { ridge } else { 0.0 };
                for t in (0..j).filter(|&t| free[t]) {
                    s -= l[i][t] * l[j][t];
                }
                if i == j {
                    if !(s > 0.0) {
                        ridge *= 100.0;
                        continue 'retry;
                    }
                    l[i][i] = s.sqrt();
                } else {
                    l[i][j] = s / l[j][j];
                }
            }
        }
        return l;
    }
    [[0.0; K]; K]
}

/// Solves L Lᵀ z = r on `free` (0 elsewhere).
#[inline(always)]
fn chol_solve<const K: usize>(l: &[[f64; K]; K], free: &[bool; K], r: &[f64]) -> [f64; K] {
    let mut y = [0.0; K];
    for i in (0..K).filter(|&i| free[i]) {
        let mut s = r[i];
        for t in (0..i).filter(|&t| free[t]) {
            s -= l[i][t] * y[t];
        }
        y[i] = if l[i][i] > 0.0 { s / l[i][i] } else { 0.0 };
    }
    let mut z = [0.0; K];
    for i in (0..K).rev().filter(|&i| free[i]) {
        let mut s = y[i];
        for t in (i + 1..K).filter(|&t| free[t]) {
            s -= l[t][i] * z[t];
        }
        z[i] = if l[i][i] > 0.0 { s / l[i][i] } else { 0.0 };
    }
    z
}

/// One projected Newton step on H (pixel-major `hp`, with `stats` at `hp`); `eta` is the
/// relative residual at which conjugate gradients stop.
pub(crate) fn newton_step<const K: usize>(
    ctx: &Ctx<'_, K>,
    hp: &mut Vec<f64>,
    stats: &mut Vec<PixelStats<K>>,
    eta: f64,
) -> StepOutcome {
    let pb = ctx.pb;
    let p = pb.y.pixels;
    let lam = pb.lambda;
    let eps = pb.eps;
    let er = pb.epsilon_reg;
    let pool = ctx.pool;
    let deg_of = |px: usize| match pb.laplacian {
        edxs_core::solver::Laplacian::Grid { rows, cols } => {
            let (r, c) = (px / cols, px % cols);
            ((c > 0) as u8 + (c + 1 < cols) as u8 + (r > 0) as u8 + (r + 1 < rows) as u8) as f64
        }
        edxs_core::solver::Laplacian::Identity => 1.0,
    };
    // Gradient, free set, curvature blocks and their preconditioner factors.
    let mut grad = vec![0.0; p * K];
    let mut free = vec![[true; K]; p];
    let mut blk = vec![[[0.0; K]; K]; p];
    let mut fac = vec![[[0.0; K]; K]; p];
    {
        let hp_ref = &*hp;
        let st_ref = &*stats;
        pool.install(|| {
            grad.par_chunks_mut(GROUP * K)
                .zip(free.par_chunks_mut(GROUP))
                .zip(blk.par_chunks_mut(GROUP))
                .zip(fac.par_chunks_mut(GROUP))
                .enumerate()
                .for_each(|(gi, (((gc, fc), bc), lc))| {
                    for j in 0..fc.len() {
                        let px = gi * GROUP + j;
                        let h = &hp_ref[px * K..(px + 1) * K];
                        let st = &st_ref[px];
                        let lv = lap_vec::<K>(pb.laplacian, hp_ref, px);
                        let mut b = st.hs;
                        let mut exact = b;
                        for c in 0..K {
                            let e = h[c] + er;
                            let g = ctx.s[c] - st.g[c] + ctx.mu[c] / e + lam * lv[c];
                            gc[j * K + c] = g;
                            fc[j][c] = !(h[c] <= eps && g > 0.0);
                            exact[c][c] -= ctx.mu[c] / (e * e);
                        }
                        // The log term's negative curvature only where the pixel's block stays
                        // positive definite, so the whole matrix does.
                        if is_pd(&exact, &[true; K]) {
                            b = exact;
                        }
                        bc[j] = b;
                        let mut m = b;
                        let q = lam * deg_of(px);
                        for (c, row) in m.iter_mut().enumerate() {
                            row[c] += q;
                        }
                        lc[j] = chol(&m, &fc[j]);
                    }
                })
        });
    }
    // Preconditioned conjugate gradients on the free variables: (B + λΔ) δ = −g. Each
    // iteration is two parallel passes over the pixel groups (the product with its dot, then
    // the updates with the preconditioner and its dot) instead of six, four of them on one
    // thread; the dots are summed per group in group order as before, so the bits are the same.
    // (A·x) at one pixel, every component.
    let matvec_px = |x: &[f64], px: usize, out: &mut [f64]| {
        let lv = lap_vec::<K>(pb.laplacian, x, px);
        for c in 0..K {
            let mut v = 0.0;
            if free[px][c] {
                for t in 0..K {
                    v += blk[px][c][t] * x[px * K + t];
                }
                v += lam * lv[c];
            }
            out[c] = v;
        }
    };
    // y = A·x and Σ x·y, summed per group in group order.
    let matvec_dot = |x: &[f64], y: &mut [f64]| -> f64 {
        let parts: Vec<f64> = pool.install(|| {
            y.par_chunks_mut(GROUP * K)
                .enumerate()
                .map(|(gi, yc)| {
                    let base = gi * GROUP;
                    for j in 0..yc.len() / K {
                        matvec_px(x, base + j, &mut yc[j * K..(j + 1) * K]);
                    }
                    dot(&x[base * K..base * K + yc.len()], yc)
                })
                .collect()
        });
        in_group_order(&parts)
    };
    // z = M⁻¹·r on one group of pixels starting at `base`.
    let precond_group = |base: usize, r: &[f64], z: &mut [f64]| {
        for j in 0..z.len() / K {
            let px = base + j;
            let v = chol_solve::<K>(&fac[px], &free[px], &r[j * K..(j + 1) * K]);
            z[j * K..(j + 1) * K].copy_from_slice(&v);
        }
    };
    let mut r: Vec<f64> = (0..p * K)
        .map(|i| if free[i / K][i % K] { -grad[i] } else { 0.0 })
        .collect();
    let mut x = vec![0.0; p * K];
    let mut z = vec![0.0; p * K];
    let mut ap = vec![0.0; p * K];
    // z = M⁻¹·r with Σ r·z, per group in group order.
    let precond_dot = |r: &[f64], z: &mut [f64]| -> f64 {
        let parts: Vec<f64> = pool.install(|| {
            z.par_chunks_mut(GROUP * K)
                .zip(r.par_chunks(GROUP * K))
                .enumerate()
                .map(|(gi, (zc, rc))| {
                    precond_group(gi * GROUP, rc, zc);
                    dot(rc, zc)
                })
                .collect()
        });
        in_group_order(&parts)
    };
    let mut rz = precond_dot(&r, &mut z);
    let mut d = z.clone();
    let r0 = rz.abs().sqrt();
    let mut cg = 0;
    while cg < 250 && rz.abs().sqrt() > eta * r0 && r0 > 0.0 {
        let dad = matvec_dot(&d, &mut ap);
        if !(dad > 0.0) {
            if cg == 0 {
                x.copy_from_slice(&d);
            }
            break;
        }
        let alpha = rz / dad;
        // x += α·d, r −= α·ap, z = M⁻¹·r and Σ r·z in one pass.
        let parts: Vec<f64> = pool.install(|| {
            x.par_chunks_mut(GROUP * K)
                .zip(r.par_chunks_mut(GROUP * K))
                .zip(z.par_chunks_mut(GROUP * K))
                .zip(d.par_chunks(GROUP * K).zip(ap.par_chunks(GROUP * K)))
                .enumerate()
                .map(|(gi, (((xc, rc), zc), (dc, apc)))| {
                    for i in 0..xc.len() {
                        xc[i] += alpha * dc[i];
                        rc[i] -= alpha * apc[i];
                    }
                    precond_group(gi * GROUP, rc, zc);
                    dot(rc, zc)
                })
                .collect()
        });
        let rz_new = in_group_order(&parts);
        let beta = rz_new / rz;
        rz = rz_new;
        pool.install(|| {
            d.par_iter_mut()
                .zip(z.par_iter())
                .for_each(|(di, zi)| *di = zi + beta * *di)
        });
        cg += 1;
    }
    // Projection-arc line search with Armijo's test on the objective itself.
    let lap_energy = |h: &[f64]| {
        sum_groups(pool, p, |rg| {
            let mut e = 0.0;
            for px in rg {
                let lv = lap_vec::<K>(pb.laplacian, h, px);
                for c in 0..K {
                    e += h[px * K + c] * lv[c];
                }
            }
            e
        })
    };
    let e0 = lap_energy(hp);
    let mut out = StepOutcome {
        visited: 0.0,
        halvings: 0,
        refused: false,
        cg,
    };
    let mut t = 1.0f64;
    let mut h1 = vec![0.0; p * K];
    let mut st1 = vec![PixelStats::<K>::default(); p];
    for _ in 0..50 {
        let hp_ref = &*hp;
        let st0 = &*stats;
        let x_ref = &x;
        let parts: Vec<(f64, f64, f64)> = pool.install(|| {
            st1.par_chunks_mut(GROUP)
                .zip(h1.par_chunks_mut(GROUP * K))
                .enumerate()
                .map(|(gi, (sc, hc))| {
                    let base = gi * GROUP;
                    for (i, v) in hc.iter_mut().enumerate() {
                        let e = base * K + i;
                        *v = (hp_ref[e] + t * x_ref[e]).max(eps);
                    }
                    let (mut df, mut lin, mut vis) = (0.0, 0.0, 0.0);
                    for (j, st) in sc.iter_mut().enumerate() {
                        let px = base + j;
                        let (a, b) = (pb.y.indptr[px], pb.y.indptr[px + 1]);
                        let hv: &[f64; K] = hc[j * K..][..K].try_into().unwrap();
                        *st = pass::<K>(&pb.y.indices[a..b], &pb.y.values[a..b], ctx.dc, hv);
                        vis += (b - a) as f64;
                        let h0 = &hp_ref[px * K..(px + 1) * K];
                        df -= st.logv - st0[px].logv;
                        for c in 0..K {
                            df += ctx.s[c] * (hv[c] - h0[c]);
                            lin += grad[px * K + c] * (hv[c] - h0[c]);
                        }
                    }
                    // The log term's change over the group as a difference of two sums of
                    // logarithms formed as products (`LogSum`): one multiplication per
                    // entry instead of two `ln`, which cost as much as the pass itself.
                    let range = base..base + sc.len();
                    for c in 0..K {
                        if ctx.mu[c] != 0.0 {
                            let new = sum_ln_of::<K>(hc, c, 0..sc.len(), er);
                            let old = sum_ln_of::<K>(hp_ref, c, range.clone(), er);
                            df += ctx.mu[c] * (new - old);
                        }
                    }
                    (df, lin, vis)
                })
                .collect()
        });
        let (mut df, mut lin) = (0.0, 0.0);
        for (a, b, v) in parts {
            df += a;
            lin += b;
            out.visited += v;
        }
        df += 0.5 * lam * (lap_energy(&h1) - e0);
        if lin < 0.0 && df <= 1e-4 * lin {
            std::mem::swap(hp, &mut h1);
            std::mem::swap(stats, &mut st1);
            return out;
        }
        out.halvings += 1;
        t *= 0.5;
    }
    out.refused = true;
    out
}
