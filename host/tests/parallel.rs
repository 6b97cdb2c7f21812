//! The threaded iteration agrees with the serial core to rounding and with itself exactly for
//! every thread count, on data larger than one reduction group.

use edxs::parallel::{Kernels, ParallelExec};
use edxs_core::solver::{GModel, Laplacian, NoGUpdate, SerialExec, Simplex};
use edxs_core::{Solver, SolverParams};
use edxs_suite::synthetic;

#[test]
fn parallel_matches_serial_and_is_thread_count_independent() {
    let s = synthetic(40, 40, 60.0, 4);
    let p = s.rows * s.cols;
    let mu = [0.01];
    let mut prm = SolverParams::new(3, &s.simplex_rows);
    prm.mu = &mu;
    prm.lambda_l = 0.5;
    prm.laplacian = Laplacian::Grid {
        rows: s.rows,
        cols: s.cols,
    };
    prm.max_iter = 15;
    prm.tol = 0.0;
    prm.g = GModel::Matrix { update_every: 0 };
    let solver = Solver::new(prm, s.l, s.m, p).unwrap();
    let counts = s.sparse_counts();
    let run_with = |threads: Option<usize>, kernels: Kernels| {
        let (mut w, mut h, mut g) = (vec![0.05; s.m * 3], vec![1.0; 3 * p], s.g.clone());
        let mut drv = vec![0.0; solver.driver_len()];
        let mut ws = vec![0.0; solver.exec_len()];
        let mut losses = vec![];
        let mut on = |r: &edxs_core::solver::IterReport| losses.push(r.loss.total());
        match threads {
            None => {
                let mut exec = SerialExec::new(&solver, counts, &mut ws).unwrap();
                solver
                    .drive(
                        &mut exec,
                        solver.factors(&mut g, &mut w, &mut h).unwrap(),
                        &mut drv,
                        &mut NoGUpdate,
                        &mut on,
                    )
                    .unwrap();
            }
            Some(t) => {
                let mut exec = ParallelExec::with_kernels(&solver, counts, t, kernels).unwrap();
                solver
                    .drive(
                        &mut exec,
                        solver.factors(&mut g, &mut w, &mut h).unwrap(),
                        &mut drv,
                        &mut NoGUpdate,
                        &mut on,
                    )
                    .unwrap();
            }
        }
        (w, h, losses)
    };
    let run = |threads: Option<usize>| run_with(threads, Kernels::default());
    let serial = run(None);
    let one = run(Some(1));
    let two = run(Some(2));
    let four = run(Some(4));
    assert_eq!(one, two);
    assert_eq!(one, four);
    // The compact copy and the AVX2 kernels (used when the CPU has AVX2) are bit for bit the
    // portable kernels over the caller's counts.
    for (compact, avx2) in [(false, false), (true, false), (false, true)] {
        let other = run_with(Some(2), Kernels { compact, avx2 });
        assert_eq!(one, other, "kernels compact={compact} avx2={avx2}");
    }
    let scale = |v: &[f64]| v.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let err = |a: &[f64], b: &[f64]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f64::max)
            / scale(b)
    };
    assert!(
        err(&one.0, &serial.0) < 1e-10,
        "W {}",
        err(&one.0, &serial.0)
    );
    assert!(
        err(&one.1, &serial.1) < 1e-10,
        "H {}",
        err(&one.1, &serial.1)
    );
    assert!(
        err(&one.2, &serial.2) < 1e-12,
        "loss {}",
        err(&one.2, &serial.2)
    );
}

#[test]
fn identity_g_runs_threaded_as_an_explicit_identity() {
    // Plain KL-NMF as the Figure 1 reproduction runs it: W is L×K and G is not stored.
    let s = synthetic(24, 24, 60.0, 5);
    let p = s.rows * s.cols;
    let counts = s.sparse_counts();
    let run = |identity: bool, threads: usize| {
        let mut prm = SolverParams::new(3, &[]);
        prm.simplex = Simplex::None;
        prm.lambda_l = 0.5;
        prm.laplacian = Laplacian::Grid {
            rows: s.rows,
            cols: s.cols,
        };
        prm.max_iter = 10;
        prm.tol = 0.0;
        prm.g = if identity {
            GModel::Identity
        } else {
            GModel::Matrix { update_every: 0 }
        };
        let solver = Solver::new(prm, s.l, s.l, p).unwrap();
        let mut g = if identity {
            Vec::new()
        } else {
            let mut eye = vec![0.0; s.l * s.l];
            (0..s.l).for_each(|i| eye[i * s.l + i] = 1.0);
            eye
        };
        let mut w: Vec<f64> = (0..s.l * 3).map(|i| 0.5 + (i % 7) as f64 / 7.0).collect();
        let mut h = vec![1.0; 3 * p];
        let mut drv = vec![0.0; solver.driver_len()];
        let mut losses = vec![];
        let mut exec = ParallelExec::new(&solver, counts, threads).unwrap();
        solver
            .drive(
                &mut exec,
                solver.factors(&mut g, &mut w, &mut h).unwrap(),
                &mut drv,
                &mut NoGUpdate,
                &mut |r| losses.push(r.loss.total()),
            )
            .unwrap();
        (w, h, losses)
    };
    let explicit = run(false, 2);
    assert!(explicit.2.iter().all(|v| v.is_finite()));
    assert_eq!(run(true, 2), explicit);
    assert_eq!(run(true, 1), explicit);
}
