//! One ESpM-NMF iteration (H step, W step and the loss, as `edxs decompose` runs them) on the
//! paper-like image of `edxs_suite::synthetic` — 64×64 and 128×128 pixels × 1980 channels,
//! K = 3, μ = 0.004, λ = 1, ε_reg = 0.01 — at 18 and 293 counts per pixel:
//!
//! * `serial sparse` / `serial dense`: the core's single-threaded solver (`SerialExec`) on
//!   per-pixel sparse counts and on the dense P×L array;
//! * `1 thread` / `2 threads`: the host's executor (`ParallelExec`) on the sparse counts.
//!
//! Figures are printed by criterion; nothing is asserted. The 128×128 dense arrays take 260 MB
//! each.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use edxs::parallel::ParallelExec;
use edxs_core::solver::{Exec, Laplacian, SerialExec};
use edxs_core::{Solver, SolverParams};
use edxs_suite::synthetic;
use std::time::Duration;

fn bench_iteration(c: &mut Criterion) {
    for side in [64usize, 128] {
        let mut group = c.benchmark_group(format!("iteration {side}x{side}x1980 K=3"));
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        for n in [18.0, 293.0] {
            let s = synthetic(side, side, n, 42);
            let p = s.rows * s.cols;
            let mu = [0.004];
            let mut prm = SolverParams::new(3, &s.simplex_rows);
            prm.mu = &mu;
            prm.epsilon_reg = 0.01;
            prm.lambda_l = 1.0;
            prm.laplacian = Laplacian::Grid {
                rows: s.rows,
                cols: s.cols,
            };
            let solver = Solver::new(prm, s.l, s.m, p).unwrap();
            let nnz = s.values.len();
            println!(
                "{side}x{side}, {n} counts/pixel: nnz = {nnz} ({:.1} % of L·P)",
                100.0 * nnz as f64 / (s.l * p) as f64
            );
            let sparse = s.sparse_counts();
            let dense = s.dense_counts();
            let mut ws = vec![0.0; solver.exec_len()];
            for (name, counts, threads) in [
                ("serial sparse", sparse, 0),
                ("serial dense", dense, 0),
                ("1 thread", sparse, 1),
                ("2 threads", sparse, 2),
            ] {
                let mut exec: Box<dyn Exec<f64> + '_> = if threads == 0 {
                    Box::new(SerialExec::new(&solver, counts, &mut ws).unwrap())
                } else {
                    Box::new(ParallelExec::new(&solver, counts, threads).unwrap())
                };
                let mut w = vec![0.1; s.m * 3];
                let mut h = vec![n / 3.0; 3 * p];
                exec.loss(&s.g, &w, &h).unwrap();
                let id = BenchmarkId::new(name, format!("{n} counts/px"));
                group.bench_function(id, |b| {
                    b.iter(|| {
                        exec.step(&s.g, &mut w, &mut h).unwrap();
                        exec.loss(&s.g, &w, &h).unwrap()
                    })
                });
            }
        }
        group.finish();
    }
}

criterion_group!(benches, bench_iteration);
criterion_main!(benches);
