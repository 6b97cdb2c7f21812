//! The smoothness operator applied to one pixel: (H·Δ)_kp without forming a P×P matrix.

use super::params::Laplacian;
use crate::float::Float;

/// (H·Δ)_kp for the component row `h_k` (length P) at pixel `p`.
///
/// # Panics
/// When `p` or a grid neighbour is outside `h_k` (the solver checks lengths first).
#[inline]
pub fn apply<T: Float>(lap: Laplacian, h_k: &[T], p: usize) -> T {
    match lap {
        Laplacian::Identity => h_k[p],
        Laplacian::Grid { rows, cols } => grid_at(h_k, p, p / cols, p % cols, rows, cols),
    }
}

/// (H·Δ)_kp on a `rows`×`cols` grid for pixel `p` at row `r`, column `c`: the one place the
/// grid stencil is written, so that block loops which track (r, c) instead of dividing give
/// the same bits as [`apply`].
#[inline(always)]
pub(crate) fn grid_at<T: Float>(
    h_k: &[T],
    p: usize,
    r: usize,
    c: usize,
    rows: usize,
    cols: usize,
) -> T {
    let mut deg = 0usize;
    let mut sum = T::ZERO;
    if c > 0 {
        deg += 1;
        sum += h_k[p - 1];
    }
    if c + 1 < cols {
        deg += 1;
        sum += h_k[p + 1];
    }
    if r > 0 {
        deg += 1;
        sum += h_k[p - cols];
    }
    if r + 1 < rows {
        deg += 1;
        sum += h_k[p + cols];
    }
    T::from_usize(deg) * h_k[p] - sum
}
