//! The streaming readers: a `.npy` or Ripple `.raw` file read in slabs straight into the sparse
//! counts gives the same counts as a whole read, whatever the slab size; a file cut short is
//! refused by name; and a file whose non-zero counts outgrow the memory plan (`--max-memory`)
//! is refused before they are allocated.

use edxs::io::counts::SpectrumImage;
use edxs::io::npy;
use edxs::io::ripple::{self, DataType, RecordBy, RippleHeader};
use edxs_suite::tempdir;
use std::path::Path;
use std::process::Command;

/// A little-endian u16 `.npy` (format 1.0) of shape `dims` holding `data`, written by hand
/// so that the reader is checked against bytes it did not write.
fn write_u16_npy(path: &Path, dims: &[usize], data: &[u16]) {
    let shape: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
    let mut dict = format!(
        "{{'descr': '<u2', 'fortran_order': False, 'shape': ({},), }}",
        shape.join(", ")
    );
    // Magic (6) + version (2) + length (2) + dict + '\n' padded to a multiple of 64.
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    for v in data {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// Counts with zeros, runs of zeros longer than 8 and values up to 40 000.
fn counts(n: usize) -> Vec<u16> {
    (0..n)
        .map(|i| match (i * 7919) % 13 {
            0..=6 => 0,
            7 => 40_000,
            r => (r * i % 97) as u16,
        })
        .collect()
}

fn same(a: &SpectrumImage, b: &SpectrumImage) {
    assert_eq!(
        (a.channels, a.pixels, a.shape),
        (b.channels, b.pixels, b.shape)
    );
    assert_eq!(a.indptr, b.indptr);
    assert_eq!(a.indices, b.indices);
    assert_eq!(a.values, b.values);
}

#[test]
fn npy_slabs_of_any_size_give_the_whole_read() {
    let dir = tempdir("stream-npy");
    let (rows, cols, l) = (5, 7, 37);
    let data = counts(rows * cols * l);
    let path = dir.join("si.npy");
    write_u16_npy(&path, &[rows, cols, l], &data);
    let (dims, whole) = npy::read_f64(&path).unwrap();
    assert_eq!(dims, vec![rows, cols, l]);
    let reference =
        SpectrumImage::from_dense("whole", &whole, rows * cols, l, Some((rows, cols))).unwrap();
    assert!(reference.values.len() > 100 && reference.values.len() < whole.len());
    // Slabs smaller than a row (one row each), of a few rows with a short last slab, of
    // every row at once, and larger than the file.
    for slab in [1, l, 3 * l + 5, rows * cols * l, usize::MAX / 2] {
        let mut got = Vec::new();
        let shape = npy::stream_rows_in_slabs(
            &path,
            slab,
            |d| {
                assert_eq!(d, [rows, cols, l]);
                Ok(())
            },
            |row| {
                got.extend_from_slice(row);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(shape, Some(vec![rows, cols, l]), "slab {slab}");
        assert_eq!(got, whole, "slab {slab}");
    }
    same(&SpectrumImage::read_npy(&path, None).unwrap(), &reference);
}

#[test]
fn ripple_slabs_of_any_size_give_the_whole_read_in_both_layouts() {
    let dir = tempdir("stream-rpl");
    let (h, w, d) = (4, 6, 29);
    let data: Vec<f64> = counts(h * w * d).into_iter().map(f64::from).collect();
    for layout in [RecordBy::Vector, RecordBy::Image] {
        let mut hdr = RippleHeader::new(h, w, d, DataType::U16);
        hdr.record_by = layout;
        hdr.offset = 12;
        let rpl = dir.join(format!("si-{layout:?}.rpl"));
        ripple::write(&rpl, &hdr, &data).unwrap();
        let (_, whole) = ripple::read(&rpl).unwrap();
        assert_eq!(whole, data);
        let reference = SpectrumImage::from_dense("whole", &whole, h * w, d, Some((h, w))).unwrap();
        for slab in [1, d, 5 * d + 3, h * w * d, usize::MAX / 2] {
            let (_, got) = ripple::read_counts(&rpl, slab).unwrap();
            same(&got, &reference);
        }
    }
}

#[test]
fn files_cut_short_are_refused_by_name() {
    let dir = tempdir("stream-short");
    let (rows, cols, l) = (3, 4, 16);
    let path = dir.join("short.npy");
    write_u16_npy(&path, &[rows, cols, l], &counts(rows * cols * l));
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
    let e = format!("{:#}", SpectrumImage::read_npy(&path, None).unwrap_err());
    assert!(e.contains("short.npy") && e.contains("truncated"), "{e}");

    let mut hdr = RippleHeader::new(rows, cols, l, DataType::U16);
    hdr.record_by = RecordBy::Image;
    let rpl = dir.join("short.rpl");
    let data: Vec<f64> = counts(rows * cols * l).into_iter().map(f64::from).collect();
    ripple::write(&rpl, &hdr, &data).unwrap();
    let raw = rpl.with_extension("raw");
    let bytes = std::fs::read(&raw).unwrap();
    std::fs::write(&raw, &bytes[..bytes.len() - 2]).unwrap();
    let e = format!("{:#}", ripple::read_counts(&rpl, 7).unwrap_err());
    assert!(e.contains("short.raw") && e.contains("truncated"), "{e}");
}

#[test]
fn non_zero_counts_beyond_the_memory_plan_are_refused_before_they_are_allocated() {
    let dir = tempdir("stream-plan");
    // 128×128 pixels × 256 channels, every count non-zero: 4.2 M non-zeros, 50 MB as sparse
    // counts, while a slab (1 M values, 10 MB) and the pixel offsets fit in 20 MB.
    let (rows, cols, l) = (128, 128, 256);
    let path = dir.join("dense.npy");
    write_u16_npy(&path, &[rows, cols, l], &vec![3u16; rows * cols * l]);
    let out = dir.join("out");
    let run = |budget: &str| {
        Command::new(env!("CARGO_BIN_EXE_edxs"))
            .args(["--max-memory", budget, "decompose"])
            .arg(&path)
            .args(["--elements", "Fe,O", "--offset", "0.3", "--scale", "0.01"])
            .args(["-k", "2", "--max-iter", "1", "--out"])
            .arg(&out)
            .output()
            .unwrap()
    };
    let o = run("20M");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("dense.npy")
            && err.contains("non-zero counts")
            && err.contains("available")
            && err.contains("--max-memory"),
        "{err}"
    );
    assert!(!out.exists(), "nothing written on a refusal");
    // The same file within a budget it fits in is read (and decomposed).
    let o = run("2G");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
