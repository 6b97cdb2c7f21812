//! A decomposition scored against a known truth with espm's measures (spec §5): spectral
//! angles, map MSE after `rescaled_DH`, one-to-one matching. Shared by `edxs evaluate` and the
//! Figure 1 reproduction; [`folders`] reads the two folders `edxs evaluate` compares.

pub mod folders;

pub use folders::{evaluate_folders, FolderEvaluation};

use crate::metrics;

/// Which measure decides the matching of components to true phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchBy {
    /// Spectral angle between true and estimated spectra (espm's default).
    Angle,
    /// MSE between true and rescaled estimated maps (what the paper used at N = 18).
    Mse,
}

/// Everything `evaluate` computes.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Angles in degrees, truth × estimate.
    pub angles: Vec<f64>,
    /// Map MSE after rescaling, truth × estimate.
    pub mse: Vec<f64>,
    /// For each estimate, the matched truth (by the chosen measure).
    pub permutation: Vec<Option<usize>>,
    /// Matching by angles.
    pub angle_permutation: Vec<Option<usize>>,
    /// Matching by map MSE.
    pub mse_permutation: Vec<Option<usize>>,
    /// `rescaled_DH` scales of the estimated components.
    pub scales: Vec<f64>,
    /// Number of true phases.
    pub n_truth: usize,
    /// Number of estimated components.
    pub n_est: usize,
}

/// Compares estimated spectra D = G·W (L×Ke, as [`crate::pipeline::Fit::d`] and D.npy hold
/// them) and maps (Ke×P) with the truth (Kt×L, Kt×P, as `edxs simulate` writes them).
pub fn evaluate(
    true_spectra: &[f64],
    true_maps: &[f64],
    d: &[f64],
    est_maps: &[f64],
    channels: usize,
    pixels: usize,
    by: MatchBy,
) -> Evaluation {
    let n_truth = true_spectra.len() / channels;
    let n_est = d.len() / channels;
    let angles = metrics::spectral_angles_to_columns(true_spectra, d, channels);
    let (_, h_rescaled, scales) = metrics::rescaled_dh(d, est_maps, n_est);
    let mse = metrics::squared_distances(true_maps, &h_rescaled, pixels);
    let angle_permutation = metrics::match_estimates(&angles, n_truth, n_est);
    let mse_permutation = metrics::match_estimates(&mse, n_truth, n_est);
    let permutation = match by {
        MatchBy::Angle => angle_permutation.clone(),
        MatchBy::Mse => mse_permutation.clone(),
    };
    Evaluation {
        angles,
        mse,
        permutation,
        angle_permutation,
        mse_permutation,
        scales,
        n_truth,
        n_est,
    }
}
