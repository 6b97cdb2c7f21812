//! One ESpM-NMF iteration on a fixed paper-like image, for instruction counting:
//! `scripts/callgrind.sh` runs this under `valgrind --tool=callgrind` with collection switched
//! on only inside [`one_iteration`] (one H step, one W step and the loss, as `edxs decompose`
//! iterates), on a single thread.
//!
//! ```sh
//! cargo run --release -p edxs --example callgrind_iter -- [--rows 128] [--counts 293] [--serial]
//! ```

#[path = "common/paper.rs"]
mod paper;

use paper::arg;

use edxs::parallel::ParallelExec;
use edxs_core::solver::{Exec, Laplacian, SerialExec};
use edxs_core::{Solver, SolverParams};

/// The measured region: one iteration as the driver runs it (step, then the loss).
#[inline(never)]
fn one_iteration(exec: &mut dyn Exec<f64>, g: &[f64], w: &mut [f64], h: &mut [f64]) -> f64 {
    exec.step(g, w, h).expect("step");
    exec.loss(g, w, h).expect("loss").total()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rows: usize = arg(&args, "--rows", 128);
    let counts: f64 = arg(&args, "--counts", 293.0);
    let serial = args.iter().any(|a| a == "--serial");
    let data = paper::paper(rows, rows, 1980, counts, 42);
    let p = data.pixels();
    let mu = [0.004];
    let mut prm = SolverParams::new(3, &data.simplex_rows);
    prm.mu = &mu;
    prm.epsilon_reg = 0.01;
    prm.lambda_l = 1.0;
    prm.laplacian = Laplacian::Grid { rows, cols: rows };
    let solver = Solver::new(prm, data.l, data.m, p).expect("solver");
    let (g, mut w, mut h) = (data.g.clone(), data.w0.clone(), data.h0.clone());
    let mut ws = Vec::new();
    let mut exec: Box<dyn Exec<f64>> = if serial {
        ws.resize(solver.exec_len(), 0.0);
        Box::new(SerialExec::new(&solver, data.counts(), &mut ws).expect("exec"))
    } else {
        Box::new(ParallelExec::new(&solver, data.counts(), 1).expect("exec"))
    };
    // The driver evaluates the loss before the first iteration; so do we.
    let before = exec.loss(&g, &w, &h).expect("loss").total();
    let after = one_iteration(exec.as_mut(), &g, &mut w, &mut h);
    println!(
        "rows={rows} cols={rows} channels={} counts={counts} nnz={} exec={} loss {before:.12e} -> {after:.12e}",
        data.l,
        data.nnz(),
        if serial { "serial" } else { "parallel(1 thread)" },
    );
}
