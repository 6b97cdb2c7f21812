//! `edxs decompose`: ESpM-NMF of a spectrum image into phases (W), maps (H) and compositions.

use crate::init::{nndsvd, NndsvdVariant};
use crate::io::counts::SpectrumImage;
use crate::io::{atomic, npy};
use crate::model_args::{CompatArg, FileMeta, ModelArgs};
use crate::parallel::ParallelExec;
use crate::pipeline::{self, auto_bin, FixW, Prepared, Recipe, RunSettings, SpectraCache, Start};
use crate::quant;
use crate::report::plots;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use edxs_core::physics::BremsstrahlungUpdate;
use edxs_core::solver::{Exec, GUpdate, Laplacian, NoGUpdate, SerialExec, SimplexSolver, Stopping};
use edxs_core::{EdxsModel, Solver, SolverParams};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

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

/// Options of `edxs decompose`.
#[derive(Debug, Args)]
pub struct DecomposeCmd {
    /// Counts: .npy (Y×X×L, or P×L with `--shape ROWSxCOLS`; any integer or float dtype),
    /// Ripple .rpl (+ .raw) or HyperSpy .hspy (build with `--features hdf5`).
    pub input: PathBuf,
    /// Model options (the channel count defaults to the data's).
    #[command(flatten)]
    pub model: ModelArgs,
    /// Number of phases K (espm's n_components).
    #[arg(short = 'k', long = "n-components", default_value_t = 3)]
    pub n_components: usize,
    /// Weight μ of the log sparsity term (one value, or one per phase, comma separated).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub mu: Vec<f64>,
    /// Weight λ of the Laplacian smoothness term.
    #[arg(long = "lambda-l", default_value_t = 0.0)]
    pub lambda_l: f64,
    /// ε_reg inside the log term.
    #[arg(long, default_value_t = 1.0)]
    pub epsilon_reg: f64,
    /// Initialisation.
    #[arg(long, value_enum, default_value_t = InitArg::Nndsvda)]
    pub init: InitArg,
    /// Initial W (M×K .npy) for `--init custom`.
    #[arg(long)]
    pub w0: Option<PathBuf>,
    /// Initial H (K×P .npy) for `--init custom`.
    #[arg(long)]
    pub h0: Option<PathBuf>,
    /// Seed of the random initialisations.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Iteration cap.
    #[arg(long, default_value_t = 1000)]
    pub max_iter: usize,
    /// Stopping tolerance.
    #[arg(long, default_value_t = 1e-6)]
    pub tol: f64,
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
    /// Read μ, λ and ε_reg in espm's `normalize=True` units (counts scaled so that the mean
    /// pixel total is K), as the paper's values are; without it they apply to raw counts,
    /// where λ = 1 at ~300 counts per pixel smooths everything flat.
    #[arg(long)]
    pub normalize: bool,
    /// edxs's two-stage pipeline: the phase spectra from the image binned to about 250 counts
    /// per pixel or more (blocks of --bin to --bin + 3 pixels a side, from NNDSVDar or --init
    /// random; the spectra that explain the full-resolution data best kept), then the maps at
    /// full resolution with the spectra held and this run's μ, λ, ε_reg; --max-iter applies
    /// to each fit. Needs a 2-D scan.
    #[arg(long)]
    pub two_stage: bool,
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

/// Parses "ROWSxCOLS".
pub fn parse_shape(s: &str) -> Result<(usize, usize)> {
    let (r, c) = s
        .split_once(['x', 'X'])
        .with_context(|| format!("--shape: expected ROWSxCOLS, got '{s}'"))?;
    let r: usize = r
        .trim()
        .parse()
        .with_context(|| format!("--shape: bad row count '{r}'"))?;
    let c: usize = c
        .trim()
        .parse()
        .with_context(|| format!("--shape: bad column count '{c}'"))?;
    if r == 0 || c == 0 {
        bail!("--shape: {r}x{c} has no pixel");
    }
    Ok((r, c))
}

/// The result of a decomposition.
pub struct Decomposition {
    /// Final G (L×M).
    pub g: Vec<f64>,
    /// W (M×K).
    pub w: Vec<f64>,
    /// H (K×P).
    pub h: Vec<f64>,
    /// Loss terms per iteration: (total, kl, log_reg, laplacian, rel_w, rel_h).
    pub history: Vec<[f64; 6]>,
    /// Solver summary (of the last stage with `--two-stage`).
    pub summary: edxs_core::solver::RunSummary,
    /// Iterations of every stage.
    pub iterations: usize,
    /// Wall time in seconds.
    pub seconds: f64,
}

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
        fixed[j * k + comp] = val;
    }
    Ok(Some(fixed))
}

impl DecomposeCmd {
    /// Loads, decomposes, writes the outputs and prints the compositions.
    pub fn run(&self) -> Result<()> {
        let shape = self.shape.as_deref().map(parse_shape).transpose()?;
        let loaded = crate::io::input::load(&self.input, shape)?;
        let meta = FileMeta {
            channels: Some(loaded.image.channels),
            offset: loaded.offset_kev,
            scale: loaded.scale_kev,
            e0: loaded.e0_kev,
            elements: loaded.elements.clone(),
            toa: loaded.toa_deg,
            thickness: loaded.thickness_cm,
            density: loaded.density,
            source: self.input.display().to_string(),
        };
        let data = loaded.image;
        let spec = self.model.spec(&meta)?;
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
        let model = spec.model()?;
        let result = self.decompose(&model, &data)?;
        self.write(&model, &data, &result)?;
        print!("{}", self.report(&model, &result));
        Ok(())
    }

    /// Runs the decomposition on loaded data.
    pub fn decompose(&self, model: &EdxsModel<'_>, data: &SpectrumImage) -> Result<Decomposition> {
        let (l, m, k, p) = (
            data.channels,
            model.n_columns(),
            self.n_components,
            data.pixels,
        );
        if k == 0 {
            bail!("-k/--n-components must be at least 1");
        }
        if k > l.min(p) {
            bail!("-k {k} is larger than the data allows ({p} pixels x {l} channels)");
        }
        if self.two_stage {
            return self.decompose_two_stage(model, data);
        }
        let mut g = vec![0.0; l * m];
        let mut model_scratch = vec![0.0; model.scratch_len()];
        let norm = model
            .build_g(&mut g, &mut model_scratch)
            .map_err(|e| anyhow::anyhow!("model: {e}"))?;
        let rows: Vec<usize> = model.simplex_rows().collect();
        let fixed_w = parse_fixes(&self.fix, model, k)?;
        let espm = self.model.compat == Some(CompatArg::Espm);
        // espm's `normalize` multiplies the counts by f; the same iterates (with H/f) come from
        // μ/f, λ·f and ε_reg/f on the raw counts, which keeps integer counts for the kernels.
        let f = if self.normalize && data.mean() > 0.0 {
            k as f64 / (data.mean() * l as f64)
        } else {
            1.0
        };
        let mu: Vec<f64> = self.mu.iter().map(|m| m / f).collect();
        let mut params = SolverParams::new(k, &rows);
        params.mu = &mu;
        params.epsilon_reg = self.epsilon_reg / f;
        params.lambda_l = self.lambda_l * f;
        params.laplacian = match data.shape {
            Some((rows, cols)) => Laplacian::Grid { rows, cols },
            None => Laplacian::Identity,
        };
        params.simplex_w = !self.simplex_h;
        params.simplex_h = self.simplex_h;
        params.fixed_w = fixed_w.as_deref();
        params.tol = self.tol;
        params.max_iter = self.max_iter;
        params.simplex_solver = if espm {
            SimplexSolver::EspmBisection
        } else {
            SimplexSolver::Newton
        };
        params.stopping = if espm {
            Stopping::Espm
        } else {
            Stopping::Relative
        };
        let brems = model.params().bremsstrahlung;
        params.g_update_every = if self.no_g_update || !brems { 0 } else { 3 };
        let solver = Solver::new(params, l, m, p).map_err(|e| anyhow::anyhow!("{e}"))?;

        let (mut w, mut h) = self.initial(model, &g, data, &rows, k)?;
        let mut history = Vec::new();
        let start = std::time::Instant::now();
        let mut update: Box<dyn GUpdate<f64>> = if brems {
            Box::new(BremsstrahlungUpdate {
                model,
                norm,
                scratch: &mut model_scratch,
            })
        } else {
            Box::new(NoGUpdate)
        };
        let counts = data.counts();
        let mut drv = vec![0.0; solver.driver_len()];
        let mut serial_ws = Vec::new();
        // espm's joint bisection over all pixels only exists in the serial solver.
        let mut exec: Box<dyn Exec<f64>> = if espm && self.simplex_h {
            serial_ws.resize(solver.exec_len(), 0.0);
            Box::new(
                SerialExec::new(&solver, counts, &mut serial_ws)
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            )
        } else {
            Box::new(ParallelExec::new(&solver, counts, self.threads)?)
        };
        let summary = solver
            .drive(
                exec.as_mut(),
                &mut g,
                &mut w,
                &mut h,
                &mut drv,
                update.as_mut(),
                &mut |r| history.push(pipeline::history_row(r)),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Decomposition {
            g,
            w,
            h,
            history,
            iterations: summary.iterations,
            summary,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    /// edxs's two-stage pipeline ([`crate::pipeline`]) with this command's options.
    fn decompose_two_stage(
        &self,
        model: &EdxsModel<'_>,
        data: &SpectrumImage,
    ) -> Result<Decomposition> {
        let k = self.n_components;
        if self.model.compat == Some(CompatArg::Espm) {
            bail!("--two-stage is edxs's own pipeline and cannot be combined with --compat espm");
        }
        if self.simplex_h {
            bail!("--two-stage keeps W on the simplex and cannot be combined with --simplex-h");
        }
        if self.init == InitArg::Custom || self.w0.is_some() || self.h0.is_some() {
            bail!("--two-stage makes its own start: --init custom, --w0 and --h0 cannot be used with it");
        }
        if data.shape.is_none() {
            bail!(
                "--two-stage bins the scan, so it needs a 2-D scan shape \
                 (--shape ROWSxCOLS, or a Y×X×L file)"
            );
        }
        if self.max_iter == 0 {
            bail!("--max-iter must be at least 1 with --two-stage");
        }
        let prep = Prepared::new(model, k)?;
        let counts_per_pixel = data.mean() * data.channels as f64;
        let bin = if self.bin > 0 {
            self.bin
        } else {
            auto_bin(counts_per_pixel)
        };
        let mut recipe = Recipe::two_stage(0.0, self.lambda_l, self.epsilon_reg, bin);
        recipe.mu = self.mu.clone();
        recipe.normalized = self.normalize;
        recipe.start = if self.init == InitArg::Random {
            Start::Random
        } else {
            Start::Nndsvdar
        };
        recipe.g_update = !self.no_g_update;
        if let Some(f) = parse_fixes(&self.fix, model, k)? {
            recipe.fix = FixW::Given(f);
        }
        let set = RunSettings {
            max_iter: self.max_iter,
            tol: self.tol,
            threads: self.threads,
            seed: self.seed,
        };
        let start = std::time::Instant::now();
        let fit = pipeline::fit(&prep, data, &recipe, &set, &mut SpectraCache::default())?;
        Ok(Decomposition {
            g: fit.g,
            w: fit.w,
            h: fit.h,
            history: fit.history,
            iterations: fit.iterations,
            summary: fit.summary,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    fn initial(
        &self,
        model: &EdxsModel<'_>,
        g: &[f64],
        data: &SpectrumImage,
        rows: &[usize],
        k: usize,
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let (l, m, p) = (data.channels, model.n_columns(), data.pixels);
        let eps = 1e-14;
        if self.init == InitArg::Custom {
            let (Some(w0), Some(h0)) = (&self.w0, &self.h0) else {
                bail!("--init custom needs --w0 W0.npy and --h0 H0.npy");
            };
            let w = read_matrix(w0, m, k, "W0 (M x K)")?;
            let h = read_matrix(h0, k, p, "H0 (K x P)")?;
            return Ok((
                w.iter().map(|v| v.max(eps)).collect(),
                h.iter().map(|v| v.max(eps)).collect(),
            ));
        }
        if self.w0.is_some() || self.h0.is_some() {
            bail!("--w0/--h0 are only used with --init custom");
        }
        let (d, h) = match self.init {
            InitArg::Random => {
                let mut d = vec![0.0; l * k];
                let mut h = vec![0.0; k * p];
                let mut rng = edxs_core::rng::Rng::new(self.seed);
                edxs_core::init::random_start(data.mean(), &mut rng, &mut d, &mut h, k);
                (d, h)
            }
            variant => {
                let v = match variant {
                    InitArg::Nndsvd => NndsvdVariant::Nndsvd,
                    InitArg::Nndsvda => NndsvdVariant::Nndsvda,
                    _ => NndsvdVariant::Nndsvdar,
                };
                nndsvd(&data.as_ref(), k, v, self.seed)?
            }
        };
        let simplex_rows: &[usize] = if self.simplex_h { &[] } else { rows };
        let w = if self.model.compat == Some(CompatArg::Espm) || simplex_rows.is_empty() {
            let mut w = vec![0.0; m * k];
            let mut scratch = vec![0.0; edxs_core::init::physics_w_scratch_len(l, m, k)];
            edxs_core::init::physics_w(g, &d, l, m, k, simplex_rows, eps, &mut w, &mut scratch)
                .map_err(|e| anyhow::anyhow!("initialisation: {e}"))?;
            w
        } else {
            crate::init::physics_w_whole_columns(g, &d, l, m, k, simplex_rows)?
        };
        let mut h: Vec<f64> = h.iter().map(|v| v.max(eps)).collect();
        if self.simplex_h {
            for px in 0..p {
                let s: f64 = (0..k).map(|c| h[c * p + px]).sum();
                for c in 0..k {
                    h[c * p + px] /= s;
                }
            }
        }
        Ok((w, h))
    }

    fn write(&self, model: &EdxsModel<'_>, data: &SpectrumImage, r: &Decomposition) -> Result<()> {
        let (l, m, k, p) = (
            data.channels,
            model.n_columns(),
            self.n_components,
            data.pixels,
        );
        // Everything goes to a sibling folder that replaces the output at the end, so a failed
        // run never leaves half a result.
        let tmp = crate::io::atomic::temp_sibling(&self.out);
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)
            .with_context(|| format!("cannot create output folder {}", self.out.display()))?;
        let written = self.write_into(&tmp, model, data, r, (l, m, k, p));
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        crate::io::atomic::replace_dir(&tmp, &self.out)
    }

    fn write_into(
        &self,
        dir: &Path,
        model: &EdxsModel<'_>,
        data: &SpectrumImage,
        r: &Decomposition,
        (l, m, k, p): (usize, usize, usize, usize),
    ) -> Result<()> {
        let path = |f: &str| dir.join(f);
        npy::write_f64(&path("W.npy"), &[m, k], &r.w)?;
        npy::write_f64(&path("H.npy"), &[k, p], &r.h)?;
        npy::write_f64(&path("G.npy"), &[l, m], &r.g)?;
        let d = matmul(&r.g, &r.w, l, m, k);
        npy::write_f64(&path("D.npy"), &[l, k], &d)?;
        let mut csv = String::from("iteration,loss,kl,log_reg,laplacian,rel_w,rel_h\n");
        for (i, row) in r.history.iter().enumerate() {
            let _ = writeln!(csv, "{},{}", i + 1, row.map(|v| format!("{v:e}")).join(","));
        }
        atomic::write_bytes(&path("losses.csv"), csv.as_bytes())?;
        let shares = quant::quantify(model, &r.g, &r.w, &r.h, k);
        let mut q = String::from("phase,element,at_percent,wt_percent,std_percent\n");
        for (c, phase) in shares.iter().enumerate() {
            for s in phase {
                let _ = writeln!(
                    q,
                    "{c},{},{},{},{}",
                    s.element, s.at_percent, s.wt_percent, s.std_percent
                );
            }
        }
        atomic::write_bytes(&path("quant.csv"), q.as_bytes())?;
        let prm = model.params();
        let results = serde_json::json!({
            "edxs_version": env!("CARGO_PKG_VERSION"),
            "input": self.input.display().to_string(),
            "data": {"channels": l, "pixels": p, "shape": data.shape, "nnz": data.values.len(),
                     "total_counts": data.values.iter().sum::<f64>()},
            "model": {
                "elements": prm.elements.iter().map(|e| e.symbol()).collect::<Vec<_>>(),
                "ignored": prm.ignored.iter().map(|e| e.symbol()).collect::<Vec<_>>(),
                "split": prm.split.iter().map(|(e, c)| (e.symbol(), *c)).collect::<Vec<_>>(),
                "e0_kev": prm.e0, "offset_kev": prm.axis.offset, "scale_kev": prm.axis.scale,
                "width_slope": prm.width_slope, "width_intercept": prm.width_intercept,
                "absorption": prm.absorption.map(|a| serde_json::json!({"thickness_cm": a.thickness,
                    "density": a.density, "toa_deg": a.toa, "atomic_fraction": a.atomic_fraction})),
                "bremsstrahlung": prm.bremsstrahlung,
            },
            "columns": model.columns().map(|c| c.to_string()).collect::<Vec<_>>(),
            "parameters": {
                "n_components": k, "mu": self.mu, "lambda_l": self.lambda_l,
                "epsilon_reg": self.epsilon_reg, "init": format!("{:?}", self.init).to_lowercase(),
                "seed": self.seed, "max_iter": self.max_iter, "tol": self.tol,
                "simplex_h": self.simplex_h, "fix": self.fix, "g_update": !self.no_g_update,
                "normalize": self.normalize,
                "compat": format!("{:?}", self.model.compat.unwrap_or(CompatArg::Edxs)).to_lowercase(),
                "threads": self.threads, "two_stage": self.two_stage, "bin": self.bin,
            },
            "iterations": r.iterations,
            "stop_reason": format!("{:?}", r.summary.reason),
            "initial_loss": r.summary.initial_loss, "final_loss": r.summary.final_loss,
            "seconds": r.seconds,
            "loss_history": r.history.iter().map(|h| h[0]).collect::<Vec<_>>(),
            "W": r.w.chunks(k).map(|row| row.to_vec()).collect::<Vec<_>>(),
            "phases": shares,
        });
        let text = serde_json::to_string_pretty(&results).context("serialising results.json")?;
        atomic::write_bytes(&path("results.json"), text.as_bytes())?;
        // Figures.
        let (rows, cols) = data.shape.unwrap_or((1, p));
        let names: Vec<String> = (0..k).map(|c| format!("phase {c}")).collect();
        plots::maps_png(&path("maps.png"), &r.h, k, rows, cols, &names)?;
        let energy: Vec<f64> = (0..l).map(|i| model.energy(i)).collect();
        let markers: Vec<(String, f64)> = prm
            .elements
            .iter()
            .filter_map(|e| {
                model
                    .lines_in_axis(*e)
                    .max_by(|a, b| a.1.cs.total_cmp(&b.1.cs))
                    .map(|(_, line)| (e.symbol().to_string(), line.energy))
            })
            .collect();
        let rowsum_h: Vec<f64> = (0..k)
            .map(|c| r.h[c * p..(c + 1) * p].iter().sum())
            .collect();
        let sum_model = matmul(&d, &rowsum_h, l, k, 1);
        plots::spectra_png(
            &path("spectra.png"),
            &energy,
            &d,
            k,
            &names,
            &markers,
            &data.sum_spectrum(),
            &sum_model,
        )?;
        Ok(())
    }

    fn report(&self, model: &EdxsModel<'_>, r: &Decomposition) -> String {
        let k = self.n_components;
        let shares = quant::quantify(model, &r.g, &r.w, &r.h, k);
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} iterations ({:?}) in {:.2} s, loss {:.6e} -> {:.6e}",
            r.iterations, r.summary.reason, r.seconds, r.summary.initial_loss, r.summary.final_loss
        );
        let _ = write!(s, "{:<8}", "element");
        for c in 0..k {
            let _ = write!(s, " {:>10} {:>7}", format!("p{c} at.%"), "std%");
        }
        s.push('\n');
        for (i, share) in shares
            .first()
            .map(|v| v.as_slice())
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let _ = write!(s, "{:<8}", share.element);
            for phase in &shares {
                let _ = write!(
                    s,
                    " {:>10.3} {:>7.3}",
                    phase[i].at_percent, phase[i].std_percent
                );
            }
            s.push('\n');
        }
        let _ = writeln!(
            s,
            "wrote results.json, quant.csv, W.npy, H.npy, D.npy, G.npy, losses.csv, maps.png, spectra.png to {}",
            self.out.display()
        );
        s
    }
}

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

/// Row-major (a×b)·(b×c).
fn matmul(x: &[f64], y: &[f64], a: usize, b: usize, c: usize) -> Vec<f64> {
    let mut out = vec![0.0; a * c];
    for i in 0..a {
        for j in 0..b {
            let v = x[i * b + j];
            if v != 0.0 {
                for q in 0..c {
                    out[i * c + q] += v * y[j * c + q];
                }
            }
        }
    }
    out
}
