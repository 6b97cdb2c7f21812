//! A first-order optimality (KKT) measure for the maps: how far H is from a stationary point of
//! the objective over H ≥ ε, on a scale that does not depend on the start.
//!
//! In the variables x_kp = (h_kp − ε)/σ_k, with σ_k the mean of component k's map, the KKT
//! conditions are x ≥ 0, ∇ₓf ≥ 0, x·∇ₓf = 0, i.e. min(x, ∇ₓf) = 0 entry-wise. The residual is
//! ‖min(x, ∇ₓf)‖₂ divided by ‖σ_k·s_k‖₂ over all entries (s_k = Σ_l D̃_lk): ∇f is a difference
//! of two terms of that size (s and Σ y·d/(d·h)), so the ratio is free of the units of H and
//! of the counts, and two solvers from different starts are measured alike.

// K×K blocks are indexed by component on purpose; `!(x > 0)` also catches NaN on purpose.
#![allow(clippy::needless_range_loop, clippy::neg_cmp_op_on_partial_ord)]

use super::maps::lap_vec;
use super::newton::pass;
use super::objective::MapsProblem;

/// Partial sums of the residual over a pixel range.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KktParts {
    /// Σ min(x, ∇ₓf)².
    pub sq: f64,
}

/// The residual's squared entries over `range`, with each pixel's Σ y·d/(d·h) from `data`.
pub(crate) fn kkt_parts<const K: usize>(
    pb: &MapsProblem<'_>,
    s: &[f64; K],
    sigma: &[f64; K],
    hp: &[f64],
    range: std::ops::Range<usize>,
    data: impl Fn(usize) -> [f64; K],
) -> KktParts {
    let mut sq = 0.0;
    for px in range {
        let g = data(px);
        let lv = lap_vec::<K>(pb.laplacian, hp, px);
        for c in 0..K {
            let hv = hp[px * K + c];
            let grad = s[c] - g[c] + pb.mu_of(c) / (hv + pb.epsilon_reg) + pb.lambda * lv[c];
            let r = ((hv - pb.eps) / sigma[c]).min(sigma[c] * grad);
            sq += r * r;
        }
    }
    KktParts { sq }
}

/// The KKT residual of H (K×P, component-major) for the maps problem `pb` (one pass over the
/// non-zeros); used to measure any solver, the multiplicative updates included.
pub fn kkt_residual(pb: &MapsProblem<'_>, h: &[f64]) -> f64 {
    macro_rules! go {
        ($($n:literal)*) => {
            match pb.k {
                $($n => residual::<$n>(pb, h),)*
                _ => f64::NAN,
            }
        };
    }
    go!(1 2 3 4 5 6 7 8)
}

fn residual<const K: usize>(pb: &MapsProblem<'_>, h: &[f64]) -> f64 {
    let p = pb.y.pixels;
    let (dc, s) = pb.clipped_d();
    let s: [f64; K] = core::array::from_fn(|c| s[c]);
    let mut hp = vec![0.0; p * K];
    let mut rows = [0.0; K];
    for c in 0..K {
        for px in 0..p {
            let v = h[c * p + px].max(pb.eps);
            hp[px * K + c] = v;
            rows[c] += v;
        }
    }
    let sigma: [f64; K] = core::array::from_fn(|c| (rows[c] / p as f64).max(1e-300));
    let data = |px: usize| {
        let (a, b) = (pb.y.indptr[px], pb.y.indptr[px + 1]);
        let hv: &[f64; K] = hp[px * K..][..K].try_into().unwrap();
        pass::<K>(&pb.y.indices[a..b], &pb.y.values[a..b], &dc, hv).g
    };
    let parts = kkt_parts::<K>(pb, &s, &sigma, &hp, 0..p, data);
    let den: f64 = p as f64 * (0..K).map(|c| (sigma[c] * s[c]).powi(2)).sum::<f64>();
    (parts.sq / den.max(1e-300)).sqrt()
}
