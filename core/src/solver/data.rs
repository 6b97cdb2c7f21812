//! Count data: a dense pixel-major array, or per-pixel sparse non-zeros.
//!
//! Both layouts visit each pixel's non-zero channels in increasing order, so every sum the
//! solver forms is bit-identical for the two.
//!
//! The per-pixel kernels read a pixel's non-zeros as [`Chunk`]s of [`LANES`] (channel, count)
//! pairs, zeros skipped and the last chunk padded with count 0, through [`PixelCounts`]: each
//! lane keeps its own partial sums, which the compiler turns into vector instructions. Any
//! storage that hands out the same chunks (a host's compact copy, say) gives the same results.

// Lane-wise loops index several arrays by lane and component on purpose.
#![allow(clippy::needless_range_loop)]

use crate::error::SolverError;
use crate::float::Float;

/// Non-zeros per chunk of the per-pixel kernels (the number of partial sums of each lane-wise
/// reduction; fixed, so results do not depend on the machine's vector width).
pub const LANES: usize = 4;

/// Up to [`LANES`] non-zero counts of one pixel in channel order; unused lanes have count 0 and
/// channel 0 (they add exact zeros).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chunk<T> {
    /// Channel of each lane.
    pub channels: [u32; LANES],
    /// Count of each lane.
    pub counts: [T; LANES],
}

impl<T: Float> Chunk<T> {
    /// An all-padding chunk.
    pub const EMPTY: Self = Chunk {
        channels: [0; LANES],
        counts: [T::ZERO; LANES],
    };
}

/// Count storage that the per-pixel kernels can read: a pixel's non-zero counts, channels
/// increasing, zeros skipped, packed into [`Chunk`]s in order (only the last chunk may have
/// lanes of count 0). Implementations must only hand out channels below
/// [`PixelCounts::n_channels`].
pub trait PixelCounts<T: Float>: Sync {
    /// Number of channels L.
    fn n_channels(&self) -> usize;
    /// Number of pixels P.
    fn n_pixels(&self) -> usize;
    /// The chunks of pixel `px`.
    ///
    /// # Panics
    /// May panic when `px` ≥ [`PixelCounts::n_pixels`] or the storage is malformed (for
    /// [`Counts`]: one that [`Counts::validate`] refuses); the solver validates first.
    fn chunks(&self, px: usize) -> impl Iterator<Item = Chunk<T>> + '_;
}

/// The chunks of one pixel of [`Counts`]: zeros are dropped as the lanes fill (lanes left
/// with a zero count add exact zeros).
#[derive(Debug, Clone)]
pub struct CountChunks<'a, T> {
    /// Channels of a sparse row (empty for a dense row).
    indices: &'a [u32],
    /// Counts.
    values: &'a [T],
    pos: usize,
}

impl<T: Float> Iterator for CountChunks<'_, T> {
    type Item = Chunk<T>;

    #[inline(always)]
    fn next(&mut self) -> Option<Chunk<T>> {
        let mut c = Chunk::EMPTY;
        let mut n = 0usize;
        let len = self.values.len();
        while n < LANES && self.pos < len {
            let i = self.pos;
            let y = self.values[i];
            c.channels[n] = if self.indices.is_empty() {
                i as u32
            } else {
                self.indices[i]
            };
            c.counts[n] = y;
            n += (y != T::ZERO) as usize;
            self.pos = i + 1;
        }
        if n == 0 {
            None
        } else {
            Some(c)
        }
    }
}

impl<T: Float> PixelCounts<T> for Counts<'_, T> {
    fn n_channels(&self) -> usize {
        self.channels()
    }

    fn n_pixels(&self) -> usize {
        self.pixels()
    }

    #[inline(always)]
    fn chunks(&self, px: usize) -> impl Iterator<Item = Chunk<T>> + '_ {
        match *self {
            Counts::Dense { channels, data, .. } => CountChunks {
                indices: &[],
                values: &data[px * channels..(px + 1) * channels],
                pos: 0,
            },
            Counts::Sparse {
                indptr,
                indices,
                values,
                ..
            } => {
                let (s, e) = (indptr[px], indptr[px + 1]);
                CountChunks {
                    indices: &indices[s..e],
                    values: &values[s..e],
                    pos: 0,
                }
            }
        }
    }
}

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
    ///
    /// # Panics
    /// When `p` ≥ P, or the counts are malformed ([`Counts::validate`] refuses them).
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
    ///
    /// # Panics
    /// When the counts are malformed ([`Counts::validate`] refuses them).
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
    ///
    /// # Panics
    /// When the counts are malformed ([`Counts::validate`] refuses them).
    pub fn total(&self) -> f64 {
        let mut t = 0.0f64;
        for p in 0..self.pixels() {
            self.for_each_nz(p, |_, y| t += y.to_f64());
        }
        t
    }
}
