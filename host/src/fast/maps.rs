//! The maps with the spectra held.
//!
//! Independent pixels (λ = 0, or no scan grid): one sweep of per-pixel guarded projected
//! Newton steps ([`super::newton`]) takes every pixel to convergence, each pixel's result
//! depending on nothing but its own data. Pixels coupled by the Laplacian: global projected
//! Newton steps with conjugate gradients ([`super::coupled`]); red-black Gauss–Seidel sweeps
//! were tried first and stalled at a KKT residual of 4e-2 after 200 sweeps on the paper's
//! data with λ = 1 (normalised), where λ·4 outweighs a pixel's own curvature.
//!
//! The reductions (loss, KKT residual) are summed per fixed pixel group and then in group
//! order: results are bit-identical for any thread count. Work per sweep: one pass over each
//! pixel's non-zeros per Newton step (the pass at a step's end gives the next step's gradient
//! and Hessian), plus O(P·K²); the zero channels enter through the column sums of D only.

// K×K blocks are indexed by component on purpose; `!(x > 0)` also catches NaN on purpose.
#![allow(clippy::needless_range_loop, clippy::neg_cmp_op_on_partial_ord)]

use super::kkt::{kkt_parts, KktParts};
use super::newton::{newton_pixel, pass, PixelStats, PixelTerms};
use super::objective::{kl_constant, MapsProblem};
use anyhow::{anyhow, Result};
use edxs_core::solver::{Laplacian, LossTerms, StopReason};
use rayon::prelude::*;
use std::time::Instant;

/// Pixels per group of the reductions (a function of P only, as the groups' order is).
const GROUP: usize = 1024;

/// Settings of [`solve_maps`].
#[derive(Debug, Clone, Copy)]
pub struct MapsOptions {
    /// Sweep cap.
    pub max_sweeps: usize,
    /// Stop once the KKT residual ([`super::kkt`]) is at most this.
    pub kkt_tol: f64,
    /// Also stop when the loss changes by at most `tol`·|loss| in a sweep while the KKT
    /// residual, already within 100× `kkt_tol`, no longer falls (progress below rounding).
    pub tol: f64,
    /// Newton steps per pixel in a sweep over independent pixels (0 = 60).
    pub inner: u32,
    /// Worker threads (0 = one per core).
    pub threads: usize,
}

impl Default for MapsOptions {
    fn default() -> Self {
        MapsOptions {
            max_sweeps: 200,
            kkt_tol: 1e-6,
            tol: 1e-12,
            inner: 0,
            threads: 0,
        }
    }
}

/// The state after one sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SweepRecord {
    /// Loss terms (each divided by L·P, as the core reports them).
    pub loss: LossTerms,
    /// KKT residual.
    pub kkt: f64,
    /// Passes over the non-zeros so far (non-zeros visited / non-zeros).
    pub passes: f64,
    /// espm's rel_H: max |ΔH| / (H + tol·mean H) over this sweep.
    pub rel_h: f64,
    /// Seconds since the start of [`solve_maps`].
    pub seconds: f64,
}

/// The outcome of [`solve_maps`].
#[derive(Debug, Clone)]
pub struct MapsReport {
    /// Sweeps run.
    pub sweeps: usize,
    /// Why it stopped: `LossConverged` for the KKT or loss test, `MaxIter` at the cap.
    pub reason: StopReason,
    /// Loss at the start.
    pub initial_loss: LossTerms,
    /// Loss at the end.
    pub loss: LossTerms,
    /// KKT residual at the start.
    pub initial_kkt: f64,
    /// KKT residual at the end.
    pub kkt: f64,
    /// Passes over the non-zeros in all (the first one evaluates the start).
    pub passes: f64,
    /// Steps halved by the guard.
    pub halvings: u64,
    /// Steps the guard refused (the pixel kept its abundances for that sweep).
    pub refused: u64,
    /// Conjugate-gradient iterations of the coupled Newton steps (each O(P·K²), no pass over
    /// the counts).
    pub cg_iterations: usize,
    /// espm's `const_KL_` (unaveraged).
    pub kl_constant: f64,
    /// One record per sweep.
    pub history: Vec<SweepRecord>,
}

/// Fits H (K×P, component-major, updated in place) with the spectra of `pb` held.
pub fn solve_maps(pb: &MapsProblem<'_>, h: &mut [f64], opt: &MapsOptions) -> Result<MapsReport> {
    pb.validate(h)?;
    macro_rules! go {
        ($($n:literal)*) => {
            match pb.k {
                $($n => run::<$n>(pb, h, opt),)*
                k => Err(anyhow!("the fast maps solver handles up to 8 components, not {k}")),
            }
        };
    }
    go!(1 2 3 4 5 6 7 8)
}

/// Per group: Σ_p h_kp (K), Σ y ln(d·h), Σ_k μ_k Σ ln(h+ε_reg), Σ_k Σ h·(HΔ).
fn loss_sums<const K: usize>(
    pb: &MapsProblem<'_>,
    hp: &[f64],
    stats: &[PixelStats<K>],
    range: std::ops::Range<usize>,
) -> ([f64; K], f64, f64, f64) {
    let mut rows = [0.0; K];
    let (mut logt, mut reg, mut lap) = (0.0, 0.0, 0.0);
    let mu: [f64; K] = core::array::from_fn(|c| pb.mu_of(c));
    for px in range.clone() {
        let hv: &[f64; K] = hp[px * K..][..K].try_into().unwrap();
        logt += stats[px].logv;
        let lv = lap_vec::<K>(pb.laplacian, hp, px);
        for c in 0..K {
            rows[c] += hv[c];
            if pb.lambda != 0.0 {
                lap += hv[c] * lv[c];
            }
        }
    }
    // As products (one multiplication per entry, not one `ln`).
    for c in 0..K {
        if mu[c] != 0.0 {
            reg += mu[c] * super::newton::sum_ln_of::<K>(hp, c, range.clone(), pb.epsilon_reg);
        }
    }
    (rows, logt, reg, lap)
}

/// (HΔ) at pixel `px` for every component, from pixel-major H.
#[inline(always)]
pub(crate) fn lap_vec<const K: usize>(lap: Laplacian, hp: &[f64], px: usize) -> [f64; K] {
    let (nb, deg) = neighbours::<K>(lap, hp, px);
    match lap {
        Laplacian::Identity => core::array::from_fn(|c| hp[px * K + c]),
        Laplacian::Grid { .. } => core::array::from_fn(|c| deg * hp[px * K + c] - nb[c]),
    }
}

/// Sum of the four neighbours' abundances and their number (0 and 0 for the identity).
#[inline(always)]
fn neighbours<const K: usize>(lap: Laplacian, hp: &[f64], px: usize) -> ([f64; K], f64) {
    let mut nb = [0.0; K];
    let mut deg = 0.0;
    if let Laplacian::Grid { rows, cols } = lap {
        let (r, c) = (px / cols, px % cols);
        // The core's order: left, right, up, down.
        let mut add = |q: usize| {
            deg += 1.0;
            for k in 0..K {
                nb[k] += hp[q * K + k];
            }
        };
        if c > 0 {
            add(px - 1);
        }
        if c + 1 < cols {
            add(px + 1);
        }
        if r > 0 {
            add(px - cols);
        }
        if r + 1 < rows {
            add(px + cols);
        }
    }
    (nb, deg)
}

fn run<const K: usize>(
    pb: &MapsProblem<'_>,
    h: &mut [f64],
    opt: &MapsOptions,
) -> Result<MapsReport> {
    let t0 = Instant::now();
    let (l, p) = (pb.y.channels, pb.y.pixels);
    let eps = pb.eps;
    let (dc, s) = pb.clipped_d();
    let s: [f64; K] = s.try_into().map_err(|_| anyhow!("D's width"))?;
    let mu: [f64; K] = core::array::from_fn(|c| pb.mu_of(c));
    let nnz = pb.y.values.len().max(1) as f64;
    let kl_c = kl_constant(&pb.y);
    let n = (l * p) as f64;
    let pool = super::pool(opt.threads)?;
    let coupled = pb.lambda != 0.0 && matches!(pb.laplacian, Laplacian::Grid { .. });
    // Independent pixels are each taken to convergence in one sweep.
    let inner = if opt.inner == 0 { 60 } else { opt.inner };
    let nz = |px: usize| {
        let (a, b) = (pb.y.indptr[px], pb.y.indptr[px + 1]);
        (&pb.y.indices[a..b], &pb.y.values[a..b])
    };

    let mut hp = vec![0.0; p * K];
    for c in 0..K {
        for px in 0..p {
            hp[px * K + c] = h[c * p + px].max(eps);
        }
    }
    let mut stats = vec![PixelStats::<K>::default(); p];
    pool.install(|| {
        stats
            .par_chunks_mut(GROUP)
            .enumerate()
            .for_each(|(gi, chunk)| {
                for (j, st) in chunk.iter_mut().enumerate() {
                    let px = gi * GROUP + j;
                    let (idx, val) = nz(px);
                    let hv: &[f64; K] = hp[px * K..][..K].try_into().unwrap();
                    *st = pass::<K>(idx, val, &dc, hv);
                }
            })
    });
    let mut passes = 1.0;

    // The loss and KKT residual at the current (hp, stats), summed group by group in order.
    let evaluate = |hp: &[f64], stats: &[PixelStats<K>]| -> (LossTerms, f64) {
        let parts: Vec<_> = pool.install(|| {
            (0..p.div_ceil(GROUP))
                .into_par_iter()
                .map(|gi| loss_sums::<K>(pb, hp, stats, gi * GROUP..((gi + 1) * GROUP).min(p)))
                .collect()
        });
        let mut rows = [0.0; K];
        let (mut logt, mut reg, mut lap) = (0.0, 0.0, 0.0);
        for (r, lg, rg, lp) in parts {
            for c in 0..K {
                rows[c] += r[c];
            }
            logt += lg;
            reg += rg;
            lap += lp;
        }
        let lin: f64 = (0..K).map(|c| s[c] * rows[c]).sum();
        let loss = LossTerms {
            kl: (lin - logt + kl_c) / n,
            log_reg: reg / n,
            laplacian: 0.5 * pb.lambda * lap / n,
        };
        let sigma: [f64; K] = core::array::from_fn(|c| (rows[c] / p as f64).max(1e-300));
        let kparts: Vec<KktParts> = pool.install(|| {
            (0..p.div_ceil(GROUP))
                .into_par_iter()
                .map(|gi| {
                    let range = gi * GROUP..((gi + 1) * GROUP).min(p);
                    kkt_parts::<K>(pb, &s, &sigma, hp, range, |px| stats[px].g)
                })
                .collect()
        });
        let mut num = 0.0;
        for kp in kparts {
            num += kp.sq;
        }
        let den: f64 = p as f64 * (0..K).map(|c| (sigma[c] * s[c]).powi(2)).sum::<f64>();
        (loss, (num / den.max(1e-300)).sqrt())
    };

    let (initial_loss, initial_kkt) = evaluate(&hp, &stats);
    let (mut loss, mut kkt) = (initial_loss, initial_kkt);
    let mut history = Vec::new();
    let (mut halvings, mut refused) = (0u64, 0u64);
    let mut reason = StopReason::MaxIter;
    let ctx = super::coupled::Ctx::<K> {
        pb,
        dc: &dc,
        s,
        mu,
        pool: &pool,
    };
    let mut cg_iterations = 0usize;
    let mut hn = hp.clone();
    let mut sweeps = 0;
    let mut prev = hp.clone();
    while sweeps < opt.max_sweeps && kkt > opt.kkt_tol {
        prev.copy_from_slice(&hp);
        let mut visited = 0.0f64;
        let mut stalled = false;
        if coupled {
            // Inexact Newton: the linear solve tightens as the residual falls.
            let eta = kkt.sqrt().clamp(1e-4, 0.1);
            let o = super::coupled::newton_step(&ctx, &mut hp, &mut stats, eta);
            visited += o.visited;
            halvings += o.halvings;
            refused += o.refused as u64;
            cg_iterations += o.cg;
            stalled = o.refused;
        }
        if !coupled {
            let hp_ref = &hp;
            let parts: Vec<(f64, u64, u64)> = pool.install(|| {
                hn.par_chunks_mut(GROUP * K)
                    .zip(stats.par_chunks_mut(GROUP))
                    .enumerate()
                    .map(|(gi, (hc, sc))| {
                        let mut acc = (0.0f64, 0u64, 0u64);
                        for (j, st) in sc.iter_mut().enumerate() {
                            let px = gi * GROUP + j;
                            let mut hv: [f64; K] = hp_ref[px * K..][..K].try_into().unwrap();
                            {
                                let (nb, deg) = neighbours::<K>(pb.laplacian, hp_ref, px);
                                let (q, c) = match pb.laplacian {
                                    Laplacian::Identity => (pb.lambda, s),
                                    Laplacian::Grid { .. } => (
                                        pb.lambda * deg,
                                        core::array::from_fn(|k| s[k] - pb.lambda * nb[k]),
                                    ),
                                };
                                let terms = PixelTerms {
                                    c,
                                    q,
                                    mu,
                                    epsilon_reg: pb.epsilon_reg,
                                    eps,
                                };
                                let (idx, val) = nz(px);
                                let o =
                                    newton_pixel::<K>(idx, val, &dc, &terms, &mut hv, st, inner);
                                acc.0 += o.passes as f64 * idx.len() as f64;
                                acc.1 += o.halvings as u64;
                                acc.2 += o.refused as u64;
                            }
                            hc[j * K..(j + 1) * K].copy_from_slice(&hv);
                        }
                        acc
                    })
                    .collect()
            });
            for (v, hv, rf) in parts {
                visited += v;
                halvings += hv;
                refused += rf;
            }
            std::mem::swap(&mut hp, &mut hn);
        }
        sweeps += 1;
        passes += visited / nnz;
        let before = loss.total();
        let kkt_before = kkt;
        (loss, kkt) = evaluate(&hp, &stats);
        let mean = hp.iter().sum::<f64>() / hp.len().max(1) as f64;
        let rel_h = hp
            .iter()
            .zip(&prev)
            .map(|(a, b)| (a - b).abs() / (a + 1e-4 * mean))
            .fold(0.0, f64::max);
        history.push(SweepRecord {
            loss,
            kkt,
            passes,
            rel_h,
            seconds: t0.elapsed().as_secs_f64(),
        });
        if kkt <= opt.kkt_tol || stalled {
            reason = StopReason::LossConverged;
            break;
        }
        let after = loss.total();
        // The loss test only near a solution: far from one a Newton step can change the loss
        // by less than 1e-8 relative (the KL constant dominates it) and stopping there left
        // a KKT residual of 4e-4 at 18 counts/pixel.
        let near = kkt <= 100.0 * opt.kkt_tol;
        if near && (before - after).abs() <= opt.tol * after.abs() && kkt > 0.5 * kkt_before {
            reason = StopReason::LossConverged;
            break;
        }
    }
    if sweeps == 0 {
        reason = StopReason::LossConverged;
    }
    for c in 0..K {
        for px in 0..p {
            h[c * p + px] = hp[px * K + c];
        }
    }
    Ok(MapsReport {
        sweeps,
        reason,
        initial_loss,
        loss,
        initial_kkt,
        kkt,
        passes,
        halvings,
        refused,
        cg_iterations,
        kl_constant: kl_c,
        history,
    })
}
