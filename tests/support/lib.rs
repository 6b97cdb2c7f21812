//! Helpers shared by the root tests and benches: fixture loading and tolerant comparison.

use std::path::{Path, PathBuf};

/// Root of the committed fixtures (`tests/fixtures`).
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

/// Reads a float64 `.npy` file, returning its shape and data in C order.
pub fn read_npy_f64(path: &Path) -> (Vec<u64>, Vec<f64>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let shape = npy.shape().to_vec();
    let data: Vec<f64> = npy
        .into_vec()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (shape, data)
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Largest error of `got` against `want` (row-major rows×cols), each entry relative to the
/// maximum absolute value of its column in `want`.
pub fn max_rel_err_per_column(got: &[f64], want: &[f64], cols: usize) -> (f64, usize) {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let mut col_max = vec![0.0f64; cols];
    for row in want.chunks_exact(cols) {
        for (m, v) in col_max.iter_mut().zip(row) {
            *m = m.max(v.abs());
        }
    }
    let mut worst = (0.0f64, 0usize);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let scale = col_max[i % cols].max(f64::MIN_POSITIVE);
        let e = if g.is_finite() {
            (g - w).abs() / scale
        } else {
            f64::INFINITY
        };
        if e > worst.0 || e.is_nan() {
            worst = (e, i);
        }
    }
    worst
}
