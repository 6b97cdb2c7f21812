//! The solver's lower-level API refuses bad buffers with typed errors instead of skipping work
//! or reporting a zero loss, and the placeholder-free `run` is the full loop with G kept.

use edxs_core::solver::{Exec, GModel, Laplacian, NoGUpdate, SerialExec, Simplex};
use edxs_core::{Counts, Solver, SolverError, SolverParams};

const L: usize = 6;
const M: usize = 3;
const P: usize = 8;

fn data() -> (Vec<f64>, Vec<f64>) {
    let g = (0..L * M).map(|i| 0.1 + (i % 5) as f64 * 0.2).collect();
    let y = (0..L * P).map(|i| ((i * 7) % 4) as f64).collect();
    (g, y)
}

fn counts(y: &[f64]) -> Counts<'_, f64> {
    Counts::Dense {
        channels: L,
        pixels: P,
        data: y,
    }
}

/// A wrong-length W or G is an error from `SerialExec::step` and `loss` (they used to skip the
/// step and report a zero loss, which looks like convergence).
#[test]
fn serial_exec_reports_errors() {
    let rows = [0usize, 1, 2];
    let solver = Solver::new(SolverParams::new(2, &rows), L, M, P).unwrap();
    let (g, y) = data();
    let mut ws = vec![0.0; solver.exec_len()];
    let mut exec = SerialExec::new(&solver, counts(&y), &mut ws).unwrap();
    let (mut w, mut h) = (vec![0.3; M * 2], vec![1.0; 2 * P]);
    let mut short_w = vec![0.3; M * 2 - 1];
    let e = exec.step(&g, &mut short_w, &mut h).unwrap_err();
    assert!(
        matches!(e, SolverError::DimensionMismatch { buffer: "w", .. }),
        "{e}"
    );
    let e = exec.loss(&g[1..], &w, &h).unwrap_err();
    assert!(
        matches!(e, SolverError::DimensionMismatch { buffer: "g", .. }),
        "{e}"
    );
    // The right buffers still work after the errors, and the loss is a real one.
    exec.step(&g, &mut w, &mut h).unwrap();
    assert!(exec.loss(&g, &w, &h).unwrap().total() > 0.0);
}

/// Counts of another size are refused when the executor is set up.
#[test]
fn serial_exec_checks_the_counts_dimensions() {
    let rows = [0usize, 1, 2];
    let solver = Solver::new(SolverParams::new(2, &rows), L, M, P - 1).unwrap();
    let (_, y) = data();
    let mut ws = vec![0.0; solver.exec_len()];
    let e = SerialExec::new(&solver, counts(&y), &mut ws).err().unwrap();
    assert!(
        matches!(
            e,
            SolverError::DimensionMismatch {
                expected: 7,
                got: 8,
                ..
            }
        ),
        "{e}"
    );
}

/// Every block function checks its buffers and its pixel range.
#[test]
fn block_functions_check_their_buffers() {
    let rows = [0usize, 1, 2];
    let solver = Solver::new(SolverParams::new(2, &rows), L, M, P).unwrap();
    let (g, y) = data();
    let y = counts(&y);
    let (w, h) = (vec![0.3; M * 2], vec![1.0; 2 * P]);
    let k = 2;
    let mut shared = vec![0.0; solver.shared_len()];
    let e = solver.prepare(&g, &w, &h, &mut shared[1..]).unwrap_err();
    assert!(
        matches!(
            e,
            SolverError::DimensionMismatch {
                buffer: "shared",
                ..
            }
        ),
        "{e}"
    );
    let e = solver.prepare(&g, &w[1..], &h, &mut shared).unwrap_err();
    assert!(
        matches!(e, SolverError::DimensionMismatch { buffer: "w", .. }),
        "{e}"
    );
    solver.prepare(&g, &w, &h, &mut shared).unwrap();
    // The pass view checks the shared buffer and H once.
    for e in [
        solver.pass(&shared[..5], &h).err().unwrap(),
        solver.pass(&shared, &h[1..]).err().unwrap(),
    ] {
        assert!(
            matches!(
                e,
                SolverError::DimensionMismatch {
                    buffer: "shared" | "h",
                    ..
                }
            ),
            "{e}"
        );
    }
    let pass = solver.pass(&shared, &h).unwrap();

    let (mut out, mut r, mut acc) = (vec![0.0; P * k], vec![0.0; L * k], vec![0.0; 2 * k]);
    let e = pass
        .h_r_block(&y, 4..P + 1, None, &mut out, &mut r, &mut acc)
        .unwrap_err();
    assert_eq!(
        e,
        SolverError::PixelRange {
            start: 4,
            end: P + 1,
            pixels: P
        }
    );
    let e = pass
        .h_r_block(&y, 0..P, None, &mut out, &mut r[1..], &mut acc)
        .unwrap_err();
    assert!(
        matches!(e, SolverError::DimensionMismatch { buffer: "r", .. }),
        "{e}"
    );
    let short = vec![0.0; 3];
    let e = pass
        .h_r_block(&y, 0..P, Some(&short), &mut out, &mut r, &mut acc)
        .unwrap_err();
    assert!(
        matches!(e, SolverError::DimensionMismatch { buffer: "data", .. }),
        "{e}"
    );

    let mut data = vec![0.0; P * k];
    let mut part = vec![0.0f64; solver.loss_part_len()];
    let e = pass
        .loss_data_block(&y, 0..P, &mut data, &mut part[1..], &mut acc)
        .unwrap_err();
    assert!(
        matches!(
            e,
            SolverError::DimensionMismatch {
                buffer: "loss part",
                ..
            }
        ),
        "{e}"
    );
    pass.loss_data_block(&y, 0..P, &mut data, &mut part, &mut acc)
        .unwrap();
    let e = pass.loss_from_part_sums(&part[..2], 0.0).unwrap_err();
    assert!(
        matches!(
            e,
            SolverError::DimensionMismatch {
                buffer: "loss sums",
                ..
            }
        ),
        "{e}"
    );
    assert!(pass
        .loss_from_part_sums(&part, 0.0)
        .unwrap()
        .total()
        .is_finite());

    let mut ws = vec![0.0; solver.exec_len()];
    let mut w2 = w.clone();
    let e = solver
        .w_from_sums(&g, &mut w2, &r[..L * k - 1], &[1.0; 2], &mut ws)
        .unwrap_err();
    assert!(
        matches!(e, SolverError::DimensionMismatch { buffer: "r", .. }),
        "{e}"
    );
    let e = solver
        .w_from_sums(&g, &mut w2, &r, &[1.0; 1], &mut ws)
        .unwrap_err();
    assert!(
        matches!(
            e,
            SolverError::DimensionMismatch {
                buffer: "rowsum_h",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(w2, w, "W is untouched by a refused call");
}

/// `run` (G kept, no report) gives the bits of `run_with` with `NoGUpdate`, for every sum
/// constraint and for an identity G.
#[test]
fn run_is_run_with_no_update() {
    let rows = [0usize, 2];
    let (g, y) = data();
    let y = counts(&y);
    let mu = [0.05];
    for (simplex, gm) in [
        (
            Simplex::W { rows: &rows },
            GModel::Matrix { update_every: 3 },
        ),
        (Simplex::H, GModel::Matrix { update_every: 0 }),
        (Simplex::None, GModel::Matrix { update_every: 2 }),
        (Simplex::None, GModel::Identity),
    ] {
        let m = if gm == GModel::Identity { L } else { M };
        let mut prm = SolverParams::new(2, &rows);
        prm.simplex = simplex;
        prm.g = gm;
        prm.mu = &mu;
        prm.lambda_l = 0.3;
        prm.laplacian = Laplacian::Grid { rows: 2, cols: 4 };
        prm.max_iter = 30;
        let solver = Solver::new(prm, L, m, P).unwrap();
        let g = if gm == GModel::Identity {
            vec![]
        } else {
            g.clone()
        };
        let start = || {
            (
                (0..m * 2)
                    .map(|i| 0.2 + i as f64 * 0.01)
                    .collect::<Vec<_>>(),
                vec![1.0; 2 * P],
            )
        };
        let mut ws = vec![0.0; solver.workspace_len()];
        let (mut w1, mut h1) = start();
        let a = solver.run(&y, &g, &mut w1, &mut h1, &mut ws).unwrap();
        let (mut w2, mut h2) = start();
        let mut g2 = g.clone();
        let mut seen = 0;
        let b = solver
            .run_with(
                &y,
                solver.factors(&mut g2, &mut w2, &mut h2).unwrap(),
                &mut ws,
                &mut NoGUpdate,
                &mut |_| seen += 1,
            )
            .unwrap();
        assert_eq!((a, &w1, &h1), (b, &w2, &h2), "{simplex:?} {gm:?}");
        assert_eq!(seen, b.iterations);
        assert!(a.final_loss < a.initial_loss);
    }
}
