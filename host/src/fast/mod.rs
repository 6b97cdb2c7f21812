//! Fast solvers for the default path: a per-pixel projected Newton method for the maps with
//! the spectra held (tens of passes over the non-zeros instead of the thousands the
//! multiplicative updates need), the KKT residual that says how far an iterate is from a
//! stationary point, and a host copy of the core's objective that both are checked against.
//!
//! The problem is the core's, to the letter (`edxs_core::solver` loss.rs): with D̃ = max(G·W, ε)
//! and H ≥ ε (ε = `log_shift`),
//! f(H) = [Σ_k (Σ_l D̃_lk)(Σ_p H_kp) − Σ_nz y·ln(D̃H)_lp + Σ y ln y − Σ y
//!        + Σ_k μ_k Σ_p ln(H_kp + ε_reg) + ½λ·tr(HΔHᵀ)] / (L·P).
//! The multiplicative updates stay in the core for `--compat espm` and the firmware.
//! `joint` and `spectra` fit W too (measured, not the default: docs/speed/joint_newton.md).

pub mod coupled;
pub mod held;
pub mod joint;
pub mod kkt;
pub mod kkt_w;
pub mod maps;
pub mod newton;
#[cfg(target_arch = "x86_64")]
mod newton_avx2;
pub mod objective;
pub mod schur;
pub mod spectra;

pub use kkt::kkt_residual;
pub use maps::{solve_maps, MapsOptions, MapsReport};
pub use objective::{objective, MapsProblem};

/// D = G·W (L×K, row-major) from G (L×M) and W (M×K), skipping G's zeros: the one product
/// every fast solver forms, in one summation order, so that they agree bit for bit.
pub fn gw(g: &[f64], w: &[f64], l: usize, m: usize, k: usize) -> Vec<f64> {
    let mut d = vec![0.0; l * k];
    for (grow, drow) in g.chunks_exact(m).zip(d.chunks_exact_mut(k)) {
        for (j, gv) in grow.iter().enumerate() {
            if *gv != 0.0 {
                for (dv, wv) in drow.iter_mut().zip(&w[j * k..(j + 1) * k]) {
                    *dv += gv * wv;
                }
            }
        }
    }
    d
}

/// A pool of `threads` workers (0 = one per core) for one solver run.
pub fn pool(threads: usize) -> anyhow::Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start {threads} threads: {e}"))
}
