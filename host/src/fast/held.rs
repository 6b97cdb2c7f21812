//! A pipeline run with the whole W held, by the fast maps solver: the maps stage and the
//! candidate choice of the two-stage pipeline.

use super::maps::{solve_maps, MapsOptions, MapsReport};
use super::objective::MapsProblem;
use crate::io::counts::SpectrumImage;
use anyhow::{anyhow, Result};
use edxs_core::solver::{Laplacian, RunSummary};
use edxs_core::{EdxsModel, Normalisation};

/// KKT residual at which a held-W run stops ([`super::kkt`]).
pub const KKT_TOL: f64 = 1e-6;

/// What a held-W run needs besides the data.
pub struct HeldRun<'a, 'm> {
    /// The model, for the bremsstrahlung update of G (None: G stays as given).
    pub g_update: Option<(&'a EdxsModel<'m>, Normalisation<f64>)>,
    /// μ (raw units): one value or one per component.
    pub mu: &'a [f64],
    /// λ (raw units).
    pub lambda: f64,
    /// ε_reg (raw units).
    pub epsilon_reg: f64,
    /// Sweep cap.
    pub max_sweeps: usize,
    /// Relative loss change that also stops a run once the KKT residual stalls.
    pub tol: f64,
    /// Worker threads (0 = one per core).
    pub threads: usize,
}

/// The outcome of [`fit_held`].
pub struct HeldFit {
    /// G (updated from W once when asked: with W held, the multiplicative path's repeated
    /// updates all give this G).
    pub g: Vec<f64>,
    /// The maps (K×P).
    pub h: Vec<f64>,
    /// The run in the driver's terms.
    pub summary: RunSummary,
    /// One `losses.csv` row per sweep: (total, kl, log_reg, laplacian, rel_w = 0, rel_h).
    pub history: Vec<[f64; 6]>,
    /// The solver's own report (KKT residual, passes over the non-zeros, guard counts).
    pub report: MapsReport,
}

/// Fits the maps of `img` with W (M×K) held, from `h`, G (L×M) as given.
pub fn fit_held(
    run: &HeldRun<'_, '_>,
    img: &SpectrumImage,
    mut g: Vec<f64>,
    w: &[f64],
    mut h: Vec<f64>,
    k: usize,
) -> Result<HeldFit> {
    let l = img.channels;
    anyhow::ensure!(
        k >= 1 && w.len().is_multiple_of(k),
        "W does not have {k} columns"
    );
    let m = w.len() / k;
    anyhow::ensure!(
        g.len() == l * m,
        "G has {} entries, expected {l}x{m}",
        g.len()
    );
    if let Some((model, norm)) = run.g_update {
        let mut scratch = vec![0.0; model.scratch_len()];
        model
            .update_bremsstrahlung(&norm, w, k, &mut g, &mut scratch)
            .map_err(|e| anyhow!("bremsstrahlung update: {e}"))?;
    }
    let d = super::gw(&g, w, l, m, k);
    let pb = MapsProblem {
        y: img.as_ref(),
        d: &d,
        k,
        mu: run.mu,
        epsilon_reg: run.epsilon_reg,
        lambda: run.lambda,
        laplacian: match img.shape {
            Some((rows, cols)) => Laplacian::Grid { rows, cols },
            None => Laplacian::Identity,
        },
        eps: 1e-14,
    };
    let opt = MapsOptions {
        max_sweeps: run.max_sweeps,
        kkt_tol: KKT_TOL,
        tol: run.tol,
        inner: 0,
        threads: run.threads,
    };
    let report = solve_maps(&pb, &mut h, &opt)?;
    let history = report
        .history
        .iter()
        .map(|r| {
            [
                r.loss.total(),
                r.loss.kl,
                r.loss.log_reg,
                r.loss.laplacian,
                0.0,
                r.rel_h,
            ]
        })
        .collect();
    let summary = RunSummary {
        iterations: report.sweeps,
        reason: report.reason,
        initial_loss: report.initial_loss.total(),
        final_loss: report.loss.total(),
        kl_constant: report.kl_constant,
    };
    Ok(HeldFit {
        g,
        h,
        summary,
        history,
        report,
    })
}
