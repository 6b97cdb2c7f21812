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

pub mod coupled;
pub mod held;
pub mod joint;
pub mod kkt;
pub mod maps;
pub mod newton;
pub mod objective;
pub mod spectra;

pub use kkt::kkt_residual;
pub use maps::{solve_maps, MapsOptions, MapsReport};
pub use objective::{objective, MapsProblem};
