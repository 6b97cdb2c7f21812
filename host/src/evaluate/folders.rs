//! A decomposition folder (`edxs decompose`'s W.npy, H.npy, G.npy, results.json) scored
//! against a simulation folder (`edxs simulate`'s spectra_counts.npy, maps.npy, sim.json):
//! the files read and checked, the measures of [`super::evaluate`], and each
//! component's at.% beside the matched truth's.

use super::{evaluate, Evaluation, MatchBy};
use crate::io::npy;
use crate::validate;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// What `edxs evaluate` reports.
#[derive(Debug, Clone)]
pub struct FolderEvaluation {
    /// Angles, map MSE and matchings.
    pub ev: Evaluation,
    /// Name of each true phase (sim.json's, or `phaseN`).
    pub truth_names: Vec<String>,
    /// The simplex rows of W: (row of W, element symbol).
    pub elements: Vec<(usize, String)>,
    /// Each component's at.% over `elements`, from W (Ke × elements).
    pub at_estimated: Vec<Vec<f64>>,
    /// Each true phase's at.% over `elements` (Kt × elements), None where sim.json has none.
    pub at_true: Vec<Vec<Option<f64>>>,
}

fn read(dir: &Path, name: &str) -> Result<(Vec<usize>, Vec<f64>)> {
    npy::read_f64(&dir.join(name))
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", path.display()))
}

/// The element a column of G stands for in the simplex (`Fe`, `Pt_hi` → Pt), if any.
fn simplex_element(column: &str) -> Option<&str> {
    if column == "b0" || column == "b1" {
        return None;
    }
    match column.split_once('_') {
        None => Some(column),
        Some((el, "hi")) => Some(el),
        Some(_) => None,
    }
}

/// Reads both folders, checks their shapes and values, and scores `result` against `truth`
/// with components matched by `by`.
pub fn evaluate_folders(result: &Path, truth: &Path, by: MatchBy) -> Result<FolderEvaluation> {
    let sim = read_json(&truth.join("sim.json"))?;
    let summary = read_json(&result.join("results.json"))?;
    let (ts, true_spectra) = read(truth, "spectra_counts.npy")?;
    let (tm, true_maps) = read(truth, "maps.npy")?;
    let (ws, w) = read(result, "W.npy")?;
    let (hs, h) = read(result, "H.npy")?;
    let (gs, g) = read(result, "G.npy")?;
    let [kt, l] = ts[..] else {
        bail!("{}: spectra_counts.npy must be K x L", truth.display());
    };
    let [kt2, p] = tm[..] else {
        bail!("{}: maps.npy must be K x P", truth.display());
    };
    let ([m, ke], [ke2, p2], [l2, m2]) = (
        <[usize; 2]>::try_from(ws.as_slice()).context("W.npy must be M x K")?,
        <[usize; 2]>::try_from(hs.as_slice()).context("H.npy must be K x P")?,
        <[usize; 2]>::try_from(gs.as_slice()).context("G.npy must be L x M")?,
    );
    if kt != kt2 {
        bail!(
            "{}: spectra_counts.npy has {kt} phases, maps.npy {kt2}",
            truth.display()
        );
    }
    if ke != ke2 || m != m2 {
        bail!(
            "{}: inconsistent shapes W {ws:?}, H {hs:?}, G {gs:?}",
            result.display()
        );
    }
    if l != l2 {
        bail!("the decomposition has {l2} channels, the simulation {l}");
    }
    if p != p2 {
        bail!("the decomposition has {p2} pixels, the simulation {p}");
    }
    if ke == 0 || kt == 0 {
        bail!("nothing to compare: {ke} estimated and {kt} true components");
    }
    let in_truth = |f: &str| truth.join(f).display().to_string();
    let in_result = |f: &str| result.join(f).display().to_string();
    validate::non_empty(&in_truth("spectra_counts.npy"), &ts, "phases x channels")?;
    validate::non_empty(&in_truth("maps.npy"), &tm, "phases x pixels")?;
    validate::non_empty(&in_result("W.npy"), &ws, "columns x components")?;
    validate::non_empty(&in_result("H.npy"), &hs, "components x pixels")?;
    validate::non_empty(&in_result("G.npy"), &gs, "channels x columns")?;
    validate::finite(&in_truth("spectra_counts.npy"), &true_spectra)?;
    validate::finite(&in_truth("maps.npy"), &true_maps)?;
    validate::finite(&in_result("W.npy"), &w)?;
    validate::finite(&in_result("H.npy"), &h)?;
    validate::finite(&in_result("G.npy"), &g)?;
    let d = crate::pipeline::d_of(&g, &w, l, ke);
    let ev = evaluate(&true_spectra, &true_maps, &d, &h, l, p, by);

    let truth_names: Vec<String> = (0..kt)
        .map(|j| {
            sim["phases"][j]["name"]
                .as_str()
                .map_or_else(|| format!("phase{j}"), str::to_string)
        })
        .collect();
    let columns: Vec<String> = summary["columns"]
        .as_array()
        .with_context(|| format!("{}: results.json has no 'columns'", result.display()))?
        .iter()
        .map(|c| c.as_str().unwrap_or("").to_string())
        .collect();
    if columns.len() != m {
        bail!(
            "{}: results.json lists {} columns, W has {m} rows",
            result.display(),
            columns.len()
        );
    }
    let elements: Vec<(usize, String)> = columns
        .iter()
        .enumerate()
        .filter_map(|(j, c)| simplex_element(c).map(|e| (j, e.to_string())))
        .collect();
    let at_estimated: Vec<Vec<f64>> = (0..ke)
        .map(|c| {
            let total: f64 = elements.iter().map(|(j, _)| w[j * ke + c]).sum();
            if total.is_nan() || total <= 0.0 {
                bail!(
                    "{}: component {c} has no element fraction (its element rows sum to {total})",
                    in_result("W.npy")
                );
            }
            Ok(elements
                .iter()
                .map(|(j, _)| 100.0 * w[j * ke + c] / total)
                .collect())
        })
        .collect::<Result<_>>()?;
    let at_true = (0..kt)
        .map(|t| {
            elements
                .iter()
                .map(|(_, el)| sim["phases"][t]["composition_at_percent"][el.as_str()].as_f64())
                .collect()
        })
        .collect();
    Ok(FolderEvaluation {
        ev,
        truth_names,
        elements,
        at_estimated,
        at_true,
    })
}
