//! The files `edxs decompose` writes: W, H, G and D = G·W as .npy, the loss history and the
//! compositions as CSV, results.json, and the maps and spectra figures (with the rank curve
//! of `-k auto`), all into one folder that replaces `--out` in one step.

use super::plots;
use crate::io::counts::SpectrumImage;
use crate::io::{atomic, npy};
use crate::pipeline::{Fit, StageSeconds};
use crate::quant;
use crate::rank::RankReport;
use anyhow::{Context, Result};
use edxs_core::view::MatRef;
use edxs_core::EdxsModel;
use std::fmt::Write as _;
use std::path::Path;

/// What one decomposition leaves behind, and what results.json records of how it was run.
pub struct Outputs<'a> {
    /// The data file, recorded in results.json and never overwritten.
    pub input: &'a Path,
    /// The model the fit used.
    pub model: &'a EdxsModel<'a>,
    /// The (cropped) counts that were fitted.
    pub data: &'a SpectrumImage,
    /// The fit.
    pub fit: &'a Fit,
    /// Number of phases K.
    pub k: usize,
    /// The run's options as results.json's "parameters".
    pub parameters: serde_json::Value,
    /// The rank curve of `-k auto`, written to results.json and rank.png.
    pub rank: Option<&'a RankReport>,
    /// Wall seconds of what ran before the fit, for results.json's `timings`.
    pub before_fit: Timings,
}

/// Wall seconds of what ran before the fit (None: not run, or not measured by the caller).
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// Reading (and cropping) the input.
    pub load: Option<f64>,
    /// The calibration refinement.
    pub calibration: Option<f64>,
}

/// Writes every output file into the folder `out_dir` (`--out`), which replaces any earlier
/// result only once all of them are written.
pub fn write(out_dir: &Path, out: &Outputs<'_>) -> Result<()> {
    crate::io::output::write_dir("--out", out_dir, &[out.input], |dir| write_into(dir, out))
}

/// Writes every output file into `dir`.
pub fn write_into(dir: &Path, out: &Outputs<'_>) -> Result<()> {
    let Outputs {
        model,
        data,
        fit: r,
        k,
        ..
    } = *out;
    let (l, m, p) = (data.channels, model.n_columns(), data.pixels);
    let path = |f: &str| dir.join(f);
    npy::write_f64(&path("W.npy"), &[m, k], &r.w)?;
    npy::write_f64(&path("H.npy"), &[k, p], &r.h)?;
    npy::write_f64(&path("G.npy"), &[l, m], &r.g)?;
    let d = r.d(l, k);
    npy::write_f64(&path("D.npy"), &[l, k], &d)?;
    let mut csv = String::from("iteration,loss,kl,log_reg,laplacian,rel_w,rel_h\n");
    for (i, row) in r.history.iter().enumerate() {
        let _ = writeln!(csv, "{},{}", i + 1, row.map(|v| format!("{v:e}")).join(","));
    }
    atomic::write_bytes(&path("losses.csv"), csv.as_bytes())?;
    let shares = quant::quantify(model, &r.g, &r.w, &r.h, k);
    let mut q = String::from("phase,element,at_percent,wt_percent,std_percent\n");
    for (c, phase) in shares.iter().enumerate() {
        for s in phase {
            let _ = writeln!(
                q,
                "{c},{},{},{},{}",
                s.element,
                s.at_percent,
                s.wt_percent,
                s.std_percent.map_or(String::new(), |v| v.to_string())
            );
        }
    }
    atomic::write_bytes(&path("quant.csv"), q.as_bytes())?;
    let prm = model.params();
    let mut results = serde_json::json!({
        "edxs_version": env!("CARGO_PKG_VERSION"),
        "input": out.input.display().to_string(),
        "data": {"channels": l, "pixels": p, "shape": data.shape, "nnz": data.values.len(),
                 "total_counts": data.values.iter().sum::<f64>()},
        "model": {
            "elements": prm.elements.iter().map(|e| e.symbol()).collect::<Vec<_>>(),
            "ignored": prm.ignored.iter().map(|e| e.symbol()).collect::<Vec<_>>(),
            "split": prm.split.iter().map(|(e, c)| (e.symbol(), *c)).collect::<Vec<_>>(),
            "e0_kev": prm.e0, "offset_kev": prm.axis.offset, "scale_kev": prm.axis.scale,
            "energy_range_kev": [prm.axis.offset, prm.axis.offset + (l - 1) as f64 * prm.axis.scale],
            "width_slope": prm.width_slope, "width_intercept": prm.width_intercept,
            "absorption": prm.absorption.map(|a| serde_json::json!({"thickness_cm": a.thickness,
                "density": a.density, "toa_deg": a.toa, "atomic_fraction": a.atomic_fraction})),
            "bremsstrahlung": prm.bremsstrahlung,
        },
        "columns": model.columns().map(|c| c.to_string()).collect::<Vec<_>>(),
        "parameters": out.parameters,
        "iterations": r.iterations,
        "last_run_iterations": r.summary.iterations,
        "kkt_residual": r.kkt,
        "kkt_residual_spectra": r.kkt_spectra,
        "spectra_choice": r.spectra_choice,
        "stop_reason": format!("{:?}", r.summary.reason),
        "initial_loss": r.summary.initial_loss, "final_loss": r.summary.final_loss,
        "seconds": r.seconds,
        // Where the time went: the fit's parts (below) are the two-stage pipeline's (null for
        // a joint fit); `fit` is all of `seconds`, `rank` (of -k auto) is not included.
        "timings": {
            "load": out.before_fit.load,
            "calibration": out.before_fit.calibration,
            "fit": r.seconds,
        },
        "loss_history": r.history.iter().map(|h| h[0]).collect::<Vec<_>>(),
        "W": r.w.chunks(k).map(|row| row.to_vec()).collect::<Vec<_>>(),
        "phases": shares,
    });
    for (part, secs) in StageSeconds::parts(r.stage_seconds) {
        results["timings"][part] = serde_json::json!(secs);
    }
    if let Some(report) = out.rank {
        results["rank"] = serde_json::to_value(report).context("serialising the rank curve")?;
        crate::report::rank_plot::rank_png(&path("rank.png"), report)?;
    }
    let text = serde_json::to_string_pretty(&results).context("serialising results.json")?;
    atomic::write_bytes(&path("results.json"), text.as_bytes())?;
    // Figures.
    let (rows, cols) = data.shape.unwrap_or((1, p));
    let names: Vec<String> = (0..k).map(|c| format!("phase {c}")).collect();
    plots::maps_png(
        &path("maps.png"),
        MatRef::new("H", &r.h, k, rows * cols)?,
        rows,
        cols,
        &names,
    )?;
    let energy: Vec<f64> = (0..l).map(|i| model.energy(i)).collect();
    let markers: Vec<(String, f64)> = prm
        .elements
        .iter()
        .filter_map(|e| {
            model
                .lines_in_axis(*e)
                .max_by(|a, b| a.1.cs.total_cmp(&b.1.cs))
                .map(|(_, line)| (e.symbol().to_string(), line.energy))
        })
        .collect();
    let rowsum_h: Vec<f64> = (0..k)
        .map(|c| r.h[c * p..(c + 1) * p].iter().sum())
        .collect();
    let sum_model = crate::fast::gw(&d, &rowsum_h, l, k, 1);
    plots::spectra_png(
        &path("spectra.png"),
        &energy,
        MatRef::new("D", &d, l, k)?,
        &names,
        &markers,
        &data.sum_spectrum(),
        &sum_model,
    )?;
    Ok(())
}

/// The summary `edxs decompose` prints: iterations, loss, and each phase's at.% with its
/// standard deviation.
pub fn summary(model: &EdxsModel<'_>, r: &Fit, k: usize, out_dir: &Path) -> String {
    let shares = quant::quantify(model, &r.g, &r.w, &r.h, k);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} iterations ({:?}) in {:.2} s, loss {:.6e} -> {:.6e}",
        r.iterations, r.summary.reason, r.seconds, r.summary.initial_loss, r.summary.final_loss
    );
    let _ = write!(s, "{:<8}", "element");
    for c in 0..k {
        let _ = write!(s, " {:>10} {:>7}", format!("p{c} at.%"), "std%");
    }
    s.push('\n');
    for (i, share) in shares
        .first()
        .map(|v| v.as_slice())
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        let _ = write!(s, "{:<8}", share.element);
        for phase in &shares {
            let std = phase[i]
                .std_percent
                .map_or("-".to_string(), |v| format!("{v:.3}"));
            let _ = write!(s, " {:>10.3} {:>7}", phase[i].at_percent, std);
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "wrote results.json, quant.csv, W.npy, H.npy, D.npy, G.npy, losses.csv, maps.png, spectra.png to {}",
        out_dir.display()
    );
    s
}
