//! The smoothness operator applied to one pixel: (H·Δ)_kp without forming a P×P matrix.

use super::params::Laplacian;
use crate::float::Float;

/// (H·Δ)_kp for the component row `h_k` (length P) at pixel `p`.
#[inline]
pub(crate) fn apply<T: Float>(lap: Laplacian, h_k: &[T], p: usize) -> T {
    match lap {
        Laplacian::Identity => h_k[p],
        Laplacian::Grid { rows, cols } => {
            let (r, c) = (p / cols, p % cols);
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
    }
}
