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
