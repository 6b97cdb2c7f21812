//! The pixels the spectra stage scores its candidates on: every pixel of scans up to
//! [`SCORE_PIXELS`], an even grid of them on larger ones.
//!
//! A candidate's score is its full-resolution maps objective with the binned fits' light log
//! penalty and no Laplacian (λ = 0), so pixels do not interact and the objective is a sum of
//! per-pixel terms: the same pixels summed for every candidate rank them as all pixels would,
//! up to the sampling of the scene, at 1/16 of the cost on a 512² scan (1/64 on 1024²).

use crate::io::counts::SpectrumImage;

/// Pixels at most that candidates are scored on (the paper's 128² scan: its choice is made on
/// every pixel, as before the grid existed).
pub const SCORE_PIXELS: usize = 128 * 128;

/// Every `s`-th pixel of every `s`-th row (the middle one of each s×s block), `s` the smallest
/// stride that leaves at most [`SCORE_PIXELS`]; None when the scan has no shape or is already
/// that small, and the candidates are scored on every pixel.
pub(super) fn scoring_pixels(img: &SpectrumImage) -> Option<SpectrumImage> {
    let (rows, cols) = img.shape?;
    if img.pixels <= SCORE_PIXELS {
        return None;
    }
    let mut s = 2;
    while rows.div_ceil(s) * cols.div_ceil(s) > SCORE_PIXELS {
        s += 1;
    }
    let pick = |n: usize| (0..n.div_ceil(s)).map(move |i| (i * s + s / 2).min(n - 1));
    let (sr, sc) = (rows.div_ceil(s), cols.div_ceil(s));
    let mut indptr = Vec::with_capacity(sr * sc + 1);
    indptr.push(0);
    let (mut indices, mut values) = (Vec::new(), Vec::new());
    for r in pick(rows) {
        for c in pick(cols) {
            let px = r * cols + c;
            let span = img.indptr[px]..img.indptr[px + 1];
            indices.extend_from_slice(&img.indices[span.clone()]);
            values.extend_from_slice(&img.values[span]);
            indptr.push(indices.len());
        }
    }
    Some(SpectrumImage {
        channels: img.channels,
        pixels: sr * sc,
        shape: Some((sr, sc)),
        indptr,
        indices,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(rows: usize, cols: usize) -> SpectrumImage {
        // Pixel p holds p + 1 counts in channel p % 3.
        let p = rows * cols;
        SpectrumImage {
            channels: 3,
            pixels: p,
            shape: Some((rows, cols)),
            indptr: (0..=p).collect(),
            indices: (0..p).map(|i| (i % 3) as u32).collect(),
            values: (0..p).map(|i| (i + 1) as f64).collect(),
        }
    }

    #[test]
    fn small_scans_are_scored_on_every_pixel() {
        assert!(scoring_pixels(&image(128, 128)).is_none());
        assert!(scoring_pixels(&image(100, 160)).is_none());
    }

    #[test]
    fn large_scans_are_scored_on_a_grid_of_their_own_pixels() {
        let img = image(300, 260);
        let s = scoring_pixels(&img).expect("a grid");
        assert!(s.pixels <= SCORE_PIXELS);
        // 300x260 needs stride 3: 100x87 pixels, centres at rows 1, 4, ... and cols 1, 4, ...
        assert_eq!(s.shape, Some((100, 87)));
        assert_eq!(s.pixels, 100 * 87);
        let (r, c) = (7, 11);
        let px = (r * 3 + 1) * 260 + c * 3 + 1;
        let q = r * 87 + c;
        assert_eq!(s.values[s.indptr[q]..s.indptr[q + 1]], [(px + 1) as f64]);
        assert_eq!(s.indices[s.indptr[q]..s.indptr[q + 1]], [(px % 3) as u32]);
        s.as_ref().validate().expect("a valid image");
    }
}
