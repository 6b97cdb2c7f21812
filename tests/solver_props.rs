//! Property tests of the solver: monotone loss, exact simplex, bounds, and no NaN/Inf on any
//! non-negative input, including degenerate shapes.

use edxs_core::solver::{GModel, Laplacian, NoGUpdate, Simplex, Stopping};
use edxs_core::{Counts, Float, Solver, SolverParams};
use proptest::prelude::*;

/// A small random positive G (L×M; every channel is reachable, as with the bremsstrahlung
/// columns of a real G), and counts with zero pixels and channels.
#[derive(Debug, Clone)]
struct Problem {
    l: usize,
    m: usize,
    k: usize,
    rows: usize,
    cols: usize,
    g: Vec<f64>,
    y: Vec<f64>,
    w0: Vec<f64>,
    h0: Vec<f64>,
}

fn problem() -> impl Strategy<Value = Problem> {
    (2usize..24, 1usize..6, 1usize..5, 1usize..5, 1usize..5).prop_flat_map(
        |(l, m, k, rows, cols)| {
            let p = rows * cols;
            (
                prop::collection::vec(prop_oneof![1 => 1e-3f64..1e-2, 4 => 1e-2f64..1.0], l * m),
                prop::collection::vec(prop_oneof![2 => Just(0.0), 1 => 0.0f64..50.0], l * p),
                prop::collection::vec(0.01f64..1.0, m * k),
                prop::collection::vec(0.01f64..1.0, k * p),
            )
                .prop_map(move |(g, y, w0, h0)| {
                    let y = y.iter().map(|v| v.floor()).collect();
                    Problem {
                        l,
                        m,
                        k,
                        rows,
                        cols,
                        g,
                        y,
                        w0,
                        h0,
                    }
                })
        },
    )
}

fn to<T: Float>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::from_f64(x)).collect()
}

/// Final W, final H and the loss history.
type Outcome<T> = (Vec<T>, Vec<T>, Vec<f64>);

fn run<T: Float>(
    pb: &Problem,
    simplex_w: bool,
    simplex_h: bool,
    mu: f64,
    lambda: f64,
    iters: usize,
) -> Result<Outcome<T>, TestCaseError> {
    let rows: Vec<usize> = (0..pb.m).collect();
    let mu = [T::from_f64(mu)];
    let mut prm = SolverParams::<T>::new(pb.k, &rows);
    prm.simplex = match (simplex_w, simplex_h) {
        (true, _) => Simplex::W { rows: &rows },
        (false, true) => Simplex::H,
        (false, false) => Simplex::None,
    };
    prm.mu = &mu;
    prm.lambda_l = T::from_f64(lambda);
    prm.laplacian = Laplacian::Grid {
        rows: pb.rows,
        cols: pb.cols,
    };
    prm.max_iter = iters;
    prm.tol = T::ZERO;
    prm.stopping = Stopping::Relative;
    prm.g = GModel::Matrix { update_every: 0 };
    let p = pb.rows * pb.cols;
    let solver = Solver::new(prm, pb.l, pb.m, p).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut ws = vec![T::ZERO; solver.workspace_len()];
    let y: Vec<T> = to(&pb.y);
    let counts = Counts::Dense {
        channels: pb.l,
        pixels: p,
        data: &y,
    };
    let mut g: Vec<T> = to(&pb.g);
    let mut w: Vec<T> = to(&pb.w0);
    let mut h: Vec<T> = to(&pb.h0);
    let mut losses = vec![];
    solver
        .run_with(
            &counts,
            solver.factors(&mut g, &mut w, &mut h).unwrap(),
            &mut ws,
            &mut NoGUpdate,
            &mut |r| losses.push(r.loss.total()),
        )
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    Ok((w, h, losses))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn loss_never_increases_without_regularisation(pb in problem()) {
        let (_, _, losses) = run::<f64>(&pb, true, false, 0.0, 0.0, 30)?;
        for win in losses.windows(2) {
            prop_assert!(win[1] <= win[0] + 1e-12 * win[0].abs().max(1.0), "{} -> {}", win[0], win[1]);
        }
    }

    #[test]
    fn simplex_columns_sum_to_one_exactly(pb in problem()) {
        let (w, _, _) = run::<f64>(&pb, true, false, 0.0, 0.0, 10)?;
        for c in 0..pb.k {
            let s: f64 = (0..pb.m).map(|j| w[j * pb.k + c]).sum();
            prop_assert!((s - 1.0).abs() < 1e-12, "column {c} sums to {s}");
        }
        let (_, h, _) = run::<f64>(&pb, false, true, 0.0, 0.5, 10)?;
        let p = pb.rows * pb.cols;
        for px in 0..p {
            let s: f64 = (0..pb.k).map(|c| h[c * p + px]).sum();
            prop_assert!((s - 1.0).abs() < 1e-12, "pixel {px} sums to {s}");
        }
    }

    #[test]
    fn outputs_stay_finite_and_above_epsilon(pb in problem(), mu in 0.0f64..0.5, lambda in 0.0f64..2.0) {
        for (sw, sh) in [(true, false), (false, true), (false, false)] {
            let (w, h, losses) = run::<f64>(&pb, sw, sh, mu, lambda, 15)?;
            prop_assert!(w.iter().chain(&h).all(|v| v.is_finite() && *v >= 1e-14));
            prop_assert!(losses.iter().all(|v| v.is_finite()));
            let (w, h, losses) = run::<f32>(&pb, sw, sh, mu, lambda, 15)?;
            prop_assert!(w.iter().chain(&h).all(|v| v.is_finite() && *v >= 1e-14));
            prop_assert!(losses.iter().all(|v| v.is_finite()));
        }
    }
}

#[test]
fn all_zero_data_and_single_pixel_stay_finite() {
    let pb = Problem {
        l: 5,
        m: 3,
        k: 4, // more components than model columns
        rows: 1,
        cols: 1,
        g: vec![0.2; 15],
        y: vec![0.0; 5],
        w0: vec![0.5; 12],
        h0: vec![0.5; 4],
    };
    for (sw, sh) in [(true, false), (false, true), (false, false)] {
        let (w, h, l) = run::<f64>(&pb, sw, sh, 0.1, 1.0, 20).unwrap();
        assert!(
            w.iter().chain(&h).all(|v| v.is_finite() && *v >= 1e-14),
            "{w:?} {h:?}"
        );
        assert!(l.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn dense_and_sparse_are_bit_identical() {
    let (l, p, m, k) = (7usize, 6usize, 3usize, 2usize);
    let y: Vec<f64> = (0..l * p)
        .map(|i| ((i * 37) % 11) as f64 * ((i % 3 != 0) as u8 as f64))
        .collect();
    let (mut indptr, mut indices, mut values) = (vec![0usize], vec![], vec![]);
    for px in 0..p {
        for li in 0..l {
            if y[px * l + li] != 0.0 {
                indices.push(li as u32);
                values.push(y[px * l + li]);
            }
        }
        indptr.push(indices.len());
    }
    let g: Vec<f64> = (0..l * m)
        .map(|i| 0.1 + ((i * 13) % 7) as f64 / 7.0)
        .collect();
    let rows = [0usize, 1, 2];
    let mu = [0.01];
    let mut prm = SolverParams::<f64>::new(k, &rows);
    prm.mu = &mu;
    prm.lambda_l = 0.3;
    prm.laplacian = Laplacian::Grid { rows: 2, cols: 3 };
    prm.max_iter = 12;
    let solver = Solver::new(prm, l, m, p).unwrap();
    let mut out = vec![];
    for sparse in [false, true] {
        let counts = if sparse {
            Counts::Sparse {
                channels: l,
                pixels: p,
                indptr: &indptr,
                indices: &indices,
                values: &values,
            }
        } else {
            Counts::Dense {
                channels: l,
                pixels: p,
                data: &y,
            }
        };
        let mut ws = vec![0.0; solver.workspace_len()];
        let (gg, mut w, mut h) = (g.clone(), vec![0.3; m * k], vec![0.4; k * p]);
        solver.run(&counts, &gg, &mut w, &mut h, &mut ws).unwrap();
        out.push((w, h));
    }
    assert_eq!(out[0], out[1]);
}

/// Plain KL-NMF (no simplex) with G given as `g` (L×L or empty) and the identity flag.
fn run_plain<T: Float>(
    pb: &Problem,
    g: &[f64],
    identity: bool,
    mu: f64,
    lambda: f64,
) -> Outcome<T> {
    let mu = [T::from_f64(mu)];
    let mut prm = SolverParams::<T>::new(pb.k, &[]);
    prm.simplex = Simplex::None;
    prm.mu = &mu;
    prm.lambda_l = T::from_f64(lambda);
    prm.laplacian = Laplacian::Grid {
        rows: pb.rows,
        cols: pb.cols,
    };
    prm.max_iter = 12;
    prm.tol = T::ZERO;
    prm.g = if identity {
        GModel::Identity
    } else {
        GModel::Matrix { update_every: 3 }
    };
    let p = pb.rows * pb.cols;
    let solver = Solver::new(prm, pb.l, pb.l, p).unwrap();
    let mut ws = vec![T::ZERO; solver.workspace_len()];
    let y: Vec<T> = to(&pb.y);
    let counts = Counts::Dense {
        channels: pb.l,
        pixels: p,
        data: &y,
    };
    let mut g: Vec<T> = to(g);
    // W is L×K here: the start spreads the problem's values over the channels.
    let mut w: Vec<T> = (0..pb.l * pb.k)
        .map(|i| T::from_f64(pb.w0[i % pb.w0.len()]))
        .collect();
    let mut h: Vec<T> = to(&pb.h0);
    let mut losses = vec![];
    solver
        .run_with(
            &counts,
            solver.factors(&mut g, &mut w, &mut h).unwrap(),
            &mut ws,
            &mut NoGUpdate,
            &mut |r| losses.push(r.loss.total()),
        )
        .unwrap();
    (w, h, losses)
}

fn bits<T: Float>(v: &[T]) -> Vec<u64> {
    v.iter().map(|x| x.to_f64().to_bits()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// `GModel::Identity` skips the L×L product, so it must give exactly what an explicit identity
    /// gives, in both precisions and whatever the regularisation.
    #[test]
    fn identity_flag_equals_an_explicit_identity(pb in problem(), mu in 0.0f64..0.3, lambda in 0.0f64..1.0) {
        let l = pb.l;
        let mut eye = vec![0.0; l * l];
        for i in 0..l {
            eye[i * l + i] = 1.0;
        }
        let (we, he, le) = run_plain::<f64>(&pb, &eye, false, mu, lambda);
        for g in [&[][..], &eye[..]] {
            let (w, h, ls) = run_plain::<f64>(&pb, g, true, mu, lambda);
            prop_assert_eq!(bits(&w), bits(&we));
            prop_assert_eq!(bits(&h), bits(&he));
            prop_assert_eq!(bits(&ls), bits(&le));
        }
        let (we, he, _) = run_plain::<f32>(&pb, &eye, false, mu, lambda);
        let (w, h, _) = run_plain::<f32>(&pb, &[], true, mu, lambda);
        prop_assert_eq!(bits(&w), bits(&we));
        prop_assert_eq!(bits(&h), bits(&he));
    }
}

#[test]
fn identity_flag_needs_as_many_columns_as_channels() {
    let mut prm = SolverParams::<f64>::new(2, &[]);
    prm.simplex = Simplex::None;
    prm.g = GModel::Identity;
    let e = Solver::new(prm, 6, 5, 4).unwrap_err().to_string();
    assert!(e.contains("identity"), "{e}");
    assert!(Solver::new(prm, 6, 6, 4).is_ok());
}
