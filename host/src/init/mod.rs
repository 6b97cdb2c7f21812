//! Initial factors for the decomposition, computed from sparse counts.
//!
//! Spectrum images are mostly empty channels, so the count matrix is kept sparse all the way
//! through: the truncated SVD behind sklearn's NNDSVD only ever multiplies it by thin dense
//! blocks, and memory stays O(nnz + (L + P)·(k + oversampling)).

mod nndsvd;
mod svd;

pub use nndsvd::{nndsvd, NndsvdVariant};
pub use svd::{truncated_svd, truncated_svd_with, SvdOptions, TruncatedSvd};

use anyhow::{anyhow, Result};

/// W (M×k) from spectra D (L×k) through G (L×M): espm's max(lstsq(G, D), 0), then every row of
/// a component divided by the sum of its `simplex_rows`, floored at 1e-14.
///
/// espm divides only the element rows, leaving the bremsstrahlung rows about N (counts per
/// pixel) times too large against the lines; from there one phase often ends with all of the
/// continuum. Dividing the whole column keeps each phase's continuum-to-line ratio (paper data,
/// NNDSVDar: 30° → 5.8° mean angle).
pub fn physics_w_whole_columns(
    g: &[f64],
    d: &[f64],
    l: usize,
    m: usize,
    k: usize,
    simplex_rows: &[usize],
) -> Result<Vec<f64>> {
    let mut w = vec![0.0; m * k];
    let mut scratch = vec![0.0; edxs_core::init::physics_w_scratch_len(l, m, k)];
    use edxs_core::view::{MatMut, MatRef};
    MatRef::new("g", g, l, m)
        .and_then(|g| {
            let d = MatRef::new("d", d, l, k)?;
            let w = MatMut::new("w", &mut w, m, k)?;
            edxs_core::init::physics_w(g, d, &[], 0.0, w, &mut scratch)
        })
        .map_err(|e| anyhow!("initialisation: {e}"))?;
    let n = simplex_rows.len() as f64;
    for c in 0..k {
        let s: f64 = simplex_rows.iter().map(|&r| w[r * k + c]).sum();
        for j in 0..m {
            w[j * k + c] = if s > 0.0 && s.is_finite() {
                w[j * k + c] / s
            } else if simplex_rows.contains(&j) {
                1.0 / n
            } else {
                0.0
            };
        }
    }
    w.iter_mut().for_each(|v| *v = v.max(1e-14));
    Ok(w)
}
