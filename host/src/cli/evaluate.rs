//! `edxs evaluate`: a decomposition folder against the truth folder of `edxs simulate`
//! (the measures are [`crate::evaluate`]'s); prints the table and writes `evaluation.json`.

use crate::evaluate::{evaluate, Evaluation, MatchBy};
use crate::io::{atomic, npy};
use crate::validate;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Which measure decides the matching of components to true phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MatchByArg {
    /// Spectral angle between true and estimated spectra (espm's default).
    Angle,
    /// MSE between true and rescaled estimated maps (what the paper used at N = 18).
    Mse,
}

/// Options of `edxs evaluate`.
#[derive(Debug, Args)]
pub struct EvaluateCmd {
    /// Folder written by `edxs decompose` (W.npy, H.npy, G.npy, results.json).
    pub result: PathBuf,
    /// Folder written by `edxs simulate` (spectra_counts.npy, maps.npy, sim.json).
    #[arg(long)]
    pub truth: PathBuf,
    /// Measure used to match components with true phases (both matchings are reported).
    #[arg(long, value_enum, default_value_t = MatchByArg::Angle)]
    pub match_by: MatchByArg,
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

impl EvaluateCmd {
    /// Loads both folders, evaluates, prints the table and writes `evaluation.json`.
    pub fn run(&self) -> Result<()> {
        let sim = read_json(&self.truth.join("sim.json"))?;
        let summary = read_json(&self.result.join("results.json"))?;
        let (ts, true_spectra) = read(&self.truth, "spectra_counts.npy")?;
        let (tm, true_maps) = read(&self.truth, "maps.npy")?;
        let (ws, w) = read(&self.result, "W.npy")?;
        let (hs, h) = read(&self.result, "H.npy")?;
        let (gs, g) = read(&self.result, "G.npy")?;
        let [kt, l] = ts[..] else {
            bail!("{}: spectra_counts.npy must be K x L", self.truth.display());
        };
        let [kt2, p] = tm[..] else {
            bail!("{}: maps.npy must be K x P", self.truth.display());
        };
        let ([m, ke], [ke2, p2], [l2, m2]) = (
            <[usize; 2]>::try_from(ws.as_slice()).context("W.npy must be M x K")?,
            <[usize; 2]>::try_from(hs.as_slice()).context("H.npy must be K x P")?,
            <[usize; 2]>::try_from(gs.as_slice()).context("G.npy must be L x M")?,
        );
        if kt != kt2 {
            bail!(
                "{}: spectra_counts.npy has {kt} phases, maps.npy {kt2}",
                self.truth.display()
            );
        }
        if ke != ke2 || m != m2 {
            bail!(
                "{}: inconsistent shapes W {ws:?}, H {hs:?}, G {gs:?}",
                self.result.display()
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
        let truth = |f: &str| self.truth.join(f).display().to_string();
        let result = |f: &str| self.result.join(f).display().to_string();
        validate::non_empty(&truth("spectra_counts.npy"), &ts, "phases x channels")?;
        validate::non_empty(&truth("maps.npy"), &tm, "phases x pixels")?;
        validate::non_empty(&result("W.npy"), &ws, "columns x components")?;
        validate::non_empty(&result("H.npy"), &hs, "components x pixels")?;
        validate::non_empty(&result("G.npy"), &gs, "channels x columns")?;
        validate::finite(&truth("spectra_counts.npy"), &true_spectra)?;
        validate::finite(&truth("maps.npy"), &true_maps)?;
        validate::finite(&result("W.npy"), &w)?;
        validate::finite(&result("H.npy"), &h)?;
        validate::finite(&result("G.npy"), &g)?;
        // Estimated spectra D = G·W, stored component-major (Ke×L).
        let mut est = vec![0.0; ke * l];
        for (li, grow) in g.chunks_exact(m).enumerate() {
            for c in 0..ke {
                est[c * l + li] = (0..m).map(|j| grow[j] * w[j * ke + c]).sum();
            }
        }
        let by = match self.match_by {
            MatchByArg::Angle => MatchBy::Angle,
            MatchByArg::Mse => MatchBy::Mse,
        };
        let ev = evaluate(&true_spectra, &true_maps, &est, &h, l, p, by);

        let names: Vec<String> = (0..kt)
            .map(|j| {
                sim["phases"][j]["name"]
                    .as_str()
                    .map_or_else(|| format!("phase{j}"), str::to_string)
            })
            .collect();
        let columns: Vec<String> = summary["columns"]
            .as_array()
            .with_context(|| format!("{}: results.json has no 'columns'", self.result.display()))?
            .iter()
            .map(|c| c.as_str().unwrap_or("").to_string())
            .collect();
        if columns.len() != m {
            bail!(
                "{}: results.json lists {} columns, W has {m} rows",
                self.result.display(),
                columns.len()
            );
        }
        let rows: Vec<(usize, &str)> = columns
            .iter()
            .enumerate()
            .filter_map(|(j, c)| simplex_element(c).map(|e| (j, e)))
            .collect();
        let at_est: Vec<Vec<f64>> = (0..ke)
            .map(|c| {
                let total: f64 = rows.iter().map(|(j, _)| w[j * ke + c]).sum();
                if total.is_nan() || total <= 0.0 {
                    bail!(
                        "{}: component {c} has no element fraction (its element rows sum to {total})",
                        result("W.npy")
                    );
                }
                Ok(rows
                    .iter()
                    .map(|(j, _)| 100.0 * w[j * ke + c] / total)
                    .collect())
            })
            .collect::<Result<_>>()?;
        let at_true = |t: usize, el: &str| sim["phases"][t]["composition_at_percent"][el].as_f64();

        let mut matches = Vec::new();
        for (c, at_c) in at_est.iter().enumerate() {
            let t = ev.permutation[c];
            let elements: serde_json::Map<String, serde_json::Value> = rows
                .iter()
                .enumerate()
                .map(|(r, (_, el))| {
                    (
                        el.to_string(),
                        serde_json::json!({
                            "estimated": at_c[r],
                            "true": t.and_then(|t| at_true(t, el)),
                        }),
                    )
                })
                .collect();
            matches.push(serde_json::json!({
                "estimate": c,
                "truth": t,
                "truth_name": t.map(|t| names[t].clone()),
                "angle_deg": t.map(|t| ev.angles[t * ke + c]),
                "mse": t.map(|t| ev.mse[t * ke + c]),
                "rescale": ev.scales[c],
                "at_percent": elements,
            }));
        }
        let agree = ev.angle_permutation == ev.mse_permutation;
        let matched: Vec<(usize, usize)> = ev
            .permutation
            .iter()
            .enumerate()
            .filter_map(|(c, t)| t.map(|t| (c, t)))
            .collect();
        let mean = |v: &[f64]| {
            matched.iter().map(|&(c, t)| v[t * ke + c]).sum::<f64>() / matched.len().max(1) as f64
        };
        let to_rows =
            |v: &[f64]| -> Vec<Vec<f64>> { v.chunks_exact(ke).map(|r| r.to_vec()).collect() };
        let json = serde_json::json!({
            "result": self.result.display().to_string(),
            "truth": self.truth.display().to_string(),
            "n_components": ke,
            "n_truth": ev.n_truth,
            "truth_names": names,
            "match_by": format!("{:?}", self.match_by).to_lowercase(),
            "permutation": ev.permutation,
            "angle_permutation": ev.angle_permutation,
            "mse_permutation": ev.mse_permutation,
            "matchings_agree": agree,
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
        atomic::write_bytes(&self.result.join("evaluation.json"), text.as_bytes())?;
        print!(
            "{}",
            self.table(&ev, &names, &rows, &at_est, &at_true, agree)
        );
        Ok(())
    }

    fn table(
        &self,
        ev: &Evaluation,
        names: &[String],
        rows: &[(usize, &str)],
        at_est: &[Vec<f64>],
        at_true: &dyn Fn(usize, &str) -> Option<f64>,
        agree: bool,
    ) -> String {
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
        let _ = writeln!(
            s,
            "matched by {}; the {} matching {}",
            match self.match_by {
                MatchByArg::Angle => "spectral angle",
                MatchByArg::Mse => "map MSE",
            },
            match self.match_by {
                MatchByArg::Angle => "map-MSE",
                MatchByArg::Mse => "spectral-angle",
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
        for (r, (_, el)) in rows.iter().enumerate() {
            let _ = write!(s, "{el:<8}");
            for (c, at_c) in at_est.iter().enumerate() {
                let t = ev.permutation[c].and_then(|t| at_true(t, el));
                let t = t.map_or("-".to_string(), |v| format!("{v:.3}"));
                let _ = write!(s, " {:>9.3} {:>9}", at_c[r], t);
            }
            s.push('\n');
        }
        let _ = writeln!(s, "wrote {}", self.result.join("evaluation.json").display());
        s
    }
}

fn fmt_perm(p: &[Option<usize>]) -> String {
    let items: Vec<String> = p
        .iter()
        .map(|t| t.map_or("-".to_string(), |t| t.to_string()))
        .collect();
    format!("({})", items.join(", "))
}
