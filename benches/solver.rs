//! One ESpM-NMF iteration, sparse and dense, on a paper-like 64×64×1980 image with K = 3, at
//! 18 and 293 counts per pixel (figures printed by criterion; nothing is asserted).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use edxs_core::solver::Laplacian;
use edxs_core::{Counts, Solver, SolverParams};
use edxs_suite::synthetic;
use std::time::Duration;

fn bench_iteration(c: &mut Criterion) {
    let mut group = c.benchmark_group("iteration 64x64x1980 K=3");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for n in [18.0, 293.0] {
        let s = synthetic(64, 64, n, 42);
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
        let mut ws = vec![0.0; solver.workspace_len()];
        let nnz = s.values.len();
        println!(
            "{n} counts/pixel: nnz = {nnz} ({:.1} % of L·P)",
            100.0 * nnz as f64 / (s.l * p) as f64
        );
        for sparse in [true, false] {
            let counts = if sparse {
                Counts::Sparse {
                    channels: s.l,
                    pixels: p,
                    indptr: &s.indptr,
                    indices: &s.indices,
                    values: &s.values,
                }
            } else {
                Counts::Dense {
                    channels: s.l,
                    pixels: p,
                    data: &s.dense,
                }
            };
            let mut w = vec![0.1; s.m * 3];
            let mut h = vec![1.0 / 3.0; 3 * p];
            let id = BenchmarkId::new(
                if sparse { "sparse" } else { "dense" },
                format!("{n} counts/px"),
            );
            group.bench_function(id, |b| {
                b.iter(|| {
                    solver
                        .iterate(&counts, &s.g, &mut w, &mut h, &mut ws)
                        .unwrap()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_iteration);
criterion_main!(benches);
