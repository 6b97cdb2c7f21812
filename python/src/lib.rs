//! Python bindings of edxs: the extension module `edxs._edxs` behind the pure-Python package
//! `edxs` (estimator, HyperSpy glue). Arrays cross as bytes in native byte order (numpy's
//! `tobytes()` / `frombuffer`), which keeps the module on the stable ABI (abi3) without a numpy
//! C-API dependency; the Python side does the dtype and layout conversions.

mod adapter;

use adapter::{GSpec, Init, Request};
use edxs::io::counts::SpectrumImage;
use edxs::model_options::{FileMeta, ModelOptions, ModelSpec};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyDict};
use std::panic::{catch_unwind, AssertUnwindSafe};

fn value_error(e: anyhow::Error) -> PyErr {
    PyValueError::new_err(format!("{e:#}"))
}

/// Runs `f` with the GIL released; a panic (a bug, never the plan) becomes a RuntimeError
/// instead of aborting the interpreter.
fn detached<T: Send>(py: Python<'_>, f: impl FnOnce() -> anyhow::Result<T> + Send) -> PyResult<T> {
    py.detach(|| catch_unwind(AssertUnwindSafe(f)))
        .map_err(|p| {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            PyRuntimeError::new_err(format!("edxs internal error (please report): {msg}"))
        })?
        .map_err(value_error)
}

fn f64s(b: &[u8], what: &str) -> PyResult<Vec<f64>> {
    if !b.chunks_exact(8).remainder().is_empty() {
        return Err(PyValueError::new_err(format!(
            "{what}: {} bytes is not a whole number of float64",
            b.len()
        )));
    }
    Ok(b.chunks_exact(8)
        .map(|c| f64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect())
}

fn bytes_of(py: Python<'_>, v: &[f64]) -> Py<PyByteArray> {
    let raw: Vec<u8> = v.iter().flat_map(|x| x.to_ne_bytes()).collect();
    PyByteArray::new(py, &raw).unbind()
}

/// One element of one phase: (symbol, at.%, wt.%, counting std % or None where the element
/// explains too few counts for one).
type Share = (String, f64, f64, Option<f64>);

/// An EDXS model (espm's `EDXS` with `build_G`): the energy axis, the elements and the physics
/// from which G is built. Immutable; G is built on request.
#[pyclass(frozen, module = "edxs._edxs")]
struct Model {
    spec: ModelSpec,
}

#[pymethods]
impl Model {
    /// Checks every parameter and builds the model (G is built by `g()`); with `drop_missing`,
    /// elements without a line on the axis are dropped (listed in `warnings()`).
    #[new]
    #[pyo3(signature = (elements, e0, offset, scale, channels, width_slope, width_intercept,
        thickness, density, toa, atomic_fraction, ignored, split, bremsstrahlung,
        drop_missing))]
    // Allowed: one argument per Python keyword argument (the espm/scikit-learn API).
    #[allow(clippy::too_many_arguments)]
    fn new(
        elements: Vec<String>,
        e0: f64,
        offset: f64,
        scale: f64,
        channels: usize,
        width_slope: f64,
        width_intercept: f64,
        thickness: f64,
        density: Option<f64>,
        toa: f64,
        atomic_fraction: bool,
        ignored: Vec<String>,
        split: Vec<(String, f64)>,
        bremsstrahlung: bool,
        drop_missing: bool,
    ) -> PyResult<Self> {
        if elements.is_empty() {
            return Err(PyValueError::new_err(
                "elements: at least one element is needed",
            ));
        }
        // A file's element list goes through the CLI's path: elements without a line on the
        // axis are dropped with a warning instead of failing.
        let meta = FileMeta {
            elements: if drop_missing {
                elements.clone()
            } else {
                Vec::new()
            },
            ..FileMeta::default()
        };
        let args = ModelOptions {
            elements: if drop_missing { Vec::new() } else { elements },
            e0: Some(e0),
            offset: Some(offset),
            scale: Some(scale),
            channels: Some(channels),
            width_slope,
            width_intercept,
            thickness: Some(thickness),
            density,
            toa: Some(toa),
            atomic_fraction,
            no_absorption: thickness == 0.0,
            ignored,
            split: split.iter().map(|(e, c)| format!("{e}={c}")).collect(),
            no_bremsstrahlung: !bremsstrahlung,
        };
        let spec = args
            .spec(&meta, None, "signal metadata")
            .map_err(value_error)?;
        spec.model().map_err(value_error)?;
        Ok(Model { spec })
    }

    /// G (L×M, row-major float64 bytes) and its shape.
    fn g(&self, py: Python<'_>) -> PyResult<(Py<PyByteArray>, usize, usize)> {
        let spec = self.spec.clone();
        let (g, l, m) = detached(py, move || {
            let model = spec.model()?;
            let (l, m) = (model.n_channels(), model.n_columns());
            let mut g = vec![0.0; l * m];
            let mut scratch = vec![0.0; model.scratch_len()];
            model
                .build_g(&mut g, &mut scratch)
                .map_err(|e| anyhow::anyhow!("model: {e}"))?;
            Ok((g, l, m))
        })?;
        Ok((bytes_of(py, &g), l, m))
    }

    /// Column names of G (element symbols, split/ignored lines, b0, b1).
    fn columns(&self) -> PyResult<Vec<String>> {
        let model = self.spec.model().map_err(value_error)?;
        Ok(model.columns().map(|c| c.to_string()).collect())
    }

    /// Rows of W on the simplex (the element columns).
    fn simplex_rows(&self) -> PyResult<Vec<usize>> {
        let model = self.spec.model().map_err(value_error)?;
        Ok(model.simplex_rows().collect())
    }

    /// Energy of every channel (keV), as the model computes it.
    fn energies(&self) -> PyResult<Vec<f64>> {
        let model = self.spec.model().map_err(value_error)?;
        Ok((0..model.n_channels()).map(|i| model.energy(i)).collect())
    }

    /// The modelled elements (symbols, in column order).
    fn elements(&self) -> Vec<String> {
        self.spec
            .elements
            .iter()
            .map(|e| e.symbol().to_string())
            .collect()
    }

    /// Notes from building the model (e.g. elements without a line on the axis).
    fn warnings(&self) -> Vec<String> {
        self.spec.warnings.clone()
    }

    /// Per phase, per element: (symbol, at.%, wt.%, counting std % or None), from G, W (M×K),
    /// H (K×P).
    fn quantify(&self, g: &[u8], w: &[u8], h: &[u8], k: usize) -> PyResult<Vec<Vec<Share>>> {
        let model = self.spec.model().map_err(value_error)?;
        let (g, w, h) = (f64s(g, "G")?, f64s(w, "W")?, f64s(h, "H")?);
        let (l, m) = (model.n_channels(), model.n_columns());
        if k == 0 || g.len() != l * m || w.len() != m * k || h.len() % k != 0 {
            return Err(PyValueError::new_err(format!(
                "quantify: G must be {l}x{m} and W {m}x{k} (got {} and {} values)",
                g.len(),
                w.len()
            )));
        }
        Ok(edxs::quant::quantify(&model, &g, &w, &h, k)
            .into_iter()
            .map(|phase| {
                phase
                    .into_iter()
                    .map(|s| (s.element, s.at_percent, s.wt_percent, s.std_percent))
                    .collect()
            })
            .collect())
    }
}

/// Fits counts given per pixel (CSR over pixels: `indptr` u64, `indices` u32 channels,
/// `values` f64) with espm's SmoothNMF parameters; returns a dict of results. `g_kind` is
/// "identity", "array" (with `g_array`, `g_columns`) or "model" (with `model`).
#[pyfunction]
#[pyo3(signature = (indptr, indices, values, channels, pixels, shape, g_kind, model, g_array,
    g_columns, k, mu, lambda_l, epsilon_reg, simplex_w, simplex_h, fixed_w, fixed_h, init,
    w0, h0, seed, max_iter, tol, espm, normalize, g_update, threads, method,
    refine_calibration=true))]
// Allowed: one argument per Python keyword argument (the espm/scikit-learn API).
#[allow(clippy::too_many_arguments)]
fn fit<'py>(
    py: Python<'py>,
    indptr: &[u8],
    indices: &[u8],
    values: &[u8],
    channels: usize,
    pixels: usize,
    shape: Option<(usize, usize)>,
    g_kind: &str,
    model: Option<PyRef<'_, Model>>,
    g_array: Option<&[u8]>,
    g_columns: usize,
    k: usize,
    mu: Option<Vec<f64>>,
    lambda_l: Option<f64>,
    epsilon_reg: Option<f64>,
    simplex_w: bool,
    simplex_h: bool,
    fixed_w: Option<&[u8]>,
    fixed_h: Option<&[u8]>,
    init: Option<&str>,
    w0: Option<&[u8]>,
    h0: Option<&[u8]>,
    seed: u64,
    max_iter: Option<usize>,
    tol: Option<f64>,
    espm: bool,
    normalize: Option<bool>,
    g_update: bool,
    threads: usize,
    method: String,
    refine_calibration: bool,
) -> PyResult<Bound<'py, PyDict>> {
    if !indptr.chunks_exact(8).remainder().is_empty()
        || !indices.chunks_exact(4).remainder().is_empty()
    {
        return Err(PyValueError::new_err("X: malformed sparse buffers"));
    }
    let indptr: Vec<usize> = indptr
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as usize)
        .collect();
    let indices: Vec<u32> = indices
        .chunks_exact(4)
        .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let data = SpectrumImage {
        channels,
        pixels,
        shape,
        indptr,
        indices,
        values: f64s(values, "X")?,
    };
    data.as_ref()
        .validate()
        .map_err(|e| PyValueError::new_err(format!("X: {e:#}")))?;
    let g = match g_kind {
        "identity" => GSpec::Identity,
        "array" => GSpec::Array {
            g: f64s(g_array.unwrap_or_default(), "G")?,
            m: g_columns,
        },
        "model" => match model {
            Some(m) => GSpec::Model(Box::new(m.spec.clone())),
            None => return Err(PyValueError::new_err("G: model missing")),
        },
        other => return Err(PyValueError::new_err(format!("G: unknown kind {other:?}"))),
    };
    let init = match (init, w0, h0) {
        (Some("custom"), Some(w), Some(h)) => Some(Init::Custom {
            w: f64s(w, "W")?,
            h: f64s(h, "H")?,
        }),
        (None, ..) => None,
        (Some("random"), ..) => Some(Init::Random),
        (Some("nndsvd"), ..) => Some(Init::Nndsvd),
        (Some("nndsvda"), ..) => Some(Init::Nndsvda),
        (Some("nndsvdar"), ..) => Some(Init::Nndsvdar),
        (Some(other), ..) => {
            return Err(PyValueError::new_err(format!(
                "init={other:?}: expected 'random', 'nndsvd', 'nndsvda', 'nndsvdar' or W and H"
            )))
        }
    };
    let req = Request {
        k,
        mu,
        lambda_l,
        epsilon_reg,
        simplex_w,
        simplex_h,
        fixed_w: fixed_w.map(|b| f64s(b, "fixed_W")).transpose()?,
        fixed_h: fixed_h.map(|b| f64s(b, "fixed_H")).transpose()?,
        init,
        seed,
        max_iter,
        tol,
        espm,
        normalize,
        g_update,
        refine_calibration,
        threads,
        method,
    };
    let out = detached(py, move || adapter::fit(&g, &data, &req))?;
    let d = PyDict::new(py);
    d.set_item("G", bytes_of(py, &out.g))?;
    d.set_item("W", bytes_of(py, &out.w))?;
    d.set_item("H", bytes_of(py, &out.h))?;
    d.set_item("M", out.m)?;
    d.set_item(
        "history",
        out.history.iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
    )?;
    d.set_item("n_iter", out.iterations)?;
    d.set_item("stop_reason", out.reason)?;
    d.set_item("norm_factor", out.norm_factor)?;
    d.set_item("method", out.method)?;
    let timings = PyDict::new(py);
    for (part, secs) in out.timings {
        timings.set_item(part, secs)?;
    }
    d.set_item("timings", timings)?;
    Ok(d)
}

/// The channels `edxs decompose` keeps of a signal (the CLI's `--energy-range` rules of
/// `edxs::io::crop`: at or below 0 keV, off the detector curve, outside `lo..hi`, and without
/// `lo` a detector noise peak below the lowest modelled line): the first kept channel, how
/// many, and the one-line note (None when nothing was dropped). `summed` is the summed
/// spectrum (float64 bytes), which is all the noise-peak check needs.
#[pyfunction]
#[pyo3(signature = (summed, offset, scale, elements, e0, width_slope, width_intercept, lo, hi))]
// Allowed: one argument per Python keyword argument (the espm/scikit-learn API).
#[allow(clippy::too_many_arguments)]
fn energy_window(
    py: Python<'_>,
    summed: &[u8],
    offset: f64,
    scale: f64,
    elements: Vec<String>,
    e0: f64,
    width_slope: f64,
    width_intercept: f64,
    lo: Option<f64>,
    hi: Option<f64>,
) -> PyResult<(usize, usize, Option<String>)> {
    let sum = f64s(summed, "summed")?;
    let l = sum.len();
    if l == 0 {
        return Err(PyValueError::new_err("signal axis: no channels"));
    }
    let range = edxs::io::crop::EnergyRange::checked(lo, hi)
        .map_err(|e| PyValueError::new_err(format!("energy_range: {e}")))?;
    detached(py, move || {
        let image = SpectrumImage::from_dense("summed spectrum", &sum, 1, l, None)?;
        let mut loaded = edxs::io::loaded::Loaded::bare(image);
        loaded.meta.offset_kev = Some(offset);
        loaded.meta.scale_kev = Some(scale);
        loaded.meta.e0_kev = Some(e0);
        loaded.meta.elements = elements;
        let args = ModelOptions {
            width_slope,
            width_intercept,
            ..ModelOptions::default()
        };
        let c = edxs::io::crop::crop(loaded, "signal", &args, range)?;
        Ok((c.first_channel, c.loaded.image.channels, c.note))
    })
}

/// Runs `edxs simulate` with its command-line arguments (they name the output folder).
#[pyfunction]
fn simulate_to(py: Python<'_>, args: Vec<String>) -> PyResult<()> {
    use clap::Parser;
    let mut argv = vec!["edxs".to_string(), "simulate".to_string()];
    argv.extend(args);
    let cli =
        edxs::cli::Cli::try_parse_from(argv).map_err(|e| PyValueError::new_err(e.to_string()))?;
    if !matches!(cli.command, edxs::cli::Command::Simulate(_)) {
        return Err(PyValueError::new_err("simulate: not a simulate command"));
    }
    detached(py, move || edxs::cli::run(cli))
}

/// The extension module.
#[pymodule]
fn _edxs(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Model>()?;
    m.add_function(wrap_pyfunction!(fit, m)?)?;
    m.add_function(wrap_pyfunction!(simulate_to, m)?)?;
    m.add_function(wrap_pyfunction!(energy_window, m)?)?;
    Ok(())
}
