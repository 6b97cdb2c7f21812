//! Helpers shared by the tests and benches of the workspace (the root suite and `edxs`'s own):
//! fixture loading, tolerant comparison, running the `edxs` program in a fresh folder, and the
//! visible skip of a test whose shared data are missing.
//!
//! A test's folder ([`tempdir`]) is removed when the test ends, passed or failed; run with
//! `EDXS_KEEP_TEST_DIRS=1` to keep the folders for debugging (a failing test prints its own).

#![warn(missing_docs)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Root of the committed fixtures (`tests/fixtures`).
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/support has a parent")
        .join("fixtures")
}

/// The `edxs` program cargo built for this test run: beside the `deps` folder that holds the
/// test binary (cargo builds a package's binaries before its integration tests).
pub fn edxs_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut dir = exe
        .parent()
        .expect("the test binary's folder")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join(format!("edxs{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run the tests of the `edxs` package (cargo test -p edxs), which build it",
        bin.display()
    );
    bin
}

/// Runs `edxs` with `args` and returns its exit status and output.
pub fn edxs(args: &[&str]) -> Output {
    Command::new(edxs_bin())
        .args(args)
        .output()
        .expect("running edxs")
}

/// Runs `edxs` with `args`, which must fail with exit code 1 and a one-line error containing
/// `want`; returns the output for further checks.
pub fn edxs_fails(args: &[&str], want: &str) -> Output {
    let o = edxs(args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(
        stderr.contains(want),
        "{args:?}: expected '{want}' in: {stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    o
}

/// Environment variable that keeps the tests' folders (any value but empty or `0`), for
/// looking at a failed test's files; each kept folder is printed when its test panics.
pub const KEEP_TEST_DIRS: &str = "EDXS_KEEP_TEST_DIRS";

/// A test's own folder, removed with everything in it when the guard drops, which also
/// happens while a failing test unwinds, so that test runs do not fill the temporary
/// folder (gigabytes of simulated maps and decompositions). Set [`KEEP_TEST_DIRS`] to keep
/// them. Derefs to [`Path`], so `dir.join(..)`, `dir.display()` and `&dir` work as on a path.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// The folder's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let keep = std::env::var_os(KEEP_TEST_DIRS).is_some_and(|v| !v.is_empty() && v != "0");
        if keep {
            if std::thread::panicking() {
                // The harness captures println!; stderr written directly is shown.
                let _ = writeln!(
                    std::io::stderr(),
                    "{KEEP_TEST_DIRS} is set: kept {}",
                    self.path.display()
                );
            }
            return;
        }
        // An error here (a child process still writing, say) must not turn a passing test
        // into a failure, nor a panic during unwinding into an abort.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A fresh, empty folder for one test: `<tmp>/edxs-test-<name>-<pid>` (one process per test
/// file, so `name` needs to be unique within the file only), removed when the returned guard
/// drops unless [`KEEP_TEST_DIRS`] is set.
pub fn tempdir(name: &str) -> TempDir {
    let d = std::env::temp_dir().join(format!("edxs-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("creating {}: {e}", d.display()));
    TempDir { path: d }
}

/// Largest error of `got` against `want`, each entry relative to itself (floored at 1e-12 of
/// the largest `want`, so that zeros do not divide).
pub fn rel_err(got: &[f64], want: &[f64]) -> f64 {
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / w.abs().max(1e-12 * scale))
        .fold(0.0, f64::max)
}

/// Largest error of `got` against `want`, relative to the largest `|want|` (one scale for
/// every entry, so that near-zero entries do not dominate).
pub fn err_rel_to_max(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .map(|(g, w)| (g - w).abs() / scale)
        .fold(0.0, f64::max)
}

/// `path` when it exists. Otherwise a panic when the environment variable `required_by` is set
/// (CI sets it where the data must be there), else None after printing
/// "SKIP: <test>: <reason>" to the process's stderr, which the test harness does not capture,
/// so that a missing file never looks like a pass.
pub fn shared_or_skip(path: &Path, required_by: &str, test: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path.to_path_buf());
    }
    if std::env::var_os(required_by).is_some() {
        panic!("{required_by} is set but {} is missing", path.display());
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIP: {test}: {} is missing (set {required_by}=1 to make this an error)",
        path.display()
    );
    None
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

/// numpy's text for `shape`: `(3,)` for one axis, `(2, 3)` for more.
pub fn npy_shape(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    }
}

/// A `.npy` version 1.0 file with a hand-written header and `body`, so that tests can feed the
/// readers any dtype, memory order or malformed header text without trusting edxs's own writer:
/// `descr` and `shape` go into the header as written (`"'<f8'"`, `"(2, 3)"`; see [`npy_shape`]).
pub fn npy_v1(descr: &str, fortran_order: bool, shape: &str, body: &[u8]) -> Vec<u8> {
    let fortran = if fortran_order { "True" } else { "False" };
    let mut header =
        format!("{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}");
    // The magic, version and length take 10 bytes; the header ends in a newline and the data
    // start on a 64-byte boundary.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body);
    out
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

/// A model configuration as the fixture generator writes it (`config.json`).
#[derive(Debug, Clone)]
pub struct FixtureModel {
    /// Modelled elements.
    pub elements: Vec<edxs_core::Element>,
    /// Ignored elements.
    pub ignored: Vec<edxs_core::Element>,
    /// Split elements and cut energies.
    pub split: Vec<(edxs_core::Element, f64)>,
    /// Beam energy.
    pub e0: f64,
    /// Axis.
    pub axis: edxs_core::EnergyAxis,
    /// FWHM slope.
    pub width_slope: f64,
    /// FWHM intercept.
    pub width_intercept: f64,
    /// Absorption.
    pub absorption: Option<edxs_core::Absorption>,
    /// Bremsstrahlung columns.
    pub bremsstrahlung: bool,
    /// espm's column names.
    pub columns: Vec<String>,
    /// espm's simplex rows.
    pub simplex_rows: Vec<usize>,
}

impl FixtureModel {
    /// Parses `config.json` of a fixture folder.
    pub fn load(dir: &Path) -> Self {
        let c = read_json(&dir.join("config.json"));
        let els = |key: &str| -> Vec<edxs_core::Element> {
            c[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| edxs_core::Element::parse(s.as_str().unwrap()).unwrap())
                .collect()
        };
        let absorption = if c["absorption"].is_null() {
            None
        } else {
            let a = &c["absorption"];
            Some(edxs_core::Absorption {
                thickness: a["thickness"].as_f64().unwrap(),
                density: a["density"].as_f64(),
                toa: a["toa"].as_f64().unwrap(),
                atomic_fraction: a["atomic_fraction"].as_bool().unwrap(),
            })
        };
        FixtureModel {
            elements: els("elements"),
            ignored: els("ignored"),
            split: c["split"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        edxs_core::Element::parse(p[0].as_str().unwrap()).unwrap(),
                        p[1].as_f64().unwrap(),
                    )
                })
                .collect(),
            e0: c["e0"].as_f64().unwrap(),
            axis: edxs_core::EnergyAxis {
                offset: c["offset"].as_f64().unwrap(),
                scale: c["scale"].as_f64().unwrap(),
                channels: c["channels"].as_u64().unwrap() as usize,
                compat: edxs_core::Compat::Espm,
            },
            width_slope: c["width_slope"].as_f64().unwrap(),
            width_intercept: c["width_intercept"].as_f64().unwrap(),
            absorption,
            bremsstrahlung: c["bremsstrahlung"].as_bool().unwrap(),
            columns: c["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect(),
            simplex_rows: c["simplex_rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect(),
        }
    }

    /// The core parameters.
    pub fn params(&self) -> edxs_core::ModelParams<'_> {
        edxs_core::ModelParams {
            elements: &self.elements,
            split: &self.split,
            ignored: &self.ignored,
            e0: self.e0,
            axis: self.axis,
            width_slope: self.width_slope,
            width_intercept: self.width_intercept,
            absorption: self.absorption,
            bremsstrahlung: self.bremsstrahlung,
        }
    }

    /// The command-line model options that describe the same configuration.
    pub fn cli_args(&self) -> Vec<String> {
        let list =
            |v: &[edxs_core::Element]| v.iter().map(|e| e.symbol()).collect::<Vec<_>>().join(",");
        let mut a = vec![
            "--elements".into(),
            list(&self.elements),
            "--e0".into(),
            self.e0.to_string(),
            "--offset".into(),
            self.axis.offset.to_string(),
            "--scale".into(),
            self.axis.scale.to_string(),
            "--channels".into(),
            self.axis.channels.to_string(),
            "--width-slope".into(),
            self.width_slope.to_string(),
            "--width-intercept".into(),
            self.width_intercept.to_string(),
        ];
        match self.absorption {
            None => a.push("--no-absorption".into()),
            Some(abs) => {
                a.extend(["--thickness".into(), abs.thickness.to_string()]);
                a.extend(["--toa".into(), abs.toa.to_string()]);
                if let Some(d) = abs.density {
                    a.extend(["--density".into(), d.to_string()]);
                }
                if abs.atomic_fraction {
                    a.push("--atomic-fraction".into());
                }
            }
        }
        if !self.ignored.is_empty() {
            a.extend(["--ignored".into(), list(&self.ignored)]);
        }
        for (el, cut) in &self.split {
            a.extend(["--split".into(), format!("{}={cut}", el.symbol())]);
        }
        if !self.bremsstrahlung {
            a.push("--no-bremsstrahlung".into());
        }
        a
    }
}

/// The model fixture folders (`tests/fixtures/model/*`), sorted.
pub fn model_fixture_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures_dir().join("model"))
        .expect("tests/fixtures/model")
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("config.json").exists())
        .collect();
    dirs.sort();
    dirs
}

/// A paper-like synthetic spectrum image for benchmarks and scaling tests: the paper's model
/// (11 elements, Cu from the grid as 11 line columns, bremsstrahlung; 1980 channels; unlike
/// espm's paper run Cu is not also an element column, which would make W unidentifiable), three
/// phases, two spherical particles in a matrix, Poisson counts with `counts_per_pixel` on
/// average.
pub struct Synthetic {
    /// G, L×M row-major.
    pub g: Vec<f64>,
    /// Simplex rows of W.
    pub simplex_rows: Vec<usize>,
    /// Channels L.
    pub l: usize,
    /// Columns M.
    pub m: usize,
    /// Scan rows.
    pub rows: usize,
    /// Scan columns.
    pub cols: usize,
    /// Dense counts, pixel-major P×L.
    pub dense: Vec<f64>,
    /// Sparse counts: offsets.
    pub indptr: Vec<usize>,
    /// Sparse counts: channels.
    pub indices: Vec<u32>,
    /// Sparse counts: values.
    pub values: Vec<f64>,
    /// True W (M×3).
    pub w_true: Vec<f64>,
    /// True H (3×P).
    pub h_true: Vec<f64>,
}

impl Synthetic {
    /// The counts as the core's sparse view (P = rows × cols pixels).
    pub fn sparse_counts(&self) -> edxs_core::solver::Counts<'_, f64> {
        edxs_core::solver::Counts::Sparse {
            channels: self.l,
            pixels: self.rows * self.cols,
            indptr: &self.indptr,
            indices: &self.indices,
            values: &self.values,
        }
    }

    /// The counts as the core's dense view (pixel-major P×L).
    pub fn dense_counts(&self) -> edxs_core::solver::Counts<'_, f64> {
        edxs_core::solver::Counts::Dense {
            channels: self.l,
            pixels: self.rows * self.cols,
            data: &self.dense,
        }
    }
}

/// Builds the paper-like [`Synthetic`] image of `rows`×`cols` pixels with a fixed seed.
pub fn synthetic(rows: usize, cols: usize, counts_per_pixel: f64, seed: u64) -> Synthetic {
    // Brg, Fp, CaPv compositions (spec §3.7) on the element rows.
    let comps = [
        vec![
            0.436, 0.031, 0.219, 0.035, 0.245, 0.024, 0.01, 0.0, 0.0, 0.0, 0.0,
        ],
        vec![0.374, 0.0, 0.0, 0.104, 0.522, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        vec![
            0.572, 0.188, 0.173, 0.018, 0.020, 0.010, 0.0, 0.004, 0.007, 0.006, 0.006,
        ],
    ];
    let elements = [
        "O", "Ca", "Si", "Fe", "Mg", "Al", "Hf", "Ti", "Sm", "Lu", "Nd",
    ];
    synthetic_from(
        rows,
        cols,
        counts_per_pixel,
        seed,
        &Sample {
            elements: &elements,
            ignored: &["Cu"],
            comps: &comps,
            maps: Maps::Particles,
        },
    )
}

/// The abundance maps of a [`Synthetic`] image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Maps {
    /// A matrix with two spherical particles of at most 0.5 (the paper's geometry).
    Particles,
    /// Three vertical bands of pure phases with short linear blends between them, so that W is
    /// well determined.
    Bands,
}

/// What a [`Synthetic`] image is made of, apart from its scan and dose: the same sample can
/// then be drawn at several sizes, doses and seeds.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// Elements with a column of their own in G.
    pub elements: &'a [&'a str],
    /// Elements modelled line by line at 0.005 in every phase (espm's `ignored_elements`).
    pub ignored: &'a [&'a str],
    /// One composition per phase over `elements` (K = 3).
    pub comps: &'a [Vec<f64>; 3],
    /// The abundance maps.
    pub maps: Maps,
}

/// A [`Synthetic`] image of `sample` (paper axis and absorption) on a `rows`×`cols` scan.
pub fn synthetic_from(
    rows: usize,
    cols: usize,
    counts_per_pixel: f64,
    seed: u64,
    sample: &Sample<'_>,
) -> Synthetic {
    use edxs_core::{Absorption, EdxsModel, Element, ModelParams};
    let Sample {
        elements,
        ignored,
        comps,
        maps,
    } = *sample;
    let el = |s: &[&str]| {
        s.iter()
            .map(|x| Element::parse(x).unwrap())
            .collect::<Vec<_>>()
    };
    let elements = el(elements);
    let cu = el(ignored);
    let mut params = ModelParams::new(&elements);
    params.ignored = &cu;
    params.axis.offset = 0.3;
    params.absorption = Some(Absorption {
        thickness: 1e-5,
        density: Some(4.5),
        toa: 35.0,
        atomic_fraction: false,
    });
    let model = EdxsModel::new(params).unwrap();
    let (l, m) = (model.n_channels(), model.n_columns());
    let mut g = vec![0.0; model.g_len()];
    let mut s = vec![0.0; model.scratch_len()];
    model.build_g(&mut g, &mut s).unwrap();
    let k = 3;
    let mut w_true = vec![0.0; m * k];
    for (c, comp) in comps.iter().enumerate() {
        for (j, v) in comp.iter().enumerate() {
            w_true[j * k + c] = *v;
        }
        // Cu from the grid, line by line, in every phase.
        for j in comp.len()..m - 2 {
            w_true[j * k + c] = 0.005;
        }
        w_true[(m - 2) * k + c] = 0.3;
        w_true[(m - 1) * k + c] = 0.3;
    }
    let p = rows * cols;
    let mut h_true = vec![0.0; k * p];
    match maps {
        Maps::Particles => {
            let centres = [(0.73, 0.39), (0.54, 0.62)];
            let radius = 0.2 * rows.min(cols) as f64;
            for px in 0..p {
                let (r, c) = ((px / cols) as f64, (px % cols) as f64);
                let mut rest = 1.0;
                for (i, (cr, cc)) in centres.iter().enumerate() {
                    let (dr, dc) = (r - cr * rows as f64, c - cc * cols as f64);
                    let q = (radius * radius - dr * dr - dc * dc).max(0.0);
                    let v = 0.5 * q.sqrt() / radius;
                    h_true[(i + 1) * p + px] = v;
                    rest -= v;
                }
                h_true[px] = rest.max(0.0);
            }
        }
        Maps::Bands => {
            for px in 0..p {
                // Position across the bands in units of a band; blend over the last 20 %.
                let x = (px % cols) as f64 * k as f64 / cols as f64;
                let band = (x.floor() as usize).min(k - 1);
                let t = ((x - band as f64 - 0.8) / 0.2).clamp(0.0, 1.0);
                h_true[band * p + px] = 1.0 - t;
                if band + 1 < k {
                    h_true[(band + 1) * p + px] = t;
                } else {
                    h_true[band * p + px] = 1.0;
                }
            }
        }
    }
    // Expected spectra D = G·W, each normalised to unit sum.
    let mut d = vec![0.0; l * k];
    for li in 0..l {
        for j in 0..m {
            for c in 0..k {
                d[li * k + c] += g[li * m + j] * w_true[j * k + c];
            }
        }
    }
    for c in 0..k {
        let s: f64 = (0..l).map(|li| d[li * k + c]).sum();
        (0..l).for_each(|li| d[li * k + c] /= s);
    }
    let mut rng = edxs_core::rng::Rng::new(seed);
    let mut poisson = |lam: f64| -> f64 {
        if lam <= 0.0 {
            return 0.0;
        }
        if lam > 30.0 {
            return (lam + lam.sqrt() * rng.normal()).round().max(0.0);
        }
        let (limit, mut n, mut prod) = ((-lam).exp(), 0.0, rng.uniform());
        while prod > limit {
            n += 1.0;
            prod *= rng.uniform();
        }
        n
    };
    let mut dense = vec![0.0; p * l];
    let (mut indptr, mut indices, mut values) = (vec![0usize], vec![], vec![]);
    for px in 0..p {
        for li in 0..l {
            let lam: f64 = (0..k)
                .map(|c| d[li * k + c] * h_true[c * p + px])
                .sum::<f64>()
                * counts_per_pixel;
            let y = poisson(lam);
            dense[px * l + li] = y;
            if y != 0.0 {
                indices.push(li as u32);
                values.push(y);
            }
        }
        indptr.push(indices.len());
    }
    Synthetic {
        g,
        simplex_rows: model.simplex_rows().collect(),
        l,
        m,
        rows,
        cols,
        dense,
        indptr,
        indices,
        values,
        w_true,
        h_true,
    }
}
