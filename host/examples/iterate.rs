//! Times ESpM-NMF iterations on paper-like data generated in memory (no files): prints the
//! number of non-zeros, seconds per iteration (median over the timed iterations, each one H
//! step, one W step and the loss, as `edxs decompose` runs them, G fixed), nanoseconds per
//! non-zero and the peak resident set size of the process.
//!
//! ```sh
//! cargo run --release -p edxs --example iterate -- --rows 128 --cols 128 --channels 1980 \
//!     --counts 293 --threads 2 --iters 20 [--serial] [--seed 42]
//! ```
//! `--serial` runs the core's single-threaded solver (`SerialExec`) instead of the threaded
//! host executor.

#[path = "common/paper.rs"]
mod paper;

use paper::arg;

use edxs::parallel::ParallelExec;
use edxs_core::solver::{Exec, GModel, Laplacian, NoGUpdate, SerialExec};
use edxs_core::{Solver, SolverParams};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: usize = arg(&args, "--rows", 128);
    let cols: usize = arg(&args, "--cols", rows);
    let channels: usize = arg(&args, "--channels", 1980);
    let counts: f64 = arg(&args, "--counts", 293.0);
    let threads: usize = arg(&args, "--threads", 0);
    let iters: usize = arg(&args, "--iters", 20);
    let seed: u64 = arg(&args, "--seed", 42);
    let serial = args.iter().any(|a| a == "--serial");

    let t = Instant::now();
    let data = paper::paper(rows, cols, channels, counts, seed);
    let gen_s = t.elapsed().as_secs_f64();
    let p = data.pixels();
    let mu = [0.004];
    let mut prm = SolverParams::new(3, &data.simplex_rows);
    prm.mu = &mu;
    prm.epsilon_reg = 0.01;
    prm.lambda_l = 1.0;
    prm.laplacian = Laplacian::Grid { rows, cols };
    prm.max_iter = iters + 1;
    prm.tol = 0.0;
    prm.g = GModel::Matrix { update_every: 0 };
    let solver = Solver::new(prm, data.l, data.m, p).expect("solver");
    let (mut g, mut w, mut h) = (data.g.clone(), data.w0.clone(), data.h0.clone());
    let mut drv = vec![0.0; solver.driver_len()];
    let mut serial_ws = Vec::new();
    let mut exec: Box<dyn Exec<f64>> = if serial {
        serial_ws.resize(solver.exec_len(), 0.0);
        Box::new(SerialExec::new(&solver, data.counts(), &mut serial_ws).expect("exec"))
    } else {
        Box::new(ParallelExec::new(&solver, data.counts(), threads).expect("exec"))
    };
    let mut stamps = Vec::with_capacity(iters + 2);
    let mut last_loss = 0.0;
    let start = Instant::now();
    solver
        .drive(
            exec.as_mut(),
            solver.factors(&mut g, &mut w, &mut h).unwrap(),
            &mut drv,
            &mut NoGUpdate,
            &mut |r| {
                stamps.push(Instant::now());
                last_loss = r.loss.total();
            },
        )
        .expect("drive");
    let total_s = start.elapsed().as_secs_f64();
    let mut per: Vec<f64> = stamps
        .windows(2)
        .map(|w| (w[1] - w[0]).as_secs_f64())
        .collect();
    if args.iter().any(|a| a == "--trace") {
        for (i, c) in per.chunks(per.len().div_ceil(10).max(1)).enumerate() {
            let mut c = c.to_vec();
            c.sort_by(f64::total_cmp);
            eprintln!(
                "iterations from {}: median {:.3e} s",
                1 + i * c.len(),
                c[c.len() / 2]
            );
        }
    }
    per.sort_by(f64::total_cmp);
    let median = per[per.len() / 2];
    let mean = per.iter().sum::<f64>() / per.len() as f64;
    let nnz = data.nnz();
    println!(
        "rows={rows} cols={cols} channels={channels} counts={counts} pixels={p} nnz={nnz} \
         threads={} exec={} iters={} s_per_iter={median:.6e} mean_s_per_iter={mean:.6e} \
         min_s_per_iter={:.6e} ns_per_nz={:.3} peak_rss_mib={:.1} gen_s={gen_s:.2} \
         run_s={total_s:.3} loss={last_loss:.12e}",
        if serial { 1 } else { threads },
        if serial { "serial" } else { "parallel" },
        per.len(),
        per[0],
        median * 1e9 / nnz as f64,
        paper::peak_rss_mib(),
    );
}
