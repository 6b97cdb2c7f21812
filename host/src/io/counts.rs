//! Spectrum images as the solver wants them: per-pixel sparse counts plus the scan shape.

use super::npy;
use crate::init::SparseCountsRef;
use anyhow::{bail, Result};
use std::path::Path;

/// Counts of P pixels × L channels kept per pixel as non-zeros, with the scan shape if known.
#[derive(Debug, Clone)]
pub struct SpectrumImage {
    /// Channels L.
    pub channels: usize,
    /// Pixels P.
    pub pixels: usize,
    /// Scan shape (rows, cols), row-major pixels.
    pub shape: Option<(usize, usize)>,
    /// P+1 offsets.
    pub indptr: Vec<usize>,
    /// Channel of each non-zero.
    pub indices: Vec<u32>,
    /// Count of each non-zero.
    pub values: Vec<f64>,
}

impl SpectrumImage {
    /// Builds from a pixel-major dense array (P×L), rejecting negative or non-finite counts with
    /// the pixel and channel named; `what` names the source in messages.
    pub fn from_dense(
        what: &str,
        data: &[f64],
        pixels: usize,
        channels: usize,
        shape: Option<(usize, usize)>,
    ) -> Result<Self> {
        if pixels == 0 || channels == 0 {
            bail!("{what}: no data ({pixels} pixels x {channels} channels)");
        }
        if data.len() != pixels * channels {
            bail!(
                "{what}: {} values for {pixels} pixels x {channels} channels",
                data.len()
            );
        }
        if channels > u32::MAX as usize {
            bail!("{what}: {channels} channels is too many");
        }
        let mut b = Builder::new(what, pixels, channels, shape);
        for row in data.chunks_exact(channels) {
            b.push_row(row)?;
        }
        Ok(b.finish())
    }

    /// Builds from pixels handed over one at a time (L counts each, in pixel order) by `fill`,
    /// for readers that decode their file piecewise; `what` names the source in messages.
    #[cfg_attr(not(feature = "hdf5"), allow(dead_code))]
    pub(crate) fn from_rows(
        what: &str,
        pixels: usize,
        channels: usize,
        shape: Option<(usize, usize)>,
        fill: impl FnOnce(&mut dyn FnMut(&[f64]) -> Result<()>) -> Result<()>,
    ) -> Result<Self> {
        if pixels == 0 || channels == 0 {
            bail!("{what}: no data ({pixels} pixels x {channels} channels)");
        }
        if channels > u32::MAX as usize {
            bail!("{what}: {channels} channels is too many");
        }
        let mut b = Builder::new(what, pixels, channels, shape);
        fill(&mut |row| b.push_row(row))?;
        let got = b.image.indptr.len() - 1;
        if got != pixels {
            bail!("{what}: {got} of {pixels} pixels read");
        }
        Ok(b.finish())
    }

    /// Reads a `.npy` file: Y×X×L (carries its shape) or P×L (with `shape` = ROWS×COLS, or none).
    ///
    /// C-order files are streamed row by row into the sparse form, so a dense image never sits
    /// in memory as f64 (a 1024×1024×2048 u16 map would need 17 GB).
    pub fn read_npy(path: &Path, shape: Option<(usize, usize)>) -> Result<Self> {
        let what = path.display().to_string();
        let dims_of = |dims: &[usize]| -> Result<Dims> {
            if let [rows, cols, _] = dims {
                if rows.checked_mul(*cols).is_none() {
                    bail!("{what}: {rows}x{cols} pixels overflow");
                }
            }
            match (dims, shape) {
                ([rows, cols, l], None) => Ok((rows * cols, *l, Some((*rows, *cols)))),
                ([rows, cols, l], Some(s)) => {
                    if s != (*rows, *cols) {
                        bail!(
                            "{what}: --shape {}x{} does not match the file's {rows}x{cols}",
                            s.0,
                            s.1
                        );
                    }
                    Ok((rows * cols, *l, Some(s)))
                }
                ([p, l], s) => {
                    if let Some((r, c)) = s {
                        if r * c != *p {
                            bail!(
                                "{what}: --shape {r}x{c} has {} pixels but the file has {p}",
                                r * c
                            );
                        }
                    }
                    Ok((*p, *l, s))
                }
                (other, _) => {
                    bail!("{what}: expected a P x L or Y x X x L array, got shape {other:?}")
                }
            }
        };
        // Both callbacks need the builder: the first creates it once the shape is known.
        let builder = std::cell::RefCell::new(None);
        let streamed = npy::stream_rows(
            path,
            |dims| {
                let (p, l, s) = dims_of(dims)?;
                if p == 0 || l == 0 {
                    bail!("{what}: no data ({p} pixels x {l} channels)");
                }
                *builder.borrow_mut() = Some(Builder::new(&what, p, l, s));
                Ok(())
            },
            |row| match builder.borrow_mut().as_mut() {
                Some(b) => b.push_row(row),
                None => bail!("{what}: data before the shape"),
            },
        )?;
        match (streamed, builder.into_inner()) {
            (Some(_), Some(b)) => Ok(b.finish()),
            _ => {
                let (dims, data) = npy::read_f64(path)?;
                let (p, l, s) = dims_of(&dims)?;
                Self::from_dense(&what, &data, p, l, s)
            }
        }
    }

    /// A borrowed view for the initialisations.
    pub fn as_ref(&self) -> SparseCountsRef<'_> {
        SparseCountsRef {
            channels: self.channels,
            pixels: self.pixels,
            indptr: &self.indptr,
            indices: &self.indices,
            values: &self.values,
        }
    }

    /// The counts for the core solver.
    pub fn counts(&self) -> edxs_core::Counts<'_, f64> {
        edxs_core::Counts::Sparse {
            channels: self.channels,
            pixels: self.pixels,
            indptr: &self.indptr,
            indices: &self.indices,
            values: &self.values,
        }
    }

    /// Mean count over all P·L entries.
    pub fn mean(&self) -> f64 {
        self.values.iter().sum::<f64>() / (self.pixels * self.channels) as f64
    }

    /// Summed spectrum (L).
    pub fn sum_spectrum(&self) -> Vec<f64> {
        let mut s = vec![0.0; self.channels];
        for (&c, &v) in self.indices.iter().zip(&self.values) {
            s[c as usize] += v;
        }
        s
    }
}

/// Pixels, channels and scan shape of an array.
type Dims = (usize, usize, Option<(usize, usize)>);

/// Collects pixels row by row into [`SpectrumImage`]'s sparse form, validating each count.
struct Builder<'w> {
    what: &'w str,
    image: SpectrumImage,
}

impl<'w> Builder<'w> {
    fn new(what: &'w str, pixels: usize, channels: usize, shape: Option<(usize, usize)>) -> Self {
        let mut indptr = Vec::with_capacity(pixels + 1);
        indptr.push(0);
        Builder {
            what,
            image: SpectrumImage {
                channels,
                pixels,
                shape,
                indptr,
                indices: Vec::new(),
                values: Vec::new(),
            },
        }
    }

    /// Appends the next pixel's L counts.
    fn push_row(&mut self, row: &[f64]) -> Result<()> {
        let img = &mut self.image;
        let p = img.indptr.len() - 1;
        if p >= img.pixels || row.len() != img.channels {
            bail!(
                "{}: more data than {} pixels x {} channels",
                self.what,
                img.pixels,
                img.channels
            );
        }
        // Validate the row first, naming the first bad value only on failure; the bulk of a
        // spectrum image is zeros, which the second loop skips.
        // On the bits: a count is finite and >= 0 iff it is below +inf's pattern (sign clear,
        // exponent not all ones) or is -0. Integer compares OR-reduced vectorise; the float
        // comparisons cost 20 instructions per value.
        let mut bad = false;
        for &v in row {
            let b = v.to_bits();
            bad |= (b >= 0x7ff0_0000_0000_0000) & (b != 0x8000_0000_0000_0000);
        }
        if bad {
            let (l, v) = row
                .iter()
                .enumerate()
                .find(|(_, v)| !(**v >= 0.0 && v.is_finite()))
                .map(|(l, v)| (l, *v))
                .unwrap_or((0, f64::NAN));
            let (r, c) = img.shape.map_or((0, p), |(_, cols)| (p / cols, p % cols));
            bail!("{}: count at pixel {p} (row {r}, col {c}), channel {l} is {v}; counts must be finite and >= 0", self.what);
        }
        for (chunk, vals) in row.chunks(8).enumerate() {
            if vals.iter().all(|&v| v == 0.0) {
                continue;
            }
            for (j, &v) in vals.iter().enumerate() {
                if v != 0.0 {
                    img.indices.push((chunk * 8 + j) as u32);
                    img.values.push(v);
                }
            }
        }
        img.indptr.push(img.indices.len());
        Ok(())
    }

    fn finish(mut self) -> SpectrumImage {
        self.image.indices.shrink_to_fit();
        self.image.values.shrink_to_fit();
        self.image
    }
}
