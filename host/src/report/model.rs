//! The files `edxs model --out G.npy` writes: G (L×M, float64) and G.json beside it (column
//! names, energy axis, the model's parameters), each replaced atomically under the folder's
//! lock; what `--out` may name; and the table of columns and lines `edxs model` prints.

use crate::io::{atomic, npy};
use anyhow::{Context, Result};
use edxs_core::model::Normalisation;
use edxs_core::EdxsModel;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Writes G (`g`, L×M, built by `model` with normalisation `norm`) to `out` and its
/// description to the `.json` beside it; returns the `.json`'s path.
pub fn write(
    out: &Path,
    model: &EdxsModel<'_>,
    g: &[f64],
    norm: &Normalisation<f64>,
) -> Result<PathBuf> {
    let (l, m) = (model.n_channels(), model.n_columns());
    let json_path = out.with_extension("json");
    let p = model.params();
    let doc = serde_json::json!({
        "columns": model.columns().map(|c| c.to_string()).collect::<Vec<_>>(),
        "espm_columns": model.columns().map(|c| c.espm_name().to_string()).collect::<Vec<_>>(),
        "simplex_rows": model.simplex_rows().collect::<Vec<_>>(),
        "norm": (0..m).map(|j| norm.raw_divisor(j, m, p.bremsstrahlung)).collect::<Vec<_>>(),
        "energy_kev": (0..l).map(|i| model.energy(i)).collect::<Vec<_>>(),
        "shape": [l, m],
        "e0_kev": p.e0,
        "line_table_kev": model.line_table().beam_energy_kev,
        "width_slope": p.width_slope,
        "width_intercept": p.width_intercept,
        "absorption": p.absorption.map(|a| serde_json::json!({
            "thickness_cm": a.thickness, "density": a.density, "toa_deg": a.toa,
            "atomic_fraction": a.atomic_fraction})),
        "compat": "espm",
        "edxs_version": env!("CARGO_PKG_VERSION"),
    });
    let text = serde_json::to_string_pretty(&doc).context("serialising G.json")?;
    crate::io::output::write_file(out, |out| {
        check_out(out)?;
        npy::write_f64(out, &[l, m], g)?;
        atomic::write_bytes(&json_path, text.as_bytes())
    })?;
    Ok(json_path)
}

/// Whether `npy` and the `.json` beside it are what an earlier `edxs model --out` wrote.
fn earlier_model_output(npy: &Path) -> bool {
    std::fs::read_to_string(npy.with_extension("json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v.get("edxs_version").is_some() && v.get("columns").is_some())
}

/// `--out` and the `.json` beside it may only be new files or an earlier `edxs model` output.
pub fn check_out(out: &Path) -> Result<()> {
    let json = out.with_extension("json");
    if json == out {
        anyhow::bail!(
            "--out {}: name the .npy file; G.json is written beside it",
            out.display()
        );
    }
    crate::io::output::check_file("--out", out, &[], earlier_model_output)?;
    crate::io::output::check_file("--out", &json, &[], |j| {
        earlier_model_output(&j.with_extension("npy")) || earlier_model_output(out)
    })
}

/// A human-readable table of the columns of G and the lines in each.
pub fn describe(model: &EdxsModel<'_>, g: &[f64]) -> String {
    let (l, m) = (model.n_channels(), model.n_columns());
    let p = model.params();
    let mut s = String::new();
    let _ = writeln!(
        s,
        "G: {l} channels x {m} columns, {:.4}..{:.4} keV, E0 {} keV ({} keV line table)",
        model.energy(0),
        model.energy(l - 1),
        p.e0,
        model.line_table().beam_energy_kev
    );
    let _ = writeln!(
        s,
        "{:>4}  {:<9} {:<7} {:>8}  {:>9}  lines (IUPAC energy/keV)",
        "col", "name", "simplex", "peak/keV", "max"
    );
    for (j, col) in model.columns().enumerate() {
        let (mut best, mut at) = (f64::MIN, 0);
        for (i, row) in g.chunks_exact(m).enumerate() {
            if row[j] > best {
                best = row[j];
                at = i;
            }
        }
        let lines: Vec<String> = model
            .lines_of_column(col)
            .map(|ln| format!("{} {:.4}", ln.iupac(), ln.energy))
            .collect();
        let lines = if col.is_characteristic() {
            lines.join(", ")
        } else {
            "bremsstrahlung".to_string()
        };
        let _ = writeln!(
            s,
            "{j:>4}  {:<9} {:<7} {:>8.3}  {:>9.3e}  {lines}",
            col.to_string(),
            if col.in_simplex() { "yes" } else { "no" },
            model.energy(at),
            best
        );
    }
    s
}
