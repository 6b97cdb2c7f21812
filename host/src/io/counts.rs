//! Spectrum images as the solver wants them: per-pixel sparse counts plus the scan shape, and
//! the borrowed view of them the initialisations and the fast maps solver read.

use super::npy;
use anyhow::{bail, ensure, Result};
use edxs_core::SolverError;
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
                crate::limits::need(&format!("reading {what}"), crate::limits::bytes(&[p, 1], 8))?;
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
        self.as_ref().counts()
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
        if img.values.capacity() - img.values.len() < row.len() {
            self.reserve(row.len())?;
        }
        let img = &mut self.image;
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

    /// Room for `more` non-zeros, growing geometrically, checked against the memory plan
    /// before it is allocated: how many non-zeros a file holds is known only once it is read
    /// (a 1024²×2048 u16 file at 50 counts/pixel holds 4e7 of its 2e9 values).
    fn reserve(&mut self, more: usize) -> Result<()> {
        let img = &mut self.image;
        let (len, cap) = (img.values.len(), img.values.capacity());
        let want = cap
            .saturating_mul(2)
            .max(len.saturating_add(more))
            .max(1 << 12);
        crate::limits::need(
            &format!(
                "{}: keeping the non-zero counts of pixels 0..{} of {}",
                self.what,
                img.indptr.len(),
                img.pixels
            ),
            crate::limits::total(&[
                crate::limits::bytes(&[want], 12),
                crate::limits::bytes(&[img.pixels, 1], 8),
            ]),
        )?;
        img.values.reserve_exact(want - len);
        img.indices.reserve_exact(want - len);
        Ok(())
    }

    fn finish(mut self) -> SpectrumImage {
        self.image.indices.shrink_to_fit();
        self.image.values.shrink_to_fit();
        self.image
    }
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

impl<'a> SparseCountsRef<'a> {
    /// Number of stored entries (nnz).
    pub fn nnz(&self) -> usize {
        self.values.len()
    }

    /// The view with its layout and values checked: the core's check of
    /// [`edxs_core::Counts::Sparse`], its error mapped to one naming the problem.
    pub fn new_checked(
        channels: usize,
        pixels: usize,
        indptr: &'a [usize],
        indices: &'a [u32],
        values: &'a [f64],
    ) -> Result<Self> {
        let y = SparseCountsRef {
            channels,
            pixels,
            indptr,
            indices,
            values,
        };
        y.validate()?;
        Ok(y)
    }

    /// The same counts as the core solver takes them.
    pub fn counts(&self) -> edxs_core::Counts<'a, f64> {
        edxs_core::Counts::Sparse {
            channels: self.channels,
            pixels: self.pixels,
            indptr: self.indptr,
            indices: self.indices,
            values: self.values,
        }
    }

    /// Checks the layout and the values (the core's [`edxs_core::Counts::validate`]), so that
    /// the numerical code can index without checks failing and never meets NaN, infinities or
    /// negative counts.
    pub fn validate(&self) -> Result<()> {
        self.counts()
            .validate()
            .map_err(|e| anyhow::anyhow!("sparse counts: {}", self.explain(e)))
    }

    /// The core's error in the words of this layout: which offset, channel or value is wrong.
    fn explain(&self, e: SolverError) -> String {
        let (l, p, nnz) = (self.channels, self.pixels, self.values.len());
        match e {
            SolverError::DimensionMismatch {
                buffer: "indptr",
                expected,
                got,
            } => format!("indptr has {got} entries, expected pixels + 1 = {expected}"),
            SolverError::DimensionMismatch {
                buffer: "values",
                expected,
                got,
            } => format!("indices has {expected} entries but values has {got}"),
            SolverError::InvalidCount {
                pixel,
                channel,
                value,
            } if value.is_finite() => {
                format!("value at pixel {pixel}, channel {channel} is negative ({value})")
            }
            SolverError::InvalidCount {
                pixel,
                channel,
                value,
            } => format!("value at pixel {pixel}, channel {channel} is not finite ({value})"),
            // The core names the pixel; a bad offset is reported as such rather than as a
            // symptom in some pixel's channels.
            SolverError::MalformedSparse { pixel } => {
                let ip = self.indptr;
                if ip[0] != 0 {
                    return format!("indptr[0] is {}, expected 0", ip[0]);
                }
                if ip[p] != nnz {
                    return format!(
                        "indptr[{p}] = {} does not equal the number of stored values {nnz}",
                        ip[p]
                    );
                }
                if let Some(px) = ip.windows(2).position(|w| w[1] < w[0]) {
                    return format!(
                        "indptr is not monotone at pixel {px} ({} then {})",
                        ip[px],
                        ip[px + 1]
                    );
                }
                let channels = &self.indices[ip[pixel]..ip[pixel + 1]];
                if let Some(ch) = channels.iter().find(|&&c| c as usize >= l) {
                    return format!(
                        "channel index {ch} at pixel {pixel} is out of range (channels = {l})"
                    );
                }
                match channels.windows(2).find(|w| w[1] <= w[0]) {
                    Some(w) => format!(
                        "channel indices of pixel {pixel} are not strictly increasing ({} after {})",
                        w[1], w[0]
                    ),
                    None => e.to_string(),
                }
            }
            other => other.to_string(),
        }
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
