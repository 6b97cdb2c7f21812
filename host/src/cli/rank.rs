//! `edxs rank`: the number of phases by held-out Poisson likelihood ([`crate::rank`]).

use super::args::{parse_shape, EnergyRangeArgs, ModelArgs};
use crate::io::atomic;
use crate::io::crop;
use crate::rank::{choose_k, RankOptions};
use crate::report::rank_plot;
use anyhow::{Context, Result};
use clap::Args;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Options of `edxs rank`.
#[derive(Debug, Args)]
pub struct RankCmd {
    /// Counts, as for `decompose` (.npy, .rpl, .hspy).
    pub input: PathBuf,
    /// Model options (the channel count defaults to the data's).
    #[command(flatten)]
    pub model: ModelArgs,
    /// `--energy-range`.
    #[command(flatten)]
    pub range: EnergyRangeArgs,
    /// Largest number of phases tried (from 1).
    #[arg(long, default_value_t = 6)]
    pub k_max: usize,
    /// Share of the counts that goes to the fit half (the rest is held out).
    #[arg(long, default_value_t = 0.5)]
    pub fit_fraction: f64,
    /// Seed of the thinning and of the fits.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Iteration cap of each fit (default: 2000 per stage of the pipeline, 1000 for a joint fit).
    #[arg(long)]
    pub max_iter: Option<usize>,
    /// Stopping tolerance of each fit (default: 1e-6).
    #[arg(long)]
    pub tol: Option<f64>,
    /// Block side over which the held-out counts are scored (0: the fit's first binning).
    #[arg(long, default_value_t = 0)]
    pub eval_bin: usize,
    /// Scan shape ROWSxCOLS for P×L input.
    #[arg(long)]
    pub shape: Option<String>,
    /// Worker threads (0 = one per core); results are identical for every count.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Output folder (rank.json, rank.png).
    #[arg(long, default_value = "edxs-rank")]
    pub out: PathBuf,
}

impl RankCmd {
    /// Loads, ranks, writes rank.json and rank.png and prints the curve.
    pub fn run(&self) -> Result<()> {
        let shape = self.shape.as_deref().map(parse_shape).transpose()?;
        crate::io::output::check_dir("--out", &self.out, &[&self.input])?;
        let range = self.range.energy_range.as_deref();
        let input = crop::load(&self.input, shape, &self.model.options(), range)?;
        if let Some(n) = &input.note {
            eprintln!("edxs: note: {n}");
        }
        let source = self.input.display().to_string();
        let spec = input.spec(&source)?;
        for w in &spec.warnings {
            eprintln!("edxs: warning: {w}");
        }
        let model = spec.model()?;
        let data = &input.loaded.image;
        let opts = RankOptions {
            k_max: self.k_max,
            fit_fraction: self.fit_fraction,
            seed: self.seed,
            max_iter: self.max_iter,
            tol: self.tol,
            threads: self.threads,
            eval_bin: self.eval_bin,
        };
        let report = choose_k(&model, data, &opts)?;
        let json = serde_json::json!({
            "edxs_version": env!("CARGO_PKG_VERSION"),
            "input": source,
            "data": {"channels": data.channels, "pixels": data.pixels, "shape": data.shape},
            "energy_range_kev": input.energy_range_kev,
            "elements": spec.elements.iter().map(|e| e.symbol()).collect::<Vec<_>>(),
            "rank": report,
        });
        crate::io::output::write_dir("--out", &self.out, &[&self.input], |dir| {
            write_into(dir, &json, &report)
        })?;
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
        let _ = writeln!(s, "wrote rank.json, rank.png to {}", self.out.display());
        print!("{s}");
        Ok(())
    }
}

fn write_into(
    dir: &Path,
    json: &serde_json::Value,
    report: &crate::rank::RankReport,
) -> Result<()> {
    let text = serde_json::to_string_pretty(json).context("serialising rank.json")?;
    atomic::write_bytes(&dir.join("rank.json"), text.as_bytes())?;
    rank_plot::rank_png(&dir.join("rank.png"), report)
}
