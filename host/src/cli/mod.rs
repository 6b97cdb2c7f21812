//! The `edxs` command line, the only module that knows clap: one file per subcommand, the flags
//! and parsers several share in `args.rs`; each maps its options onto the library (most onto
//! [`crate::pipeline`]).

pub mod args;
pub mod config;
pub mod decompose;
mod demo;
mod evaluate;
mod model;
mod rank;
mod repro;
mod simulate;

use clap::{Parser, Subcommand};

/// edxs: STEM-EDX spectrum images into phases, abundance maps and compositions.
#[derive(Debug, Parser)]
#[command(name = "edxs", version, about, long_about = None)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
    /// Memory this run may plan for (e.g. 8G, 512M); default: what the system has available.
    #[arg(long, global = true, value_parser = crate::limits::parse_size)]
    pub max_memory: Option<u64>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
// Parsed once per run, so the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Simulate a paper-like spectrum image, decompose it and compare with the truth.
    Demo(demo::DemoCmd),
    /// Build the EDXS model G (channels × columns) and print its columns and lines.
    #[command(allow_negative_numbers = true)]
    Model(model::ModelCmd),
    /// Decompose a spectrum image into phases, abundance maps and compositions (ESpM-NMF).
    #[command(allow_negative_numbers = true)]
    Decompose(decompose::DecomposeCmd),
    /// Simulate a spectrum image (phases, abundance maps, Poisson counts) with its truth.
    #[command(allow_negative_numbers = true)]
    Simulate(simulate::SimulateCmd),
    /// Compare a decomposition with the truth of a simulation (angles, map MSE, at.%).
    Evaluate(evaluate::EvaluateCmd),
    /// Reproduce the paper's Figure 1: eight simulated datasets, seven methods, table and plot.
    #[command(name = "repro-fig1")]
    ReproFig1(repro::ReproCmd),
    /// Choose the number of phases K by held-out Poisson likelihood (curve in rank.png/json).
    #[command(allow_negative_numbers = true)]
    Rank(rank::RankCmd),
}

/// Runs the program on the process arguments and returns the exit code.
pub fn main() -> i32 {
    let args = match config::expand(std::env::args().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("edxs: error: {e:#}");
            return 1;
        }
    };
    let cli = Cli::parse_from(args);
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("edxs: error: {e:#}");
            1
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(m) = cli.max_memory {
        crate::limits::set_max_memory(m);
    }
    match cli.command {
        Command::Demo(mut cmd) => {
            cmd.threads = crate::limits::threads(cmd.threads);
            cmd.run()
        }
        Command::Decompose(mut cmd) => {
            cmd.threads = crate::limits::threads(cmd.threads);
            cmd.run()
        }
        Command::ReproFig1(mut cmd) => {
            cmd.threads = crate::limits::threads(cmd.threads);
            cmd.run()
        }
        Command::Model(cmd) => cmd.run(),
        Command::Simulate(cmd) => cmd.run(),
        Command::Evaluate(cmd) => cmd.run(),
        Command::Rank(mut cmd) => {
            cmd.threads = crate::limits::threads(cmd.threads);
            cmd.run()
        }
    }
}
