//! edxs's ESpM pipeline: one joint fit from a start (espm's way), or two stages: the phase
//! spectra from the image binned to enough counts per pixel (several binnings, the one whose
//! spectra give the full-resolution data the highest likelihood kept), then the
//! full-resolution maps with the spectra held. Used by `decompose --two-stage` and the
//! Figure 1 reproduction.

use crate::init::{nndsvd, NndsvdVariant};
use crate::io::counts::SpectrumImage;
use crate::parallel::ParallelExec;
use anyhow::{anyhow, bail, Result};
use edxs_core::physics::BremsstrahlungUpdate;
use edxs_core::rng::Rng;
use edxs_core::solver::{
    Exec, GUpdate, IterReport, Laplacian, NoGUpdate, RunSummary, SerialExec, SimplexSolver,
    StopReason, Stopping,
};
use edxs_core::{EdxsModel, Solver, SolverParams};

/// Binnings tried by the spectra stage (block sides `bin`, `bin + 1`, …).
pub const CANDIDATES: usize = 4;

/// Iterations of the spectra stage with the bremsstrahlung held (longer than for a joint fit:
/// the binned fits are cheap, and releasing early let a phase drift at some noise draws).
pub const STAGE_ANCHOR_ITER: usize = 1000;

/// The smallest block side, from 2, that brings `counts_per_pixel` to ~250 (at 293
/// counts/pixel 2×2 blocks gave the same spectra as full resolution in half the time).
pub fn auto_bin(counts_per_pixel: f64) -> usize {
    let mut b = 2;
    while (b * b) as f64 * counts_per_pixel < 250.0 && b < 16 {
        b += 1;
    }
    b
}

/// The fit `edxs decompose` performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// One joint fit of W and H (espm's way).
    Joint,
    /// The two-stage pipeline: spectra from binned blocks, then the maps with them held.
    TwoStage,
}

/// Iteration cap of each pipeline fit by default: every Figure 1 run settled before it.
pub const TWO_STAGE_MAX_ITER: usize = 10000;
/// Relative loss change at which a pipeline fit stops by default (Figure 1's tolerance: at
/// 1e-6 the maps stop before the log and Laplacian terms have acted).
pub const TWO_STAGE_TOL: f64 = 1e-8;

impl Method {
    /// The name written to results.json and printed.
    pub fn name(self) -> &'static str {
        match self {
            Method::Joint => "joint",
            Method::TwoStage => "two-stage",
        }
    }

    /// Default (μ, λ, ε_reg) in normalised units: on the pipeline's maps (the spectra are
    /// held there, so the penalties shape only the maps) the paper's μ and ε_reg with a
    /// lighter λ; espm's defaults for a joint fit, where the paper's values bend the spectra
    /// (README "Figure 1").
    pub fn regularisation(self) -> (f64, f64, f64) {
        match self {
            // λ = 0.1 rather than the paper's 1: in normalised units λ does not fall with the
            // dose, and on espm-simulated 64² maps λ = 1 blurred the particles' edges (map MSE
            // 0.0077 at 293 counts/pixel, 0.0011 with 0.1; 0.0061 with 0.1 at 18 counts).
            Method::TwoStage => (0.004, 0.1, 0.01),
            Method::Joint => (0.0, 0.0, 1.0),
        }
    }

    /// Default iteration cap (per fit) and relative tolerance.
    pub fn limits(self) -> (usize, f64) {
        match self {
            Method::Joint => (1000, 1e-6),
            Method::TwoStage => (TWO_STAGE_MAX_ITER, TWO_STAGE_TOL),
        }
    }

    /// Default start.
    pub fn start(self) -> Start {
        match self {
            Method::Joint => Start::Nndsvda,
            Method::TwoStage => Start::Nndsvdar,
        }
    }
}

/// Why the two-stage pipeline cannot run on `img` with blocks of `bin` pixels a side (None
/// when it can).
pub fn cannot_bin(img: &SpectrumImage, bin_side: usize) -> Option<&'static str> {
    if img.shape.is_none() {
        Some("the data have no 2-D scan shape to bin")
    } else if bin(img, bin_side).is_none() {
        Some("the scan is too small to bin into 4x4 blocks or more")
    } else {
        None
    }
}

/// What `edxs decompose` runs on `img` with only K given (and the seed and threads): the
/// two-stage pipeline where the scan can be binned, else the joint fit (with the reason), each
/// with its default regularisation (normalised units), start and limits. The library's
/// entry point for "the best method we have" (the Python binding and `rank` use it).
pub fn default_recipe(
    img: &SpectrumImage,
    seed: u64,
    threads: usize,
) -> (Method, Recipe, RunSettings, Option<&'static str>) {
    let b = auto_bin(img.mean() * img.channels as f64);
    let why = cannot_bin(img, b);
    let method = if why.is_none() {
        Method::TwoStage
    } else {
        Method::Joint
    };
    let (mu, lambda, eps) = method.regularisation();
    let recipe = match method {
        Method::TwoStage => Recipe::two_stage(mu, lambda, eps, b),
        Method::Joint => Recipe::espm(mu, lambda, eps, method.start(), 0),
    };
    let (max_iter, tol) = method.limits();
    let set = RunSettings {
        max_iter,
        tol,
        threads,
        seed,
    };
    (method, recipe, set, why)
}

/// How a run starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// sklearn's NNDSVD (zeros kept).
    Nndsvd,
    /// NNDSVD with zeros filled by the mean count (deterministic: no seed used).
    Nndsvda,
    /// sklearn's NNDSVDar (zeros filled by small random values).
    Nndsvdar,
    /// sklearn's random start.
    Random,
    /// Given W0 (M×K, or L×K for plain KL-NMF) and H0 (K×P), floored at 1e-14.
    Custom {
        /// W0, row-major.
        w: Vec<f64>,
        /// H0, row-major.
        h: Vec<f64>,
    },
}

/// W entries imposed during a fit.
#[derive(Debug, Clone, PartialEq)]
pub enum FixW {
    /// Nothing imposed.
    None,
    /// The entries ≥ 0 of this M×K matrix are imposed, the others free (espm's `fixed_W`).
    Given(Vec<f64>),
    /// W(`row`, c) = 0 in the component whose start has the least of it for its sum over
    /// `against` (Si in the ferropericlase-like phase needs no knowledge of the truth).
    ZeroWhereLeast {
        /// The row set to zero.
        row: usize,
        /// The rows it is compared with.
        against: Vec<usize>,
    },
}

/// What a fit does.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// Plain KL-NMF (G = identity, no simplex, no G update) instead of ESpM-NMF.
    pub plain: bool,
    /// μ: one value or one per component.
    pub mu: Vec<f64>,
    /// λ of the Laplacian smoothness term.
    pub lambda: f64,
    /// ε_reg of the log term.
    pub epsilon_reg: f64,
    /// μ, λ and ε_reg are in espm's normalised units (data scaled so that the mean pixel total
    /// is K); otherwise they apply to the raw counts.
    pub normalized: bool,
    /// W entries imposed.
    pub fix: FixW,
    /// Starting point.
    pub start: Start,
    /// Iterations with every component's bremsstrahlung held at the mean spectrum's (0 = none).
    pub anchor_iter: usize,
    /// Two stages when > 0: the spectra from lightly regularised ESpM on the image summed over
    /// blocks of `two_stage_bin` to `two_stage_bin + CANDIDATES − 1` pixels a side (the one
    /// whose spectra explain the full-resolution data best kept), then the full-resolution maps
    /// with W held and this recipe's regularisation.
    pub two_stage_bin: usize,
    /// Update the bremsstrahlung columns of G from W every 3 iterations (espm's NMF_update).
    pub g_update: bool,
    /// Each pixel's abundances on the simplex instead of the phases' compositions (espm's
    /// `simplex_H`); joint fits only.
    pub simplex_h: bool,
    /// espm 1.1.3's solver exactly: its bisection for the simplex, its stopping rule and its
    /// start (element rows of W normalised, the bremsstrahlung rows left as they come).
    pub compat_espm: bool,
    /// How runs with the whole W held (the maps and the candidate choice) are solved.
    pub held_solver: HeldSolver,
}

/// The solver of the runs with the whole W held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldSolver {
    /// Per-pixel projected Newton sweeps ([`crate::fast`]): converged in tens of passes.
    Newton,
    /// As `Newton`, and the joint fits too (the spectra stage's binned fits) by alternating
    /// Newton solves of the maps and of the spectra ([`crate::fast::joint`]).
    NewtonJoint,
    /// The core's multiplicative updates (thousands of iterations; for comparisons).
    Multiplicative,
}

impl Recipe {
    /// A joint ESpM fit with `mu`, `lambda`, `epsilon_reg` in normalised units from `start`.
    pub fn espm(mu: f64, lambda: f64, epsilon_reg: f64, start: Start, anchor_iter: usize) -> Self {
        Recipe {
            plain: false,
            mu: vec![mu],
            lambda,
            epsilon_reg,
            normalized: true,
            fix: FixW::None,
            start,
            anchor_iter,
            two_stage_bin: 0,
            g_update: true,
            simplex_h: false,
            compat_espm: false,
            held_solver: HeldSolver::Newton,
        }
    }

    /// The two-stage pipeline with blocks of `bin` pixels a side first and this regularisation
    /// (normalised units) on the maps.
    pub fn two_stage(mu: f64, lambda: f64, epsilon_reg: f64, bin: usize) -> Self {
        let mut r = Recipe::espm(mu, lambda, epsilon_reg, Start::Nndsvdar, STAGE_ANCHOR_ITER);
        r.two_stage_bin = bin.max(1);
        r
    }
}

/// Iteration settings shared by every run.
#[derive(Debug, Clone, Copy)]
pub struct RunSettings {
    /// Iteration cap of a run (of each stage for two-stage recipes).
    pub max_iter: usize,
    /// Relative loss change at which a run stops.
    pub tol: f64,
    /// Worker threads (0 = one per core).
    pub threads: usize,
    /// Seed of every initialisation.
    pub seed: u64,
}

/// A model with its G, ready for fits of `k` components.
pub struct Prepared<'m> {
    /// The model.
    pub model: &'m EdxsModel<'m>,
    g: Vec<f64>,
    norm: edxs_core::Normalisation<f64>,
    rows: Vec<usize>,
    brems_rows: Vec<usize>,
    k: usize,
}

impl<'m> Prepared<'m> {
    /// Builds G (L×M) for `model`, for fits of `k` components.
    pub fn new(model: &'m EdxsModel<'m>, k: usize) -> Result<Self> {
        anyhow::ensure!(k >= 1, "the number of components must be at least 1");
        let (l, m) = (model.n_channels(), model.n_columns());
        let mut g = vec![0.0; l * m];
        let mut scratch = vec![0.0; model.scratch_len()];
        let norm = model
            .build_g(&mut g, &mut scratch)
            .map_err(|e| anyhow!("model: {e}"))?;
        Ok(Prepared {
            model,
            g,
            norm,
            rows: model.simplex_rows().collect(),
            brems_rows: model
                .columns()
                .enumerate()
                .filter(|(_, c)| {
                    let n = c.to_string();
                    n == "b0" || n == "b1"
                })
                .map(|(j, _)| j)
                .collect(),
            k,
        })
    }

    /// The simplex row of an element column (None when the model has no such element).
    pub fn element_row(&self, symbol: &str) -> Option<usize> {
        self.model
            .columns()
            .position(|c| c.in_simplex() && c.element.map(|e| e.symbol()) == Some(symbol))
    }
}

/// The result of a fit.
#[derive(Debug, Clone)]
pub struct Fit {
    /// Final G (L×M; empty for plain KL-NMF, whose G is the identity).
    pub g: Vec<f64>,
    /// W (M×K; L×K for plain KL-NMF).
    pub w: Vec<f64>,
    /// H (K×P).
    pub h: Vec<f64>,
    /// Iterations of every stage.
    pub iterations: usize,
    /// The last solver run.
    pub summary: RunSummary,
    /// Loss terms of the last run per iteration: (total, kl, log_reg, laplacian, rel_w, rel_h).
    pub history: Vec<[f64; 6]>,
    /// Seconds of a spectra stage taken from the cache (not spent in this call).
    pub reused_seconds: f64,
    /// Wall time of this call in seconds.
    pub seconds: f64,
    /// KKT residual ([`crate::fast::kkt`]) of the last run's maps when it held W (Newton).
    pub kkt: Option<f64>,
}

impl Fit {
    /// Why the last run stopped: "tol" (the loss settled) or "cap" (the iteration cap).
    pub fn stop(&self) -> &'static str {
        match self.summary.reason {
            StopReason::MaxIter => "cap",
            StopReason::LossConverged | StopReason::IterateConverged => "tol",
            StopReason::LossIncreased => "loss rose",
            StopReason::NotANumber => "NaN",
        }
    }

    /// The phase spectra G·W, component-major (K×L).
    pub fn spectra(&self, l: usize, k: usize) -> Vec<f64> {
        spectra_of(&self.g, &self.w, l, k)
    }
}

/// One iteration as a history row: (total, kl, log_reg, laplacian, rel_w, rel_h), the columns
/// of `losses.csv`.
pub fn history_row(r: &IterReport) -> [f64; 6] {
    [
        r.loss.total(),
        r.loss.kl,
        r.loss.log_reg,
        r.loss.laplacian,
        r.rel_w,
        r.rel_h,
    ]
}

/// Solver state.
#[derive(Clone)]
struct State {
    g: Vec<f64>,
    w: Vec<f64>,
    h: Vec<f64>,
    summary: Option<RunSummary>,
    history: Vec<[f64; 6]>,
    kkt: Option<f64>,
}

impl State {
    fn iterations(&self) -> usize {
        self.summary.map_or(0, |s| s.iterations)
    }
}

/// What identifies a spectra stage: the recipes that share it differ only in their maps.
#[derive(Debug, Clone, PartialEq)]
struct StageKey {
    fix: FixW,
    bin: usize,
    anchor_iter: usize,
    start: Start,
    g_update: bool,
}

/// The spectra stages already run on one image (use one cache per image), so that recipes
/// that differ only in their map stage run the binned fits once.
#[derive(Default)]
pub struct SpectraCache {
    entries: Vec<(StageKey, State, usize, f64)>,
}

/// Fits `recipe` to `img` with `prep.k` components.
pub fn fit(
    prep: &Prepared<'_>,
    img: &SpectrumImage,
    recipe: &Recipe,
    set: &RunSettings,
    cache: &mut SpectraCache,
) -> Result<Fit> {
    anyhow::ensure!(set.max_iter >= 1, "the iteration cap must be at least 1");
    let t0 = std::time::Instant::now();
    let (st, iterations, reused) = fit_state(prep, img, recipe, set, cache)?;
    let summary = st.summary.ok_or_else(|| anyhow!("no iteration ran"))?;
    Ok(Fit {
        g: st.g,
        w: st.w,
        h: st.h,
        iterations,
        summary,
        history: st.history,
        reused_seconds: reused,
        seconds: t0.elapsed().as_secs_f64(),
        kkt: st.kkt,
    })
}

/// μ, λ, ε_reg for the raw counts of `img`.
fn raw_regularisation(img: &SpectrumImage, recipe: &Recipe, k: usize) -> (Vec<f64>, f64, f64) {
    if !recipe.normalized || img.mean() <= 0.0 {
        return (recipe.mu.clone(), recipe.lambda, recipe.epsilon_reg);
    }
    // espm's `normalize`: the data scaled so that the mean pixel total is K. Scaling μ, λ and
    // ε_reg instead leaves the counts integers (the compact kernels need exact f32 counts) and
    // gives the same iterates, with H multiplied by 1/f.
    let f = k as f64 / (img.mean() * img.channels as f64);
    (
        recipe.mu.iter().map(|m| m / f).collect(),
        recipe.lambda * f,
        recipe.epsilon_reg / f,
    )
}

type Reg = (Vec<f64>, f64, f64);

fn fit_state(
    prep: &Prepared<'_>,
    img: &SpectrumImage,
    recipe: &Recipe,
    set: &RunSettings,
    cache: &mut SpectraCache,
) -> Result<(State, usize, f64)> {
    let (l, k) = (img.channels, prep.k);
    let reg = raw_regularisation(img, recipe, k);
    if recipe.two_stage_bin > 0 && !recipe.plain {
        return two_stage(prep, img, recipe, &reg, set, cache);
    }
    let m = if recipe.plain {
        l
    } else {
        prep.model.n_columns()
    };
    let (g, mut w, h) = initial(prep, img, recipe, set.seed)?;
    let fixed = fixed_w(prep, &recipe.fix, &mut w, m, recipe.compat_espm)?;
    let mut st = State {
        g,
        w,
        h,
        summary: None,
        history: Vec::new(),
        kkt: None,
    };
    let mut iterations = 0;
    let mut budget = set.max_iter;
    if recipe.anchor_iter > 0 && !recipe.plain {
        // The continuum rows of W are outside the simplex, so from a poor start one component
        // can take all the bremsstrahlung (a "background" phase) and the others none. Holding
        // every component's b0, b1 at the mean spectrum's values until the characteristic
        // parts have settled keeps the continuum with the lines that come with it.
        let n = recipe.anchor_iter.min(budget);
        let mut held = fixed.clone().unwrap_or_else(|| vec![-1.0; m * k]);
        for (row, v) in brems_anchor(prep, img)? {
            for c in 0..k {
                if held[row * k + c] < 0.0 {
                    held[row * k + c] = v;
                    st.w[row * k + c] = v;
                }
            }
        }
        st = solve(prep, img, recipe, &reg, st, Some(&held), n, set)?;
        iterations += st.iterations();
        budget -= n;
    }
    if budget > 0 {
        st = solve(prep, img, recipe, &reg, st, fixed.as_deref(), budget, set)?;
        iterations += st.iterations();
    }
    Ok((st, iterations, 0.0))
}

/// Spectra from binned images, then maps at full resolution with W held.
fn two_stage(
    prep: &Prepared<'_>,
    img: &SpectrumImage,
    recipe: &Recipe,
    reg: &Reg,
    set: &RunSettings,
    cache: &mut SpectraCache,
) -> Result<(State, usize, f64)> {
    // A zero on "the component with the least of a row" is imposed on the chosen spectra, not
    // in the binned fits: decided on an NNDSVDar start it landed on the matrix at some of the
    // paper's samplings, and decided on each candidate's fit it let a rotated candidate
    // (matrix lost) win the choice (18° and 44°).
    let late = matches!(recipe.fix, FixW::ZeroWhereLeast { .. });
    let mut stage = recipe.clone();
    if late {
        stage.fix = FixW::None;
    }
    let key = StageKey {
        fix: stage.fix.clone(),
        bin: recipe.two_stage_bin.max(1),
        anchor_iter: recipe.anchor_iter,
        start: recipe.start.clone(),
        g_update: recipe.g_update,
    };
    let (mut st, mut iterations, reused) = match cache.entries.iter().find(|e| e.0 == key) {
        Some((_, st, it, secs)) => (st.clone(), *it, *secs),
        None => {
            let t0 = std::time::Instant::now();
            let (st, it) = spectra_stage(prep, img, &stage, set)?;
            let secs = t0.elapsed().as_secs_f64();
            cache.entries.push((key, st.clone(), it, secs));
            (st, it, 0.0)
        }
    };
    if late {
        let m = prep.model.n_columns();
        fixed_w(prep, &recipe.fix, &mut st.w, m, false)?;
    }
    // The maps at full resolution with the spectra held: at low counts a free W would follow
    // the noise of single pixels, and at high counts the map penalties would bend the spectra.
    let held = st.w.clone();
    st = solve(prep, img, recipe, reg, st, Some(&held), set.max_iter, set)?;
    iterations += st.iterations();
    // Not done: the spectra again from every pixel with these maps held, then the maps
    // again. The regularised maps are biased (the log term shrinks the particles), and W
    // followed them: 15–18° instead of 3–5° on espm-simulated 64² maps at 18 counts/pixel.
    Ok((st, iterations, reused))
}

/// The spectra of the pipeline from binned images, with full-resolution starting maps.
fn spectra_stage(
    prep: &Prepared<'_>,
    img: &SpectrumImage,
    recipe: &Recipe,
    set: &RunSettings,
) -> Result<(State, usize)> {
    let (b0, k) = (recipe.two_stage_bin.max(1), prep.k);
    // A spectrum image summed over b×b blocks has b² times the counts per pixel, enough to pin
    // the phases' spectra. A light log penalty (μ = 0.001, ε = 0.01) keeps particle phases out
    // of the pure-matrix blocks; λ is left out, since together they favour over-pure particle
    // spectra.
    let mut sub = Recipe::espm(0.001, 0.0, 0.01, recipe.start.clone(), recipe.anchor_iter);
    sub.fix = recipe.fix.clone();
    sub.g_update = recipe.g_update;
    sub.held_solver = recipe.held_solver;
    // The binned fits are not shared between images, so each gets its own cache.
    let mut none = SpectraCache::default();
    // A single fit lands in a wrong local minimum for some noise draws (one phase rotated into
    // another), each binning for different draws, so several binnings are tried.
    let mut cands = Vec::new();
    let mut iterations = 0;
    for b in b0..b0 + CANDIDATES {
        let (st, it, _) = match bin(img, b) {
            Some((coarse, _, _)) => fit_state(prep, &coarse, &sub, set, &mut none)?,
            None => fit_state(prep, img, &sub, set, &mut none)?,
        };
        iterations += it;
        cands.push(st);
    }
    // Each candidate's spectra held, the full-resolution maps fitted to convergence with the
    // binned fits' light log penalty: that objective at full resolution tells the candidates
    // apart. The likelihood alone did not (a rotated solution whose wider cone of spectra fits
    // the noise better won at one of the paper's samplings), nor did a short fit (300
    // iterations from block maps). The maps start from a weighted least-squares fit, from
    // which they converge in a few hundred iterations.
    let sub_reg = raw_regularisation(img, &sub, k);
    let mut best: Option<(f64, State)> = None;
    for mut st in cands {
        st.h = weighted_ls_maps(&spectra_of(&st.g, &st.w, img.channels, k), img, k);
        let held = st.w.clone();
        st = solve(
            prep,
            img,
            &sub,
            &sub_reg,
            st,
            Some(&held),
            set.max_iter,
            set,
        )?;
        iterations += st.iterations();
        let loss = st.summary.map_or(f64::INFINITY, |s| s.final_loss);
        let better = match &best {
            Some((l, _)) => loss < *l,
            None => true,
        };
        if better {
            best = Some((loss, st));
        }
    }
    let (_, st) = best.ok_or_else(|| anyhow!("no spectra candidate"))?;
    Ok((st, iterations))
}

/// Maps (K×P) that fit each pixel of `img` with the spectra `d` (K×L) by least squares
/// weighted with the inverse mean spectrum (Poisson variance), clipped at ε: a start from
/// which the multiplicative updates converge in far fewer iterations than from block maps.
fn weighted_ls_maps(d: &[f64], img: &SpectrumImage, k: usize) -> Vec<f64> {
    let (l, p) = (img.channels, img.pixels);
    let mean = img.sum_spectrum();
    let wgt: Vec<f64> = mean
        .iter()
        .map(|m| 1.0 / (m / p as f64).max(1e-3))
        .collect();
    // A = Dᵀ diag(w) D, inverted once by Gauss–Jordan with a relative ridge.
    let mut a = vec![0.0; k * k];
    for i in 0..k {
        for j in 0..k {
            a[i * k + j] = (0..l).map(|c| d[i * l + c] * d[j * l + c] * wgt[c]).sum();
        }
    }
    let ridge = 1e-9 * (0..k).map(|i| a[i * k + i]).fold(0.0, f64::max);
    let mut inv = vec![0.0; k * k];
    for i in 0..k {
        a[i * k + i] += ridge;
        inv[i * k + i] = 1.0;
    }
    for col in 0..k {
        let piv = (col..k)
            .max_by(|&x, &y| a[x * k + col].abs().total_cmp(&a[y * k + col].abs()))
            .unwrap_or(col);
        for j in 0..k {
            a.swap(col * k + j, piv * k + j);
            inv.swap(col * k + j, piv * k + j);
        }
        let pv = a[col * k + col];
        if pv.abs() < 1e-300 {
            return vec![1.0; k * p];
        }
        for j in 0..k {
            a[col * k + j] /= pv;
            inv[col * k + j] /= pv;
        }
        for r in (0..k).filter(|&r| r != col) {
            let f = a[r * k + col];
            for j in 0..k {
                a[r * k + j] -= f * a[col * k + j];
                inv[r * k + j] -= f * inv[col * k + j];
            }
        }
    }
    let mut h = vec![0.0; k * p];
    let mut b = vec![0.0; k];
    for px in 0..p {
        b.iter_mut().for_each(|v| *v = 0.0);
        for i in img.indptr[px]..img.indptr[px + 1] {
            let c = img.indices[i] as usize;
            let yw = img.values[i] * wgt[c];
            for (kk, bv) in b.iter_mut().enumerate() {
                *bv += d[kk * l + c] * yw;
            }
        }
        for kk in 0..k {
            let v: f64 = (0..k).map(|j| inv[kk * k + j] * b[j]).sum();
            h[kk * p + px] = if v.is_finite() { v } else { 0.0 };
        }
    }
    floor(h)
}

/// Spectra G·W (K×L, component-major); an empty G is the identity.
pub fn spectra_of(g: &[f64], w: &[f64], l: usize, k: usize) -> Vec<f64> {
    let mut est = vec![0.0; k * l];
    if g.is_empty() {
        for (li, wrow) in w.chunks_exact(k).enumerate().take(l) {
            for c in 0..k {
                est[c * l + li] = wrow[c];
            }
        }
        return est;
    }
    let m = g.len() / l;
    for (li, grow) in g.chunks_exact(m).enumerate() {
        for c in 0..k {
            est[c * l + li] = (0..m).map(|j| grow[j] * w[j * k + c]).sum();
        }
    }
    est
}

/// The b0 and b1 rows of W (row, value) that fit the mean spectrum with one component.
fn brems_anchor(prep: &Prepared<'_>, img: &SpectrumImage) -> Result<Vec<(usize, f64)>> {
    let mean: Vec<f64> = img
        .sum_spectrum()
        .iter()
        .map(|v| v / img.pixels as f64)
        .collect();
    let w = physics_w(prep, &mean, img.channels, 1)?;
    Ok(prep.brems_rows.iter().map(|&r| (r, w[r])).collect())
}

/// The image summed over `b`×`b` pixel blocks (partial blocks at the edges included), with its
/// shape; None without a scan shape, for b = 1, or when the result would be under 4×4 (the fit
/// then runs at full resolution).
pub fn bin(img: &SpectrumImage, b: usize) -> Option<(SpectrumImage, usize, usize)> {
    let (rows, cols) = img.shape?;
    let (br, bc) = (rows.div_ceil(b), cols.div_ceil(b));
    if b < 2 || br < 4 || bc < 4 {
        return None;
    }
    let l = img.channels;
    let mut dense = vec![0.0; br * bc * l];
    for px in 0..img.pixels {
        let q = (px / cols / b) * bc + (px % cols) / b;
        for i in img.indptr[px]..img.indptr[px + 1] {
            dense[q * l + img.indices[i] as usize] += img.values[i];
        }
    }
    SpectrumImage::from_dense("binned image", &dense, br * bc, l, Some((br, bc)))
        .ok()
        .map(|s| (s, br, bc))
}

/// Initial D (L×K) and H (K×P) for a start.
fn start_dh(
    data: &SpectrumImage,
    start: &Start,
    k: usize,
    seed: u64,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let (l, p) = (data.channels, data.pixels);
    let variant = match start {
        Start::Nndsvd => NndsvdVariant::Nndsvd,
        Start::Nndsvda => NndsvdVariant::Nndsvda,
        _ => NndsvdVariant::Nndsvdar,
    };
    match start {
        Start::Random => {
            let mut d = vec![0.0; l * k];
            let mut h = vec![0.0; k * p];
            let mut rng = Rng::new(seed);
            edxs_core::init::random_start(data.mean(), &mut rng, &mut d, &mut h, k);
            Ok((d, h))
        }
        Start::Nndsvd | Start::Nndsvda | Start::Nndsvdar => {
            nndsvd(&data.as_ref(), k, variant, seed)
        }
        Start::Custom { .. } => Err(anyhow!("a custom start has no spectra to derive")),
    }
}

/// G, W and H at the start of a run (G empty, the identity, for plain KL-NMF).
fn initial(
    prep: &Prepared<'_>,
    img: &SpectrumImage,
    recipe: &Recipe,
    seed: u64,
) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let (l, k, p) = (img.channels, prep.k, img.pixels);
    let g = if recipe.plain {
        Vec::new()
    } else {
        prep.g.clone()
    };
    if let Start::Custom { w, h } = &recipe.start {
        let m = if recipe.plain {
            l
        } else {
            prep.model.n_columns()
        };
        anyhow::ensure!(
            w.len() == m * k && h.len() == k * p,
            "the custom start has {} W and {} H entries, expected {m}x{k} and {k}x{p}",
            w.len(),
            h.len()
        );
        return Ok((g, floor(w.clone()), floor(h.clone())));
    }
    let (d, h) = start_dh(img, &recipe.start, k, seed)?;
    if recipe.plain {
        return Ok((g, floor(d), floor(h)));
    }
    let mut h = floor(h);
    let w = if recipe.compat_espm || recipe.simplex_h {
        // espm normalises only the element rows of the start (none with simplex_H).
        let m = prep.model.n_columns();
        let rows: &[usize] = if recipe.simplex_h { &[] } else { &prep.rows };
        let mut w = vec![0.0; m * k];
        let mut scratch = vec![0.0; edxs_core::init::physics_w_scratch_len(l, m, k)];
        edxs_core::init::physics_w(&prep.g, &d, l, m, k, rows, 1e-14, &mut w, &mut scratch)
            .map_err(|e| anyhow!("initialisation: {e}"))?;
        w
    } else {
        physics_w(prep, &d, l, k)?
    };
    if recipe.simplex_h {
        for px in 0..p {
            let s: f64 = (0..k).map(|c| h[c * p + px]).sum();
            for c in 0..k {
                h[c * p + px] /= s;
            }
        }
    }
    Ok((g, w, h))
}

/// W (M×k) from spectra D (L×k), every column divided by the sum of its element rows.
fn physics_w(prep: &Prepared<'_>, d: &[f64], l: usize, k: usize) -> Result<Vec<f64>> {
    crate::init::physics_w_whole_columns(&prep.g, d, l, prep.model.n_columns(), k, &prep.rows)
}

fn floor(v: Vec<f64>) -> Vec<f64> {
    v.into_iter().map(|x| x.max(1e-14)).collect()
}

/// The fixed-W matrix of `fix` (None when nothing is imposed), with the start `w` made to
/// agree with it.
fn fixed_w(
    prep: &Prepared<'_>,
    fix: &FixW,
    w: &mut [f64],
    m: usize,
    espm: bool,
) -> Result<Option<Vec<f64>>> {
    let k = prep.k;
    let fixed = match fix {
        FixW::None => return Ok(None),
        FixW::Given(f) => {
            anyhow::ensure!(
                f.len() == m * k,
                "fixed W has {} entries, expected {}",
                f.len(),
                m * k
            );
            f.clone()
        }
        FixW::ZeroWhereLeast { row, against } => {
            anyhow::ensure!(*row < m, "fixed row {row} is outside W");
            let ratio = |c: usize| {
                let s: f64 = against.iter().map(|&r| w[r * k + c]).sum();
                w[row * k + c] / (s + 1e-12)
            };
            let least = (0..k)
                .min_by(|&a, &b| ratio(a).total_cmp(&ratio(b)))
                .unwrap_or(0);
            let mut f = vec![-1.0; m * k];
            f[row * k + least] = 0.0;
            f
        }
    };
    if espm {
        // espm imposes the entries after each update and leaves the start as it is.
        return Ok(Some(fixed));
    }
    for (wv, fv) in w.iter_mut().zip(&fixed) {
        if *fv >= 0.0 {
            *wv = *fv;
        }
    }
    // The start must satisfy the simplex the solver keeps (components without imposed
    // entries already do).
    for c in (0..k).filter(|&c| prep.rows.iter().any(|&r| fixed[r * k + c] >= 0.0)) {
        let s: f64 = prep.rows.iter().map(|&r| w[r * k + c]).sum();
        let imposed: f64 = prep
            .rows
            .iter()
            .filter(|&&r| fixed[r * k + c] >= 0.0)
            .map(|&r| fixed[r * k + c])
            .sum();
        let free = s - imposed;
        if free > 0.0 && imposed < 1.0 {
            for &r in &prep.rows {
                if fixed[r * k + c] < 0.0 {
                    w[r * k + c] = w[r * k + c] / free * (1.0 - imposed);
                }
            }
        }
    }
    Ok(Some(fixed))
}

/// One solver run from the state's (G, W, H).
#[allow(clippy::too_many_arguments)]
fn solve(
    prep: &Prepared<'_>,
    img: &SpectrumImage,
    recipe: &Recipe,
    reg: &Reg,
    st: State,
    fixed: Option<&[f64]>,
    max_iter: usize,
    set: &RunSettings,
) -> Result<State> {
    let whole = fixed.is_some_and(|f| f.iter().all(|v| *v >= 0.0));
    let fast = !recipe.plain && !recipe.compat_espm && !recipe.simplex_h;
    let newton = matches!(
        recipe.held_solver,
        HeldSolver::Newton | HeldSolver::NewtonJoint
    );
    let st = if whole && fast && newton {
        let (mu, lambda, eps) = reg;
        solve_newton_maps(prep, img, recipe, (mu, *lambda, *eps), st, max_iter, set)?
    } else if fast && recipe.held_solver == HeldSolver::NewtonJoint && prep.k <= 8 {
        solve_newton_joint(prep, img, recipe, reg, st, fixed, max_iter, set)?
    } else {
        solve_held(prep, img, recipe, reg, st, (fixed, None), max_iter, set)?
    };
    let stage = match fixed {
        _ if whole => "the maps stage (spectra held)",
        Some(_) => "the fit with W entries held (the continuum anchor or --fix)",
        None => "the joint fit of spectra and maps",
    };
    finite_losses(&st, stage, img)?;
    Ok(st)
}

/// A run's losses must be finite: JSON has no NaN or ∞ (they would be written as `null`), and
/// a non-finite loss means the iterates cannot be trusted either.
fn finite_losses(st: &State, stage: &str, img: &SpectrumImage) -> Result<()> {
    let bad = |v: f64| !v.is_finite();
    let at = match st.summary {
        Some(s) if bad(s.initial_loss) => Some(("at the start".to_string(), s.initial_loss)),
        _ => st
            .history
            .iter()
            .enumerate()
            .find_map(|(i, row)| row[..4].iter().find(|v| bad(**v)).map(|v| (i + 1, *v)))
            .map(|(i, v)| (format!("at iteration {i}"), v))
            .or_else(|| {
                st.summary
                    .filter(|s| bad(s.final_loss))
                    .map(|s| ("at the end".to_string(), s.final_loss))
            }),
    };
    if let Some((when, v)) = at {
        let largest = img.values.iter().fold(0.0f64, |a, &b| a.max(b));
        bail!(
            "the loss of {stage} is {v} {when}; the counts (largest {largest:e}) are beyond what \
             f64 arithmetic can fit: rescale them to counts"
        );
    }
    Ok(())
}

/// One solver run from the state's (G, W, H) with W and H entries held.
#[allow(clippy::too_many_arguments)]
fn solve_held(
    prep: &Prepared<'_>,
    img: &SpectrumImage,
    recipe: &Recipe,
    (mu, lambda, eps): &Reg,
    st: State,
    (fixed, fixed_h): (Option<&[f64]>, Option<&[f64]>),
    max_iter: usize,
    set: &RunSettings,
) -> Result<State> {
    let State {
        mut g,
        mut w,
        mut h,
        ..
    } = st;
    let (l, k) = (img.channels, prep.k);
    let m = if recipe.plain { l } else { g.len() / l };
    let mut params = SolverParams::new(k, &prep.rows);
    params.mu = mu;
    params.epsilon_reg = *eps;
    params.lambda_l = *lambda;
    params.laplacian = match img.shape {
        Some((rows, cols)) => Laplacian::Grid { rows, cols },
        None => Laplacian::Identity,
    };
    let g_update = recipe.g_update && !recipe.plain && prep.model.params().bremsstrahlung;
    params.g_update_every = if g_update { 3 } else { 0 };
    if recipe.plain {
        params.simplex_w = false;
        params.simplex_rows = &[];
        params.g_identity = true;
    }
    if recipe.simplex_h {
        params.simplex_w = false;
        params.simplex_h = true;
    }
    params.fixed_w = fixed;
    params.fixed_h = fixed_h;
    params.tol = set.tol;
    params.max_iter = max_iter;
    params.stopping = if recipe.compat_espm {
        Stopping::Espm
    } else {
        Stopping::Relative
    };
    params.simplex_solver = if recipe.compat_espm {
        SimplexSolver::EspmBisection
    } else {
        SimplexSolver::Newton
    };
    let mut scratch = vec![0.0; prep.model.scratch_len()];
    let mut update: Box<dyn GUpdate<f64>> = if g_update {
        Box::new(BremsstrahlungUpdate {
            model: prep.model,
            norm: prep.norm,
            scratch: &mut scratch,
        })
    } else {
        Box::new(NoGUpdate)
    };
    let solver = Solver::new(params, l, m, img.pixels).map_err(|e| anyhow!("{e}"))?;
    let mut serial_ws = Vec::new();
    // espm's joint bisection over all pixels only exists in the serial solver.
    let mut exec: Box<dyn Exec<f64>> = if recipe.compat_espm && recipe.simplex_h {
        serial_ws.resize(solver.exec_len(), 0.0);
        Box::new(
            SerialExec::new(&solver, img.counts(), &mut serial_ws).map_err(|e| anyhow!("{e}"))?,
        )
    } else {
        Box::new(ParallelExec::new(&solver, img.counts(), set.threads)?)
    };
    let mut drv = vec![0.0; solver.driver_len()];
    let mut history = Vec::new();
    let summary = solver
        .drive(
            exec.as_mut(),
            &mut g,
            &mut w,
            &mut h,
            &mut drv,
            update.as_mut(),
            &mut |r| history.push(history_row(r)),
        )
        .map_err(|e| anyhow!("{e}"))?;
    Ok(State {
        g,
        w,
        h,
        summary: Some(summary),
        history,
        kkt: None,
    })
}

/// One joint run by alternating Newton solves of the maps and the spectra.
#[allow(clippy::too_many_arguments)]
fn solve_newton_joint(
    prep: &Prepared<'_>,
    img: &SpectrumImage,
    recipe: &Recipe,
    (mu, lambda, eps): &Reg,
    st: State,
    fixed: Option<&[f64]>,
    max_iter: usize,
    set: &RunSettings,
) -> Result<State> {
    let g_update = recipe.g_update && prep.model.params().bremsstrahlung;
    let run = crate::fast::joint::JointRun {
        g_update: g_update.then_some((prep.model, prep.norm)),
        simplex_rows: &prep.rows,
        fixed,
        mu,
        lambda: *lambda,
        epsilon_reg: *eps,
        max_iter,
        tol: set.tol,
        threads: set.threads,
    };
    let fit = crate::fast::joint::fit_joint(&run, img, st.g, st.w, st.h, prep.k)?;
    Ok(State {
        g: fit.g,
        w: fit.w,
        h: fit.h,
        summary: Some(fit.summary),
        history: fit.history,
        kkt: Some(fit.kkt),
    })
}

/// One run with the whole W held, by the fast maps solver (G updated from W once, which is
/// what the multiplicative path's updates every 3 iterations give with W held).
fn solve_newton_maps(
    prep: &Prepared<'_>,
    img: &SpectrumImage,
    recipe: &Recipe,
    (mu, lambda, eps): (&[f64], f64, f64),
    st: State,
    max_iter: usize,
    set: &RunSettings,
) -> Result<State> {
    let g_update = recipe.g_update && prep.model.params().bremsstrahlung;
    let run = crate::fast::held::HeldRun {
        g_update: g_update.then_some((prep.model, prep.norm)),
        mu,
        lambda,
        epsilon_reg: eps,
        max_sweeps: max_iter,
        tol: set.tol,
        threads: set.threads,
    };
    let fit = crate::fast::held::fit_held(&run, img, st.g, &st.w, st.h, prep.k)?;
    Ok(State {
        g: fit.g,
        w: st.w,
        h: fit.h,
        summary: Some(fit.summary),
        history: fit.history,
        kkt: Some(fit.report.kkt),
    })
}
