//! What a user asks of a decomposition, free of any front end: `edxs decompose` and the Python
//! binding fill a [`DecomposeRequest`] from their options, and it resolves the method for the
//! data and makes the one [`Recipe`] the driver runs, so both front ends get the same defaults.

use super::recipe::{FixW, HeldSolver, Method, Recipe, RunSettings, Start, NEWTON_TAIL_FROM};
use super::{auto_bin_for, cannot_bin};
use crate::calibrate::{refine, Bounds, Refinement};
use crate::io::counts::SpectrumImage;
use crate::io::npy;
use crate::model_options::ModelSpec;
use anyhow::{bail, Context, Result};
use edxs_core::EdxsModel;
use std::path::{Path, PathBuf};

/// The fit asked for, before it is resolved for the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodChoice {
    /// The two-stage pipeline where it can run, else the joint fit.
    Auto,
    /// edxs's two-stage pipeline.
    TwoStage,
    /// One joint fit of W and H (espm's way).
    Joint,
}

/// How W and H start, as asked (the matrices of a custom start are in [`CustomStart`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitChoice {
    /// Random spectra and maps (sklearn's "random").
    Random,
    /// sklearn's NNDSVD (zeros kept).
    Nndsvd,
    /// NNDSVD with zeros filled by the mean count.
    Nndsvda,
    /// NNDSVD with zeros filled by small random values.
    Nndsvdar,
    /// W0 and H0 given.
    Custom,
}

impl InitChoice {
    /// The name written to results.json.
    pub fn name(self) -> &'static str {
        match self {
            InitChoice::Random => "random",
            InitChoice::Nndsvd => "nndsvd",
            InitChoice::Nndsvda => "nndsvda",
            InitChoice::Nndsvdar => "nndsvdar",
            InitChoice::Custom => "custom",
        }
    }
}

/// The `.npy` files of a custom start's W0 and H0 (`--w0`, `--h0`), read once the shapes are
/// known; a missing one is an error only when the start is custom.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CustomStart {
    /// W0 (M×K).
    pub w0: Option<PathBuf>,
    /// H0 (K×P).
    pub h0: Option<PathBuf>,
}

/// Units of μ, λ and ε_reg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Units {
    /// espm's normalize=True units (counts scaled so that the mean pixel total is K).
    Normalized,
    /// Raw counts.
    Raw,
}

/// The solver of the pipeline's fits, for comparisons (hidden options).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SolverChoice {
    /// Newton for the maps with the spectra held, multiplicative updates for the joint fits.
    #[default]
    Default,
    /// Newton for the joint fits too.
    NewtonJoint,
    /// The spectra stage's binned fits end by coupled Newton steps on W and H once the
    /// updates slow down (`fast::schur`; measured, not the default).
    NewtonTail,
    /// Everything by the multiplicative updates.
    Multiplicative,
    /// The spectra stage as before its sparse stopping test and side-by-side candidates.
    Previous,
    /// The spectra stage's binned fits on every channel (as before channel groups).
    FullChannels,
    /// The spectra stage's binned fits by the multiplicative updates alone, without
    /// extrapolation or Newton steps on W (as before those).
    PlainUpdates,
}

/// A decomposition as asked: every `None` takes the resolved method's default.
#[derive(Debug, Clone, PartialEq)]
pub struct DecomposeRequest {
    /// Number of phases K (espm's n_components).
    pub k: usize,
    /// μ: one value or one per phase.
    pub mu: Option<Vec<f64>>,
    /// λ of the Laplacian term.
    pub lambda_l: Option<f64>,
    /// ε_reg of the log term.
    pub epsilon_reg: Option<f64>,
    /// The start.
    pub init: Option<InitChoice>,
    /// W0 and H0 of a custom start.
    pub custom: Option<CustomStart>,
    /// Seed of the random starts.
    pub seed: u64,
    /// Iteration cap of each fit.
    pub max_iter: Option<usize>,
    /// Relative loss change at which a fit stops.
    pub tol: Option<f64>,
    /// Imposed W entries, `COMPONENT:COLUMN=VALUE`.
    pub fix: Vec<String>,
    /// Each pixel's abundances on the simplex instead of the phases' compositions.
    pub simplex_h: bool,
    /// Update the bremsstrahlung columns of G from W every 3 iterations.
    pub g_update: bool,
    /// The fit.
    pub method: MethodChoice,
    /// The pipeline's solver.
    pub solver: SolverChoice,
    /// Units of μ, λ, ε_reg (None: normalised, raw with `compat_espm`).
    pub units: Option<Units>,
    /// espm 1.1.3's behaviour exactly.
    pub compat_espm: bool,
    /// Refine the detector calibration on the summed spectrum first ([`crate::calibrate`]).
    pub refine_calibration: bool,
    /// Block side of the pipeline's first binning (0: from the counts per pixel).
    pub bin: usize,
    /// Worker threads (0 = one per core).
    pub threads: usize,
}

impl DecomposeRequest {
    /// A request for `k` phases with every default.
    pub fn new(k: usize) -> Self {
        DecomposeRequest {
            k,
            mu: None,
            lambda_l: None,
            epsilon_reg: None,
            init: None,
            custom: None,
            seed: 0,
            max_iter: None,
            tol: None,
            fix: Vec::new(),
            simplex_h: false,
            g_update: true,
            method: MethodChoice::Auto,
            solver: SolverChoice::Default,
            units: None,
            compat_espm: false,
            refine_calibration: true,
            bin: 0,
            threads: 0,
        }
    }

    /// Whether [`calibrate`](Self::calibrate) refines (never with espm's behaviour).
    pub fn refines_calibration(&self) -> bool {
        self.refine_calibration && !self.compat_espm
    }

    /// The calibration refinement of this run, or why there is none (never with espm's
    /// behaviour).
    pub fn calibrate(&self, spec: &ModelSpec, data: &SpectrumImage) -> Refinement {
        if self.refines_calibration() {
            refine(spec, data, Bounds::default(), self.threads)
        } else if self.compat_espm {
            Refinement::off(spec, data, "calibration not refined: --compat espm")
        } else {
            Refinement::off(
                spec,
                data,
                "calibration not refined: --no-refine-calibration",
            )
        }
    }

    /// The method asked for, resolved for this data: `Auto` becomes the two-stage pipeline
    /// where it can run and the joint fit otherwise, with the reason.
    pub fn method(&self, data: &SpectrumImage) -> (Method, Option<String>) {
        match self.method {
            MethodChoice::Joint => (Method::Joint, None),
            MethodChoice::TwoStage => (Method::TwoStage, None),
            MethodChoice::Auto => {
                let why = if self.compat_espm {
                    Some("--compat espm runs espm's joint fit")
                } else if self.simplex_h {
                    Some("--simplex-h needs the joint fit")
                } else if self.init == Some(InitChoice::Custom) {
                    Some("a custom start (--init custom) is a joint-fit start")
                } else {
                    cannot_bin(data, self.bin_side(data))
                };
                match why {
                    None => (Method::TwoStage, None),
                    Some(w) => (Method::Joint, Some(w.to_string())),
                }
            }
        }
    }

    /// The block side of the pipeline's first binning for this data.
    pub fn bin_side(&self, data: &SpectrumImage) -> usize {
        if self.bin > 0 {
            self.bin
        } else {
            auto_bin_for(data.mean() * data.channels as f64, data.shape)
        }
    }

    /// μ, λ and ε_reg of this run: the given values, else the method's defaults
    /// ([`Method::regularisation`]).
    pub fn regularisation(&self, method: Method) -> (Vec<f64>, f64, f64) {
        let (mu, lambda, eps) = method.regularisation();
        (
            self.mu.clone().unwrap_or_else(|| vec![mu]),
            self.lambda_l.unwrap_or(lambda),
            self.epsilon_reg.unwrap_or(eps),
        )
    }

    /// The start of this run: the one asked for, else the method's default.
    pub fn init(&self, method: Method) -> InitChoice {
        self.init.unwrap_or(match method.start() {
            Start::Nndsvd => InitChoice::Nndsvd,
            Start::Nndsvda => InitChoice::Nndsvda,
            Start::Nndsvdar => InitChoice::Nndsvdar,
            Start::Random => InitChoice::Random,
            Start::Custom { .. } => InitChoice::Custom,
        })
    }

    /// Whether μ, λ and ε_reg are in espm's normalised units for this run.
    pub fn normalized(&self) -> bool {
        match self.units {
            Some(Units::Normalized) => true,
            Some(Units::Raw) => false,
            // espm's SmoothNMF defaults to normalize=False, so its compat mode reads raw counts.
            None => !self.compat_espm,
        }
    }

    /// The iteration cap and tolerance of this run (per stage for the pipeline).
    pub fn limits(&self, method: Method) -> (usize, f64) {
        let (it, tol) = method.limits();
        (self.max_iter.unwrap_or(it), self.tol.unwrap_or(tol))
    }

    /// The recipe and settings for `method`, checked against the model and the data.
    pub fn recipe(
        &self,
        model: &EdxsModel<'_>,
        data: &SpectrumImage,
        method: Method,
    ) -> Result<(Recipe, RunSettings)> {
        let (l, m, k, p) = (data.channels, model.n_columns(), self.k, data.pixels);
        if k == 0 {
            bail!("-k/--n-components must be at least 1");
        }
        if k > l.min(p) {
            bail!("-k {k} is larger than the data allows ({p} pixels x {l} channels)");
        }
        let init = self.init(method);
        let (w0, h0) = match &self.custom {
            Some(c) => (c.w0.as_deref(), c.h0.as_deref()),
            None => (None, None),
        };
        if method == Method::TwoStage {
            if self.compat_espm {
                bail!(
                    "--two-stage is edxs's own pipeline and cannot be combined with --compat espm"
                );
            }
            if self.simplex_h {
                bail!("--two-stage keeps W on the simplex and cannot be combined with --simplex-h");
            }
            if init == InitChoice::Custom || w0.is_some() || h0.is_some() {
                bail!("--two-stage makes its own start: --init custom, --w0 and --h0 cannot be used with it");
            }
            if data.shape.is_none() {
                bail!(
                    "--two-stage bins the scan, so it needs a 2-D scan shape \
                     (--shape ROWSxCOLS, or a Y×X×L file)"
                );
            }
        }
        let (max_iter, tol) = self.limits(method);
        if max_iter == 0 {
            bail!("--max-iter must be at least 1");
        }
        let start = match init {
            InitChoice::Random => Start::Random,
            InitChoice::Nndsvd => Start::Nndsvd,
            InitChoice::Nndsvda => Start::Nndsvda,
            InitChoice::Nndsvdar => Start::Nndsvdar,
            InitChoice::Custom => {
                let (Some(w0), Some(h0)) = (w0, h0) else {
                    bail!("--init custom needs --w0 W0.npy and --h0 H0.npy");
                };
                Start::Custom {
                    w: read_matrix(w0, m, k, "W0 (M x K)")?,
                    h: read_matrix(h0, k, p, "H0 (K x P)")?,
                }
            }
        };
        if init != InitChoice::Custom && (w0.is_some() || h0.is_some()) {
            bail!("--w0/--h0 are only used with --init custom");
        }
        let (mu, lambda, eps) = self.regularisation(method);
        let mut recipe = match method {
            Method::Joint => Recipe::espm(0.0, lambda, eps, start, 0),
            Method::TwoStage => {
                let mut r = Recipe::two_stage(0.0, lambda, eps, self.bin_side(data));
                r.start = start;
                r
            }
        };
        recipe.mu = mu;
        recipe.normalized = self.normalized();
        recipe.g_update = self.g_update;
        recipe.simplex_h = self.simplex_h;
        recipe.compat_espm = self.compat_espm;
        match self.solver {
            SolverChoice::NewtonJoint => recipe.held_solver = HeldSolver::NewtonJoint,
            SolverChoice::NewtonTail => recipe.newton_tail = Some(NEWTON_TAIL_FROM),
            SolverChoice::Multiplicative => recipe.held_solver = HeldSolver::Multiplicative,
            SolverChoice::Previous => {
                recipe.extrapolate = false;
                recipe.w_newton_every = 0;
                recipe.newton_tail = None;
                recipe.loss_every = 1;
                recipe.kkt_tol = 0.0;
                recipe.candidates_side_by_side = false;
                recipe.channel_groups = None;
            }
            SolverChoice::FullChannels => recipe.channel_groups = None,
            SolverChoice::PlainUpdates => {
                recipe.extrapolate = false;
                recipe.w_newton_every = 0;
                recipe.newton_tail = None;
            }
            SolverChoice::Default => {}
        }
        if let Some(f) = parse_fixes(&self.fix, model, k)? {
            recipe.fix = FixW::Given(f);
        }
        let set = RunSettings {
            max_iter,
            tol,
            threads: self.threads,
            seed: self.seed,
            observe: None,
        };
        Ok((recipe, set))
    }

    /// The request as results.json's "parameters".
    pub fn parameters(&self, data: &SpectrumImage, method: Method) -> serde_json::Value {
        let (mu, lambda_l, epsilon_reg) = self.regularisation(method);
        let (max_iter, tol) = self.limits(method);
        serde_json::json!({
            "n_components": self.k, "mu": mu, "lambda_l": lambda_l, "epsilon_reg": epsilon_reg,
            "init": self.init(method).name(),
            "seed": self.seed, "max_iter": max_iter, "tol": tol,
            "simplex_h": self.simplex_h, "fix": self.fix, "g_update": self.g_update,
            "normalize": self.normalized(),
            "units": if self.normalized() { "normalized" } else { "raw" },
            "method": method.name(),
            "compat": if self.compat_espm { "espm" } else { "edxs" },
            "threads": self.threads, "two_stage": method == Method::TwoStage,
            "bin": if method == Method::TwoStage { self.bin_side(data) } else { 0 },
        })
    }
}

/// `COMPONENT:COLUMN=VALUE` specs as an M×K matrix of imposed entries (negative = free).
fn parse_fixes(specs: &[String], model: &EdxsModel<'_>, k: usize) -> Result<Option<Vec<f64>>> {
    if specs.is_empty() {
        return Ok(None);
    }
    let m = model.n_columns();
    let mut fixed = vec![-1.0; m * k];
    for s in specs {
        let bad = || format!("--fix: expected COMPONENT:COLUMN=VALUE, got '{s}'");
        let (comp, rest) = s.split_once(':').with_context(bad)?;
        let (col, val) = rest.split_once('=').with_context(bad)?;
        let comp: usize = comp.trim().parse().with_context(bad)?;
        if comp >= k {
            bail!("--fix {s}: component {comp} does not exist (K = {k}, components count from 0)");
        }
        let val: f64 = val.trim().parse().with_context(bad)?;
        if !(val >= 0.0 && val.is_finite()) {
            bail!("--fix {s}: value must be finite and >= 0");
        }
        let col = col.trim();
        let j = model
            .columns()
            .position(|c| {
                c.to_string() == col
                    || (c.in_simplex() && c.element.map(|e| e.symbol()) == Some(col))
            })
            .with_context(|| {
                format!(
                    "--fix {s}: '{col}' is not a column of the model (columns: {})",
                    model
                        .columns()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?;
        if fixed[j * k + comp] >= 0.0 {
            bail!(
                "--fix {s}: component {comp}, column {col} is already fixed at {}",
                fixed[j * k + comp]
            );
        }
        fixed[j * k + comp] = val;
    }
    Ok(Some(fixed))
}

/// A non-negative, finite `rows`×`cols` matrix from an `.npy` file.
fn read_matrix(path: &Path, rows: usize, cols: usize, what: &str) -> Result<Vec<f64>> {
    let (shape, data) = npy::read_f64(path)?;
    if shape != [rows, cols] {
        bail!(
            "{}: {what} must have shape {rows}x{cols}, got {shape:?}",
            path.display()
        );
    }
    if let Some(i) = data.iter().position(|v| !(*v >= 0.0 && v.is_finite())) {
        bail!(
            "{}: entry {i} is {}; {what} must be finite and >= 0",
            path.display(),
            data[i]
        );
    }
    Ok(data)
}
