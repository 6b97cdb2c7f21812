//! `edxs evaluate`: a decomposition folder against the truth folder of `edxs simulate`
//! ([`crate::evaluate::evaluate_folders`]); the table and `evaluation.json` are
//! [`crate::report::evaluation`]'s.

use crate::evaluate::{evaluate_folders, MatchBy};
use crate::report::evaluation;
use anyhow::Result;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// Which measure decides the matching of components to true phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MatchByArg {
    /// Spectral angle between true and estimated spectra (espm's default).
    Angle,
    /// MSE between true and rescaled estimated maps (what the paper used at N = 18).
    Mse,
}

impl From<MatchByArg> for MatchBy {
    fn from(m: MatchByArg) -> Self {
        match m {
            MatchByArg::Angle => MatchBy::Angle,
            MatchByArg::Mse => MatchBy::Mse,
        }
    }
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

impl EvaluateCmd {
    /// Loads both folders, evaluates, prints the table and writes `evaluation.json`.
    pub fn run(&self) -> Result<()> {
        let by = MatchBy::from(self.match_by);
        let fe = evaluate_folders(&self.result, &self.truth, by)?;
        let written = evaluation::write(&self.result, &self.truth, by, &fe)?;
        print!("{}", evaluation::table(&fe, by, &written));
        Ok(())
    }
}
