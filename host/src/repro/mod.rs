//! The paper's Figure 1 experiment (spec §3.7): the simulated Brg/Fp/CaPv datasets, the four
//! decompositions the paper compares, and edxs's own stronger default, each scored against the
//! truth with espm's measures.

pub mod plot;

use crate::cli::evaluate::{evaluate, MatchBy};
use crate::init::{nndsvd, NndsvdVariant};
use crate::io::counts::SpectrumImage;
use crate::model_args::ModelSpec;
use crate::parallel::ParallelExec;
use crate::sim::{self, maps, phases, presets};
use anyhow::{anyhow, Result};
use edxs_core::physics::BremsstrahlungUpdate;
use edxs_core::rng::Rng;
use edxs_core::solver::{GUpdate, Laplacian, NoGUpdate, RunSummary, StopReason, Stopping};
use edxs_core::{EdxsModel, Solver, SolverParams};

/// Number of phases of the paper's set-up.
pub const K: usize = 3;

/// One simulated spectrum image with its truth.
pub struct Dataset {
    /// Counts per pixel N the image was drawn with.
    pub dose: f64,
    /// Poisson seed (espm: 42 + sampling index).
    pub seed: u64,
    /// The counts, with the scan shape.
    pub image: SpectrumImage,
    /// True spectra in counts (K×L): N · density_k · phase_k.
    pub spectra: Vec<f64>,
    /// True abundance maps (K×P).
    pub maps: Vec<f64>,
}

/// The decomposition model of the paper: its twelve elements, nothing ignored.
///
/// espm's default `ignored=['Cu']` would add Cu's lines a second time next to the Cu element
/// column, and those collinear columns leave W unidentifiable; Cu is therefore modelled once.
pub fn paper_model_spec() -> ModelSpec {
    let cfg = presets::paper();
    ModelSpec {
        elements: cfg.elements.clone(),
        ignored: Vec::new(),
        split: Vec::new(),
        warnings: Vec::new(),
        base: cfg.model,
    }
}

/// Simulates the paper's image at `size`×`size` pixels: spheres of radius 25/128 of the side at
/// the paper's centres (94, 50) and (69, 80) (scaled), `dose` counts per pixel, Poisson `seed`.
pub fn paper_dataset(size: usize, dose: f64, seed: u64) -> Result<Dataset> {
    anyhow::ensure!(
        size >= 8,
        "the image must be at least 8x8 pixels, got {size}"
    );
    let cfg = presets::paper();
    let set = phases::generate_phases(&cfg.model, &cfg.phases)?;
    let l = set.channels;
    let s = size as f64 / 128.0;
    let centers = [(94.0 * s, 50.0 * s), (69.0 * s, 80.0 * s)];
    let (h, skipped) = maps::spheres(size, size, K, 25.0 * s, &centers)?;
    anyhow::ensure!(skipped.is_empty(), "a particle was left out at size {size}");
    let densities: Vec<f64> = cfg.phases.iter().map(|p| p.density).collect();
    let p = size * size;
    let mut rng = Rng::new(seed);
    let mut lam = vec![0.0; l];
    let (mut indptr, mut indices, mut values) = (vec![0], Vec::new(), Vec::new());
    for px in 0..p {
        sim::expected_pixel(&set.spectra, &densities, &h, dose, px, &mut lam);
        sim::draw_counts(&mut rng, &mut lam);
        for (c, &v) in lam.iter().enumerate() {
            if v != 0.0 {
                indices.push(c as u32);
                values.push(v);
            }
        }
        indptr.push(values.len());
    }
    Ok(Dataset {
        dose,
        seed,
        image: SpectrumImage {
            channels: l,
            pixels: p,
            shape: Some((size, size)),
            indptr,
            indices,
            values,
        },
        spectra: sim::spectra_counts(&set.spectra, &densities, dose, l),
        maps: h,
    })
}

/// How a run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// sklearn's NNDSVDar (the paper at 293 counts/pixel).
    Nndsvdar,
    /// sklearn's random start (the paper at 18 counts/pixel).
    Random,
}

/// One decomposition method of the comparison.
#[derive(Debug, Clone)]
pub struct Method {
    /// Short label used in the table and the plot legend.
    pub name: String,
    /// Plain KL-NMF (G = identity, no simplex, no G update) instead of ESpM-NMF.
    pub plain: bool,
    /// μ in espm's normalised units (data scaled so that the mean pixel total is K).
    pub mu: f64,
    /// λ (normalised units).
    pub lambda: f64,
    /// ε_reg (normalised units).
    pub epsilon_reg: f64,
    /// Impose Si = 0 in the ferropericlase-like component.
    pub fix_si_in_fp: bool,
    /// Starting point.
    pub start: Start,
    /// Iterations with every component's bremsstrahlung held at the mean spectrum's (0 = none).
    pub anchor_iter: usize,
    /// Two stages when > 0: the spectra from ESpM(0,0,0) on the image summed over
    /// `two_stage_bin`² pixel blocks, then the full-resolution maps with W fixed and this
    /// method's regularisation.
    pub two_stage_bin: usize,
}

/// Iterations of the bremsstrahlung anchor in edxs's runs of the paper's ESpM methods.
pub const ANCHOR_ITER: usize = 300;

/// Iterations of the bremsstrahlung anchor in the spectra stage of edxs's default (longer: the
/// binned fits are cheap, and releasing early let a phase drift at some noise draws).
pub const DEFAULT_ANCHOR_ITER: usize = 1000;

impl Method {
    /// ESpM-NMF with the given regularisation in espm's normalised units, started as `start`,
    /// with edxs's bremsstrahlung anchor.
    pub fn espm(name: &str, mu: f64, lambda: f64, epsilon_reg: f64, start: Start) -> Self {
        Method {
            name: name.into(),
            plain: false,
            mu,
            lambda,
            epsilon_reg,
            fix_si_in_fp: false,
            start,
            anchor_iter: ANCHOR_ITER,
            two_stage_bin: 0,
        }
    }

    /// The same regularisation run through edxs's pipeline: the spectra from lightly
    /// regularised ESpM on images binned to at least ~250 counts per pixel (three binnings,
    /// the most consistent kept), then this method's μ, λ, ε_reg on the full-resolution maps
    /// with the spectra held.
    pub fn edxs(name: &str, mu: f64, lambda: f64, epsilon_reg: f64, dose: f64) -> Self {
        let mut m = Method::espm(name, mu, lambda, epsilon_reg, Start::Nndsvdar);
        m.two_stage_bin = default_bin(dose);
        m.anchor_iter = DEFAULT_ANCHOR_ITER;
        m
    }

    /// edxs's default for the paper's data: its pipeline with smooth maps (λ = 1, no sparsity).
    pub fn edxs_default(dose: f64) -> Self {
        Method::edxs("edxs default", 0.0, 1.0, 1.0, dose)
    }
}

/// The smallest block side, from 2, that brings `dose` counts per pixel to ~250 (at 293
/// counts/pixel 2×2 blocks gave the same spectra as full resolution in half the time).
pub fn default_bin(dose: f64) -> usize {
    let mut b = 2;
    while (b * b) as f64 * dose < 250.0 && b < 16 {
        b += 1;
    }
    b
}

/// The paper's four methods with its starts (NNDSVDar at high counts, random at low counts),
/// the three ESpM variants through edxs's pipeline, and edxs's default, for one dose.
pub fn methods(dose: f64) -> Vec<Method> {
    let start = if dose >= 100.0 {
        Start::Nndsvdar
    } else {
        Start::Random
    };
    let mut plain = Method::espm("KL-NMF", 0.0, 0.0, 1.0, start);
    plain.plain = true;
    plain.anchor_iter = 0;
    let mut fixed = Method::espm("ESpM(0,0,0) Si=0 in Fp", 0.0, 0.0, 1.0, start);
    fixed.fix_si_in_fp = true;
    let mut edxs_fixed = Method::edxs("edxs ESpM(0,0,0) Si=0 in Fp", 0.0, 0.0, 1.0, dose);
    edxs_fixed.fix_si_in_fp = true;
    vec![
        plain,
        Method::espm("ESpM(0,0,0)", 0.0, 0.0, 1.0, start),
        fixed,
        Method::espm("ESpM(0.004,1,0.01)", 0.004, 1.0, 0.01, start),
        Method::edxs("edxs ESpM(0,0,0)", 0.0, 0.0, 1.0, dose),
        edxs_fixed,
        Method::edxs("edxs ESpM(0.004,1,0.01)", 0.004, 1.0, 0.01, dose),
        Method::edxs_default(dose),
    ]
}

/// Iteration settings shared by every run.
#[derive(Debug, Clone, Copy)]
pub struct RunSettings {
    /// Iteration cap of a run (of each stage for two-stage methods).
    pub max_iter: usize,
    /// Relative loss change at which a run stops.
    pub tol: f64,
    /// Worker threads (0 = one per core).
    pub threads: usize,
    /// Seed of every initialisation.
    pub seed: u64,
}

/// The outcome of one method on one dataset.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Method label.
    pub method: String,
    /// Counts per pixel of the dataset.
    pub dose: f64,
    /// Poisson seed of the dataset.
    pub sampling_seed: u64,
    /// Iterations run (all stages included).
    pub iterations: usize,
    /// Wall time of the decomposition (initialisation included), seconds.
    pub seconds: f64,
    /// Final loss (averaged over L·P, in the units the solver ran in).
    pub final_loss: f64,
    /// Why the last stage stopped: "tol" (the loss settled) or "cap" (`max_iter` reached).
    pub stop: String,
    /// Angle in degrees between each true phase and its matched estimate.
    pub angles: Vec<f64>,
    /// Map MSE of each true phase against its matched, rescaled estimate.
    pub mse: Vec<f64>,
}

impl Outcome {
    /// Mean spectral angle over the true phases (degrees).
    pub fn mean_angle(&self) -> f64 {
        self.angles.iter().sum::<f64>() / self.angles.len().max(1) as f64
    }

    /// Mean map MSE over the true phases.
    pub fn mean_mse(&self) -> f64 {
        self.mse.iter().sum::<f64>() / self.mse.len().max(1) as f64
    }
}

/// A model with its G, ready for runs.
pub struct Prepared<'m> {
    model: &'m EdxsModel<'m>,
    g: Vec<f64>,
    norm: edxs_core::Normalisation<f64>,
    rows: Vec<usize>,
    si_row: Option<usize>,
    fe_mg_rows: Vec<usize>,
    brems_rows: Vec<usize>,
}

impl<'m> Prepared<'m> {
    /// Builds G (L×M) for `model`.
    pub fn new(model: &'m EdxsModel<'m>) -> Result<Self> {
        let (l, m) = (model.n_channels(), model.n_columns());
        let mut g = vec![0.0; l * m];
        let mut scratch = vec![0.0; model.scratch_len()];
        let norm = model
            .build_g(&mut g, &mut scratch)
            .map_err(|e| anyhow!("model: {e}"))?;
        let find = |sym: &str| {
            model
                .columns()
                .position(|c| c.in_simplex() && c.element.map(|e| e.symbol()) == Some(sym))
        };
        Ok(Prepared {
            model,
            g,
            norm,
            rows: model.simplex_rows().collect(),
            si_row: find("Si"),
            fe_mg_rows: ["Fe", "Mg"].iter().filter_map(|s| find(s)).collect(),
            brems_rows: model
                .columns()
                .enumerate()
                .filter(|(_, c)| {
                    let n = c.to_string();
                    n == "b0" || n == "b1"
                })
                .map(|(j, _)| j)
                .collect(),
        })
    }
}

/// Initial D (L×K) and H (K×P) for a start.
fn start_dh(data: &SpectrumImage, start: Start, seed: u64) -> Result<(Vec<f64>, Vec<f64>)> {
    let (l, p) = (data.channels, data.pixels);
    match start {
        Start::Random => {
            let mut d = vec![0.0; l * K];
            let mut h = vec![0.0; K * p];
            let mut rng = Rng::new(seed);
            edxs_core::init::random_start(data.mean(), &mut rng, &mut d, &mut h, K);
            Ok((d, h))
        }
        Start::Nndsvdar => nndsvd(&data.as_ref(), K, NndsvdVariant::Nndsvdar, seed),
    }
}

/// Solver state.
#[derive(Clone)]
struct State {
    g: Vec<f64>,
    w: Vec<f64>,
    h: Vec<f64>,
    /// The last run's summary (None before the first).
    summary: Option<RunSummary>,
}

impl State {
    fn iterations(&self) -> usize {
        self.summary.map_or(0, |s| s.iterations)
    }

    fn final_loss(&self) -> f64 {
        self.summary.map_or(f64::NAN, |s| s.final_loss)
    }

    fn stop(&self) -> &'static str {
        match self.summary.map(|s| s.reason) {
            Some(StopReason::MaxIter) => "cap",
            Some(StopReason::LossConverged | StopReason::IterateConverged) => "tol",
            Some(StopReason::LossIncreased) => "loss rose",
            Some(StopReason::NotANumber) => "NaN",
            None => "-",
        }
    }
}

/// What identifies a spectra stage: the methods that share it differ only in their maps.
#[derive(Debug, Clone, Copy, PartialEq)]
struct StageKey {
    fix_si_in_fp: bool,
    bin: usize,
    anchor_iter: usize,
    start: Start,
}

/// The spectra stages already run on one dataset (use one cache per dataset), so that edxs's
/// variants, which differ only in their map stage, run the binned fits once.
#[derive(Default)]
pub struct SpectraCache {
    entries: Vec<(StageKey, State, usize, f64)>,
}

/// Fits `method` to `img`; returns the final state and the iterations run.
fn fit(
    prep: &Prepared<'_>,
    img: &SpectrumImage,
    method: &Method,
    set: &RunSettings,
    cache: &mut SpectraCache,
) -> Result<(State, usize, f64)> {
    let l = img.channels;
    // espm's `normalize`: the data scaled so that the mean pixel total is K. Scaling μ, λ and
    // ε_reg instead leaves the counts integers (the compact kernels need exact f32 counts) and
    // gives the same iterates, with H multiplied by 1/f.
    let f = K as f64 / (img.mean() * l as f64);
    let reg = (method.mu / f, method.lambda * f, method.epsilon_reg / f);
    if method.two_stage_bin > 0 && !method.plain {
        return two_stage(prep, img, method, reg, set, cache);
    }
    let m = if method.plain {
        l
    } else {
        prep.model.n_columns()
    };
    let (g, mut w, h) = initial(prep, img, method, set.seed)?;
    let si_fix = if method.fix_si_in_fp {
        fp_fix(prep, &mut w, m)?
    } else {
        None
    };
    let mut st = State {
        g,
        w,
        h,
        summary: None,
    };
    let mut iterations = 0;
    let mut budget = set.max_iter;
    if method.anchor_iter > 0 && !method.plain {
        // The continuum rows of W are outside the simplex, so from a poor start one component
        // can take all the bremsstrahlung (a "background" phase) and the others none. Holding
        // every component's b0, b1 at the mean spectrum's values until the characteristic
        // parts have settled keeps the continuum with the lines that come with it.
        let n = method.anchor_iter.min(budget);
        let mut fixed = si_fix.clone().unwrap_or_else(|| vec![-1.0; m * K]);
        for (row, v) in brems_anchor(prep, img)? {
            for c in 0..K {
                fixed[row * K + c] = v;
                st.w[row * K + c] = v;
            }
        }
        st = solve(prep, img, method, reg, st, Some(&fixed), n, set)?;
        iterations += st.iterations();
        budget -= n;
    }
    if budget > 0 {
        st = solve(prep, img, method, reg, st, si_fix.as_deref(), budget, set)?;
        iterations += st.iterations();
    }
    Ok((st, iterations, 0.0))
}

/// Spectra from binned images, then maps at full resolution with W fixed.
fn two_stage(
    prep: &Prepared<'_>,
    img: &SpectrumImage,
    method: &Method,
    reg: (f64, f64, f64),
    set: &RunSettings,
    cache: &mut SpectraCache,
) -> Result<(State, usize, f64)> {
    let b0 = method.two_stage_bin.max(1);
    let key = StageKey {
        fix_si_in_fp: method.fix_si_in_fp,
        bin: b0,
        anchor_iter: method.anchor_iter,
        start: method.start,
    };
    let (mut st, mut iterations, reused) = match cache.entries.iter().find(|e| e.0 == key) {
        Some((_, st, it, secs)) => (st.clone(), *it, *secs),
        None => {
            let t0 = std::time::Instant::now();
            let (st, it) = spectra_stage(prep, img, method, set)?;
            let secs = t0.elapsed().as_secs_f64();
            cache.entries.push((key, st.clone(), it, secs));
            (st, it, 0.0)
        }
    };
    // The maps at full resolution with the spectra held: at low counts a free W would follow
    // the noise of single pixels, and at high counts the map penalties would bend the spectra.
    let fixed = st.w.clone();
    st = solve(prep, img, method, reg, st, Some(&fixed), set.max_iter, set)?;
    iterations += st.iterations();
    Ok((st, iterations, reused))
}

/// The spectra of edxs's pipeline from binned images, with full-resolution starting maps.
fn spectra_stage(
    prep: &Prepared<'_>,
    img: &SpectrumImage,
    method: &Method,
    set: &RunSettings,
) -> Result<(State, usize)> {
    let b0 = method.two_stage_bin.max(1);
    // A spectrum image summed over b×b blocks has b² times the counts per pixel, enough to pin
    // the phases' spectra. A light log penalty (μ = 0.001, ε = 0.01) keeps particle phases out
    // of the pure-matrix blocks; λ is left out, since together they favour over-pure particle
    // spectra.
    let mut sub = Method::espm(&method.name, 0.001, 0.0, 0.01, method.start);
    sub.anchor_iter = method.anchor_iter;
    sub.fix_si_in_fp = method.fix_si_in_fp;
    // The binned fits are not shared between datasets, so each gets its own cache.
    let mut none = SpectraCache::default();
    // A single fit lands in a wrong local minimum for some noise draws (one phase rotated into
    // another), each binning for different draws; the binning whose spectra agree best with
    // the others' is kept.
    let mut cands = Vec::new();
    let mut iterations = 0;
    for b in b0..b0 + CONSENSUS {
        let (coarse, st) = match bin(img, b) {
            Some((coarse, rows, cols)) => (
                Some((b, rows, cols)),
                fit(prep, &coarse, &sub, set, &mut none)?,
            ),
            None => (None, fit(prep, img, &sub, set, &mut none)?),
        };
        iterations += st.1;
        cands.push((coarse, st.0));
    }
    let spectra: Vec<Vec<f64>> = cands
        .iter()
        .map(|(_, st)| spectra_of(st, img.channels))
        .collect();
    let disagreement = |i: usize| -> f64 {
        (0..spectra.len())
            .filter(|&j| j != i)
            .map(|j| matched_mean_angle(&spectra[i], &spectra[j], img.channels))
            .sum()
    };
    let pick = (0..cands.len())
        .min_by(|&a, &b| disagreement(a).total_cmp(&disagreement(b)))
        .unwrap_or(0);
    let (coarse, mut st) = cands.swap_remove(pick);
    if let Some((b, rows, cols)) = coarse {
        // Each block's abundances spread evenly over its pixels.
        let (full_rows, full_cols) = img.shape.unwrap_or((1, img.pixels));
        let p = img.pixels;
        let area = (b * b) as f64;
        let mut h = vec![0.0; K * p];
        for r in 0..full_rows {
            for c in 0..full_cols {
                let q = (r / b).min(rows - 1) * cols + (c / b).min(cols - 1);
                for k in 0..K {
                    h[k * p + r * full_cols + c] = st.h[k * rows * cols + q] / area;
                }
            }
        }
        st.h = floor(h);
    }
    Ok((st, iterations))
}

/// Binnings tried by the two-stage default.
pub const CONSENSUS: usize = 3;

/// Spectra G·W of a state, component-major (K×L); an empty G is the identity.
fn spectra_of(st: &State, l: usize) -> Vec<f64> {
    let mut est = vec![0.0; K * l];
    if st.g.is_empty() {
        for (li, wrow) in st.w.chunks_exact(K).enumerate() {
            for c in 0..K {
                est[c * l + li] = wrow[c];
            }
        }
        return est;
    }
    let m = st.g.len() / l;
    for (li, grow) in st.g.chunks_exact(m).enumerate() {
        for c in 0..K {
            est[c * l + li] = (0..m).map(|j| grow[j] * st.w[j * K + c]).sum();
        }
    }
    est
}

/// Mean angle (degrees) between two sets of K spectra after one-to-one matching.
fn matched_mean_angle(a: &[f64], b: &[f64], l: usize) -> f64 {
    let angles = crate::metrics::spectral_angles(a, b, l);
    let perm = crate::metrics::hungarian(&angles, K, K);
    perm.iter()
        .enumerate()
        .map(|(i, j)| j.map_or(180.0, |j| angles[i * K + j]))
        .sum::<f64>()
        / K as f64
}

/// Runs `method` on `data` and scores it against the truth; `cache` belongs to `data` (the
/// time and iterations of a reused spectra stage are counted in each run that uses it).
pub fn run_method(
    prep: &Prepared<'_>,
    data: &Dataset,
    method: &Method,
    set: &RunSettings,
    cache: &mut SpectraCache,
) -> Result<Outcome> {
    let t0 = std::time::Instant::now();
    let img = &data.image;
    let (l, p) = (img.channels, img.pixels);
    let (st, iterations, reused) = fit(prep, img, method, set, cache)?;
    let seconds = t0.elapsed().as_secs_f64() + reused;
    let est = spectra_of(&st, l);
    // The paper matched components by angle at high counts and by map MSE at low counts.
    let by = if data.dose >= 100.0 {
        MatchBy::Angle
    } else {
        MatchBy::Mse
    };
    let ev = evaluate(&data.spectra, &data.maps, &est, &st.h, l, p, by);
    let mut angles = vec![f64::NAN; K];
    let mut mse = vec![f64::NAN; K];
    for (e, t) in ev.permutation.iter().enumerate() {
        if let Some(t) = *t {
            angles[t] = ev.angles[t * K + e];
            mse[t] = ev.mse[t * K + e];
        }
    }
    Ok(Outcome {
        method: method.name.clone(),
        dose: data.dose,
        sampling_seed: data.seed,
        iterations,
        seconds,
        final_loss: st.final_loss(),
        stop: st.stop().into(),
        angles,
        mse,
    })
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
/// shape; None without a scan shape, for b = 1, or when the result would be under 4×4.
fn bin(img: &SpectrumImage, b: usize) -> Option<(SpectrumImage, usize, usize)> {
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

/// G, W and H at the start of a run (G = identity for plain KL-NMF).
fn initial(
    prep: &Prepared<'_>,
    img: &SpectrumImage,
    method: &Method,
    seed: u64,
) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let l = img.channels;
    let (d, h) = start_dh(img, method.start, seed)?;
    if method.plain {
        // G = identity, which the solver takes without storing it (`g_identity`).
        return Ok((Vec::new(), floor(d), floor(h)));
    }
    let w = physics_w(prep, &d, l, K)?;
    Ok((prep.g.clone(), w, floor(h)))
}

/// W (M×k) from spectra D (L×k): espm's max(lstsq(G, D), 0), then every row of a component
/// divided by the sum of its element rows.
///
/// espm divides only the element rows, which leaves the bremsstrahlung rows hundreds of times
/// too large relative to the lines (by the counts per pixel): multiplicative updates then
/// spend their first iterations undoing that, and often end with one component holding all of
/// the continuum.
fn physics_w(prep: &Prepared<'_>, d: &[f64], l: usize, k: usize) -> Result<Vec<f64>> {
    let m = prep.model.n_columns();
    let mut w = vec![0.0; m * k];
    let mut scratch = vec![0.0; edxs_core::init::physics_w_scratch_len(l, m, k)];
    edxs_core::init::physics_w(&prep.g, d, l, m, k, &[], 0.0, &mut w, &mut scratch)
        .map_err(|e| anyhow!("initialisation: {e}"))?;
    let n = prep.rows.len() as f64;
    for c in 0..k {
        let s: f64 = prep.rows.iter().map(|&r| w[r * k + c]).sum();
        for j in 0..m {
            w[j * k + c] = if s > 0.0 && s.is_finite() {
                w[j * k + c] / s
            } else if prep.rows.contains(&j) {
                1.0 / n
            } else {
                0.0
            };
        }
    }
    Ok(floor(w))
}

fn floor(v: Vec<f64>) -> Vec<f64> {
    v.into_iter().map(|x| x.max(1e-14)).collect()
}

/// Si = 0 imposed on the component that looks most like ferropericlase (the least Si for its
/// Fe + Mg in the start), which needs no knowledge of the truth.
fn fp_fix(prep: &Prepared<'_>, w: &mut [f64], m: usize) -> Result<Option<Vec<f64>>> {
    let si = prep
        .si_row
        .ok_or_else(|| anyhow!("the model has no Si column"))?;
    let ratio = |c: usize| {
        let fm: f64 = prep.fe_mg_rows.iter().map(|&r| w[r * K + c]).sum();
        w[si * K + c] / (fm + 1e-12)
    };
    let fp = (0..K)
        .min_by(|&a, &b| ratio(a).total_cmp(&ratio(b)))
        .unwrap_or(0);
    let mut fixed = vec![-1.0; m * K];
    fixed[si * K + fp] = 0.0;
    w[si * K + fp] = 0.0;
    // The start must satisfy the simplex the solver keeps.
    let s: f64 = prep.rows.iter().map(|&r| w[r * K + fp]).sum();
    if s > 0.0 {
        for &r in &prep.rows {
            w[r * K + fp] /= s;
        }
    }
    Ok(Some(fixed))
}

/// One solver run from the state's (G, W, H).
#[allow(clippy::too_many_arguments)]
fn solve(
    prep: &Prepared<'_>,
    img: &SpectrumImage,
    method: &Method,
    (mu, lambda, eps): (f64, f64, f64),
    st: State,
    fixed: Option<&[f64]>,
    max_iter: usize,
    set: &RunSettings,
) -> Result<State> {
    let State {
        mut g,
        mut w,
        mut h,
        ..
    } = st;
    let l = img.channels;
    let m = if method.plain { l } else { g.len() / l };
    let mu_v = [mu];
    let mut params = SolverParams::new(K, &prep.rows);
    params.mu = &mu_v;
    params.epsilon_reg = eps;
    params.lambda_l = lambda;
    params.laplacian = match img.shape {
        Some((rows, cols)) => Laplacian::Grid { rows, cols },
        None => Laplacian::Identity,
    };
    if method.plain {
        params.simplex_w = false;
        params.simplex_rows = &[];
        params.g_update_every = 0;
        params.g_identity = true;
    }
    params.fixed_w = fixed;
    params.tol = set.tol;
    params.max_iter = max_iter;
    params.stopping = Stopping::Relative;
    let mut scratch = vec![0.0; prep.model.scratch_len()];
    let mut update: Box<dyn GUpdate<f64>> = if method.plain {
        Box::new(NoGUpdate)
    } else {
        Box::new(BremsstrahlungUpdate {
            model: prep.model,
            norm: prep.norm,
            scratch: &mut scratch,
        })
    };
    let solver = Solver::new(params, l, m, img.pixels).map_err(|e| anyhow!("{e}"))?;
    let mut exec = ParallelExec::new(&solver, img.counts(), set.threads)?;
    let mut drv = vec![0.0; solver.driver_len()];
    let summary = solver
        .drive(
            &mut exec,
            &mut g,
            &mut w,
            &mut h,
            &mut drv,
            update.as_mut(),
            &mut |_| {},
        )
        .map_err(|e| anyhow!("{e}"))?;
    Ok(State {
        g,
        w,
        h,
        summary: Some(summary),
    })
}
