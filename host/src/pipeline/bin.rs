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

/// Binned pixels a side at most that [`auto_bin_for`] aims at: the spectra stage fits ~42
/// numbers (W), which 64² blocks pin as well as more, and its binned fits cost in proportion
/// to their pixels (at 512² pixels, 2×2 blocks made the binned fits 16× those of a 128² map).
pub const MAX_BINNED_SIDE: usize = 64;

/// The block side for a `rows`×`cols` scan at `counts_per_pixel`: [`auto_bin`], raised on
/// large scans so that the binned image is at most [`MAX_BINNED_SIDE`] blocks a side. Scans
/// of up to 128² pixels get [`auto_bin`]'s side unchanged.
pub fn auto_bin_for(counts_per_pixel: f64, shape: Option<(usize, usize)>) -> usize {
    let b = auto_bin(counts_per_pixel);
    match shape {
        Some((rows, cols)) => b.max(rows.max(cols).div_ceil(MAX_BINNED_SIDE)),
        None => b,
    }
}

/// Why the two-stage pipeline cannot run on `img` with blocks of `bin` pixels a side (None
/// when it can).
pub fn cannot_bin(img: &SpectrumImage, bin_side: usize) -> Option<&'static str> {
    match img.shape {
        None => Some("the data have no 2-D scan shape to bin"),
        Some(shape) if binned_shape(shape, bin_side).is_none() => {
            Some("the scan is too small to bin into 4x4 blocks or more")
        }
        Some(_) => None,
    }
}

/// The shape of a `rows`×`cols` scan summed over `b`×`b` blocks, or None when [`bin`] does
/// not bin (b < 2, or fewer than 4×4 blocks).
fn binned_shape((rows, cols): (usize, usize), b: usize) -> Option<(usize, usize)> {
    let (br, bc) = (rows.div_ceil(b.max(1)), cols.div_ceil(b.max(1)));
    (b >= 2 && br >= 4 && bc >= 4).then_some((br, bc))
}

/// The image summed over `b`×`b` pixel blocks (partial blocks at the edges included), with its
/// shape; None without a scan shape, for b = 1, or when the result would be under 4×4 (the fit
/// then runs at full resolution).
///
/// One row of blocks is summed at a time into a dense `cols/b × L` buffer and handed to the
/// sparse builder: a whole dense binned image (1 GB for 512² pixels in 2×2 blocks × 1980
/// channels) never exists, and each sum runs in the same order as over a whole buffer.
pub fn bin(img: &SpectrumImage, b: usize) -> Option<(SpectrumImage, usize, usize)> {
    let (rows, cols) = img.shape?;
    let (br, bc) = binned_shape((rows, cols), b)?;
    let l = img.channels;
    let mut dense = vec![0.0; bc * l];
    SpectrumImage::from_rows("binned image", br * bc, l, Some((br, bc)), |push| {
        for block_row in 0..br {
            dense.iter_mut().for_each(|v| *v = 0.0);
            let first = block_row * b * cols;
            let last = ((block_row + 1) * b).min(rows) * cols;
            for px in first..last {
                let q = (px % cols) / b;
                for i in img.indptr[px]..img.indptr[px + 1] {
                    dense[q * l + img.indices[i] as usize] += img.values[i];
                }
            }
            for row in dense.chunks_exact(l) {
                push(row)?;
            }
        }
        Ok(())
    })
    .ok()
    .map(|s| (s, br, bc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_up_to_128_squared_keep_the_counts_rule_and_larger_ones_bin_to_64_blocks() {
        for n in [18.0, 100.0, 293.0] {
            for side in [16, 64, 100, 128] {
                assert_eq!(auto_bin_for(n, Some((side, side))), auto_bin(n));
            }
            assert_eq!(auto_bin_for(n, None), auto_bin(n));
        }
        assert_eq!(auto_bin_for(100.0, Some((512, 512))), 8);
        assert_eq!(auto_bin_for(100.0, Some((1024, 1024))), 16);
        assert_eq!(auto_bin_for(100.0, Some((200, 1000))), 16);
        // Few counts still ask for bigger blocks than the size cap.
        assert_eq!(auto_bin_for(1.0, Some((256, 256))), 16);
    }

    #[test]
    fn binning_by_block_rows_sums_as_a_whole_dense_buffer_does() {
        // 11×13 pixels × 5 channels in 3×3 blocks: partial blocks on both edges.
        let (rows, cols, l, b) = (11, 13, 5, 3);
        let dense: Vec<f64> = (0..rows * cols * l)
            .map(|i| ((i * 37) % 7) as f64 * 0.3)
            .collect();
        let img =
            SpectrumImage::from_dense("t", &dense, rows * cols, l, Some((rows, cols))).unwrap();
        let (got, br, bc) = bin(&img, b).unwrap();
        assert_eq!((br, bc), (4, 5));
        let mut want = vec![0.0; br * bc * l];
        for px in 0..rows * cols {
            let q = (px / cols / b) * bc + (px % cols) / b;
            for c in 0..l {
                want[q * l + c] += dense[px * l + c];
            }
        }
        let want = SpectrumImage::from_dense("w", &want, br * bc, l, Some((br, bc))).unwrap();
        assert_eq!(got.indptr, want.indptr);
        assert_eq!(got.indices, want.indices);
        assert_eq!(got.values, want.values);
        assert_eq!(got.shape, Some((4, 5)));
        assert!(bin(&img, 1).is_none() && bin(&img, 4).is_none());
        assert_eq!(cannot_bin(&img, 3), None);
        assert!(cannot_bin(&img, 4).is_some());
    }
}
