//! The one place where the binding meets the host's fit driver, so that moving to another
//! driver (the one-driver `pipeline`) changes this file only. Everything here is plain Rust on
//! owned buffers: no Python object crosses this boundary, which lets the caller run it with the
//! GIL released.

use anyhow::{anyhow, bail, Result};
use edxs::init::{nndsvd, physics_w_whole_columns, NndsvdVariant};
use edxs::io::counts::SpectrumImage;
use edxs::model_options::ModelSpec;
use edxs::pipeline::{
    self, DecomposeRequest, FixW, InitChoice, MethodChoice, Normalize, Prepared, SolverSpec,
    SpectraCache, StageSeconds, Start, Units,
};
use edxs_core::physics::BremsstrahlungUpdate;
use edxs_core::solver::{GUpdate, NoGUpdate, Simplex};
use edxs_core::Solver;

/// espm's `log_shift`: the floor of W and H.
const EPS: f64 = 1e-14;

/// What G is (espm's `G` argument).
pub enum GSpec {
    /// `G=None`: the identity, so W holds the spectra (plain KL-NMF).
    Identity,
    /// A fixed L×M array: every W row on the simplex, never updated.
    Array {
        /// L×M row-major.
        g: Vec<f64>,
        /// Columns M.
        m: usize,
    },
    /// A physics model: element rows on the simplex, bremsstrahlung updated from W.
    Model(Box<ModelSpec>),
}

/// How W and H start.
#[derive(Debug, Clone, PartialEq)]
pub enum Init {
    /// sklearn's random start.
    Random,
    /// NNDSVD, zeros kept.
    Nndsvd,
    /// NNDSVD, zeros filled with the mean count.
    Nndsvda,
    /// NNDSVD, zeros filled with small random values.
    Nndsvdar,
    /// W (M×K) and H (K×P) given.
    Custom {
        /// M×K row-major.
        w: Vec<f64>,
        /// K×P row-major.
        h: Vec<f64>,
    },
}

/// A fit's parameters, in espm's `SmoothNMF` terms. `None` means "the default": espm's with
/// `espm`, else `edxs decompose`'s for the method it picks.
pub struct Request {
    /// K.
    pub k: usize,
    /// μ: one value or one per component.
    pub mu: Option<Vec<f64>>,
    /// λ of the Laplacian term.
    pub lambda_l: Option<f64>,
    /// ε_reg of the log term.
    pub epsilon_reg: Option<f64>,
    /// Simplex on W's rows.
    pub simplex_w: bool,
    /// Simplex on H's columns (only when `simplex_w` is false).
    pub simplex_h: bool,
    /// Imposed W entries (M×K, negative = free).
    pub fixed_w: Option<Vec<f64>>,
    /// Imposed H entries (K×P, negative = free).
    pub fixed_h: Option<Vec<f64>>,
    /// The start.
    pub init: Option<Init>,
    /// Seed of the random starts.
    pub seed: u64,
    /// Iteration cap.
    pub max_iter: Option<usize>,
    /// Stopping tolerance.
    pub tol: Option<f64>,
    /// espm 1.1.3's solver (bisection simplex, its stopping rules, its start of W).
    pub espm: bool,
    /// espm's `normalize`: regularisation read in units where the mean pixel total is K, and W
    /// and H returned as espm returns them. None: `edxs decompose`'s units, raw-count H.
    pub normalize: Option<bool>,
    /// Update the bremsstrahlung columns every 3 iterations (physics models only).
    pub g_update: bool,
    /// Refine the detector calibration on the summed spectrum first (physics models, not with
    /// espm's solver), as `edxs decompose` does by default.
    pub refine_calibration: bool,
    /// Worker threads (0 = one per core).
    pub threads: usize,
    /// `edxs decompose --method`: "auto", "joint" or "two-stage" (physics models only).
    pub method: String,
}

/// A fit's result, in espm's conventions (with `normalize`, W divided and H multiplied by the
/// normalisation factor, as espm returns them).
pub struct Output {
    /// Final G (L×M; empty for the identity).
    pub g: Vec<f64>,
    /// W (M×K).
    pub w: Vec<f64>,
    /// H (K×P).
    pub h: Vec<f64>,
    /// Columns M of W's rows.
    pub m: usize,
    /// Per iteration: (total, kl, log_reg, laplacian, rel_w, rel_h), unaveraged.
    pub history: Vec<[f64; 6]>,
    /// Iterations run.
    pub iterations: usize,
    /// Why the fit stopped.
    pub reason: String,
    /// espm's normalisation factor (1 without `normalize`).
    pub norm_factor: f64,
    /// "joint", "two-stage" or "direct" (a G the pipeline does not take).
    pub method: String,
    /// Wall seconds of the fit's parts, as results.json's `timings` (None: not part of this
    /// fit): calibration, binned_fits, candidate_choice, maps, and fit (the whole solve).
    pub timings: Vec<(&'static str, Option<f64>)>,
}

/// The timings of a fit: the calibration's seconds (None when it was not refined), the
/// two-stage pipeline's parts (None for other fits) and the whole solve's.
fn timings(
    calibration: Option<f64>,
    stages: Option<StageSeconds>,
    fit: f64,
) -> Vec<(&'static str, Option<f64>)> {
    let mut t = vec![("calibration", calibration)];
    t.extend(StageSeconds::parts(stages));
    t.push(("fit", Some(fit)));
    t
}

/// Fits `data` (P pixels × L channels, per-pixel sparse) with `g` and `req`: a physics model
/// goes through `edxs decompose`'s own driver and defaults (`pipeline::fit` with the recipe
/// `DecomposeRequest::recipe` makes); a plain or identity G, fixed H entries or no simplex at all
/// (which the pipeline does not take) run the core solver directly.
pub fn fit(g: &GSpec, data: &SpectrumImage, req: &Request) -> Result<Output> {
    match g {
        GSpec::Model(spec) if req.fixed_h.is_none() && (req.simplex_w || req.simplex_h) => {
            fit_pipeline(spec, data, req)
        }
        _ => fit_direct(g, data, req),
    }
}

/// The `edxs decompose` request that `req` makes (the same defaults as the command line).
fn decompose_request(req: &Request, custom: bool) -> Result<DecomposeRequest> {
    let mut r = DecomposeRequest::new(req.k);
    r.mu = req.mu.clone();
    r.lambda_l = req.lambda_l;
    r.epsilon_reg = req.epsilon_reg;
    r.max_iter = req.max_iter;
    r.tol = req.tol;
    let method = match req.method.as_str() {
        "auto" => MethodChoice::Auto,
        "two-stage" => MethodChoice::TwoStage,
        "joint" => MethodChoice::Joint,
        other => bail!("method must be 'auto', 'two-stage' or 'joint', got '{other}'"),
    };
    match (&req.init, custom) {
        // A custom start replaces the recipe's start below; the joint fit is what takes one.
        (_, true) => {
            r.init = Some(InitChoice::Nndsvda);
            r.method = MethodChoice::Joint;
        }
        (Some(i), false) => {
            r.init = Some(match i {
                Init::Random => InitChoice::Random,
                Init::Nndsvd => InitChoice::Nndsvd,
                Init::Nndsvdar => InitChoice::Nndsvdar,
                _ => InitChoice::Nndsvda,
            });
            r.method = method;
        }
        (None, false) => r.method = method,
    }
    r.seed = req.seed;
    r.threads = req.threads;
    r.units = req
        .normalize
        .map(|n| if n { Units::Normalized } else { Units::Raw });
    r.compat_espm = req.espm;
    r.simplex_h = req.simplex_h && !req.simplex_w;
    r.g_update = req.g_update;
    r.refine_calibration = req.refine_calibration;
    Ok(r)
}

fn fit_pipeline(spec: &ModelSpec, data: &SpectrumImage, req: &Request) -> Result<Output> {
    let custom = matches!(req.init, Some(Init::Custom { .. }));
    let request = decompose_request(req, custom)?;
    // `edxs decompose`'s calibration refinement (none with espm's solver); the G returned is
    // the refined model's.
    let refinement = request.calibrate(spec, data);
    let calibration_seconds = request.refines_calibration().then_some(refinement.seconds);
    let spec = refinement.refined.apply(spec);
    let model = spec.model()?;
    if model.n_channels() != data.channels {
        bail!(
            "G has {} channels but X has {}: the model's energy axis must match the data's",
            model.n_channels(),
            data.channels
        );
    }
    let (method, _why) = request.method(data);
    let (mut recipe, set) = request.recipe(&model, data, method)?;
    let (m, k, p) = (model.n_columns(), req.k, data.pixels);
    // W and H returned in espm's normalised units only when normalize=True was asked (the
    // pipeline scales its regularisation by the same factor, following `Recipe::normalized`).
    let norm_f = Normalize::of(data, k, req.normalize == Some(true));
    let f = norm_f.f;
    if let Some(Init::Custom { w, h }) = &req.init {
        if w.len() != m * k {
            bail!("W has {} entries, expected {m} x {k}", w.len());
        }
        if h.len() != k * p {
            bail!("H has {} entries, expected {k} x {p}", h.len());
        }
        // espm fits f·X from this H: the same iterates on X start from H/f.
        recipe.start = Start::Custom {
            w: w.clone(),
            h: h.iter().map(|v| v / f).collect(),
        };
    }
    if let Some(fw) = &req.fixed_w {
        if fw.len() != m * k {
            bail!("fixed_W has {} entries, expected {m} x {k}", fw.len());
        }
        recipe.fix = FixW::Given(fw.clone());
    }
    let prep = Prepared::new(&model, k)?;
    let fit = pipeline::fit(&prep, data, &recipe, &set, &mut SpectraCache::default())?;
    let (mut w, mut h) = (fit.w, fit.h);
    norm_f.unscale(&mut w, &mut h);
    Ok(Output {
        g: fit.g,
        w,
        h,
        m,
        history: fit.history,
        iterations: fit.iterations,
        reason: format!("{:?}", fit.summary.reason),
        norm_factor: f,
        method: if recipe.two_stage_bin > 0 {
            "two-stage"
        } else {
            "joint"
        }
        .into(),
        timings: timings(calibration_seconds, fit.stage_seconds, fit.seconds),
    })
}

/// The core solver on any G (identity, plain array or model), espm's estimator loop.
fn fit_direct(g: &GSpec, data: &SpectrumImage, req: &Request) -> Result<Output> {
    let (l, p, k) = (data.channels, data.pixels, req.k);
    // espm's defaults for what was left unset.
    let mu_v = req.mu.clone().unwrap_or_else(|| vec![0.0]);
    let lambda_l = req.lambda_l.unwrap_or(0.0);
    let epsilon_reg = req.epsilon_reg.unwrap_or(1.0);
    let max_iter = req.max_iter.unwrap_or(200);
    let tol = req.tol.unwrap_or(1e-4);
    let normalize = req.normalize.unwrap_or(false);
    if k == 0 {
        bail!("n_components must be at least 1");
    }
    if k > l.min(p) {
        bail!("n_components={k} is larger than the data allow ({p} pixels x {l} channels)");
    }
    if max_iter == 0 {
        bail!("max_iter must be at least 1");
    }
    let model = match g {
        GSpec::Model(spec) => Some(spec.model()?),
        _ => None,
    };
    if let Some(m) = &model {
        if m.n_channels() != l {
            bail!(
                "G has {} channels but X has {l}: the model's energy axis must match the data's",
                m.n_channels()
            );
        }
    }
    let (mut gm, m, norm) = match (g, &model) {
        (GSpec::Identity, _) => (Vec::new(), l, None),
        (GSpec::Array { g, m }, _) => {
            if g.len() != l * m {
                bail!(
                    "G has {} rows but X has {l} channels",
                    g.len() / (*m).max(1)
                );
            }
            (g.clone(), *m, None)
        }
        (GSpec::Model(_), Some(model)) => {
            let m = model.n_columns();
            let mut gm = vec![0.0; l * m];
            let mut scratch = vec![0.0; model.scratch_len()];
            let norm = model
                .build_g(&mut gm, &mut scratch)
                .map_err(|e| anyhow!("model: {e}"))?;
            (gm, m, Some(norm))
        }
        (GSpec::Model(_), None) => unreachable!("the model was built above"),
    };
    let simplex_h = req.simplex_h && !req.simplex_w;
    let rows: Vec<usize> = match &model {
        Some(model) => model.simplex_rows().collect(),
        None => (0..m).collect(),
    };
    let norm_f = Normalize::of(data, k, normalize);
    let f = norm_f.f;
    let (mu, lambda_l, epsilon_reg) = norm_f.regularisation(&mu_v, lambda_l, epsilon_reg);
    let fixed_h: Option<Vec<f64>> = req.fixed_h.as_ref().map(|fh| {
        fh.iter()
            .map(|&v| if v >= 0.0 { v / f } else { v })
            .collect()
    });
    let brems = model.as_ref().is_some_and(|m| m.params().bremsstrahlung);
    let spec = SolverSpec {
        k,
        mu: &mu,
        lambda_l,
        epsilon_reg,
        shape: data.shape,
        simplex: match (req.simplex_w, simplex_h) {
            (true, _) => Simplex::W { rows: &rows },
            (false, true) => Simplex::H,
            (false, false) => Simplex::None,
        },
        identity_g: matches!(g, GSpec::Identity),
        g_update: req.g_update && brems,
        fixed_w: req.fixed_w.as_deref(),
        fixed_h: fixed_h.as_deref(),
        tol,
        max_iter,
        espm: req.espm,
    };
    let solver = Solver::new(spec.params(), l, m, p).map_err(|e| anyhow!("{e}"))?;

    let on = GInUse {
        spec: g,
        g: &gm,
        m,
        rows: &rows,
    };
    let (mut w, mut h) = start(req, data, &on, simplex_h, f)?;
    let mut model_scratch = vec![0.0; model.as_ref().map_or(0, |m| m.scratch_len())];
    let mut update: Box<dyn GUpdate<f64>> = match (&model, norm) {
        (Some(model), Some(norm)) if brems => Box::new(BremsstrahlungUpdate {
            model,
            norm,
            scratch: &mut model_scratch,
        }),
        _ => Box::new(NoGUpdate),
    };
    let t0 = std::time::Instant::now();
    let (summary, history) = pipeline::run_solver(
        &solver,
        data.counts(),
        req.espm && simplex_h,
        req.threads,
        (&mut gm, &mut w, &mut h),
        update.as_mut(),
    )?;
    norm_f.unscale(&mut w, &mut h);
    Ok(Output {
        g: gm,
        w,
        h,
        m,
        history,
        iterations: summary.iterations,
        reason: format!("{:?}", summary.reason),
        norm_factor: f,
        method: "direct".into(),
        timings: timings(None, None, t0.elapsed().as_secs_f64()),
    })
}

/// The G a direct fit runs on: as asked, as built (L x M, empty for the identity) and the rows of
/// W on the simplex.
struct GInUse<'a> {
    spec: &'a GSpec,
    g: &'a [f64],
    m: usize,
    rows: &'a [usize],
}

/// W and H at the start (espm §4.4), in raw-count units (`f`: espm's `normalize` factor).
fn start(
    req: &Request,
    data: &SpectrumImage,
    on: &GInUse<'_>,
    simplex_h: bool,
    f: f64,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let GInUse {
        spec: g,
        g: gm,
        m,
        rows,
    } = *on;
    let (l, p, k) = (data.channels, data.pixels, req.k);
    if let Some(Init::Custom { w, h }) = &req.init {
        if w.len() != m * k {
            bail!("W has {} entries, expected {m} x {k}", w.len());
        }
        if h.len() != k * p {
            bail!("H has {} entries, expected {k} x {p}", h.len());
        }
        return Ok((
            w.iter().map(|v| v.max(EPS)).collect(),
            h.iter().map(|v| (v / f).max(EPS)).collect(),
        ));
    }
    let (mut d, mut h) = match req.init.as_ref().unwrap_or(&Init::Nndsvda) {
        Init::Random => {
            let mut d = vec![0.0; l * k];
            let mut h = vec![0.0; k * p];
            let mut rng = edxs_core::rng::Rng::new(req.seed);
            edxs_core::init::random_start(data.mean(), &mut rng, &mut d, &mut h, k);
            (d, h)
        }
        variant => {
            let v = match variant {
                Init::Nndsvd => NndsvdVariant::Nndsvd,
                Init::Nndsvdar => NndsvdVariant::Nndsvdar,
                _ => NndsvdVariant::Nndsvda,
            };
            nndsvd(&data.as_ref(), k, v, req.seed)?
        }
    };
    if simplex_h {
        // espm: every pixel's abundances divided by their sum, the spectra by the mean sum.
        let mut total = 0.0;
        for px in 0..p {
            let s: f64 = (0..k).map(|c| h[c * p + px]).sum();
            total += s;
            for c in 0..k {
                h[c * p + px] = if s > 0.0 {
                    h[c * p + px] / s
                } else {
                    1.0 / k as f64
                };
            }
        }
        let mean = total / p as f64;
        d.iter_mut().for_each(|v| *v *= mean);
    }
    let w = match g {
        GSpec::Identity => d,
        GSpec::Model(_) if !req.espm && req.simplex_w => {
            physics_w_whole_columns(gm, &d, l, m, k, rows)?
        }
        _ => {
            let simplex_rows: &[usize] = if req.simplex_w { rows } else { &[] };
            let mut w = vec![0.0; m * k];
            let mut scratch = vec![0.0; edxs_core::init::physics_w_scratch_len(l, m, k)];
            use edxs_core::view::{MatMut, MatRef};
            MatRef::new("g", gm, l, m)
                .and_then(|g| {
                    let d = MatRef::new("d", &d, l, k)?;
                    let w = MatMut::new("w", &mut w, m, k)?;
                    edxs_core::init::physics_w(g, d, simplex_rows, EPS, w, &mut scratch)
                })
                .map_err(|e| anyhow!("initialisation: {e}"))?;
            w
        }
    };
    Ok((
        w.into_iter().map(|v| v.max(EPS)).collect(),
        h.into_iter().map(|v| v.max(EPS)).collect(),
    ))
}
