//! `edxs decompose`: ESpM-NMF of a spectrum image into phases (W), maps (H) and compositions.

use super::args::{parse_shape, CompatArg, EnergyRangeArgs, ModelArgs};
use crate::io::counts::SpectrumImage;
use crate::pipeline::{
    self, CustomStart, DecomposeRequest, InitChoice, Method, MethodChoice, Prepared, SolverChoice,
    SpectraCache, Units,
};
use crate::report::decomposition::{self, Outputs, Timings};
use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use edxs_core::EdxsModel;
use std::path::PathBuf;

/// How W and H start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InitArg {
    /// Random spectra and maps (sklearn's "random"), W from the spectra via G.
    Random,
    /// sklearn's NNDSVD (zeros kept).
    Nndsvd,
    /// NNDSVD with zeros filled by the mean count.
    Nndsvda,
    /// NNDSVD with zeros filled by small random values.
    Nndsvdar,
    /// W0 and H0 from files (`--w0`, `--h0`).
    Custom,
}

/// `--method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodArg {
    /// The two-stage pipeline where it can run, else the joint fit.
    Auto,
    /// edxs's two-stage pipeline.
    TwoStage,
    /// One joint fit of W and H (espm's way).
    Joint,
}

/// `--units`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UnitsArg {
    /// espm's normalize=True units.
    Normalized,
    /// Raw counts.
    Raw,
}

/// `-k`: a number of phases or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KArg {
    /// Chosen from the data (`rank::choose_k`).
    Auto,
    /// Given.
    Fixed(usize),
}

/// Parses `-k`: a whole number or `auto`.
fn parse_k(s: &str) -> std::result::Result<KArg, String> {
    if s.trim().eq_ignore_ascii_case("auto") {
        return Ok(KArg::Auto);
    }
    s.trim()
        .parse::<usize>()
        .map(KArg::Fixed)
        .map_err(|_| format!("expected a number of phases or 'auto', got '{s}'"))
}

/// Options of `edxs decompose`.
#[derive(Debug, Clone, Args)]
pub struct DecomposeCmd {
    /// Counts: .npy (Y×X×L, or P×L with `--shape ROWSxCOLS`; any integer or float dtype),
    /// Ripple .rpl (+ .raw) or HyperSpy .hspy (build with `--features hdf5`).
    pub input: PathBuf,
    /// Model options (the channel count defaults to the data's).
    #[command(flatten)]
    pub model: ModelArgs,
    /// `--energy-range`.
    #[command(flatten)]
    pub range: EnergyRangeArgs,
    /// Number of phases K (espm's n_components), or `auto`: chosen by held-out Poisson
    /// likelihood (`edxs rank`), the curve written to rank.png and results.json.
    #[arg(short = 'k', long = "n-components", default_value = "3", value_parser = parse_k)]
    pub n_components: KArg,
    /// The rank report of `-k auto`, once chosen.
    #[arg(skip)]
    pub rank: Option<crate::rank::RankReport>,
    /// Weight μ of the log sparsity term (one value, or one per phase, comma separated;
    /// default: the paper's 0.004 on the two-stage pipeline's maps, espm's 0 for a joint fit).
    #[arg(long, value_delimiter = ',')]
    pub mu: Option<Vec<f64>>,
    /// Weight λ of the Laplacian smoothness term (default: 0.1 on the pipeline's maps, espm's
    /// 0 for a joint fit).
    #[arg(long = "lambda-l")]
    pub lambda_l: Option<f64>,
    /// ε_reg inside the log term (default: the paper's 0.01 on the pipeline's maps, espm's 1
    /// for a joint fit).
    #[arg(long)]
    pub epsilon_reg: Option<f64>,
    /// Initialisation (default: NNDSVDar for the two-stage pipeline, NNDSVDa for a joint fit).
    #[arg(long, value_enum)]
    pub init: Option<InitArg>,
    /// Initial W (M×K .npy) for `--init custom`.
    #[arg(long)]
    pub w0: Option<PathBuf>,
    /// Initial H (K×P .npy) for `--init custom`.
    #[arg(long)]
    pub h0: Option<PathBuf>,
    /// Seed of the random initialisations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Iteration cap, of each fit of the pipeline (default: 1000 for a joint fit, 10000 for
    /// the pipeline).
    #[arg(long)]
    pub max_iter: Option<usize>,
    /// Relative loss change at which a fit stops (default: 1e-6 for a joint fit, 1e-8 for the
    /// pipeline).
    #[arg(long)]
    pub tol: Option<f64>,
    /// Scan shape ROWSxCOLS for P×L input (enables the Laplacian on the scan grid).
    #[arg(long)]
    pub shape: Option<String>,
    /// Impose a W entry: COMPONENT:COLUMN=VALUE (component from 0; column an element symbol,
    /// b0, b1 or an ignored line such as Cu_ign3), repeatable.
    #[arg(long)]
    pub fix: Vec<String>,
    /// Put each pixel's abundances on the simplex instead of the phases' compositions.
    #[arg(long)]
    pub simplex_h: bool,
    /// Keep G fixed (no bremsstrahlung update from W every 3 iterations).
    #[arg(long)]
    pub no_g_update: bool,
    /// Keep the nominal calibration (energy offset, channel width, peak widths) instead of
    /// refining it on the summed spectrum before decomposing (never refined with --compat espm).
    #[arg(long)]
    pub no_refine_calibration: bool,
    /// What the calibration refinement did, once run.
    #[arg(skip)]
    pub calibration: Option<crate::calibrate::Refinement>,
    /// Wall seconds spent reading the input, once read (results.json's `timings`).
    #[arg(skip)]
    pub load_seconds: Option<f64>,
    /// The fit: `auto` (the default) runs the two-stage pipeline on 2-D scans that can be
    /// binned and says why when it falls back to the joint fit; `two-stage` is edxs's pipeline
    /// (the phase spectra from the image binned to about 250 counts per pixel or more, blocks
    /// of --bin to --bin + 3 pixels a side, the spectra that best predict held-out counts
    /// kept, then the maps at full resolution with the spectra held and this run's μ, λ,
    /// ε_reg); `joint` is espm's single fit of W and H together.
    #[arg(long, value_enum, default_value_t = MethodArg::Auto)]
    pub method: MethodArg,
    /// Same as `--method two-stage` (kept for existing scripts).
    #[arg(long, hide = true)]
    pub two_stage: bool,
    /// The solver of the pipeline's fits, for comparisons: `newton` (the default: Newton for
    /// the maps with the spectra held, multiplicative updates for the joint fits),
    /// `newton-joint` (Newton for the joint fits too, alternating maps and spectra; measured
    /// slower and no better, docs/speed/joint_newton.md), `multiplicative` (everything by the
    /// multiplicative updates), `previous` (the default before the spectra stage's sparse
    /// stopping test and side-by-side candidates: the loss after every iteration, one binned
    /// fit at a time, every channel), `full-channels` (the binned fits on every channel
    /// instead of channel groups), `plain-updates` (the binned fits by the multiplicative
    /// updates alone, without extrapolation and Newton steps on W).
    #[arg(long, hide = true, value_parser = ["newton", "newton-joint", "newton-tail", "multiplicative", "previous", "full-channels", "plain-updates"])]
    pub solver: Option<String>,
    /// Units of μ, λ and ε_reg: `normalized` (the default; espm's `normalize=True` units,
    /// counts scaled so that the mean pixel total is K, the units of the paper's values) or
    /// `raw` (they act on the raw counts, where λ = 1 at ~300 counts per pixel smooths
    /// everything flat). With --compat espm the default is raw, as espm's `normalize=False`.
    #[arg(long, value_enum)]
    pub units: Option<UnitsArg>,
    /// Same as `--units normalized` (espm's `normalize=True`).
    #[arg(long)]
    pub normalize: bool,
    /// Block side of --two-stage's first binning (0: from the counts per pixel, at least 2).
    #[arg(long, default_value_t = 0)]
    pub bin: usize,
    /// Worker threads (0 = one per core); results are identical for every count.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Output folder.
    #[arg(long, default_value = "edxs-out")]
    pub out: PathBuf,
    /// Options from a TOML file (keys are option names); the command line overrides them.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

impl DecomposeCmd {
    /// K of this run (`-k auto` is resolved by [`DecomposeCmd::run`] before anything uses it).
    pub fn k(&self) -> Result<usize> {
        match self.n_components {
            KArg::Fixed(k) => Ok(k),
            KArg::Auto => bail!("-k auto is resolved by `edxs decompose` itself; give a number"),
        }
    }

    /// Loads, decomposes, writes the outputs and prints the compositions.
    pub fn run(&self) -> Result<()> {
        let t0 = std::time::Instant::now();
        crate::io::output::check_dir("--out", &self.out, &[&self.input])?;
        let shape = self.shape.as_deref().map(parse_shape).transpose()?;
        let range = self.range.energy_range.as_deref();
        let cropped = crate::io::crop::load(&self.input, shape, &self.model.options(), range)?;
        cropped
            .note
            .iter()
            .for_each(|n| eprintln!("edxs: note: {n}"));
        let spec = cropped.spec(&self.input.display().to_string())?;
        let data = cropped.loaded.image;
        for w in &spec.warnings {
            eprintln!("edxs: warning: {w}");
        }
        if spec.base.axis.channels != data.channels {
            bail!(
                "--channels {} does not match the {} channels of {}",
                spec.base.axis.channels,
                data.channels,
                self.input.display()
            );
        }
        let load_seconds = t0.elapsed().as_secs_f64();
        let refinement = self.request().calibrate(&spec, &data);
        if let Some(line) = refinement.line() {
            eprintln!("edxs: {line}");
        }
        if let Some(note) = refinement.user_note() {
            eprintln!("edxs: note: {note}");
        }
        let spec = refinement.refined.apply(&spec);
        let model = spec.model()?;
        let mut cmd = self.clone();
        cmd.calibration = Some(refinement);
        cmd.load_seconds = Some(load_seconds);
        cmd.fit_with_k(&model, &data)
    }

    fn fit_with_k(&self, model: &EdxsModel<'_>, data: &SpectrumImage) -> Result<()> {
        if self.n_components == KArg::Auto {
            let opts = crate::rank::RankOptions {
                seed: self.seed,
                threads: self.threads,
                ..Default::default()
            };
            let report = crate::rank::choose_k(model, data, &opts)?;
            eprintln!(
                "edxs: -k auto: {} phases (held-out likelihood, {}; `edxs rank` shows the curve)",
                report.chosen, report.rule
            );
            let mut cmd = self.clone();
            cmd.n_components = KArg::Fixed(report.chosen);
            cmd.rank = Some(report);
            return cmd.fit_and_write(model, data);
        }
        self.fit_and_write(model, data)
    }

    fn fit_and_write(&self, model: &EdxsModel<'_>, data: &SpectrumImage) -> Result<()> {
        let (model, data) = (model, data);
        crate::validate::decompose(
            &self.input,
            data,
            model.n_columns(),
            self.k()?,
            self.threads,
        )?;
        let request = self.request();
        let (method, why) = request.method(data);
        let (recipe, set) = request.recipe(model, data, method)?;
        let prep = Prepared::new(model, self.k()?)?;
        let result = pipeline::fit(&prep, data, &recipe, &set, &mut SpectraCache::default())?;
        // After the fit, so that a refusal from the solver stays one line.
        match (&why, self.method == MethodArg::Auto && !self.two_stage) {
            (Some(w), _) => eprintln!("edxs: method: joint fit ({w})"),
            (None, true) => eprintln!(
                "edxs: method: {} (--method joint for espm's single joint fit)",
                match method {
                    Method::TwoStage =>
                        "two-stage pipeline, spectra from binned blocks, then the maps",
                    Method::Joint => "joint fit",
                }
            ),
            (None, false) => {}
        }
        let k = self.k()?;
        let note = crate::small_scan::few_counts_note(data, k);
        if let Some(note) = &note {
            eprintln!("edxs: note: {note}");
        }
        let mut parameters = request.parameters(data, method);
        // The note is also kept with the result, where a script reading it will look.
        let calibration_note = self.calibration.as_ref().and_then(|c| c.user_note());
        let notes: Vec<&str> = note
            .iter()
            .map(|n| n.as_str())
            .chain(calibration_note)
            .collect();
        parameters["notes"] = serde_json::json!(notes);
        if let Some(c) = &self.calibration {
            parameters["calibration"] = serde_json::to_value(c)?;
        }
        let outputs = Outputs {
            input: &self.input,
            model,
            data,
            fit: &result,
            k,
            parameters,
            rank: self.rank.as_ref(),
            before_fit: Timings {
                load: self.load_seconds,
                calibration: (self.calibration.as_ref())
                    .filter(|_| request.refines_calibration())
                    .map(|c| c.seconds),
            },
        };
        decomposition::write(&self.out, &outputs)?;
        print!("{}", decomposition::summary(model, &result, k, &self.out));
        Ok(())
    }

    /// The clap-free request these options make ([`DecomposeRequest`]), which resolves the
    /// method and makes the recipe, as it does for the Python binding (K is 0 until
    /// `-k auto` is resolved).
    pub fn request(&self) -> DecomposeRequest {
        let method = match (self.two_stage, self.method) {
            (true, _) | (false, MethodArg::TwoStage) => MethodChoice::TwoStage,
            (false, MethodArg::Joint) => MethodChoice::Joint,
            (false, MethodArg::Auto) => MethodChoice::Auto,
        };
        let solver = match self.solver.as_deref() {
            Some("newton-joint") => SolverChoice::NewtonJoint,
            Some("newton-tail") => SolverChoice::NewtonTail,
            Some("multiplicative") => SolverChoice::Multiplicative,
            Some("previous") => SolverChoice::Previous,
            Some("full-channels") => SolverChoice::FullChannels,
            Some("plain-updates") => SolverChoice::PlainUpdates,
            _ => SolverChoice::Default,
        };
        let custom = (self.w0.is_some() || self.h0.is_some()).then(|| CustomStart {
            w0: self.w0.clone(),
            h0: self.h0.clone(),
        });
        DecomposeRequest {
            k: match self.n_components {
                KArg::Fixed(k) => k,
                KArg::Auto => 0,
            },
            mu: self.mu.clone(),
            lambda_l: self.lambda_l,
            epsilon_reg: self.epsilon_reg,
            init: self.init.map(|i| match i {
                InitArg::Random => InitChoice::Random,
                InitArg::Nndsvd => InitChoice::Nndsvd,
                InitArg::Nndsvda => InitChoice::Nndsvda,
                InitArg::Nndsvdar => InitChoice::Nndsvdar,
                InitArg::Custom => InitChoice::Custom,
            }),
            custom,
            seed: self.seed,
            max_iter: self.max_iter,
            tol: self.tol,
            fix: self.fix.clone(),
            simplex_h: self.simplex_h,
            g_update: !self.no_g_update,
            method,
            solver,
            // `--normalize` is `--units normalized`; an explicit `--units` wins.
            units: match (self.units, self.normalize) {
                (Some(UnitsArg::Normalized), _) | (None, true) => Some(Units::Normalized),
                (Some(UnitsArg::Raw), _) => Some(Units::Raw),
                (None, false) => None,
            },
            compat_espm: self.model.compat == Some(CompatArg::Espm),
            refine_calibration: !self.no_refine_calibration,
            bin: self.bin,
            threads: self.threads,
        }
    }
}
