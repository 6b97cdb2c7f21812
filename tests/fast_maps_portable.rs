//! The fast maps solver on the portable per-pixel pass, forced on a CPU that has the AVX2 one:
//! the same maps and objective to rounding. In a test binary of its own because the switch is
//! process-wide (`fast_maps` compares runs bit for bit).

use edxs::fast::newton::force_portable_pass;
use edxs::fast::{gw, solve_maps, MapsOptions, MapsProblem};
use edxs::io::counts::SparseCountsRef;
use edxs_core::solver::Laplacian;
use edxs_suite::synthetic;

#[test]
fn the_portable_pass_solves_to_the_same_maps() {
    let s = synthetic(24, 20, 120.0, 3);
    let (k, p) = (3, s.rows * s.cols);
    let d = gw(&s.g, &s.w_true, s.l, s.m, k);
    let mus = [0.2];
    let pb = MapsProblem {
        y: SparseCountsRef {
            channels: s.l,
            pixels: p,
            indptr: &s.indptr,
            indices: &s.indices,
            values: &s.values,
        },
        d: &d,
        k,
        mu: &mus,
        epsilon_reg: 0.5,
        lambda: 0.3,
        laplacian: Laplacian::Grid {
            rows: s.rows,
            cols: s.cols,
        },
        eps: 1e-14,
    };
    let h0 = vec![40.0; k * p];
    let opt = MapsOptions {
        threads: 2,
        ..Default::default()
    };
    let solve = |portable: bool| {
        force_portable_pass(portable);
        let mut h = h0.clone();
        let rep = solve_maps(&pb, &mut h, &opt).unwrap();
        force_portable_pass(false);
        (h, rep)
    };
    let (fast, rf) = solve(false);
    let (portable, rp) = solve(true);
    for rep in [&rf, &rp] {
        assert!(rep.kkt <= 1e-6, "KKT {}", rep.kkt);
        assert!(rep.loss.total() < rep.initial_loss.total());
    }
    let (a, b) = (rf.loss.total(), rp.loss.total());
    assert!((a - b).abs() <= 1e-12 * a.abs(), "objectives {a} and {b}");
    let top = fast.iter().fold(0.0f64, |m, v| m.max(*v));
    let gap = fast
        .iter()
        .zip(&portable)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
    assert!(gap <= 1e-6 * top, "maps differ by {gap} (largest {top})");
    // On a CPU with AVX2 and FMA the two runs took different passes: the sums' last bits tell.
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        assert!(
            fast.iter()
                .zip(&portable)
                .any(|(x, y)| x.to_bits() != y.to_bits()),
            "the switch did not take effect"
        );
    }
}
