//! Count data: a dense pixel-major array, or per-pixel sparse non-zeros.
//!
//! Both layouts visit each pixel's non-zero channels in increasing order, so every sum the
//! solver forms is bit-identical for the two.

use crate::error::SolverError;
use crate::float::Float;

/// Counts of a spectrum image: P pixels × L channels.
#[derive(Debug, Clone, Copy)]
pub enum Counts<'a, T> {
    /// Pixel-major dense array: `data[p * channels + l]` (the layout of a Y×X×L cube).
    Dense {
        /// L.
        channels: usize,
        /// P.
        pixels: usize,
        /// P·L counts.
        data: &'a [T],
    },
    /// Per-pixel sparse counts: pixel p's non-zeros are `indices[indptr[p]..indptr[p+1]]`
    /// (channels, strictly increasing) with `values` at the same positions.
    Sparse {
        /// L.
        channels: usize,
        /// P.
        pixels: usize,
        /// P+1 offsets into `indices`/`values`.
        indptr: &'a [usize],
        /// Channel of each non-zero.
        indices: &'a [u32],
        /// Count of each non-zero.
        values: &'a [T],
    },
}

impl<'a, T: Float> Counts<'a, T> {
    /// Number of channels L.
    pub fn channels(&self) -> usize {
        match *self {
            Counts::Dense { channels, .. } | Counts::Sparse { channels, .. } => channels,
        }
    }

    /// Number of pixels P.
    pub fn pixels(&self) -> usize {
        match *self {
            Counts::Dense { pixels, .. } | Counts::Sparse { pixels, .. } => pixels,
        }
    }

    /// Checks shapes, sparse structure and that every count is finite and ≥ 0.
    pub fn validate(&self) -> Result<(), SolverError> {
        let (l, p) = (self.channels(), self.pixels());
        if l == 0 || p == 0 {
            return Err(SolverError::EmptyData);
        }
        match *self {
            Counts::Dense { data, .. } => {
                let expected = l.checked_mul(p).ok_or(SolverError::EmptyData)?;
                if data.len() != expected {
                    return Err(SolverError::DimensionMismatch {
                        buffer: "counts",
                        expected,
                        got: data.len(),
                    });
                }
                for (i, &v) in data.iter().enumerate() {
                    if !(v >= T::ZERO && v.is_finite()) {
                        return Err(SolverError::InvalidCount {
                            pixel: i / l,
                            channel: i % l,
                            value: v.to_f64(),
                        });
                    }
                }
            }
            Counts::Sparse {
                indptr,
                indices,
                values,
                ..
            } => {
                if indptr.len() != p + 1 {
                    return Err(SolverError::DimensionMismatch {
                        buffer: "indptr",
                        expected: p + 1,
                        got: indptr.len(),
                    });
                }
                if indices.len() != values.len() {
                    return Err(SolverError::DimensionMismatch {
                        buffer: "values",
                        expected: indices.len(),
                        got: values.len(),
                    });
                }
                if indptr[0] != 0 || indptr[p] != indices.len() {
                    return Err(SolverError::MalformedSparse { pixel: 0 });
                }
                for px in 0..p {
                    let (s, e) = (indptr[px], indptr[px + 1]);
                    if s > e || e > indices.len() {
                        return Err(SolverError::MalformedSparse { pixel: px });
                    }
                    let mut prev: Option<u32> = None;
                    for i in s..e {
                        let c = indices[i];
                        if c as usize >= l || prev.is_some_and(|q| q >= c) {
                            return Err(SolverError::MalformedSparse { pixel: px });
                        }
                        prev = Some(c);
                        let v = values[i];
                        if !(v >= T::ZERO && v.is_finite()) {
                            return Err(SolverError::InvalidCount {
                                pixel: px,
                                channel: c as usize,
                                value: v.to_f64(),
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Calls `f(channel, count)` for every non-zero count of pixel `p`, channels increasing.
    #[inline]
    pub fn for_each_nz(&self, p: usize, mut f: impl FnMut(usize, T)) {
        match *self {
            Counts::Dense { channels, data, .. } => {
                let row = &data[p * channels..(p + 1) * channels];
                for (l, &y) in row.iter().enumerate() {
                    if y != T::ZERO {
                        f(l, y);
                    }
                }
            }
            Counts::Sparse {
                indptr,
                indices,
                values,
                ..
            } => {
                let (s, e) = (indptr[p], indptr[p + 1]);
                for (&c, &y) in indices[s..e].iter().zip(&values[s..e]) {
                    if y != T::ZERO {
                        f(c as usize, y);
                    }
                }
            }
        }
    }

    /// Σ y·ln(y) − Σ y over the non-zeros: the constant of the KL divergence (espm's
    /// `const_KL_`), accumulated in f64.
    pub fn kl_constant(&self) -> f64 {
        let mut c = 0.0f64;
        for p in 0..self.pixels() {
            self.for_each_nz(p, |_, y| {
                let y = y.to_f64();
                c += y * libm::log(y) - y;
            });
        }
        c
    }

    /// Total of all counts (f64).
    pub fn total(&self) -> f64 {
        let mut t = 0.0f64;
        for p in 0..self.pixels() {
            self.for_each_nz(p, |_, y| t += y.to_f64());
        }
        t
    }
}
