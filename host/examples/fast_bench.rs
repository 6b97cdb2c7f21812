//! The fast maps solver against the multiplicative updates on the paper's data, and the whole
//! default two-stage decomposition with each.
//!
//! ```sh
//! cargo run --release -p edxs --example fast_bench -- [--size 128] [--doses 293,18] \
//!     [--seed 42] [--threads 0] [--mu-cap 60] [--png docs/speed/kkt.png]
//! ```
//! For each dose (the paper's 128×128×1980 image, K = 3, `repro-fig1`'s data: spheres of
//! radius 25 at (94, 50) and (69, 80), Poisson seed `--seed`):
//! 1. the default decomposition (`decompose`'s defaults: the two-stage pipeline, μ = 0.004,
//!    λ = 0.1, ε_reg = 0.01 in normalised units, NNDSVDar, 10000 iterations per fit, tol
//!    1e-8), its held-W runs by the multiplicative updates ("before") and by the Newton
//!    solver ("after"): seconds and final objective;
//! 2. with the spectra of that fit held, the maps from a flat start for μ = λ = 0 (convex),
//!    the default regularisation and the paper's ESpM(0.004, 1, 0.01) (normalised): passes over
//!    the non-zeros and seconds to a KKT residual of 1e-6, for both solvers (the multiplicative
//!    updates capped at `--mu-cap` seconds), and the objective each reaches.
//!
//! Prints a table and writes the residual-against-time curves to `--png`. `--maps-only` skips
//! step 1 and holds the true spectra (large images: `--size 512 --doses 100 --mu-cap 0`);
//! `--skip-mu-pipeline` runs step 1 with the Newton sweeps only.

#[path = "common/args.rs"]
mod args;
use args::{arg, paper_data};
use edxs::fast::{kkt_residual, objective, solve_maps, MapsOptions, MapsProblem};
use edxs::parallel::ParallelExec;
use edxs::pipeline::{self, HeldSolver, Prepared, Recipe, RunSettings, SpectraCache};
use edxs::report::kkt_plot::{kkt_png, Series};
use edxs::repro;
use edxs_core::solver::{Exec, GModel, Laplacian, Simplex};
use edxs_core::{Solver, SolverParams};
use std::time::Instant;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (size, doses, seed, threads) = paper_data(&args);
    let mu_cap: f64 = arg(&args, "--mu-cap", 60.0);
    let png: String = arg(&args, "--png", "docs/speed/kkt_vs_time.png".to_string());
    let k = repro::K;
    let spec = repro::paper_model_spec();
    let model = spec.model()?;
    let prep = Prepared::new(&model, k)?;
    // `decompose`'s defaults for the pipeline (TWO_STAGE_MAX_ITER, TWO_STAGE_TOL there).
    let set = RunSettings {
        max_iter: 10000,
        tol: 1e-8,
        threads,
        seed: 0,
        observe: None,
    };
    let mut series: Vec<Series> = Vec::new();
    println!("threads: {threads} (0 = one per core)");
    for dose in doses.split(',').map(|d| d.trim().parse::<f64>()) {
        let dose = dose?;
        let data = repro::paper_dataset(size, dose, seed)?;
        let img = &data.image;
        let (l, p) = (img.channels, img.pixels);
        println!(
            "\n== {size}x{size}x{l}, {dose} counts/px, {} non-zeros ==",
            img.values.len()
        );
        // 1. The whole default decomposition, before and after.
        let mut fits = Vec::new();
        let maps_only = args.iter().any(|a| a == "--maps-only");
        let solvers = if maps_only {
            vec![]
        } else if args.iter().any(|a| a == "--skip-mu-pipeline") {
            vec![HeldSolver::Newton, HeldSolver::NewtonJoint]
        } else {
            vec![
                HeldSolver::Multiplicative,
                HeldSolver::Newton,
                HeldSolver::NewtonJoint,
            ]
        };
        for held in solvers {
            // The paper's μ and ε_reg with λ = 0.1, normalised units, NNDSVDar: the default.
            let mut recipe = Recipe::two_stage(0.004, 0.1, 0.01, pipeline::auto_bin(dose));
            recipe.held_solver = held;
            let t = Instant::now();
            let fit = pipeline::fit(&prep, img, &recipe, &set, &mut SpectraCache::default())?;
            let secs = t.elapsed().as_secs_f64();
            println!(
                "default two-stage, held-W runs by {:<14}: {secs:7.2} s, {:6} iterations/sweeps, final objective {:.12e}, KKT {}",
                format!("{held:?}"),
                fit.iterations,
                fit.summary.final_loss,
                fit.kkt.map_or("-".into(), |v| format!("{v:.2e}")),
            );
            fits.push(fit);
        }
        // 2. The maps with those spectra held (with --maps-only the true spectra), from a flat
        // start.
        let d_lk = match fits.last() {
            Some(fit) => fit.d(l, k),
            // The true spectra are K×L as the simulation keeps them; D has one per column.
            None => {
                let truth = &data.spectra;
                (0..l)
                    .flat_map(|li| (0..k).map(move |c| truth[c * l + li]))
                    .collect()
            }
        };
        let (rows, cols) = img.shape.expect("shape");
        let f = k as f64 / (img.mean() * l as f64);
        for (name, mu, lambda, eps_reg) in [
            ("convex (0,0,1)", 0.0, 0.0, 1.0),
            ("default (0.004,0.1,0.01)", 0.004 / f, 0.1 * f, 0.01 / f),
            ("ESpM(0.004,1,0.01)", 0.004 / f, 1.0 * f, 0.01 / f),
        ] {
            let mus = [mu];
            let pb = MapsProblem {
                y: img.as_ref(),
                d: &d_lk,
                k,
                mu: &mus,
                epsilon_reg: eps_reg,
                lambda,
                laplacian: Laplacian::Grid { rows, cols },
                eps: 1e-14,
            };
            let h0 = vec![img.mean() * l as f64 / k as f64; k * p];
            // Newton sweeps.
            let mut h = h0.clone();
            let opt = MapsOptions {
                kkt_tol: 1e-6,
                tol: 0.0,
                threads,
                ..Default::default()
            };
            let rep = solve_maps(&pb, &mut h, &opt)?;
            let f_new = objective(&pb, &h).total();
            let t_new = rep.history.last().map_or(0.0, |r| r.seconds);
            let mut pts = vec![(1e-4, rep.initial_kkt)];
            pts.extend(rep.history.iter().map(|r| (r.seconds.max(1e-4), r.kkt)));
            series.push((format!("Newton, {dose} cts, {name}"), pts));
            // The multiplicative updates with W held (the same executor as the pipeline).
            let mut prm = SolverParams::new(k, &[]);
            prm.mu = &mus;
            prm.epsilon_reg = eps_reg;
            prm.lambda_l = lambda;
            prm.laplacian = Laplacian::Grid { rows, cols };
            prm.simplex = Simplex::None;
            prm.g = GModel::Identity;
            let fixed = d_lk.clone();
            prm.fixed_w = Some(&fixed);
            let solver = Solver::new(prm, l, l, p)?;
            let mut exec = ParallelExec::new(&solver, img.counts(), threads)?;
            let (mut w, mut hm) = (d_lk.clone(), h0.clone());
            let mut mu_pts = vec![(1e-4, kkt_residual(&pb, &hm))];
            let (mut spent, mut it, mut kkt) = (0.0f64, 0usize, f64::INFINITY);
            let mut check = 1usize;
            while spent < mu_cap {
                let t = Instant::now();
                exec.step(&[], &mut w, &mut hm)?;
                spent += t.elapsed().as_secs_f64();
                it += 1;
                if it == check {
                    // The residual is measured outside the timed steps.
                    kkt = kkt_residual(&pb, &hm);
                    mu_pts.push((spent, kkt));
                    if kkt <= 1e-6 {
                        break;
                    }
                    check = (check as f64 * 1.25).ceil() as usize;
                }
            }
            let f_mu = objective(&pb, &hm).total();
            series.push((format!("MU, {dose} cts, {name}"), mu_pts));
            println!(
                "maps {name:<24} Newton: {:5.1} passes {:7.3} s to KKT {:.1e}  objective {:.12e} ({} sweeps, {} CG, {} halvings, {} refused)",
                rep.passes, t_new, rep.kkt, f_new, rep.sweeps, rep.cg_iterations, rep.halvings, rep.refused
            );
            println!(
                "maps {name:<24} MU:     {it:5} iterations {spent:7.3} s to KKT {kkt:.1e}{}  objective {:.12e}  (Newton lower by {:.2e} relative)",
                if kkt <= 1e-6 { "" } else { " (cap)" },
                f_mu,
                (f_mu - f_new) / f_mu.abs()
            );
        }
    }
    if let Some(dir) = std::path::Path::new(&png).parent() {
        std::fs::create_dir_all(dir)?;
    }
    kkt_png(
        std::path::Path::new(&png),
        &format!(
            "maps with the spectra held, {size}x{size}x1980, K = 3: KKT residual against time"
        ),
        &series,
        2,
    )?;
    println!("\nwrote {png}; peak RSS {:.0} MiB", peak_rss_mib());
    Ok(())
}
