//! The maps' start for a run with the spectra held: per-pixel weighted least squares.

use super::start::floor;
use crate::io::counts::SpectrumImage;

/// Maps (K×P) that fit each pixel of `img` with the spectra `d` (D = G·W, L×K) by least squares
/// weighted with the inverse mean spectrum (Poisson variance), clipped at ε: a start from
/// which the multiplicative updates converge in far fewer iterations than from block maps.
pub(super) fn weighted_ls_maps(d: &[f64], img: &SpectrumImage, k: usize) -> Vec<f64> {
    let (l, p) = (img.channels, img.pixels);
    let mean = img.sum_spectrum();
    let wgt: Vec<f64> = mean
        .iter()
        .map(|m| 1.0 / (m / p as f64).max(1e-3))
        .collect();
    // A = Dᵀ diag(w) D, inverted once by Gauss–Jordan with a relative ridge. Not nalgebra's
    // `try_inverse`: it computes K ≤ 4 by cofactors and larger K by LU, other roundings of
    // the same inverse, and every two-stage result starts from these maps, so the swap would
    // change the default method's output in its last bits (issue 11 kept results identical).
    let mut a = vec![0.0; k * k];
    for i in 0..k {
        for j in 0..k {
            a[i * k + j] = (0..l).map(|c| d[c * k + i] * d[c * k + j] * wgt[c]).sum();
        }
    }
    let ridge = 1e-9 * (0..k).map(|i| a[i * k + i]).fold(0.0, f64::max);
    let mut inv = vec![0.0; k * k];
    for i in 0..k {
        a[i * k + i] += ridge;
        inv[i * k + i] = 1.0;
    }
    for col in 0..k {
        let piv = (col..k)
            .max_by(|&x, &y| a[x * k + col].abs().total_cmp(&a[y * k + col].abs()))
            .unwrap_or(col);
        for j in 0..k {
            a.swap(col * k + j, piv * k + j);
            inv.swap(col * k + j, piv * k + j);
        }
        let pv = a[col * k + col];
        if pv.abs() < 1e-300 {
            return vec![1.0; k * p];
        }
        for j in 0..k {
            a[col * k + j] /= pv;
            inv[col * k + j] /= pv;
        }
        for r in (0..k).filter(|&r| r != col) {
            let f = a[r * k + col];
            for j in 0..k {
                a[r * k + j] -= f * a[col * k + j];
                inv[r * k + j] -= f * inv[col * k + j];
            }
        }
    }
    let mut h = vec![0.0; k * p];
    let mut b = vec![0.0; k];
    for px in 0..p {
        b.iter_mut().for_each(|v| *v = 0.0);
        for i in img.indptr[px]..img.indptr[px + 1] {
            let c = img.indices[i] as usize;
            let yw = img.values[i] * wgt[c];
            for (kk, bv) in b.iter_mut().enumerate() {
                *bv += d[c * k + kk] * yw;
            }
        }
        for kk in 0..k {
            let v: f64 = (0..k).map(|j| inv[kk * k + j] * b[j]).sum();
            h[kk * p + px] = if v.is_finite() { v } else { 0.0 };
        }
    }
    floor(h)
}
