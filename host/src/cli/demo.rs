//! `edxs demo`: simulate a paper-like spectrum image, decompose it, and compare with the truth.

use super::Cli;
use crate::report::demo::DemoPaths;
use anyhow::{Context, Result};
use clap::{Args, Parser};
use std::path::PathBuf;

/// Options of `edxs demo`.
#[derive(Debug, Args)]
pub struct DemoCmd {
    /// Output folder (simulation in `sim/`, decomposition report in `result/`).
    #[arg(long, default_value = "edxs-demo")]
    pub out: PathBuf,
    /// Scan size (square), pixels per side.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Counts per pixel.
    #[arg(short = 'N', long, default_value_t = 293.0)]
    pub counts_per_pixel: f64,
    /// Seed of the Poisson noise and the initialisation.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Iteration cap of each fit of the decomposition (default: decompose's).
    #[arg(long)]
    pub max_iter: Option<usize>,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// Abundance maps (rows×cols×3): a Brg matrix with an Fp and a CaPv particle whose cores are pure,
/// so that every phase is seen alone somewhere (the paper's particles reach only 0.5).
fn maps(n: usize) -> Vec<f64> {
    let k = 3;
    let centres = [(0.7, 0.32), (0.36, 0.64)];
    let radius = 0.2 * n as f64;
    let mut m = vec![0.0; n * n * k];
    for r in 0..n {
        for c in 0..n {
            let px = (r * n + c) * k;
            let mut rest = 1.0;
            for (i, (cr, cc)) in centres.iter().enumerate() {
                let d = ((r as f64 - cr * n as f64).powi(2) + (c as f64 - cc * n as f64).powi(2))
                    .sqrt();
                // Pure inside 0.6·radius, fading to nothing at the radius.
                let v = ((radius - d) / (0.4 * radius)).clamp(0.0, 1.0);
                m[px + i + 1] = v;
                rest -= v;
            }
            m[px] = rest.max(0.0);
        }
    }
    m
}

fn run_args(args: Vec<String>) -> Result<()> {
    let cli = Cli::try_parse_from(std::iter::once("edxs".to_string()).chain(args))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    super::run(cli)
}

impl DemoCmd {
    /// Simulates, decomposes, evaluates.
    pub fn run(&self) -> Result<()> {
        let n = self.size;
        anyhow::ensure!(n >= 8, "--size must be at least 8, got {n}");
        anyhow::ensure!(
            self.counts_per_pixel.is_finite() && self.counts_per_pixel > 0.0,
            "--counts-per-pixel must be finite and > 0, got {}",
            self.counts_per_pixel
        );
        // The maps (three copies) and, at worst, every one of the 1980 channels a non-zero
        // (12 bytes each in the sparse counts), plus the decomposition's factors.
        crate::limits::need(
            &format!("demo --size {n}"),
            crate::limits::total(&[
                crate::limits::bytes(&[n, n, 3], 8 * 3),
                crate::limits::bytes(&[n, n, 1980], 12),
                crate::limits::bytes(&[n, n, 3], 8 * 6),
            ]),
        )?;
        crate::io::output::check_dir("--out", &self.out, &[])?;
        // The whole demo folder (maps, sim/, result/) replaces --out in one step at the end.
        crate::report::demo::write(&self.out, &[n, n, 3], &maps(n), |paths| {
            let DemoPaths {
                maps: maps_path,
                sim,
                result,
            } = paths;
            println!(
                "== simulating {n}x{n} pixels, paper phases (Brg, Fp, CaPv), {} counts/pixel",
                self.counts_per_pixel
            );
            run_args(vec![
                "simulate".into(),
                "--maps".into(),
                maps_path.display().to_string(),
                "--counts-per-pixel".into(),
                self.counts_per_pixel.to_string(),
                "--seed".into(),
                self.seed.to_string(),
                "--out".into(),
                sim.display().to_string(),
            ])?;
            let meta: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(sim.join("sim.json")).context("reading sim.json")?,
            )?;
            let model_args: Vec<String> = meta["decompose_args"]
                .as_array()
                .context("sim.json has no decompose_args")?
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
            println!("\n== decomposing (ESpM-NMF, K = 3, decompose's defaults)");
            let mut args = vec![
                "decompose".to_string(),
                sim.join("counts.npy").display().to_string(),
            ];
            args.extend(model_args);
            args.extend(
                [
                    // What a user types: the model from the data's description, everything else
                    // decompose's defaults.
                    "-k",
                    "3",
                    "--seed",
                    &self.seed.to_string(),
                    "--threads",
                    &self.threads.to_string(),
                    "--out",
                    &result.display().to_string(),
                ]
                .map(String::from),
            );
            if let Some(n) = self.max_iter {
                args.extend(["--max-iter".to_string(), n.to_string()]);
            }
            run_args(args)?;
            println!("\n== comparing with the truth");
            run_args(vec![
                "evaluate".into(),
                result.display().to_string(),
                "--truth".into(),
                sim.display().to_string(),
            ])?;
            Ok(())
        })?;
        let result = self.out.join("result");
        println!(
            "\nreport: {}/ (results.json, quant.csv, maps.png, spectra.png, W.npy, H.npy, D.npy)",
            result.display()
        );
        Ok(())
    }
}
