//! A first-order optimality (KKT) measure for the spectra W with the maps held, the W-block
//! companion of [`super::kkt`]: with both, a joint fit's distance from a stationary point is
//! measured the same way whichever solver produced it.
//!
//! Each element column of W lies on a simplex (its free entries sum to one minus its held
//! ones) and every entry is ≥ 0; the continuum rows are only bounded. At a stationary point the
//! gradient on a column's free simplex entries equals one multiplier ν_c where the entry is
//! positive and exceeds it where the entry is zero; ν_c is estimated by the w-weighted mean of
//! those gradients (exact at a stationary point, since the entries sum to one). In the
//! variables x = w/τ_j (τ_j: the mean of row j's free entries, 1/#elements on the simplex
//! rows) the residual is ‖min(x, τ·(∇f − ν))‖₂ over the free entries, divided by
//! ‖τ_j·(Σ_l g_lj)(Σ_p h_cp)‖₂, the size of the gradient's first term: free of the units of
//! H and of the counts, as the maps' residual is.

// (row, column) entries are indexed on purpose.
#![allow(clippy::needless_range_loop)]

use super::spectra::SpectraProblem;
use anyhow::Result;
use rayon::prelude::*;

/// The KKT residual of W (M×K, row-major) for the spectra problem `pb` (one pass over the
/// non-zeros; the sums run over fixed pixel groups, so the value is the same for any thread
/// count).
pub fn w_kkt_residual(pb: &SpectraProblem<'_>, w: &[f64], pool: &rayon::ThreadPool) -> Result<f64> {
    pb.validate(w)?;
    let (l, m, k) = (pb.y.channels, pb.m, pb.k);
    let d = pb.d_of(w);
    // a_lc = Σ_p y·h̃_cp / x_lp, per fixed group, then in group order.
    let parts: Vec<Vec<f64>> = pool.install(|| {
        pb.groups()
            .into_par_iter()
            .map(|r| {
                let mut a = vec![0.0; l * k];
                pb.each_count(&d, r, |li, y, hv, x| {
                    let r1 = y / x;
                    for (av, h) in a[li * k..][..k].iter_mut().zip(hv) {
                        *av += r1 * h;
                    }
                });
                a
            })
            .collect()
    });
    let mut a = vec![0.0; l * k];
    for part in parts {
        a.iter_mut().zip(&part).for_each(|(o, v)| *o += v);
    }
    let hs = pb.h_sums();
    // ∇_w f (jc) = Σ_l g_lj (hs_c − a_lc); gsum_j = Σ_l g_lj.
    let mut grad = vec![0.0; m * k];
    let mut gsum = vec![0.0; m];
    for li in 0..l {
        let grow = &pb.g[li * m..][..m];
        for j in 0..m {
            let gv = grow[j];
            if gv == 0.0 {
                continue;
            }
            gsum[j] += gv;
            for c in 0..k {
                grad[j * k + c] += gv * (hs[c] - a[li * k + c]);
            }
        }
    }
    let free = |i: usize| !pb.fixed.is_some_and(|f| f[i] >= 0.0);
    let mut simplex = vec![false; m];
    for &r in pb.simplex_rows {
        simplex[r] = true;
    }
    let n_simplex = pb.simplex_rows.len().max(1) as f64;
    let tau: Vec<f64> = (0..m)
        .map(|j| {
            if simplex[j] {
                1.0 / n_simplex
            } else {
                let vals: Vec<f64> = (0..k)
                    .filter(|&c| free(j * k + c))
                    .map(|c| w[j * k + c])
                    .collect();
                (vals.iter().sum::<f64>() / vals.len().max(1) as f64).max(1e-300)
            }
        })
        .collect();
    let nu: Vec<f64> = (0..k)
        .map(|c| {
            let (mut num, mut den) = (0.0, 0.0);
            for &j in pb.simplex_rows {
                if free(j * k + c) {
                    num += w[j * k + c] * grad[j * k + c];
                    den += w[j * k + c];
                }
            }
            if den > 0.0 {
                num / den
            } else {
                0.0
            }
        })
        .collect();
    let (mut sq, mut scale) = (0.0, 0.0);
    for j in 0..m {
        for c in 0..k {
            if !free(j * k + c) {
                continue;
            }
            let g = grad[j * k + c] - if simplex[j] { nu[c] } else { 0.0 };
            let r = (w[j * k + c] / tau[j]).min(tau[j] * g);
            sq += r * r;
            let s = tau[j] * gsum[j] * hs[c];
            scale += s * s;
        }
    }
    Ok((sq / scale.max(1e-300)).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::counts::SpectrumImage;

    /// Two phases over 24 channels, three element columns (simplex) and one continuum column.
    fn problem_data() -> (SpectrumImage, Vec<f64>, Vec<f64>) {
        let (l, m, k, p) = (24, 4, 2, 20);
        let g: Vec<f64> = (0..l * m)
            .map(|i| {
                let (li, j) = (i / m, i % m);
                if j == 3 {
                    0.3 + 0.02 * li as f64
                } else {
                    (-(li as f64 - 4.0 - 7.0 * j as f64).powi(2) / 5.0).exp()
                }
            })
            .collect();
        let w = [0.6, 0.1, 0.3, 0.2, 0.1, 0.7, 0.5, 0.3];
        let h: Vec<f64> = (0..k * p).map(|i| 20.0 + (i * 37 % 50) as f64).collect();
        let mut y = vec![0.0; p * l];
        for px in 0..p {
            for li in 0..l {
                let x: f64 = (0..k)
                    .map(|c| {
                        (0..m).map(|j| g[li * m + j] * w[j * k + c]).sum::<f64>() * h[c * p + px]
                    })
                    .sum();
                y[px * l + li] = (x + ((li * 5 + px * 3) % 7) as f64 - 3.0).round().max(0.0);
            }
        }
        (
            SpectrumImage::from_dense("t", &y, p, l, None).unwrap(),
            g,
            h,
        )
    }

    #[test]
    fn newton_on_w_drives_the_residual_down_and_thread_count_does_not_change_it() {
        let (img, g, h) = problem_data();
        let pb = SpectraProblem {
            y: img.as_ref(),
            g: &g,
            m: 4,
            k: 2,
            h: &h,
            simplex_rows: &[0, 1, 2],
            fixed: None,
            eps: 1e-14,
        };
        let one = super::super::pool(1).unwrap();
        let two = super::super::pool(2).unwrap();
        let mut w = vec![0.3, 0.4, 0.3, 0.3, 0.4, 0.3, 1.0, 1.0];
        let r0 = w_kkt_residual(&pb, &w, &one).unwrap();
        assert_eq!(r0, w_kkt_residual(&pb, &w, &two).unwrap());
        super::super::spectra::newton_w(&pb, &mut w, 60, 0.0, &one).unwrap();
        let r1 = w_kkt_residual(&pb, &w, &one).unwrap();
        assert!(r0 > 1e-3, "the start is far from stationary: {r0}");
        assert!(
            r1 < 1e-6 * r0.max(1.0),
            "after Newton to convergence: {r1} (start {r0})"
        );
    }
}
