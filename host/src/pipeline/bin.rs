//! Binning a scan into blocks for the spectra stage, and the block side that gives enough
//! counts per pixel.

use crate::io::counts::SpectrumImage;

/// The smallest block side, from 2, that brings `counts_per_pixel` to ~250 (at 293
/// counts/pixel 2×2 blocks gave the same spectra as full resolution in half the time).
pub fn auto_bin(counts_per_pixel: f64) -> usize {
    let mut b = 2;
    while (b * b) as f64 * counts_per_pixel < 250.0 && b < 16 {
        b += 1;
    }
    b
}

/// Why the two-stage pipeline cannot run on `img` with blocks of `bin` pixels a side (None
/// when it can).
pub fn cannot_bin(img: &SpectrumImage, bin_side: usize) -> Option<&'static str> {
    if img.shape.is_none() {
        Some("the data have no 2-D scan shape to bin")
    } else if bin(img, bin_side).is_none() {
        Some("the scan is too small to bin into 4x4 blocks or more")
    } else {
        None
    }
}

/// The image summed over `b`×`b` pixel blocks (partial blocks at the edges included), with its
/// shape; None without a scan shape, for b = 1, or when the result would be under 4×4 (the fit
/// then runs at full resolution).
pub fn bin(img: &SpectrumImage, b: usize) -> Option<(SpectrumImage, usize, usize)> {
    let (rows, cols) = img.shape?;
    let (br, bc) = (rows.div_ceil(b), cols.div_ceil(b));
    if b < 2 || br < 4 || bc < 4 {
        return None;
    }
    let l = img.channels;
    let mut dense = vec![0.0; br * bc * l];
    for px in 0..img.pixels {
        let q = (px / cols / b) * bc + (px % cols) / b;
        for i in img.indptr[px]..img.indptr[px + 1] {
            dense[q * l + img.indices[i] as usize] += img.values[i];
        }
    }
    SpectrumImage::from_dense("binned image", &dense, br * bc, l, Some((br, bc)))
        .ok()
        .map(|s| (s, br, bc))
}
