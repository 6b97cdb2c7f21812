//! The paper's Figure 1 experiment (spec §3.7): the simulated Brg/Fp/CaPv datasets, the four
//! decompositions the paper compares (from its starts) and its three ESpM variants through
//! edxs's two-stage pipeline, each scored against the truth with espm's measures.

use crate::evaluate::{evaluate, MatchBy};
use crate::io::counts::SpectrumImage;
use crate::model_options::ModelSpec;
use crate::pipeline::{self, FixW, Recipe};
use crate::sim::{self, maps, phases, presets};
use anyhow::Result;
use edxs_core::rng::Rng;

pub use crate::pipeline::{Prepared, RunSettings, SpectraCache, Start};

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

/// One decomposition method of the comparison.
#[derive(Debug, Clone)]
pub struct Method {
    /// Short label used in the table and the plot legend.
    pub name: String,
    /// What the fit does.
    pub recipe: Recipe,
    /// Impose Si = 0 in the ferropericlase-like component (the start's component with the
    /// least Si for its Fe + Mg, which needs no knowledge of the truth).
    pub fix_si_in_fp: bool,
}

/// Iterations of the bremsstrahlung anchor in edxs's runs of the paper's ESpM methods.
pub const ANCHOR_ITER: usize = 300;

impl Method {
    /// ESpM-NMF with the given regularisation in espm's normalised units, started as `start`,
    /// with edxs's bremsstrahlung anchor.
    pub fn espm(name: &str, mu: f64, lambda: f64, epsilon_reg: f64, start: Start) -> Self {
        Method {
            name: name.into(),
            recipe: Recipe::espm(mu, lambda, epsilon_reg, start, ANCHOR_ITER),
            fix_si_in_fp: false,
        }
    }

    /// The same regularisation through edxs's two-stage pipeline (spectra from binned images,
    /// then this μ, λ, ε_reg on the full-resolution maps with the spectra held).
    pub fn edxs(name: &str, mu: f64, lambda: f64, epsilon_reg: f64, dose: f64) -> Self {
        Method {
            name: name.into(),
            recipe: Recipe::two_stage(mu, lambda, epsilon_reg, pipeline::auto_bin(dose)),
            fix_si_in_fp: false,
        }
    }

    /// Plain KL-NMF (G = identity, no simplex, no G update) from `start`.
    pub fn plain(name: &str, start: Start) -> Self {
        let mut m = Method::espm(name, 0.0, 0.0, 1.0, start);
        m.recipe.plain = true;
        m.recipe.anchor_iter = 0;
        m
    }
}

/// The paper's four methods with its starts (NNDSVDar at high counts, random at low counts),
/// and the three ESpM variants through edxs's pipeline, for one dose.
pub fn methods(dose: f64) -> Vec<Method> {
    let start = if dose >= 100.0 {
        Start::Nndsvdar
    } else {
        Start::Random
    };
    let mut fixed = Method::espm("ESpM(0,0,0) Si=0 in Fp", 0.0, 0.0, 1.0, start.clone());
    fixed.fix_si_in_fp = true;
    let mut edxs_fixed = Method::edxs("edxs ESpM(0,0,0) Si=0 in Fp", 0.0, 0.0, 1.0, dose);
    edxs_fixed.fix_si_in_fp = true;
    vec![
        Method::plain("KL-NMF", start.clone()),
        Method::espm("ESpM(0,0,0)", 0.0, 0.0, 1.0, start.clone()),
        fixed,
        Method::espm("ESpM(0.004,1,0.01)", 0.004, 1.0, 0.01, start),
        Method::edxs("edxs ESpM(0,0,0)", 0.0, 0.0, 1.0, dose),
        edxs_fixed,
        Method::edxs("edxs ESpM(0.004,1,0.01)", 0.004, 1.0, 0.01, dose),
    ]
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
    /// Why the last stage stopped, as [`Fit::stop`](crate::pipeline::Fit::stop) words it.
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
    let mut recipe = method.recipe.clone();
    if method.fix_si_in_fp {
        let row = prep
            .element_row("Si")
            .ok_or_else(|| anyhow::anyhow!("the model has no Si column"))?;
        let against = ["Fe", "Mg"]
            .iter()
            .filter_map(|s| prep.element_row(s))
            .collect();
        recipe.fix = FixW::ZeroWhereLeast { row, against };
    }
    let fit = pipeline::fit(prep, img, &recipe, set, cache)?;
    let seconds = t0.elapsed().as_secs_f64() + fit.reused_seconds;
    let d = fit.d(l, K);
    // The paper matched components by angle at high counts and by map MSE at low counts.
    let by = if data.dose >= 100.0 {
        MatchBy::Angle
    } else {
        MatchBy::Mse
    };
    let ev = evaluate(&data.spectra, &data.maps, &d, &fit.h, l, p, by);
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
        iterations: fit.iterations,
        seconds,
        final_loss: fit.summary.final_loss,
        stop: fit.stop().into(),
        angles,
        mse,
    })
}
