//! Truncated SVD of sparse counts by randomized subspace iteration (Halko, Martinsson & Tropp
//! 2011, algorithms 4.4 and 5.1), iterated until the singular triplets are exact to rounding.
//!
//! sklearn stops after a fixed 4 or 7 power iterations, so its result depends on NumPy's random
//! stream and is only as close to the SVD as those iterations get (on the solver fixture its
//! third component's entries are off by up to 3e-5 relative, 3e-7 of the column maximum). We
//! cannot replay that stream, so we aim at the one seed-independent target instead: we iterate
//! until every wanted triplet satisfies `‖A v − σ u‖ ≤ tol·σ₀` (`Aᵀu = σ v` holds by
//! construction). The matrix is only ever multiplied by thin dense blocks, so memory is
//! O(nnz + (L + P)·(k + oversampling)).

use crate::io::counts::SparseCountsRef;
use anyhow::{ensure, Context, Result};
use edxs_core::rng::Rng;
use nalgebra::{DMatrix, QR, SVD};

/// Tuning of the randomized subspace iteration; the defaults suit NNDSVD initialisation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SvdOptions {
    /// Extra columns in the search block: the error shrinks by (σ_{k+oversampling+1}/σ_k)² per
    /// iteration.
    pub oversampling: usize,
    /// Stop once every residual `‖A v_i − σ_i u_i‖` is at most `tol·σ₀`.
    pub tol: f64,
    /// Cap on the iterations, for spectra where σ_k is buried in noise and no gap exists.
    pub max_iter: usize,
}

impl Default for SvdOptions {
    fn default() -> Self {
        SvdOptions {
            oversampling: 10,
            tol: 1e-12,
            max_iter: 100,
        }
    }
}

/// Rank-k SVD `A ≈ U·diag(s)·Vᵀ` of the L×P count matrix, with sklearn's sign convention.
#[derive(Debug, Clone, PartialEq)]
pub struct TruncatedSvd {
    /// Number of triplets k.
    pub k: usize,
    /// Left singular vectors, L×k row-major; each column's largest-magnitude entry is positive
    /// (sklearn's `svd_flip`), so that ties in NNDSVD resolve as in sklearn.
    pub u: Vec<f64>,
    /// Singular values, descending.
    pub s: Vec<f64>,
    /// Right singular vectors, k×P row-major.
    pub vt: Vec<f64>,
    /// Subspace iterations performed (each costs two sparse products with L×b and P×b blocks).
    pub iterations: usize,
    /// Largest `‖A v_i − σ_i u_i‖ / σ₀` reached (0 for the zero matrix).
    pub residual: f64,
    /// Whether `residual ≤ tol`; false after the cap or when rounding stopped progress first.
    pub converged: bool,
}

/// The SVD as the NNDSVD code consumes it: columns in nalgebra form and values still scaled.
pub(crate) struct Factors {
    /// L×k.
    pub u: DMatrix<f64>,
    /// P×k.
    pub v: DMatrix<f64>,
    /// Singular values of `scale·A`.
    pub s_scaled: Vec<f64>,
    /// The exact power of two applied to A (see `SparseCountsRef::exact_scale`).
    pub scale: f64,
    pub iterations: usize,
    pub residual: f64,
    pub converged: bool,
}

/// Rank-k truncated SVD of the counts with the default options; `seed` drives the random start.
pub fn truncated_svd(y: &SparseCountsRef<'_>, k: usize, seed: u64) -> Result<TruncatedSvd> {
    truncated_svd_with(y, k, seed, &SvdOptions::default())
}

/// Rank-k truncated SVD of the counts with explicit tuning.
pub fn truncated_svd_with(
    y: &SparseCountsRef<'_>,
    k: usize,
    seed: u64,
    opts: &SvdOptions,
) -> Result<TruncatedSvd> {
    y.validate()?;
    y.check_rank(k)?;
    let f = factors(y, k, seed, opts)?;
    let (l, p) = (y.channels, y.pixels);
    let mut u = vec![0.0; l * k];
    for j in 0..k {
        for (i, &x) in f.u.column(j).iter().enumerate() {
            u[i * k + j] = x;
        }
    }
    let mut vt = Vec::with_capacity(k * p);
    for j in 0..k {
        vt.extend(f.v.column(j).iter());
    }
    Ok(TruncatedSvd {
        k,
        u,
        s: f.s_scaled.iter().map(|s| s / f.scale).collect(),
        vt,
        iterations: f.iterations,
        residual: f.residual,
        converged: f.converged,
    })
}

/// Iterations without a 1 % gain on the best residual after which rounding is taken to dominate.
const STALL_LIMIT: usize = 5;

/// The iteration itself; `y` must be validated and `k` checked.
pub(crate) fn factors(
    y: &SparseCountsRef<'_>,
    k: usize,
    seed: u64,
    opts: &SvdOptions,
) -> Result<Factors> {
    ensure!(
        opts.max_iter >= 1,
        "SVD options: max_iter must be at least 1"
    );
    ensure!(
        opts.tol.is_finite() && opts.tol >= 0.0,
        "SVD options: tol must be finite and non-negative (got {})",
        opts.tol
    );
    let (l, p) = (y.channels, y.pixels);
    let b = k.saturating_add(opts.oversampling).min(l.min(p));
    let scale = y.exact_scale();

    let mut rng = Rng::new(seed);
    let omega: Vec<f64> = (0..p * b).map(|_| rng.normal()).collect();
    let mut q = orthonormal_basis(l, b, &mul_a(y, scale, &omega, b));
    drop(omega);

    let mut best = f64::INFINITY;
    let mut stall = 0;
    let mut iterations = 0;
    loop {
        iterations += 1;
        // Rayleigh–Ritz on span(Q): Aᵀ Q = Ẑ R, so Qᵀ A = Rᵀ Ẑᵀ and the small SVD of Rᵀ gives
        // U = Q Ũ, V = Ẑ W̃ with Aᵀ U = V Σ exactly.
        let z = mul_at(y, scale, &row_major(&q), b);
        let qr = QR::new(DMatrix::from_row_slice(p, b, &z));
        drop(z);
        let zhat = qr.q();
        let rt = qr.r().transpose();
        let small = SVD::try_new(rt, true, true, f64::EPSILON * 5.0, 0)
            .context("internal: the small dense SVD did not converge")?;
        let sigma: Vec<f64> = small.singular_values.iter().copied().collect();
        let u = &q * small.u.as_ref().context("internal: SVD without U")?;
        let v = &zhat
            * small
                .v_t
                .as_ref()
                .context("internal: SVD without Vᵀ")?
                .transpose();
        drop(zhat);

        // A V is both the residual check and the next power step.
        let av = mul_a(y, scale, &row_major(&v), b);
        let mut res = 0.0f64;
        for (j, &sj) in sigma.iter().enumerate().take(k) {
            let uj = u.column(j);
            let r2: f64 = (0..l)
                .map(|i| {
                    let d = av[i * b + j] - sj * uj[i];
                    d * d
                })
                .sum();
            res = res.max(r2.sqrt());
        }
        let rel = if sigma[0] > 0.0 { res / sigma[0] } else { 0.0 };

        let converged = rel <= opts.tol;
        if rel < 0.99 * best {
            best = rel;
            stall = 0;
        } else {
            stall += 1;
        }
        if converged || stall >= STALL_LIMIT || iterations >= opts.max_iter {
            let mut u = u.columns(0, k).into_owned();
            let mut v = v.columns(0, k).into_owned();
            flip_signs(&mut u, &mut v);
            return Ok(Factors {
                u,
                v,
                s_scaled: sigma[..k].to_vec(),
                scale,
                iterations,
                residual: rel,
                converged,
            });
        }
        q = orthonormal_basis(l, b, &av);
    }
}

/// sklearn's `svd_flip` (u-based): makes the result independent of the dense SVD's signs.
fn flip_signs(u: &mut DMatrix<f64>, v: &mut DMatrix<f64>) {
    for j in 0..u.ncols() {
        let mut arg = 0;
        let mut max = -1.0;
        for (i, &x) in u.column(j).iter().enumerate() {
            if x.abs() > max {
                max = x.abs();
                arg = i;
            }
        }
        if u[(arg, j)] < 0.0 {
            u.column_mut(j).neg_mut();
            v.column_mut(j).neg_mut();
        }
    }
}

/// Householder QR keeps Q orthonormal even when the block is rank-deficient (zero rows or
/// columns in the counts), where Gram–Schmidt would divide by zero.
fn orthonormal_basis(n: usize, b: usize, rows: &[f64]) -> DMatrix<f64> {
    QR::new(DMatrix::from_row_slice(n, b, rows)).q()
}

/// Row-major copy, the layout the sparse products stream through.
fn row_major(m: &DMatrix<f64>) -> Vec<f64> {
    m.transpose().as_slice().to_vec()
}

/// `scale·A·X` for X P×b row-major, giving L×b row-major.
fn mul_a(y: &SparseCountsRef<'_>, scale: f64, x: &[f64], b: usize) -> Vec<f64> {
    let mut out = vec![0.0; y.channels * b];
    for px in 0..y.pixels {
        let xr = &x[px * b..(px + 1) * b];
        let span = y.indptr[px]..y.indptr[px + 1];
        for (&ch, &val) in y.indices[span.clone()].iter().zip(&y.values[span]) {
            let a = val * scale;
            let l = ch as usize;
            for (o, &xv) in out[l * b..(l + 1) * b].iter_mut().zip(xr) {
                *o += a * xv;
            }
        }
    }
    out
}

/// `scale·Aᵀ·Q` for Q L×b row-major, giving P×b row-major.
fn mul_at(y: &SparseCountsRef<'_>, scale: f64, q: &[f64], b: usize) -> Vec<f64> {
    let mut out = vec![0.0; y.pixels * b];
    for (px, o) in out.chunks_exact_mut(b).enumerate() {
        let span = y.indptr[px]..y.indptr[px + 1];
        for (&ch, &val) in y.indices[span.clone()].iter().zip(&y.values[span]) {
            let a = val * scale;
            let l = ch as usize;
            for (o, &qv) in o.iter_mut().zip(&q[l * b..(l + 1) * b]) {
                *o += a * qv;
            }
        }
    }
    out
}
