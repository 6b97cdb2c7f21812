//! The counts as the threaded passes read them when that is exact: 16-bit channels and f32
//! counts, 6 bytes per non-zero, so that paper-sized data stay in the last-level cache.

use edxs_core::solver::{Chunk, PixelCounts, LANES};
use edxs_core::Counts;

/// Per-pixel sparse counts with 16-bit channels and f32 counts (built only when both are exact).
pub(super) struct Compact {
    pub(super) channels: usize,
    pub(super) pixels: usize,
    pub(super) indptr: Vec<usize>,
    pub(super) indices: Vec<u16>,
    pub(super) values: Vec<f32>,
}

impl Compact {
    /// Packs `y` when every channel fits in 16 bits and every count is an f32 exactly.
    pub(super) fn pack(y: &Counts<'_, f64>) -> Option<Self> {
        let (l, p) = (y.channels(), y.pixels());
        if l > 1 << 16 {
            return None;
        }
        let mut indptr = Vec::with_capacity(p + 1);
        indptr.push(0);
        let (mut indices, mut values) = (Vec::new(), Vec::new());
        if let Counts::Sparse { values: v, .. } = y {
            indices.reserve(v.len());
            values.reserve(v.len());
        }
        let mut exact = true;
        for px in 0..p {
            y.for_each_nz(px, |c, v| {
                let f = v as f32;
                exact &= f as f64 == v;
                indices.push(c as u16);
                values.push(f);
            });
            indptr.push(indices.len());
        }
        exact.then_some(Compact {
            channels: l,
            pixels: p,
            indptr,
            indices,
            values,
        })
    }
}

impl PixelCounts<f64> for Compact {
    fn n_channels(&self) -> usize {
        self.channels
    }

    fn n_pixels(&self) -> usize {
        self.pixels
    }

    #[inline(always)]
    fn chunks(&self, px: usize) -> impl Iterator<Item = Chunk<f64>> + '_ {
        let (s, e) = (self.indptr[px], self.indptr[px + 1]);
        CompactChunks {
            indices: &self.indices[s..e],
            values: &self.values[s..e],
        }
    }
}

/// The chunks of one pixel of [`Compact`].
struct CompactChunks<'a> {
    indices: &'a [u16],
    values: &'a [f32],
}

impl Iterator for CompactChunks<'_> {
    type Item = Chunk<f64>;

    #[inline(always)]
    fn next(&mut self) -> Option<Chunk<f64>> {
        if self.indices.len() >= LANES && self.values.len() >= LANES {
            let (a, ra) = self.indices.split_at(LANES);
            let (b, rb) = self.values.split_at(LANES);
            self.indices = ra;
            self.values = rb;
            Some(Chunk {
                channels: std::array::from_fn(|j| a[j] as u32),
                counts: std::array::from_fn(|j| b[j] as f64),
            })
        } else if self.indices.is_empty() {
            None
        } else {
            let mut c = Chunk::EMPTY;
            for (j, (a, b)) in self.indices.iter().zip(self.values).enumerate() {
                c.channels[j] = *a as u32;
                c.counts[j] = *b as f64;
            }
            self.indices = &[];
            Some(c)
        }
    }
}
