//! `edxs repro-fig1`: the paper's Figure 1 (spec §3.7) — eight simulated datasets, the paper's
//! four decompositions and edxs's three ESpM variants on each ([`crate::repro::methods`]), a
//! table and a scatter plot (written by [`crate::report::fig1`]).

use crate::report::fig1::{self, Fig1Run};
use crate::repro::{self, Method, Outcome, Prepared, RunSettings};
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

/// Options of `edxs repro-fig1`.
#[derive(Debug, Args)]
pub struct ReproCmd {
    /// Output folder (table.md, results.csv, results.json, fig1.png).
    #[arg(long, default_value = "edxs-fig1")]
    pub out: PathBuf,
    /// Image side in pixels (the paper: 128); particles and radius scale with it.
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// Poisson samplings per dose (seeds 42, 43, …; the paper: 4).
    #[arg(long, default_value_t = 4)]
    pub samplings: usize,
    /// Poisson seed of the first sampling (the paper: 42; the others follow).
    #[arg(long, default_value_t = 42)]
    pub first_seed: u64,
    /// Counts per pixel, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "293,18")]
    pub doses: Vec<f64>,
    /// Iteration cap of every run (of each stage of edxs's pipeline); the paper's cap at 18
    /// counts/pixel, and enough for most runs to stop on --tol.
    #[arg(long, default_value_t = 10000)]
    pub max_iter: usize,
    /// Relative loss change at which a run stops.
    #[arg(long, default_value_t = 1e-8)]
    pub tol: f64,
    /// Seed of every initialisation (the paper: the same for all runs).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Run only the methods whose label contains one of these strings (comma separated).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Worker threads (0 = one per core); results are identical for every count.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Only redraw fig1.png from the results.json in --out (no simulation, no fits).
    #[arg(long)]
    pub replot: bool,
}

impl ReproCmd {
    /// Simulates, decomposes, scores and writes the report.
    pub fn run(&self) -> Result<()> {
        if self.replot {
            let png = fig1::replot(&self.out)?;
            println!("redrew {}", png.display());
            return Ok(());
        }
        crate::io::output::check_dir("--out", &self.out, &[])?;
        anyhow::ensure!(self.samplings >= 1, "--samplings must be at least 1");
        anyhow::ensure!(!self.doses.is_empty(), "--doses is empty");
        for &d in &self.doses {
            anyhow::ensure!(
                d > 0.0 && d.is_finite(),
                "--doses: {d} is not a positive count"
            );
        }
        let t0 = std::time::Instant::now();
        let spec = repro::paper_model_spec();
        let model = spec.model()?;
        let prep = Prepared::new(&model, repro::K)?;
        let set = RunSettings {
            max_iter: self.max_iter,
            tol: self.tol,
            threads: self.threads,
            seed: self.seed,
            observe: None,
        };
        let mut outcomes: Vec<Outcome> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for &dose in &self.doses {
            let methods: Vec<Method> = repro::methods(dose)
                .into_iter()
                .filter(|m| self.only.is_empty() || self.only.iter().any(|o| m.name.contains(o)))
                .collect();
            for m in &methods {
                if !names.contains(&m.name) {
                    names.push(m.name.clone());
                }
            }
            for s in 0..self.samplings {
                let seed = self.first_seed + s as u64;
                let data = repro::paper_dataset(self.size, dose, seed)?;
                let mut cache = repro::SpectraCache::default();
                for m in &methods {
                    let o = repro::run_method(&prep, &data, m, &set, &mut cache)
                        .with_context(|| format!("{} at {dose} counts, seed {seed}", m.name))?;
                    println!(
                        "{:>5} cts seed {seed} {:<29} {:>6} it ({:<3}) {:>7.1} s  angle {:>6.2}° ({})  MSE {:.4}",
                        dose,
                        o.method,
                        o.iterations,
                        o.stop,
                        o.seconds,
                        o.mean_angle(),
                        o.angles.iter().map(|a| format!("{a:.1}")).collect::<Vec<_>>().join("/"),
                        o.mean_mse()
                    );
                    outcomes.push(o);
                }
            }
        }
        let run = Fig1Run {
            command: std::env::args().collect::<Vec<_>>().join(" "),
            size: self.size,
            samplings: self.samplings,
            doses: &self.doses,
            max_iter: self.max_iter,
            tol: self.tol,
            seed: self.seed,
            wall_seconds: t0.elapsed().as_secs_f64(),
            outcomes: &outcomes,
            names: &names,
        };
        fig1::write(&self.out, &run)?;
        print!("{}", fig1::table(&run));
        println!(
            "wrote table.md, results.csv, results.json, fig1.png to {}",
            self.out.display()
        );
        Ok(())
    }
}
