//! `edxs repro-fig1`: the paper's Figure 1 (spec §3.7) — eight simulated datasets, the paper's
//! four decompositions and edxs's three ESpM variants on each ([`crate::repro::methods`]), a
//! table and a scatter plot.

use crate::io::atomic;
use crate::repro::{self, Method, Outcome, Prepared, RunSettings};
use anyhow::{Context, Result};
use clap::Args;
use std::fmt::Write as _;
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
            return self.replot();
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
        let wall = t0.elapsed().as_secs_f64();
        let table = self.table(&outcomes, wall);
        crate::io::output::write_dir("--out", &self.out, &[], |dir| {
            atomic::write_bytes(&dir.join("table.md"), table.as_bytes())?;
            atomic::write_bytes(&dir.join("results.csv"), csv(&outcomes).as_bytes())?;
            let json = serde_json::json!({
                "command": std::env::args().collect::<Vec<_>>().join(" "),
                "size": self.size, "samplings": self.samplings, "doses": self.doses,
                "max_iter": self.max_iter, "tol": self.tol, "seed": self.seed,
                "wall_seconds": wall,
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
            repro::plot::fig1_png(&dir.join("fig1.png"), &outcomes, &names)?;
            Ok(())
        })?;
        print!("{table}");
        println!(
            "wrote table.md, results.csv, results.json, fig1.png to {}",
            self.out.display()
        );
        Ok(())
    }

    fn replot(&self) -> Result<()> {
        let path = self.out.join("results.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: invalid JSON", path.display()))?;
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
        repro::plot::fig1_png(&self.out.join("fig1.png"), &outcomes, &names)?;
        println!("redrew {}", self.out.join("fig1.png").display());
        Ok(())
    }

    fn table(&self, outcomes: &[Outcome], wall: f64) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{}×{} pixels × 1980 channels, {} sampling(s) per dose; angles: Brg/Fp/CaPv (degrees); \
             whole run {:.0} s\n",
            self.size, self.size, self.samplings, wall
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
}

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
            o.method,
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
