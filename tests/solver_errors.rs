//! Every invalid solver input is a typed error naming the problem; nothing panics.

use edxs_core::solver::{Laplacian, Simplex};
use edxs_core::{Counts, Solver, SolverError, SolverParams};

const ROWS: [usize; 2] = [0, 1];

fn params(k: usize) -> SolverParams<'static, f64> {
    SolverParams::new(k, &ROWS)
}

#[test]
fn planning_errors() {
    assert!(matches!(
        Solver::new(params(0), 4, 3, 6),
        Err(SolverError::ZeroComponents)
    ));
    assert!(matches!(
        Solver::new(params(2), 0, 3, 6),
        Err(SolverError::EmptyData)
    ));
    let mut p = params(2);
    p.laplacian = Laplacian::Grid { rows: 2, cols: 4 };
    let e = Solver::new(p, 4, 3, 6).unwrap_err();
    assert!(
        matches!(
            e,
            SolverError::ShapeMismatch {
                rows: 2,
                cols: 4,
                pixels: 6
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("2x4"));
    let mut p = params(2);
    p.epsilon_reg = 0.0;
    assert!(matches!(
        Solver::new(p, 4, 3, 6),
        Err(SolverError::InvalidParameter {
            name: "epsilon_reg",
            ..
        })
    ));
    let mut p = params(2);
    p.lambda_l = -1.0;
    assert!(matches!(
        Solver::new(p, 4, 3, 6),
        Err(SolverError::InvalidParameter {
            name: "lambda_l",
            ..
        })
    ));
    let mu = [0.1, 0.2, 0.3];
    let mut p = params(2);
    p.mu = &mu;
    assert!(matches!(
        Solver::new(p, 4, 3, 6),
        Err(SolverError::MuLength { got: 3, k: 2 })
    ));
    let neg = [-0.1];
    let mut p = params(2);
    p.mu = &neg;
    assert!(matches!(
        Solver::new(p, 4, 3, 6),
        Err(SolverError::InvalidParameter { name: "mu", .. })
    ));
    let bad_rows = [0usize, 7];
    let mut p = params(2);
    p.simplex = Simplex::W { rows: &bad_rows };
    assert!(matches!(
        Solver::new(p, 4, 3, 6),
        Err(SolverError::SimplexRowOutOfRange { row: 7 })
    ));
    let mut p = params(2);
    p.log_shift = 0.6;
    assert!(matches!(
        Solver::new(p, 4, 3, 6),
        Err(SolverError::SimplexInfeasible { rows: 2 })
    ));
    // Fixed W: two fixed simplex entries of component 0 summing to 1.2.
    let fixed = [0.7, -1.0, 0.5, -1.0, -1.0, -1.0];
    let mut p = params(2);
    p.fixed_w = Some(&fixed);
    let e = Solver::new(p, 4, 3, 6).unwrap_err();
    assert!(
        matches!(e, SolverError::FixedWBreaksSimplex { component: 0, .. }),
        "{e}"
    );
    let short = [0.0; 5];
    let mut p = params(2);
    p.fixed_w = Some(&short);
    assert!(matches!(
        Solver::new(p, 4, 3, 6),
        Err(SolverError::DimensionMismatch {
            buffer: "fixed_w",
            ..
        })
    ));
}

#[test]
fn call_errors() {
    let solver = Solver::new(params(2), 4, 3, 2).unwrap();
    let g = vec![0.5; 12];
    let mut ws = vec![0.0; solver.workspace_len()];
    let (mut w, mut h) = (vec![0.5; 6], vec![0.5; 4]);
    let run = |y: &[f64], w: &mut [f64], h: &mut [f64], ws: &mut [f64]| {
        let counts = Counts::Dense {
            channels: 4,
            pixels: 2,
            data: y,
        };
        let gg = g.clone();
        solver.run(&counts, &gg, w, h, ws)
    };
    let e = run(
        &[1.0, -2.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0],
        &mut w,
        &mut h,
        &mut ws,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            SolverError::InvalidCount {
                pixel: 0,
                channel: 1,
                ..
            }
        ),
        "{e}"
    );
    let e = run(
        &[1.0, 1.0, 0.0, 0.0, 1.0, f64::NAN, 1.0, 1.0],
        &mut w,
        &mut h,
        &mut ws,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            SolverError::InvalidCount {
                pixel: 1,
                channel: 1,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("pixel 1, channel 1"));
    let e = run(&[1.0; 7], &mut w, &mut h, &mut ws).unwrap_err();
    assert!(
        matches!(
            e,
            SolverError::DimensionMismatch {
                buffer: "counts",
                ..
            }
        ),
        "{e}"
    );
    let mut short_ws = vec![0.0; 3];
    let e = run(&[1.0; 8], &mut w, &mut h, &mut short_ws).unwrap_err();
    assert!(
        matches!(
            e,
            SolverError::DimensionMismatch {
                buffer: "workspace",
                ..
            }
        ),
        "{e}"
    );
    let mut bad_w = vec![0.5, -0.1, 0.5, 0.5, 0.5, 0.5];
    let e = run(&[1.0; 8], &mut bad_w, &mut h, &mut ws).unwrap_err();
    assert!(
        matches!(
            e,
            SolverError::InvalidInitial {
                buffer: "w",
                index: 1
            }
        ),
        "{e}"
    );
    let mut short_h = vec![0.5; 3];
    let e = run(&[1.0; 8], &mut w, &mut short_h, &mut ws).unwrap_err();
    assert!(
        matches!(e, SolverError::DimensionMismatch { buffer: "h", .. }),
        "{e}"
    );
    // Malformed sparse counts.
    let counts = Counts::Sparse {
        channels: 4,
        pixels: 2,
        indptr: &[0, 2, 3],
        indices: &[1, 1, 9],
        values: &[1.0, 1.0, 1.0],
    };
    let gg = g.clone();
    let e = solver
        .run(&counts, &gg, &mut w, &mut h, &mut ws)
        .unwrap_err();
    assert!(
        matches!(e, SolverError::MalformedSparse { pixel: 0 }),
        "{e}"
    );
}
