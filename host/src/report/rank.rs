//! The files `edxs rank` writes: rank.json (the held-out likelihood curve and what was ranked)
//! and rank.png, into one folder that replaces `--out` in one step; and the curve as printed.

use super::rank_plot;
use crate::io::atomic;
use crate::io::counts::SpectrumImage;
use crate::rank::RankReport;
use anyhow::{Context, Result};
use std::fmt::Write as _;
use std::path::Path;

/// What one `rank` run leaves behind.
pub struct RankOutputs<'a> {
    /// The data file, recorded in rank.json and never overwritten.
    pub input: &'a Path,
    /// The (cropped) counts that were ranked.
    pub data: &'a SpectrumImage,
    /// Energies of the first and last kept channels (keV), when known.
    pub energy_range_kev: Option<[f64; 2]>,
    /// The model's element symbols.
    pub elements: Vec<&'a str>,
    /// The curve and the chosen K.
    pub report: &'a RankReport,
}

/// Writes rank.json and rank.png into the folder `out_dir` (`--out`), which replaces any
/// earlier result only once both are written.
pub fn write(out_dir: &Path, out: &RankOutputs<'_>) -> Result<()> {
    let data = out.data;
    let json = serde_json::json!({
        "edxs_version": env!("CARGO_PKG_VERSION"),
        "input": out.input.display().to_string(),
        "data": {"channels": data.channels, "pixels": data.pixels, "shape": data.shape},
        "energy_range_kev": out.energy_range_kev,
        "elements": out.elements,
        "rank": out.report,
    });
    crate::io::output::write_dir("--out", out_dir, &[out.input], |dir| {
        let text = serde_json::to_string_pretty(&json).context("serialising rank.json")?;
        atomic::write_bytes(&dir.join("rank.json"), text.as_bytes())?;
        rank_plot::rank_png(&dir.join("rank.png"), out.report)
    })
}

/// The curve `edxs rank` prints: each K's held-out log-likelihood, the chosen K and the rule.
pub fn summary(report: &RankReport, out_dir: &Path) -> String {
    let mut s = String::new();
    let b = report.eval_bin;
    let _ = writeln!(
        s,
        "held-out Poisson log-likelihood ({}; scored over {b}x{b} blocks; {:.0} fit / {:.0} test counts):",
        report.method, report.fit_counts, report.test_counts
    );
    let _ = writeln!(
        s,
        "{:>3} {:>16} {:>12} {:>10} {:>8}",
        "K", "loglik", "- best", "std err", "s"
    );
    for p in &report.curve {
        let mark = if p.k == report.chosen {
            "  <- chosen"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "{:>3} {:>16.1} {:>12.1} {:>10.1} {:>8.2}{mark}",
            p.k, p.test_loglik, p.delta_from_best, p.std_error, p.seconds
        );
    }
    let _ = writeln!(s, "K = {} ({})", report.chosen, report.rule);
    let _ = writeln!(s, "wrote rank.json, rank.png to {}", out_dir.display());
    s
}
