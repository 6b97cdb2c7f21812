//! `edxs rank`: the number of phases by held-out Poisson likelihood ([`crate::rank`]); the
//! files and the printed curve are [`crate::report::rank`]'s.

use super::args::{parse_shape, EnergyRangeArgs, ModelArgs};
use crate::io::crop;
use crate::rank::{choose_k, RankOptions};
use crate::report::rank::RankOutputs;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

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
        let out = RankOutputs {
            input: &self.input,
            data,
            energy_range_kev: input.energy_range_kev,
            elements: spec.elements.iter().map(|e| e.symbol()).collect(),
            report: &report,
        };
        crate::report::rank::write(&self.out, &out)?;
        print!("{}", crate::report::rank::summary(&report, &self.out));
        Ok(())
    }
}
