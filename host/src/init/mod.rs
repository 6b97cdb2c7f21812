//! Initial factors for the decomposition, computed from sparse counts.
//!
//! Spectrum images are mostly empty channels, so the count matrix is kept sparse all the way
//! through: the truncated SVD behind sklearn's NNDSVD only ever multiplies it by thin dense
//! blocks, and memory stays O(nnz + (L + P)·(k + oversampling)).

mod nndsvd;
mod svd;

pub use nndsvd::{nndsvd, NndsvdVariant};
pub use svd::{truncated_svd, truncated_svd_with, SvdOptions, TruncatedSvd};

use anyhow::{anyhow, bail, ensure, Result};

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
    edxs_core::init::physics_w(g, d, l, m, k, &[], 0.0, &mut w, &mut scratch)
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

/// Counts stored per pixel (CSC-like): pixel p's non-zeros are `indices[indptr[p]..indptr[p+1]]`
/// (channel numbers, strictly increasing) with `values[..]` (> 0; explicit zeros are tolerated).
#[derive(Debug, Clone, Copy)]
pub struct SparseCountsRef<'a> {
    /// Number of channels L (rows of the count matrix).
    pub channels: usize,
    /// Number of pixels P (columns of the count matrix).
    pub pixels: usize,
    /// Offsets into `indices`/`values`, `pixels + 1` entries starting at 0.
    pub indptr: &'a [usize],
    /// Channel of each stored count.
    pub indices: &'a [u32],
    /// Value of each stored count.
    pub values: &'a [f64],
}

impl SparseCountsRef<'_> {
    /// Number of stored entries (nnz).
    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    /// Checks the layout and the values, so that the numerical code can index without checks
    /// failing and never meets NaN, infinities or negative counts.
    pub fn validate(&self) -> Result<()> {
        let (l, p) = (self.channels, self.pixels);
        ensure!(
            self.indptr.len() == p + 1,
            "sparse counts: indptr has {} entries, expected pixels + 1 = {}",
            self.indptr.len(),
            p + 1
        );
        ensure!(
            self.indices.len() == self.values.len(),
            "sparse counts: indices has {} entries but values has {}",
            self.indices.len(),
            self.values.len()
        );
        ensure!(
            self.indptr[0] == 0,
            "sparse counts: indptr[0] is {}, expected 0",
            self.indptr[0]
        );
        ensure!(
            self.indptr[p] == self.values.len(),
            "sparse counts: indptr[{p}] = {} does not equal the number of stored values {}",
            self.indptr[p],
            self.values.len()
        );
        // The whole of indptr first, so that a bad offset is reported as such and not as a
        // symptom in some pixel's entries.
        for (px, win) in self.indptr.windows(2).enumerate() {
            if win[1] < win[0] {
                bail!(
                    "sparse counts: indptr is not monotone at pixel {px} ({} then {})",
                    win[0],
                    win[1]
                );
            }
        }
        for px in 0..p {
            let (a, b) = (self.indptr[px], self.indptr[px + 1]);
            let mut prev: Option<u32> = None;
            for i in a..b {
                let ch = self.indices[i];
                if ch as usize >= l {
                    bail!(
                        "sparse counts: channel index {ch} at pixel {px} is out of range \
                         (channels = {l})"
                    );
                }
                if let Some(q) = prev {
                    if ch <= q {
                        bail!(
                            "sparse counts: channel indices of pixel {px} are not strictly \
                             increasing ({ch} after {q})"
                        );
                    }
                }
                prev = Some(ch);
                let v = self.values[i];
                if !v.is_finite() {
                    bail!("sparse counts: value at pixel {px}, channel {ch} is not finite ({v})");
                }
                if v < 0.0 {
                    bail!("sparse counts: value at pixel {px}, channel {ch} is negative ({v})");
                }
            }
        }
        Ok(())
    }

    /// Checks `k` against the matrix size, because a rank-k SVD needs k ≤ min(L, P).
    pub(crate) fn check_rank(&self, k: usize) -> Result<()> {
        ensure!(
            k >= 1,
            "number of components k = 0: need at least one component"
        );
        let m = self.channels.min(self.pixels);
        ensure!(
            k <= m,
            "number of components k = {k} exceeds min(channels, pixels) = min({}, {}) = {m}",
            self.channels,
            self.pixels
        );
        Ok(())
    }

    /// Power of two that brings the largest value into [0.5, 1): the SVD then cannot overflow
    /// or underflow, and multiplying by it is exact, so results do not change by a single bit.
    pub(crate) fn exact_scale(&self) -> f64 {
        let max = self.values.iter().fold(0.0f64, |m, &v| m.max(v));
        if max == 0.0 {
            return 1.0;
        }
        let e = if max.is_normal() {
            ((max.to_bits() >> 52) & 0x7ff) as i64 - 1023 + 1
        } else {
            // Subnormal: partial scaling is enough to avoid underflow.
            -1000
        };
        let e = e.clamp(-1000, 1000);
        f64::from_bits(((1023 - e) as u64) << 52)
    }
}
