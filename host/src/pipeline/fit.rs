//! The entry point [`fit`] and its result [`Fit`]: one type whatever the method.

use super::recipe::{Recipe, RunSettings};
use super::stages::{fit_state, SpectraCache};
use super::Prepared;
use crate::io::counts::SpectrumImage;
use anyhow::{anyhow, Result};
use edxs_core::solver::{IterReport, RunSummary, StopReason};

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
    /// KKT residual ([`crate::fast::kkt_w`]) of the spectra W at the end of the fit that
    /// found them (the chosen binned fit in the pipeline; None where it was not measured).
    pub kkt_spectra: Option<f64>,
    /// How the two-stage pipeline chose its spectra among the binned candidates (None for a
    /// joint fit).
    pub spectra_choice: Option<super::SpectraChoice>,
    /// Where the two-stage pipeline's time went (None for a joint fit; a spectra stage taken
    /// from the cache keeps the seconds it took when it ran).
    pub stage_seconds: Option<StageSeconds>,
}

/// Wall seconds of the two-stage pipeline's parts (results.json's `timings`), so that a user
/// sees where a run's time goes without a profiler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StageSeconds {
    /// The binned fits of the spectra candidates (side by side).
    pub binned_fits: f64,
    /// Scoring the candidates, then the chosen spectra's maps on every pixel.
    pub candidate_choice: f64,
    /// The maps at full resolution with the spectra held.
    pub maps: f64,
}

impl StageSeconds {
    /// Each part under its name in results.json's `timings` (and the Python binding's), None
    /// for a fit without the two-stage pipeline.
    pub fn parts(stages: Option<Self>) -> [(&'static str, Option<f64>); 3] {
        [
            ("binned_fits", stages.map(|s| s.binned_fits)),
            ("candidate_choice", stages.map(|s| s.candidate_choice)),
            ("maps", stages.map(|s| s.maps)),
        ]
    }
}

impl Fit {
    /// Why the last run stopped: "tol" (the loss or the iterates settled), "cap" (the
    /// iteration cap), "loss rose" (espm's rule: the loss increased, the worse iterate kept as
    /// espm does) or "NaN" (espm's rule: the loss became NaN).
    pub fn stop(&self) -> &'static str {
        match self.summary.reason {
            StopReason::MaxIter => "cap",
            StopReason::LossConverged | StopReason::IterateConverged => "tol",
            StopReason::LossIncreased => "loss rose",
            StopReason::NotANumber => "NaN",
        }
    }

    /// The phase spectra D = G·W (L×K, row-major; see [`d_of`]).
    pub fn d(&self, l: usize, k: usize) -> Vec<f64> {
        d_of(&self.g, &self.w, l, k)
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

/// The phase spectra D = G·W (L×K, row-major: espm's D and D.npy's layout, the one layout of
/// D in edxs), from G (L×M) and W (M×K); an empty G is the identity (D is W). The product is
/// [`crate::fast::gw`], so every D in edxs has the same bits.
pub fn d_of(g: &[f64], w: &[f64], l: usize, k: usize) -> Vec<f64> {
    if g.is_empty() {
        return w.iter().copied().take(l * k).collect();
    }
    crate::fast::gw(g, w, l, g.len() / l, k)
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
        kkt_spectra: st.kkt_w,
        spectra_choice: st.choice,
        stage_seconds: st.stages,
    })
}
