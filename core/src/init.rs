//! Starting points for W and H: sklearn-style random spectra and maps, and espm's physics
//! initialisation of W from spectra D (W = max(lstsq(G, D), 0), element rows on the simplex).

use crate::error::SolverError;
use crate::float::Float;
use crate::rng::Rng;
use crate::view::{MatMut, MatRef};

/// sklearn's `init="random"`: with a = √(mean(Y)/K), H = a·|N(0,1)| (drawn first, K×P) and the
/// spectra D = a·|N(0,1)| (L×K), both row-major.
pub fn random_start<T: Float>(mean_count: f64, rng: &mut Rng, d: &mut [T], h: &mut [T], k: usize) {
    let a = libm::sqrt(mean_count.max(0.0) / k.max(1) as f64);
    for v in h.iter_mut() {
        *v = T::from_f64(a * libm::fabs(rng.normal()));
    }
    for v in d.iter_mut() {
        *v = T::from_f64(a * libm::fabs(rng.normal()));
    }
}

/// Scratch length of [`physics_w`] for L channels, M columns and K components.
pub fn physics_w_scratch_len(l: usize, m: usize, k: usize) -> usize {
    l * (m + k) + l
}

/// espm's `NMF_initialize_W` followed by its simplex normalisation: W = max(lstsq(G, D), 0)
/// (Householder QR), element rows `simplex_rows` scaled to sum to 1 per component, then W ≥ ε.
///
/// `g` is L×M, `d` L×K and `w` M×K, each a view carrying its dimensions. Columns of G that are
/// numerically dependent get W = 0 (espm's minimum-norm solution would spread them instead).
///
/// ```
/// use edxs_core::init::{physics_w, physics_w_scratch_len};
/// use edxs_core::view::{MatMut, MatRef};
///
/// # fn main() -> Result<(), edxs_core::SolverError> {
/// let (l, m, k) = (3, 2, 1);
/// let g = [1.0f64, 0.0, 0.0, 1.0, 1.0, 1.0];
/// let d = [2.0f64, 1.0, 3.0]; // = G·(2, 1)ᵀ
/// let mut w = [0.0f64; 2];
/// let mut scratch = vec![0.0; physics_w_scratch_len(l, m, k)];
/// physics_w(
///     MatRef::new("g", &g, l, m)?,
///     MatRef::new("d", &d, l, k)?,
///     &[0, 1],
///     1e-14,
///     MatMut::new("w", &mut w, m, k)?,
///     &mut scratch,
/// )?;
/// assert!((w[0] - 2.0 / 3.0).abs() < 1e-12 && (w[1] - 1.0 / 3.0).abs() < 1e-12);
/// # Ok(())
/// # }
/// ```
pub fn physics_w<T: Float>(
    g: MatRef<'_, T>,
    d: MatRef<'_, T>,
    simplex_rows: &[usize],
    log_shift: T,
    w: MatMut<'_, T>,
    scratch: &mut [T],
) -> Result<(), SolverError> {
    let (l, m, k) = (g.rows(), g.cols(), d.cols());
    for (buffer, expected, got) in [
        ("d (rows)", l, d.rows()),
        ("w (rows)", m, w.rows()),
        ("w (columns)", k, w.cols()),
    ] {
        if got != expected {
            return Err(SolverError::DimensionMismatch {
                buffer,
                expected,
                got,
            });
        }
    }
    let (g, d, w) = (g.as_slice(), d.as_slice(), w.into_slice());
    let check = |buffer: &'static str, got: usize, expected: usize| {
        if got < expected {
            Err(SolverError::DimensionMismatch {
                buffer,
                expected,
                got,
            })
        } else {
            Ok(())
        }
    };
    if k == 0 {
        return Err(SolverError::ZeroComponents);
    }
    check("scratch", scratch.len(), physics_w_scratch_len(l, m, k))?;
    if let Some(&row) = simplex_rows.iter().find(|&&r| r >= m) {
        return Err(SolverError::SimplexRowOutOfRange { row });
    }
    let (a, rest) = scratch.split_at_mut(l * m);
    let (b, rest) = rest.split_at_mut(l * k);
    let v = &mut rest[..l];
    a.copy_from_slice(&g[..l * m]);
    b.copy_from_slice(&d[..l * k]);
    let two = T::from_f64(2.0);
    let mut diag_max = T::ZERO;
    for j in 0..m.min(l) {
        let norm = (j..l)
            .fold(T::ZERO, |s, i| s + a[i * m + j] * a[i * m + j])
            .sqrt();
        if !(norm > T::ZERO) {
            continue;
        }
        let alpha = if a[j * m + j] > T::ZERO { -norm } else { norm };
        for i in j..l {
            v[i] = a[i * m + j];
        }
        v[j] -= alpha;
        let vn = (j..l).fold(T::ZERO, |s, i| s + v[i] * v[i]);
        if vn > T::ZERO {
            for c in j..m {
                let s = (j..l).fold(T::ZERO, |s, i| s + v[i] * a[i * m + c]);
                let f = two * s / vn;
                for i in j..l {
                    a[i * m + c] -= f * v[i];
                }
            }
            for c in 0..k {
                let s = (j..l).fold(T::ZERO, |s, i| s + v[i] * b[i * k + c]);
                let f = two * s / vn;
                for i in j..l {
                    b[i * k + c] -= f * v[i];
                }
            }
        }
        diag_max = diag_max.max(a[j * m + j].abs());
    }
    // Back substitution R·X = (QᵀD)[..M], dropping numerically dependent columns.
    let tiny = diag_max * T::from_f64(1e-12);
    for j in (0..m).rev() {
        let r = if j < l { a[j * m + j] } else { T::ZERO };
        for c in 0..k {
            let mut s = if j < l { b[j * k + c] } else { T::ZERO };
            for q in j + 1..m {
                if j < l {
                    s -= a[j * m + q] * w[q * k + c];
                }
            }
            w[j * k + c] = if r.abs() > tiny { s / r } else { T::ZERO };
        }
    }
    for v in w[..m * k].iter_mut() {
        if !(*v > T::ZERO) {
            *v = T::ZERO;
        }
    }
    if !simplex_rows.is_empty() {
        let n = T::from_usize(simplex_rows.len());
        for c in 0..k {
            let s = simplex_rows.iter().fold(T::ZERO, |s, &r| s + w[r * k + c]);
            for &r in simplex_rows {
                w[r * k + c] = if s > T::ZERO && s.is_finite() {
                    w[r * k + c] / s
                } else {
                    T::ONE / n
                };
            }
        }
    }
    for v in w[..m * k].iter_mut() {
        *v = v.max(log_shift);
    }
    Ok(())
}
