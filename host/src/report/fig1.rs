//! The files `edxs repro-fig1` writes: table.md, results.csv, results.json and fig1.png, into
//! one folder that replaces `--out` in one step; and the redrawing of fig1.png from an earlier
//! results.json (`--replot`).

use super::fig1_plot;
use crate::io::atomic;
use crate::repro::Outcome;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// One Figure 1 run: its settings (recorded in results.json) and what every method scored.
pub struct Fig1Run<'a> {
    /// The command line, recorded as it was typed.
    pub command: String,
    /// Image side in pixels.
    pub size: usize,
    /// Poisson samplings per dose.
    pub samplings: usize,
    /// Counts per pixel.
    pub doses: &'a [f64],
    /// Iteration cap of every run.
    pub max_iter: usize,
    /// Stopping tolerance of every run.
    pub tol: f64,
    /// Seed of every initialisation.
    pub seed: u64,
    /// Wall time of the whole run (s).
    pub wall_seconds: f64,
    /// One entry per method, dose and sampling, in the order they ran.
    pub outcomes: &'a [Outcome],
    /// The methods in legend order.
    pub names: &'a [String],
}

/// Writes table.md, results.csv, results.json and fig1.png into the folder `out` (`--out`),
/// which replaces any earlier result only once all are written.
pub fn write(out: &Path, run: &Fig1Run<'_>) -> Result<()> {
    let table = table(run);
    let outcomes = run.outcomes;
    crate::io::output::write_dir("--out", out, &[], |dir| {
        atomic::write_bytes(&dir.join("table.md"), table.as_bytes())?;
        atomic::write_bytes(&dir.join("results.csv"), csv(outcomes).as_bytes())?;
        let json = serde_json::json!({
            "command": run.command,
            "size": run.size, "samplings": run.samplings, "doses": run.doses,
            "max_iter": run.max_iter, "tol": run.tol, "seed": run.seed,
            "wall_seconds": run.wall_seconds,
            "runs": outcomes.iter().map(|o| serde_json::json!({
                "method": o.method, "dose": o.dose, "sampling_seed": o.sampling_seed,
                "iterations": o.iterations, "stop": o.stop, "seconds": o.seconds,
                "final_loss": o.final_loss,
                "angles_deg": o.angles, "map_mse": o.mse,
                "mean_angle_deg": o.mean_angle(), "mean_map_mse": o.mean_mse(),
            })).collect::<Vec<_>>(),
        });
        let text = serde_json::to_string_pretty(&json).context("serialising results.json")?;
        atomic::write_bytes(&dir.join("results.json"), text.as_bytes())?;
        fig1_plot::fig1_png(&dir.join("fig1.png"), outcomes, run.names)?;
        Ok(())
    })
}

/// Redraws `out`/fig1.png from the results.json an earlier run wrote there; returns its path.
pub fn replot(out: &Path) -> Result<PathBuf> {
    let path = out.join("results.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", path.display()))?;
    let runs = json["runs"]
        .as_array()
        .with_context(|| format!("{}: no 'runs'", path.display()))?;
    let floats = |v: &serde_json::Value| -> Vec<f64> {
        v.as_array()
            .map(|a| a.iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect())
            .unwrap_or_default()
    };
    let mut names: Vec<String> = Vec::new();
    let outcomes: Vec<Outcome> = runs
        .iter()
        .map(|r| {
            let method = r["method"].as_str().unwrap_or("?").to_string();
            if !names.contains(&method) {
                names.push(method.clone());
            }
            Outcome {
                method,
                dose: r["dose"].as_f64().unwrap_or(f64::NAN),
                sampling_seed: r["sampling_seed"].as_u64().unwrap_or(0),
                iterations: r["iterations"].as_u64().unwrap_or(0) as usize,
                seconds: r["seconds"].as_f64().unwrap_or(f64::NAN),
                final_loss: r["final_loss"].as_f64().unwrap_or(f64::NAN),
                stop: r["stop"].as_str().unwrap_or("-").to_string(),
                angles: floats(&r["angles_deg"]),
                mse: floats(&r["map_mse"]),
            }
        })
        .collect();
    let png = out.join("fig1.png");
    atomic::write_at(&png, |tmp| fig1_plot::fig1_png(tmp, &outcomes, &names))?;
    Ok(png)
}

/// The Markdown table (table.md, also printed): one row per method, dose and sampling.
pub fn table(run: &Fig1Run<'_>) -> String {
    let (outcomes, wall) = (run.outcomes, run.wall_seconds);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}×{} pixels × 1980 channels, {} sampling(s) per dose; angles: Brg/Fp/CaPv (degrees); \
         whole run {:.0} s\n",
        run.size, run.size, run.samplings, wall
    );
    let _ = writeln!(
        s,
        "| counts/px | seed | method | mean angle (°) | angles (°) | mean map MSE | iterations | stop | time (s) |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
    for o in outcomes {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.2} | {} | {:.4} | {} | {} | {:.1} |",
            o.dose,
            o.sampling_seed,
            o.method,
            o.mean_angle(),
            o.angles
                .iter()
                .map(|a| format!("{a:.1}"))
                .collect::<Vec<_>>()
                .join(" / "),
            o.mean_mse(),
            o.iterations,
            o.stop,
            o.seconds
        );
    }
    s
}

/// A CSV field, quoted (RFC 4180) when it holds a comma, a quote or a line break: method
/// labels such as `ESpM(0,0,0)` do.
fn csv_field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

/// results.csv: one row per method, dose and sampling.
fn csv(outcomes: &[Outcome]) -> String {
    let mut s = String::from(
        "dose,sampling_seed,method,mean_angle_deg,angle_brg,angle_fp,angle_capv,mean_map_mse,mse_brg,mse_fp,mse_capv,iterations,stop,seconds,final_loss\n",
    );
    for o in outcomes {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            o.dose,
            o.sampling_seed,
            csv_field(&o.method),
            o.mean_angle(),
            o.angles[0],
            o.angles[1],
            o.angles[2],
            o.mean_mse(),
            o.mse[0],
            o.mse[1],
            o.mse[2],
            o.iterations,
            o.stop,
            o.seconds,
            o.final_loss
        );
    }
    s
}
