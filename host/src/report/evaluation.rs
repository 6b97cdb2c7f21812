//! What `edxs evaluate` writes and prints: evaluation.json in the decomposition folder
//! (replaced atomically) and the table of matched phases, angles, map MSE and at.%.

use crate::evaluate::{FolderEvaluation, MatchBy};
use crate::io::atomic;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Writes `result`/evaluation.json for `fe`, the evaluation of `result` against `truth`
/// matched by `by`; returns its path.
pub fn write(result: &Path, truth: &Path, by: MatchBy, fe: &FolderEvaluation) -> Result<PathBuf> {
    let ev = &fe.ev;
    let ke = ev.n_est;
    let mut matches = Vec::new();
    for (c, at_c) in fe.at_estimated.iter().enumerate() {
        let t = ev.permutation[c];
        let elements: serde_json::Map<String, serde_json::Value> = fe
            .elements
            .iter()
            .enumerate()
            .map(|(r, (_, el))| {
                (
                    el.to_string(),
                    serde_json::json!({
                        "estimated": at_c[r],
                        "true": t.and_then(|t| fe.at_true[t][r]),
                    }),
                )
            })
            .collect();
        matches.push(serde_json::json!({
            "estimate": c,
            "truth": t,
            "truth_name": t.map(|t| fe.truth_names[t].clone()),
            "angle_deg": t.map(|t| ev.angles[t * ke + c]),
            "mse": t.map(|t| ev.mse[t * ke + c]),
            "rescale": ev.scales[c],
            "at_percent": elements,
        }));
    }
    let matched: Vec<(usize, usize)> = ev
        .permutation
        .iter()
        .enumerate()
        .filter_map(|(c, t)| t.map(|t| (c, t)))
        .collect();
    let mean = |v: &[f64]| {
        matched.iter().map(|&(c, t)| v[t * ke + c]).sum::<f64>() / matched.len().max(1) as f64
    };
    let to_rows = |v: &[f64]| -> Vec<Vec<f64>> { v.chunks_exact(ke).map(|r| r.to_vec()).collect() };
    let json = serde_json::json!({
        "result": result.display().to_string(),
        "truth": truth.display().to_string(),
        "n_components": ke,
        "n_truth": ev.n_truth,
        "truth_names": fe.truth_names,
        "match_by": format!("{by:?}").to_lowercase(),
        "permutation": ev.permutation,
        "angle_permutation": ev.angle_permutation,
        "mse_permutation": ev.mse_permutation,
        "matchings_agree": ev.angle_permutation == ev.mse_permutation,
        "mean_angle_deg": mean(&ev.angles),
        "mean_mse": mean(&ev.mse),
        "angles_deg": to_rows(&ev.angles),
        "mse": to_rows(&ev.mse),
        "components": matches,
        "conventions": "angles_deg[truth][estimate]; mse[truth][estimate] after espm's rescaled_DH; \
                        permutation[estimate] = matched truth (espm's unique_min order)",
        "edxs_version": env!("CARGO_PKG_VERSION"),
    });
    let text = serde_json::to_string_pretty(&json).context("serialising evaluation.json")?;
    let path = result.join("evaluation.json");
    atomic::write_bytes(&path, text.as_bytes())?;
    Ok(path)
}

/// The table `edxs evaluate` prints: each component's matched truth, angle, map MSE and
/// rescale, whether the two matchings agree, and the at.% beside the truth's.
pub fn table(fe: &FolderEvaluation, by: MatchBy, written: &Path) -> String {
    let ev = &fe.ev;
    let names = &fe.truth_names;
    let ke = ev.n_est;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<9} {:<14} {:>11} {:>12} {:>9}",
        "estimate", "matched truth", "angle (deg)", "map MSE", "rescale"
    );
    for c in 0..ke {
        match ev.permutation[c] {
            Some(t) => {
                let _ = writeln!(
                    s,
                    "{:<9} {:<14} {:>11.3} {:>12.4e} {:>9.4}",
                    format!("p{c}"),
                    format!("{} ({t})", names[t]),
                    ev.angles[t * ke + c],
                    ev.mse[t * ke + c],
                    ev.scales[c]
                );
            }
            None => {
                let _ = writeln!(s, "{:<9} {:<14}", format!("p{c}"), "(unmatched)");
            }
        }
    }
    let agree = ev.angle_permutation == ev.mse_permutation;
    let _ = writeln!(
        s,
        "matched by {}; the {} matching {}",
        match by {
            MatchBy::Angle => "spectral angle",
            MatchBy::Mse => "map MSE",
        },
        match by {
            MatchBy::Angle => "map-MSE",
            MatchBy::Mse => "spectral-angle",
        },
        if agree {
            "agrees".to_string()
        } else {
            format!(
                "DISAGREES (estimate -> truth by angle {}, by MSE {})",
                fmt_perm(&ev.angle_permutation),
                fmt_perm(&ev.mse_permutation)
            )
        }
    );
    let _ = write!(s, "{:<8}", "at.%");
    for c in 0..ke {
        let truth = ev.permutation[c].map_or("-".to_string(), |t| names[t].clone());
        let _ = write!(
            s,
            " {:>9} {:>9}",
            format!("p{c} est"),
            format!("{truth:.9}")
        );
    }
    s.push('\n');
    for (r, (_, el)) in fe.elements.iter().enumerate() {
        let _ = write!(s, "{el:<8}");
        for (c, at_c) in fe.at_estimated.iter().enumerate() {
            let t = ev.permutation[c].and_then(|t| fe.at_true[t][r]);
            let t = t.map_or("-".to_string(), |v| format!("{v:.3}"));
            let _ = write!(s, " {:>9.3} {:>9}", at_c[r], t);
        }
        s.push('\n');
    }
    let _ = writeln!(s, "wrote {}", written.display());
    s
}

fn fmt_perm(p: &[Option<usize>]) -> String {
    let items: Vec<String> = p
        .iter()
        .map(|t| t.map_or("-".to_string(), |t| t.to_string()))
        .collect();
    format!("({})", items.join(", "))
}
