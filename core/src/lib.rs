//! edxs-core: the EDXS physics model and physics-guided NMF, `no_std` and allocation-free.
//!
//! Every routine works on caller-provided slices and reports how much buffer and scratch it
//! needs first, so the same code runs on a workstation and inside detector firmware.
//!
//! # A tour
//!
//! A spectrum image is a count matrix Y (L channels × P pixels). edxs factors it as
//! Y ≈ G·W·H: G (L × M) is the physics model built from tables ([`model`]), W (M × K) holds
//! each phase's elemental fractions (the quantification), H (K × P) the abundance maps. The
//! steps, each over buffers the caller owns:
//!
//! 1. **Model** — [`EdxsModel::new`] checks the parameters ([`ModelParams`]: elements, axis,
//!    beam energy, detector, absorption); [`EdxsModel::g_len`] and
//!    [`EdxsModel::scratch_len`] size the buffers; [`EdxsModel::build_g`] fills G (row-major
//!    L × M) and returns espm's column normalisation.
//! 2. **Counts** — [`Counts`] views the data without copying: dense L × P, or sparse per
//!    pixel (CSR: `indptr`, channel `indices`, `values`), which is what detectors produce.
//! 3. **Solver** — [`SolverParams`] (espm's names: `mu`, `lambda_l`, `epsilon_reg`,
//!    `fixed_w`, …; the sum constraint is one [`solver::Simplex`], G one
//!    [`solver::GModel`], so no two settings contradict) and the dimensions plan a
//!    [`Solver`]; [`Solver::workspace_len`] sizes its workspace; [`Solver::iterate`] runs one
//!    multiplicative iteration (H, then W) and [`Solver::run`] iterates to its stopping rule
//!    with G as given. [`Solver::run_with`] takes G, W and H as [`solver::Factors`] (their
//!    lengths checked once by [`Solver::factors`]), also updates G through a
//!    [`solver::GUpdate`] ([`physics::BremsstrahlungUpdate`] is espm's) and reports every
//!    iteration.
//! 4. **Threads** — a host spreads the pixel passes over threads: [`Solver::prepare`] fills a
//!    shared buffer ([`Solver::shared_len`]) and [`Solver::pass`] checks it once as a
//!    [`solver::Pass`], whose block functions ([`solver::Pass::h_r_block`],
//!    [`solver::Pass::loss_data_block`]) each thread calls on its own pixels; the host
//!    implements [`solver::Exec`] with them and [`Solver::drive`] runs the same loop over it.
//!    Every buffer is sized and carved by one [`solver::Layout`].
//! 5. **Streaming** — [`stream::Stream`] updates H for the pixels of each arriving frame and
//!    W from running statistics, for firmware next to the detector.
//!
//! Every error is a [`ModelError`] or [`SolverError`] naming the value; nothing panics on
//! caller input.
//!
//! ```
//! use edxs_core::physics::BremsstrahlungUpdate;
//! use edxs_core::solver::Simplex;
//! use edxs_core::{Counts, EdxsModel, Element, ModelParams, Solver, SolverParams};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // G for iron and oxygen on espm's default axis (1980 channels from 0.2 keV).
//! let elements = [Element::parse("Fe")?, Element::parse("O")?];
//! let model = EdxsModel::new(ModelParams::new(&elements))?;
//! let (l, m) = (model.n_channels(), model.n_columns());
//! let mut g = vec![0.0f64; model.g_len()]; // or a static buffer in firmware
//! let mut scratch = vec![0.0f64; model.scratch_len()];
//! let norm = model.build_g(&mut g, &mut scratch)?;
//!
//! // Four pixels of two phases, counts stored sparse per pixel (CSR).
//! let (k, p) = (2, 4);
//! let rows: Vec<usize> = model.simplex_rows().collect();
//! let (mut indptr, mut indices, mut values) = (vec![0usize], Vec::new(), Vec::new());
//! for px in 0..p {
//!     for c in (0..l).step_by(7) {
//!         let v = ((c * 31 + px * 17) % 5) as f64;
//!         if v > 0.0 {
//!             indices.push(c as u32);
//!             values.push(v);
//!         }
//!     }
//!     indptr.push(indices.len());
//! }
//! let y = Counts::Sparse { channels: l, pixels: p, indptr: &indptr, indices: &indices, values: &values };
//!
//! // Plan once, size the workspace, then iterate over the caller's buffers.
//! let mut params = SolverParams::new(k, &rows); // espm's defaults, W's element rows on the simplex
//! params.max_iter = 50;
//! let solver = Solver::new(params, l, m, p)?;
//! let mut ws = vec![0.0f64; solver.workspace_len()];
//! let mut w = vec![1.0 / m as f64; m * k];
//! let mut h = vec![1.0f64; k * p];
//! solver.iterate(&y, &g, &mut w, &mut h, &mut ws)?; // one iteration
//! let summary = solver.run(&y, &g, &mut w, &mut h, &mut ws)?; // to the stopping rule
//! assert!(summary.final_loss <= summary.initial_loss);
//! // W's element rows of each phase sum to one: the quantification.
//! for c in 0..k {
//!     let s: f64 = rows.iter().map(|&r| w[r * k + c]).sum();
//!     assert!((s - 1.0).abs() < 1e-9);
//! }
//!
//! // espm's full loop: the bremsstrahlung columns of G follow W every 3 iterations, and
//! // every iteration is reported.
//! let mut update = BremsstrahlungUpdate { model: &model, norm, scratch: &mut scratch };
//! let mut losses = Vec::new();
//! let factors = solver.factors(&mut g, &mut w, &mut h)?;
//! solver.run_with(&y, factors, &mut ws, &mut update, &mut |r| {
//!     losses.push(r.loss.total())
//! })?;
//! assert!(!losses.is_empty());
//!
//! // Each pixel's abundances summing to one instead (espm's simplex_H):
//! params.simplex = Simplex::H;
//! let solver = Solver::new(params, l, m, p)?;
//! solver.run(&y, &g, &mut w, &mut h, &mut ws)?;
//! for px in 0..p {
//!     let s: f64 = (0..k).map(|c| h[c * p + px]).sum();
//!     assert!((s - 1.0).abs() < 1e-9);
//! }
//! # Ok(())
//! # }
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// `!(x > 0.0)` is deliberate throughout: unlike `x <= 0.0` it also rejects NaN.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod element;
pub mod error;
pub mod float;
pub mod init;
pub mod model;
pub mod physics;
pub mod rng;
pub mod solver;
pub mod stream;
pub mod view;

pub use element::Element;
pub use error::{ModelError, SolverError};
pub use float::Float;
pub use model::{
    Absorption, Column, ColumnKind, Compat, EdxsModel, EnergyAxis, ModelParams, Normalisation,
};
pub use solver::{Counts, Solver, SolverParams};

/// The README's core example, compiled and run as a doctest so that it cannot go stale.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
