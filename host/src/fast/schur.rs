//! A Newton step on W and H together for independent pixels (λ = 0), with the maps eliminated
//! by their Schur complement.
//!
//! Alternating exact solves of the maps and the spectra converge only linearly along the
//! directions that couple them (a phase's scale, the rotation between phases:
//! `docs/speed/joint_newton.md`). The joint Newton system couples them exactly, and with
//! λ = 0 its maps block is block-diagonal (one K×K block per pixel), so eliminating it costs
//! one pass over the non-zeros: per pixel the cross block C_p = ∂²Φ/∂W∂h_p (M·K × K) is
//! h_pk·U_p(m, j) + δ_kj·(Σ_l g_lm − v_p(m)) with U_p = Σ_l (y/x²)·g_l·d_lᵀ and
//! v_p = Σ_l (y/x)·g_l over the pixel's non-zeros. The reduced system in W (a few dozen
//! unknowns) is S = H_WW − Σ_p C_p H_pp⁻¹ C_pᵀ with gradient r = g_W − Σ_p C_p H_pp⁻¹ g_p;
//! its quadratic model is minimised over the simplex and bounds by the active-set method of
//! [`super::spectra`], the maps follow as dH_p = −H_pp⁻¹ (g_p + C_pᵀ dW), and the joint step
//! is backtracked (Armijo) on the objective itself, so the objective never rises. A map entry
//! at its bound with a gradient pushing it down stays there. H_pp leaves out the log term's
//! (negative) curvature, which made S indefinite on small maps. The sums run over a fixed
//! pixel partition reduced in order: the same result for any thread count.
//!
//! Φ here is the unnormalised objective Σ x − y ln x + Σ μ ln(h + ε_reg) (x = D̃·h̃), which the
//! normalised one divides by L·P and shifts by a constant.

// K×K blocks and free-entry lists are indexed on purpose; `!(x > 0)` also catches NaN.
#![allow(clippy::needless_range_loop, clippy::neg_cmp_op_on_partial_ord)]

use super::spectra::{
    ln_1p, mirror_upper, onto_simplex, qp_step, w_gradient_hessian, SpectraProblem,
};
use anyhow::{anyhow, Result};
use rayon::prelude::*;

/// The log term of the maps: μ per component and ε_reg (raw units).
#[derive(Debug, Clone, Copy)]
pub struct LogTerm<'a> {
    /// μ: empty (0), one value, or one per component.
    pub mu: &'a [f64],
    /// ε_reg.
    pub epsilon_reg: f64,
}

impl LogTerm<'_> {
    fn mu_of(&self, c: usize) -> f64 {
        match self.mu.len() {
            0 => 0.0,
            1 => self.mu[0],
            _ => self.mu[c],
        }
    }
}

/// What one [`coupled_step`] did.
#[derive(Debug, Clone, Copy, Default)]
pub struct CoupledReport {
    /// Whether a step was taken.
    pub taken: bool,
    /// Step length accepted (1: the full Newton step).
    pub t: f64,
    /// Passes over the non-zeros (the curvature pass and one per trial).
    pub passes: usize,
    /// Decrease of Φ (≥ 0).
    pub decrease: f64,
}

/// One pixel's part of the back-substitution: Cholesky factor of its free maps block, which
/// components are free, its maps gradient, and U_p, v_p of its cross block.
struct PixelBlock {
    chol: Vec<f64>,
    free: Vec<bool>,
    grad: Vec<f64>,
    u: Vec<f64>,
    v: Vec<f64>,
}

/// One pixel group's sums.
struct GroupSums {
    /// Σ y·h/x per channel (L×K): W's gradient.
    a: Vec<f64>,
    /// Σ y·h·hᵀ/x² per channel (L×K×K): W's Hessian blocks.
    b: Vec<f64>,
    /// Σ_p C_p H_pp⁻¹ C_pᵀ over the movable entries (n×n).
    schur: Vec<f64>,
    /// Σ_p C_p H_pp⁻¹ g_p (n).
    red: Vec<f64>,
    blocks: Vec<Option<PixelBlock>>,
}

/// In-place Cholesky of the `free` part of the K×K matrix `a` (lower factor in `a`); false
/// when it is not clearly positive definite.
fn cholesky(a: &mut [f64], k: usize, free: &[bool]) -> bool {
    for i in (0..k).filter(|&i| free[i]) {
        for j in (0..=i).filter(|&j| free[j]) {
            let mut s = a[i * k + j];
            for q in (0..j).filter(|&q| free[q]) {
                s -= a[i * k + q] * a[j * k + q];
            }
            if i == j {
                if !(s > 1e-12 * a[i * k + i].abs().max(1e-300)) {
                    return false;
                }
                a[i * k + i] = s.sqrt();
            } else {
                a[i * k + j] = s / a[j * k + j];
            }
        }
    }
    true
}

/// Solves L·z = b in place on the free entries (forward substitution).
fn forward(l: &[f64], k: usize, free: &[bool], b: &mut [f64]) {
    for i in (0..k).filter(|&i| free[i]) {
        let mut s = b[i];
        for q in (0..i).filter(|&q| free[q]) {
            s -= l[i * k + q] * b[q];
        }
        b[i] = s / l[i * k + i];
    }
}

/// Solves Lᵀ·z = b in place on the free entries (back substitution).
fn backward(l: &[f64], k: usize, free: &[bool], b: &mut [f64]) {
    for i in (0..k).rev().filter(|&i| free[i]) {
        let mut s = b[i];
        for q in (i + 1..k).filter(|&q| free[q]) {
            s -= l[q * k + i] * b[q];
        }
        b[i] = s / l[i * k + i];
    }
}

/// Φ(W, H): Σ_k s_k·Σ_p h̃_kp − Σ y ln x + Σ μ ln(h + ε_reg) (the tests' reference).
#[cfg(test)]
fn phi(
    pb: &SpectraProblem<'_>,
    d: &[f64],
    h: &[f64],
    reg: &LogTerm<'_>,
    pool: &rayon::ThreadPool,
) -> f64 {
    let (k, p, eps) = (pb.k, pb.y.pixels, pb.eps);
    let sp = SpectraProblem { h, ..*pb };
    let logs: f64 = pool
        .install(|| {
            sp.groups()
                .into_par_iter()
                .map(|r| {
                    let mut s = 0.0;
                    sp.each_count(d, r, |_, y, _, x| s += y * x.ln());
                    s
                })
                .collect::<Vec<f64>>()
        })
        .iter()
        .sum();
    let mut lin = 0.0;
    let mut log_reg = 0.0;
    for c in 0..k {
        let sc: f64 = d.chunks_exact(k).map(|row| row[c].max(eps)).sum();
        let row = &h[c * p..(c + 1) * p];
        lin += sc * row.iter().map(|v| v.max(eps)).sum::<f64>();
        let mu = reg.mu_of(c);
        if mu != 0.0 {
            log_reg += mu * row.iter().map(|v| (v + reg.epsilon_reg).ln()).sum::<f64>();
        }
    }
    lin - logs + log_reg
}

/// Φ(W₁, H₁) − Φ(W₀, H₀) from D₀ = G·W₀ and D₁ = G·W₁: the data's log term as
/// Σ y ln(1 + (x₁ − x₀)/x₀) with a short series near one (`spectra::ln_1p`), so that the
/// line search takes no logarithm per non-zero near convergence.
fn phi_change(
    pb: &SpectraProblem<'_>,
    (d0, h0): (&[f64], &[f64]),
    (d1, h1): (&[f64], &[f64]),
    reg: &LogTerm<'_>,
    pool: &rayon::ThreadPool,
) -> f64 {
    let (k, p, eps) = (pb.k, pb.y.pixels, pb.eps);
    let groups = SpectraProblem { h: h0, ..*pb }.groups();
    let logs: f64 = pool
        .install(|| {
            groups
                .into_par_iter()
                .map(|r| {
                    let mut acc = 0.0;
                    let (mut a0, mut a1) = (vec![0.0; k], vec![0.0; k]);
                    for px in r {
                        for c in 0..k {
                            a0[c] = h0[c * p + px].max(eps);
                            a1[c] = h1[c * p + px].max(eps);
                        }
                        for i in pb.y.indptr[px]..pb.y.indptr[px + 1] {
                            let y = pb.y.values[i];
                            if y == 0.0 {
                                continue;
                            }
                            let li = pb.y.indices[i] as usize;
                            let (r0, r1) = (&d0[li * k..][..k], &d1[li * k..][..k]);
                            let (mut x0, mut x1) = (0.0, 0.0);
                            for c in 0..k {
                                x0 += r0[c].max(eps) * a0[c];
                                x1 += r1[c].max(eps) * a1[c];
                            }
                            acc += y * ln_1p((x1 - x0) / x0);
                        }
                    }
                    acc
                })
                .collect::<Vec<f64>>()
        })
        .iter()
        .sum();
    let mut change = -logs;
    for c in 0..k {
        let s0: f64 = d0.chunks_exact(k).map(|row| row[c].max(eps)).sum();
        let s1: f64 = d1.chunks_exact(k).map(|row| row[c].max(eps)).sum();
        let (row0, row1) = (&h0[c * p..(c + 1) * p], &h1[c * p..(c + 1) * p]);
        change += s1 * row1.iter().map(|v| v.max(eps)).sum::<f64>()
            - s0 * row0.iter().map(|v| v.max(eps)).sum::<f64>();
        let mu = reg.mu_of(c);
        if mu != 0.0 {
            let e = reg.epsilon_reg;
            change += mu
                * row0
                    .iter()
                    .zip(row1)
                    .map(|(a, b)| ln_1p((b - a) / (a + e)))
                    .sum::<f64>();
        }
    }
    change
}

/// One joint Newton step on (W, H) (W M×K row-major, H K×P component-major, both in place).
/// `pb.h` is ignored (H is `h`); `damping` (relative to the diagonal of W's own Hessian) is
/// adapted: smaller after a full step, larger after a short or refused one.
pub fn coupled_step(
    pb: &SpectraProblem<'_>,
    reg: &LogTerm<'_>,
    w: &mut [f64],
    h: &mut [f64],
    damping: &mut f64,
    pool: &rayon::ThreadPool,
) -> Result<CoupledReport> {
    let sp = SpectraProblem { h, ..*pb };
    sp.validate(w)?;
    let (l, m, k, p, eps) = (pb.y.channels, pb.m, pb.k, pb.y.pixels, pb.eps);
    let (simplex, movable) = pb.entries();
    let n = movable.len();
    let mut rep = CoupledReport::default();
    if n == 0 {
        return Ok(rep);
    }
    let gsum = pb.g_sums();
    let d = sp.d_of(w);
    let dsum: Vec<f64> = (0..k)
        .map(|c| d.chunks_exact(k).map(|row| row[c].max(eps)).sum())
        .collect();
    let groups = sp.groups();
    // One pass: W's gradient and Hessian sums, each pixel's block and its Schur part.
    let parts: Vec<GroupSums> = pool.install(|| {
        groups
            .par_iter()
            .map(|r| {
                let mut gs = GroupSums {
                    a: vec![0.0; l * k],
                    b: vec![0.0; l * k * k],
                    schur: vec![0.0; n * n],
                    red: vec![0.0; n],
                    blocks: Vec::with_capacity(r.len()),
                };
                let mut hv = vec![0.0; k];
                let mut z = vec![0.0; n * k];
                for px in r.clone() {
                    for c in 0..k {
                        hv[c] = h[c * p + px].max(eps);
                    }
                    let mut hpp = vec![0.0; k * k];
                    let mut ghd = vec![0.0; k];
                    let mut u = vec![0.0; m * k];
                    let mut v = vec![0.0; m];
                    for i in pb.y.indptr[px]..pb.y.indptr[px + 1] {
                        let y = pb.y.values[i];
                        if y == 0.0 {
                            continue;
                        }
                        let li = pb.y.indices[i] as usize;
                        let dl = &d[li * k..][..k];
                        let x: f64 = (0..k).map(|c| dl[c].max(eps) * hv[c]).sum();
                        let b1 = y / x;
                        let a2 = b1 / x;
                        let ga = &mut gs.a[li * k..][..k];
                        let gb = &mut gs.b[li * k * k..][..k * k];
                        for c in 0..k {
                            ga[c] += b1 * hv[c];
                            ghd[c] += b1 * dl[c].max(eps);
                            let t = a2 * hv[c];
                            let td = a2 * dl[c].max(eps);
                            for c2 in c..k {
                                gb[c * k + c2] += t * hv[c2];
                                hpp[c * k + c2] += td * dl[c2].max(eps);
                            }
                        }
                        let grow = &pb.g[li * m..][..m];
                        for (j, &gl) in grow.iter().enumerate() {
                            if gl == 0.0 {
                                continue;
                            }
                            v[j] += b1 * gl;
                            let t = a2 * gl;
                            for c in 0..k {
                                u[j * k + c] += t * dl[c].max(eps);
                            }
                        }
                    }
                    mirror_upper(&mut hpp, k);
                    // The maps' gradient with the log term, and their curvature without it:
                    // the log term's negative curvature, near-cancelling the data's on small
                    // maps, made H_pp⁻¹ large and the reduced matrix indefinite, and the
                    // active-set step then released and re-blocked one entry of W forever
                    // (a W residual stuck at 1e-4 on the unit test's scan).
                    let mut grad = vec![0.0; k];
                    let mut free = vec![true; k];
                    for c in 0..k {
                        let e = h[c * p + px] + reg.epsilon_reg;
                        grad[c] = dsum[c] - ghd[c] + reg.mu_of(c) / e;
                        free[c] = !(h[c * p + px] <= 2.0 * eps && grad[c] >= 0.0);
                    }
                    let mut chol = hpp;
                    if !cholesky(&mut chol, k, &free) {
                        // No usable curvature: this pixel's maps stay, uncoupled.
                        gs.blocks.push(None);
                        continue;
                    }
                    // Z = C_F·L⁻ᵀ row by row (n × K, zero off the free components), then
                    // Σ C H⁻¹ Cᵀ = Z·Zᵀ and Σ C H⁻¹ g = Z·(L⁻¹ g).
                    let mut lg = grad.clone();
                    for c in 0..k {
                        if !free[c] {
                            lg[c] = 0.0;
                        }
                    }
                    forward(&chol, k, &free, &mut lg);
                    for (a, &i) in movable.iter().enumerate() {
                        let (j, kk) = (i / k, i % k);
                        let row = &mut z[a * k..(a + 1) * k];
                        for c in 0..k {
                            row[c] = if free[c] {
                                hv[kk] * u[j * k + c] + if c == kk { gsum[j] - v[j] } else { 0.0 }
                            } else {
                                0.0
                            };
                        }
                        forward(&chol, k, &free, row);
                        gs.red[a] += (0..k).map(|c| row[c] * lg[c]).sum::<f64>();
                    }
                    for a in 0..n {
                        let za = &z[a * k..(a + 1) * k];
                        for b in a..n {
                            let zb = &z[b * k..(b + 1) * k];
                            gs.schur[a * n + b] += (0..k).map(|c| za[c] * zb[c]).sum::<f64>();
                        }
                    }
                    gs.blocks.push(Some(PixelBlock {
                        chol,
                        free,
                        grad,
                        u,
                        v,
                    }));
                }
                gs
            })
            .collect()
    });
    rep.passes += 1;
    let mut a_sum = vec![0.0; l * k];
    let mut b_sum = vec![0.0; l * k * k];
    let mut schur = vec![0.0; n * n];
    let mut red = vec![0.0; n];
    let mut blocks: Vec<Option<PixelBlock>> = Vec::with_capacity(p);
    for gs in parts {
        a_sum.iter_mut().zip(&gs.a).for_each(|(o, v)| *o += v);
        b_sum.iter_mut().zip(&gs.b).for_each(|(o, v)| *o += v);
        schur.iter_mut().zip(&gs.schur).for_each(|(o, v)| *o += v);
        red.iter_mut().zip(&gs.red).for_each(|(o, v)| *o += v);
        blocks.extend(gs.blocks);
    }
    // W's own gradient and Hessian (as `newton_w` forms them), then the reduced system.
    let hs: Vec<f64> = (0..k)
        .map(|c| h[c * p..(c + 1) * p].iter().map(|v| v.max(eps)).sum())
        .collect();
    // W's curvature blocks B_l in full, as `w_gradient_hessian` reads them.
    mirror_upper(&mut b_sum, k);
    let (grad_w, hww) = w_gradient_hessian(pb, &movable, (&gsum, &hs), (&a_sum, &b_sum));
    let mut s = vec![0.0; n * n];
    for a in 0..n {
        for b in a..n {
            let v = hww[a * n + b] - schur[a * n + b];
            s[a * n + b] = v;
            s[b * n + a] = v;
        }
    }
    let r: Vec<f64> = (0..n).map(|a| grad_w[a] - red[a]).collect();
    for a in 0..n {
        s[a * n + a] += *damping * hww[a * n + a].max(1e-300);
    }
    let Some(dw) = qp_step(&s, &r, &movable, &simplex, k, |i| w[i]) else {
        *damping = (*damping * 10.0).min(1e6);
        return Ok(rep);
    };
    // The maps' response to dW.
    let mut dh = vec![0.0; k * p];
    let mut dwm = vec![0.0; m * k];
    for (a, &i) in movable.iter().enumerate() {
        dwm[i] = dw[a];
    }
    let mut slope: f64 = grad_w.iter().zip(&dw).map(|(g, d)| g * d).sum();
    let mut rhs = vec![0.0; k];
    for (px, blk) in blocks.iter().enumerate() {
        let Some(blk) = blk else { continue };
        // C_pᵀ dW: Σ_m U[m, c]·(Σ_kk h_kk dW[m, kk]) + Σ_m (gsum_m − v_m)·dW[m, c].
        for c in 0..k {
            rhs[c] = 0.0;
        }
        for j in 0..m {
            let hd: f64 = (0..k)
                .map(|kk| h[kk * p + px].max(eps) * dwm[j * k + kk])
                .sum();
            for c in 0..k {
                rhs[c] += blk.u[j * k + c] * hd + (gsum[j] - blk.v[j]) * dwm[j * k + c];
            }
        }
        for c in 0..k {
            rhs[c] = if blk.free[c] {
                -(blk.grad[c] + rhs[c])
            } else {
                0.0
            };
        }
        forward(&blk.chol, k, &blk.free, &mut rhs);
        backward(&blk.chol, k, &blk.free, &mut rhs);
        for c in 0..k {
            dh[c * p + px] = rhs[c];
            slope += blk.grad[c] * rhs[c];
        }
    }
    if !(slope < 0.0) {
        *damping = (*damping * 10.0).min(1e6);
        return Ok(rep);
    }
    let mut t = 1.0;
    let mut wt = w.to_vec();
    let mut ht = h.to_vec();
    for _ in 0..30 {
        for &i in &movable {
            wt[i] = (w[i] + t * dwm[i]).max(0.0);
        }
        for (o, (hv, dv)) in ht.iter_mut().zip(h.iter().zip(&dh)) {
            *o = (hv + t * dv).max(eps);
        }
        let dt = sp.d_of(&wt);
        let change = phi_change(pb, (&d, h), (&dt, &ht), reg, pool);
        rep.passes += 1;
        if change.is_finite() && change <= 1e-4 * t * slope {
            w.copy_from_slice(&wt);
            h.copy_from_slice(&ht);
            rep.taken = true;
            rep.t = t;
            rep.decrease = -change;
            break;
        }
        t *= 0.5;
    }
    *damping = if rep.taken && t == 1.0 {
        (*damping * 0.25).max(1e-6)
    } else {
        (*damping * 10.0).min(1e6)
    };
    // Each phase's free element fractions sum to one minus its held ones again.
    onto_simplex(pb, w);
    if w.iter().chain(h.iter()).any(|v| !v.is_finite()) {
        return Err(anyhow!("the coupled step reached a non-finite value"));
    }
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fast::kkt_w::w_kkt_residual;
    use crate::fast::{gw, kkt_residual, solve_maps, MapsOptions, MapsProblem};
    use crate::io::counts::SpectrumImage;
    use edxs_core::solver::Laplacian;
    use edxs_suite::synthetic;

    /// Coupled steps from a perturbed truth on a synthetic 12×13 scan (K = 3, the binned
    /// fits' light log term), each after one maps sweep: returns Φ after each step, the
    /// final KKT residuals (W, H) and the final W, H.
    fn steps(threads: usize, n: usize) -> (Vec<f64>, (f64, f64), Vec<f64>, Vec<f64>) {
        let s = synthetic(12, 13, 400.0, 3);
        let (k, p) = (3, s.rows * s.cols);
        let img = SpectrumImage::from_dense("t", &s.dense, p, s.l, None).unwrap();
        let y = img.as_ref();
        let mus = [0.02];
        let reg = LogTerm {
            mu: &mus,
            epsilon_reg: 0.5,
        };
        // W off the truth by a few per cent, each phase renormalised on its elements.
        let mut w: Vec<f64> = s
            .w_true
            .iter()
            .enumerate()
            .map(|(i, v)| v * (1.0 + 0.05 * ((i % 5) as f64 - 2.0)))
            .collect();
        for c in 0..k {
            let sum: f64 = s.simplex_rows.iter().map(|&r| w[r * k + c]).sum();
            for &r in &s.simplex_rows {
                w[r * k + c] /= sum;
            }
        }
        let mut h = vec![50.0; k * p];
        let pool = crate::fast::pool(threads).unwrap();
        let sp = SpectraProblem {
            y,
            g: &s.g,
            m: s.m,
            k,
            h: &[],
            simplex_rows: &s.simplex_rows,
            fixed: None,
            eps: 1e-14,
        };
        let maps = |d: &[f64], h: &mut [f64]| {
            let pb = MapsProblem {
                y,
                d,
                k,
                mu: &mus,
                epsilon_reg: 0.5,
                lambda: 0.0,
                laplacian: Laplacian::Identity,
                eps: 1e-14,
            };
            let opt = MapsOptions {
                max_sweeps: 1,
                kkt_tol: 1e-12,
                tol: 0.0,
                inner: 0,
                threads,
            };
            solve_maps(&pb, h, &opt).unwrap();
            kkt_residual(&pb, h)
        };
        let mut damping = 1e-6;
        let mut phis = Vec::new();
        for _ in 0..n {
            let d = gw(&s.g, &w, s.l, s.m, k);
            maps(&d, &mut h);
            let d = gw(&s.g, &w, s.l, s.m, k);
            phis.push(phi(&sp, &d, &h, &reg, &pool));
            let rep = coupled_step(&sp, &reg, &mut w, &mut h, &mut damping, &pool).unwrap();
            let d = gw(&s.g, &w, s.l, s.m, k);
            let after = phi(&sp, &d, &h, &reg, &pool);
            assert!(rep.decrease >= 0.0);
            if rep.taken {
                assert!((phis.last().unwrap() - after - rep.decrease).abs() <= 1e-9 * after.abs());
            }
            phis.push(after);
        }
        let d = gw(&s.g, &w, s.l, s.m, k);
        let kh = maps(&d, &mut h.clone());
        let kw = w_kkt_residual(&SpectraProblem { h: &h, ..sp }, &w, &pool).unwrap();
        (phis, (kw, kh), w, h)
    }

    #[test]
    fn coupled_steps_never_raise_the_objective_and_converge_fast() {
        let (phis, (kw, kh), w, _) = steps(1, 12);
        for pair in phis.windows(2) {
            assert!(pair[1] <= pair[0] * (1.0 + 1e-13), "{pair:?}");
        }
        // Twelve steps settle both blocks: the coupled directions go at Newton's pace.
        assert!(kw < 1e-8 && kh < 1e-8, "KKT W {kw:e}, H {kh:e}");
        assert!(w.iter().all(|v| v.is_finite() && *v >= 0.0));
        // Each phase's element fractions still sum to one.
        let s = synthetic(12, 13, 400.0, 3);
        for c in 0..3 {
            let sum: f64 = s.simplex_rows.iter().map(|&r| w[r * 3 + c]).sum();
            assert!((sum - 1.0).abs() < 1e-12, "phase {c}: {sum}");
        }
    }

    #[test]
    fn coupled_steps_do_not_depend_on_the_thread_count() {
        let (_, _, w1, h1) = steps(1, 4);
        let (_, _, w2, h2) = steps(2, 4);
        assert_eq!((w1, h1), (w2, h2));
    }
}
