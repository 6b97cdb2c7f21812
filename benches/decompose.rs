//! A full decomposition as `edxs decompose` runs it by default (NNDSVDa start, G updated from W
//! every 3 iterations, stop when the loss changes by less than 1e-6 relative, at most 1000
//! iterations, threads = cores) with the paper's regularisation (K = 3, μ = 0.004, λ = 1,
//! ε_reg = 0.01), on the 64×64×1980 paper-like image of `edxs_suite::synthetic` at 293 counts
//! per pixel. Figures are printed by criterion.

use criterion::{criterion_group, criterion_main, Criterion};
use edxs::init::{nndsvd, NndsvdVariant};
use edxs::io::counts::SpectrumImage;
use edxs::parallel::ParallelExec;
use edxs_core::physics::BremsstrahlungUpdate;
use edxs_core::solver::{Laplacian, Stopping};
use edxs_core::view::{MatMut, MatRef};
use edxs_core::{Absorption, Counts, EdxsModel, Element, ModelParams, Solver, SolverParams};
use edxs_suite::synthetic;
use std::time::Duration;

fn bench_decompose(c: &mut Criterion) {
    let s = synthetic(64, 64, 293.0, 42);
    let p = s.rows * s.cols;
    // The model `synthetic` builds its data from.
    let el =
        |v: &[&str]| -> Vec<Element> { v.iter().map(|x| Element::parse(x).unwrap()).collect() };
    let elements = el(&[
        "O", "Ca", "Si", "Fe", "Mg", "Al", "Hf", "Ti", "Sm", "Lu", "Nd",
    ]);
    let cu = el(&["Cu"]);
    let mut mp = ModelParams::new(&elements);
    mp.ignored = &cu;
    mp.axis.offset = 0.3;
    mp.absorption = Some(Absorption {
        thickness: 1e-5,
        density: Some(4.5),
        toa: 35.0,
        atomic_fraction: false,
    });
    let model = EdxsModel::new(mp).unwrap();
    let (l, m, k) = (model.n_channels(), model.n_columns(), 3);
    let mut g0 = vec![0.0; model.g_len()];
    let mut scratch = vec![0.0; model.scratch_len()];
    let norm = model.build_g(&mut g0, &mut scratch).unwrap();
    assert_eq!(g0, s.g);
    let rows: Vec<usize> = model.simplex_rows().collect();
    let image = SpectrumImage {
        channels: l,
        pixels: p,
        shape: Some((s.rows, s.cols)),
        indptr: s.indptr.clone(),
        indices: s.indices.clone(),
        values: s.values.clone(),
    };
    let mu = [0.004];
    let mut prm = SolverParams::new(k, &rows);
    prm.mu = &mu;
    prm.epsilon_reg = 0.01;
    prm.lambda_l = 1.0;
    prm.laplacian = Laplacian::Grid {
        rows: s.rows,
        cols: s.cols,
    };
    prm.stopping = Stopping::Relative;
    prm.tol = 1e-6;
    prm.max_iter = 1000;
    let solver = Solver::new(prm, l, m, p).unwrap();
    let counts = Counts::Sparse {
        channels: l,
        pixels: p,
        indptr: &s.indptr,
        indices: &s.indices,
        values: &s.values,
    };
    let mut group = c.benchmark_group("decompose 64x64x1980 K=3 293 counts/px");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20));
    let mut iterations = 0;
    group.bench_function("nndsvda + drive to tol 1e-6", |b| {
        b.iter(|| {
            let (d, h0) = nndsvd(&image.as_ref(), k, NndsvdVariant::Nndsvda, 0).unwrap();
            let mut w = vec![0.0; m * k];
            let mut ws = vec![0.0; edxs_core::init::physics_w_scratch_len(l, m, k)];
            edxs_core::init::physics_w(
                MatRef::new("g", &s.g, l, m).unwrap(),
                MatRef::new("d", &d, l, k).unwrap(),
                &rows,
                1e-14,
                MatMut::new("w", &mut w, m, k).unwrap(),
                &mut ws,
            )
            .unwrap();
            let mut h: Vec<f64> = h0.iter().map(|v| v.max(1e-14)).collect();
            let mut g = s.g.clone();
            let mut drv = vec![0.0; solver.driver_len()];
            let mut update = BremsstrahlungUpdate {
                model: &model,
                norm,
                scratch: &mut scratch,
            };
            let mut exec = ParallelExec::new(&solver, counts, 0).unwrap();
            let r = solver
                .drive(
                    &mut exec,
                    solver.factors(&mut g, &mut w, &mut h).unwrap(),
                    &mut drv,
                    &mut update,
                    &mut |_| {},
                )
                .unwrap();
            iterations = r.iterations;
            r
        })
    });
    group.finish();
    println!("(each decomposition: {iterations} iterations)");
}

criterion_group!(benches, bench_decompose);
criterion_main!(benches);
