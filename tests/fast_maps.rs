//! The fast maps solver (`edxs::fast`): its objective is the core's to ~1e-12, its guard keeps
//! the objective from rising, it reaches the multiplicative updates' minimum on the convex
//! subproblem, and its results do not depend on the number of threads.

use edxs::fast::newton::{newton_pixel, pass, PixelTerms};
use edxs::fast::{kkt_residual, objective, solve_maps, MapsOptions, MapsProblem};
use edxs::io::counts::SparseCountsRef;
use edxs::sim::poisson::poisson;
use edxs_core::rng::Rng;
use edxs_core::solver::{GModel, Laplacian, Simplex, Stopping};
use edxs_core::{Counts, Solver, SolverParams};
use proptest::prelude::*;

/// Sparse Poisson counts from random spectra D (L×K) and maps, with a start H.
struct Problem {
    l: usize,
    k: usize,
    rows: usize,
    cols: usize,
    d: Vec<f64>,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f64>,
    h0: Vec<f64>,
}

impl Problem {
    fn new(seed: u64, l: usize, k: usize, rows: usize, cols: usize, counts: f64) -> Self {
        let mut rng = Rng::new(seed);
        let p = rows * cols;
        // Spectra: a few peaks over a background, each column summing to 1.
        let mut d = vec![0.0; l * k];
        for c in 0..k {
            let mut col: Vec<f64> = (0..l).map(|_| 0.05 + 0.1 * rng.uniform()).collect();
            for _ in 0..3 {
                let at = (rng.uniform() * l as f64) as usize % l;
                col[at] += 2.0 * rng.uniform();
            }
            let sum: f64 = col.iter().sum();
            for li in 0..l {
                d[li * k + c] = col[li] / sum;
            }
        }
        let (mut indptr, mut indices, mut values) = (vec![0], Vec::new(), Vec::new());
        for _ in 0..p {
            // A few pixels of every image hold no counts at all.
            let empty = rng.uniform() < 0.05;
            let hv: Vec<f64> = (0..k)
                .map(|_| {
                    if rng.uniform() < 0.3 {
                        0.0
                    } else {
                        rng.uniform()
                    }
                })
                .collect();
            let tot: f64 = hv.iter().sum::<f64>().max(1e-9);
            for li in 0..l {
                let lam: f64 = (0..k).map(|c| d[li * k + c] * hv[c] / tot * counts).sum();
                let y = if empty { 0 } else { poisson(&mut rng, lam) };
                if y > 0 {
                    indices.push(li as u32);
                    values.push(y as f64);
                }
            }
            indptr.push(indices.len());
        }
        let h0 = (0..k * p)
            .map(|_| counts / k as f64 * (0.2 + rng.uniform()))
            .collect();
        Problem {
            l,
            k,
            rows,
            cols,
            d,
            indptr,
            indices,
            values,
            h0,
        }
    }

    fn p(&self) -> usize {
        self.rows * self.cols
    }

    fn maps<'a>(&'a self, mu: &'a [f64], lambda: f64, epsilon_reg: f64) -> MapsProblem<'a> {
        MapsProblem {
            y: SparseCountsRef {
                channels: self.l,
                pixels: self.p(),
                indptr: &self.indptr,
                indices: &self.indices,
                values: &self.values,
            },
            d: &self.d,
            k: self.k,
            mu,
            epsilon_reg,
            lambda,
            laplacian: Laplacian::Grid {
                rows: self.rows,
                cols: self.cols,
            },
            eps: 1e-14,
        }
    }

    fn counts(&self) -> Counts<'_, f64> {
        Counts::Sparse {
            channels: self.l,
            pixels: self.p(),
            indptr: &self.indptr,
            indices: &self.indices,
            values: &self.values,
        }
    }

    /// The core solver on this problem with W = D held (G the identity).
    fn core_params<'a>(&self, mu: &'a [f64], lambda: f64, eps_reg: f64) -> SolverParams<'a, f64> {
        let mut prm = SolverParams::new(self.k, &[]);
        prm.mu = mu;
        prm.lambda_l = lambda;
        prm.epsilon_reg = eps_reg;
        prm.laplacian = Laplacian::Grid {
            rows: self.rows,
            cols: self.cols,
        };
        prm.simplex = Simplex::None;
        prm.g = GModel::Identity;
        prm
    }
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The host objective is the core's loss (each term) on random inputs.
    #[test]
    fn objective_is_the_cores(seed in 0u64..1000, k in 1usize..5, rows in 1usize..7,
                              cols in 1usize..7, mu in 0.0f64..2.0, lambda in 0.0f64..3.0,
                              eps_reg in 0.01f64..2.0) {
        let pr = Problem::new(seed, 30, k, rows, cols, 40.0);
        let mus = [mu];
        let prm = pr.core_params(&mus, lambda, eps_reg);
        let solver = Solver::new(prm, pr.l, pr.l, pr.p()).unwrap();
        let mut ws = vec![0.0; solver.exec_len()];
        let core = solver.loss(&pr.counts(), &[], &pr.d, &pr.h0, &mut ws).unwrap();
        let host = objective(&pr.maps(&mus, lambda, eps_reg), &pr.h0);
        prop_assert!(rel(host.kl, core.kl) < 1e-12, "kl {} vs {}", host.kl, core.kl);
        prop_assert!(rel(host.total(), core.total()) < 1e-12);
        prop_assert!((host.log_reg - core.log_reg).abs() <= 1e-12 * core.log_reg.abs().max(1e-300));
        prop_assert!((host.laplacian - core.laplacian).abs() <= 1e-12 * core.laplacian.abs().max(1e-300));
    }

    /// Every sweep lowers the objective (to rounding), the solver's bookkeeping matches the
    /// objective recomputed from scratch, and the KKT residual it reports is the one of H.
    #[test]
    fn objective_never_rises(seed in 0u64..1000, k in 1usize..5, rows in 1usize..9,
                             cols in 1usize..9, mu in 0.0f64..2.0, lambda in 0.0f64..0.5,
                             counts in 5.0f64..300.0) {
        let pr = Problem::new(seed, 40, k, rows, cols, counts);
        let mus = [mu];
        let pb = pr.maps(&mus, lambda, 0.5);
        let mut h = pr.h0.clone();
        let opt = MapsOptions { max_sweeps: 30, kkt_tol: 0.0, tol: 0.0, threads: 1, ..Default::default() };
        let rep = solve_maps(&pb, &mut h, &opt).unwrap();
        let mut before = rep.initial_loss.total();
        for r in &rep.history {
            let now = r.loss.total();
            prop_assert!(now <= before + 1e-13 * before.abs(), "rose from {before} to {now}");
            before = now;
        }
        let fresh = objective(&pb, &h).total();
        prop_assert!(rel(rep.loss.total(), fresh) < 1e-12, "{} vs {}", rep.loss.total(), fresh);
        prop_assert!(h.iter().all(|v| v.is_finite() && *v >= 1e-14));
        let kkt = kkt_residual(&pb, &h);
        prop_assert!((kkt - rep.kkt).abs() <= 1e-9 * kkt.max(1e-12), "{kkt} vs {}", rep.kkt);
    }
}

/// The guard: a full Newton step from h = 1.9·y/s on a one-component pixel overshoots to
/// 0.19·y/s, where the objective is higher; the step is halved and the objective falls.
#[test]
fn guard_halves_a_step_that_raises_the_objective() {
    let d = [1.0f64];
    let (idx, val) = ([0u32], [10.0f64]);
    let s = 1.0;
    let f = |h: f64| s * h - 10.0 * h.ln();
    let mut h = [19.0f64];
    let mut st = pass::<1>(&idx, &val, &d, &h);
    let terms = PixelTerms {
        c: [s],
        q: 0.0,
        mu: [0.0],
        epsilon_reg: 1.0,
        eps: 1e-14,
    };
    let before = f(h[0]);
    let out = newton_pixel::<1>(&idx, &val, &d, &terms, &mut h, &mut st, 1);
    assert!(out.halvings >= 1, "{out:?}");
    assert!(!out.refused);
    assert!(f(h[0]) < before, "{} -> {}", before, f(h[0]));
    // The unguarded step would have landed here, higher than the start.
    assert!(f(1.9) > before);
    // Run on: Newton reaches the minimiser y/s = 10.
    newton_pixel::<1>(&idx, &val, &d, &terms, &mut h, &mut st, 30);
    assert!((h[0] - 10.0).abs() < 1e-9, "{}", h[0]);
}

/// With W held and λ = μ = 0 each pixel's problem is convex: the fast solver reaches the
/// minimum that the multiplicative updates reach when run to convergence.
#[test]
fn same_minimum_as_multiplicative_updates_on_the_convex_subproblem() {
    for seed in [1u64, 2, 3] {
        for (k, counts) in [(2usize, 30.0), (3, 300.0), (4, 80.0)] {
            let pr = Problem::new(seed, 40, k, 4, 5, counts);
            let pb = pr.maps(&[], 0.0, 1.0);
            let mut h = pr.h0.clone();
            let rep = solve_maps(
                &pb,
                &mut h,
                &MapsOptions {
                    kkt_tol: 1e-9,
                    ..Default::default()
                },
            )
            .unwrap();
            let mut prm = pr.core_params(&[], 0.0, 1.0);
            prm.max_iter = 400_000;
            prm.tol = 1e-15;
            prm.stopping = Stopping::Relative;
            let fixed = pr.d.clone();
            prm.fixed_w = Some(&fixed);
            let solver = Solver::new(prm, pr.l, pr.l, pr.p()).unwrap();
            let mut ws = vec![0.0; solver.workspace_len()];
            let (mut w, mut hm) = (pr.d.clone(), pr.h0.clone());
            let sum = solver
                .run(&pr.counts(), &[], &mut w, &mut hm, &mut ws)
                .unwrap();
            let f_fast = objective(&pb, &h).total();
            let f_mu = objective(&pb, &hm).total();
            assert!(
                rel(f_fast, f_mu) < 1e-6,
                "seed {seed} k {k}: {f_fast} vs {f_mu}"
            );
            assert!(
                f_fast <= f_mu + 1e-12 * f_mu.abs(),
                "seed {seed} k {k}: {f_fast} vs {f_mu}"
            );
            assert!(rep.kkt <= 1e-7, "kkt {}", rep.kkt);
            // The reference really is converged.
            let kkt_mu = kkt_residual(&pb, &hm);
            assert!(
                kkt_mu < 1e-5,
                "MU after {} iterations: KKT {kkt_mu}",
                sum.iterations
            );
        }
    }
}

/// Bit-identical maps and loss for 1, 2 and 4 threads (several pixel groups, red-black
/// sweeps, every regularisation on).
#[test]
fn same_bits_for_any_thread_count() {
    let pr = Problem::new(7, 50, 3, 48, 45, 60.0);
    let mus = [0.3];
    let pb = pr.maps(&mus, 0.05, 0.5);
    let run = |threads: usize| {
        let mut h = pr.h0.clone();
        let opt = MapsOptions {
            max_sweeps: 12,
            kkt_tol: 0.0,
            tol: 0.0,
            threads,
            ..Default::default()
        };
        let rep = solve_maps(&pb, &mut h, &opt).unwrap();
        (
            h,
            rep.loss.total().to_bits(),
            rep.kkt.to_bits(),
            rep.passes.to_bits(),
        )
    };
    let one = run(1);
    for t in [2, 4] {
        let other = run(t);
        assert!(
            one.0
                .iter()
                .zip(&other.0)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "H differs at {t} threads"
        );
        assert_eq!(one.1, other.1, "loss differs at {t} threads");
        assert_eq!(one.2, other.2, "KKT differs at {t} threads");
        assert_eq!(one.3, other.3);
    }
}

/// Bad inputs are refused with a message naming the problem.
#[test]
fn bad_input_is_named() {
    let pr = Problem::new(3, 20, 2, 3, 3, 20.0);
    let pb = pr.maps(&[], 0.0, 1.0);
    let mut short = vec![1.0; 5];
    let e = solve_maps(&pb, &mut short, &MapsOptions::default()).unwrap_err();
    assert!(e.to_string().contains("H has 5 entries"), "{e}");
    let mut h = pr.h0.clone();
    h[3] = f64::NAN;
    let e = solve_maps(&pb, &mut h, &MapsOptions::default()).unwrap_err();
    assert!(e.to_string().contains("non-finite"), "{e}");
}
