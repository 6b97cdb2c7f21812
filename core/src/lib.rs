//! edxs-core: the EDXS physics model and physics-guided NMF, `no_std` and allocation-free.
//!
//! Every routine works on caller-provided slices and reports how much buffer and scratch it
//! needs first, so the same code runs on a workstation and inside detector firmware.
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

pub use element::Element;
pub use error::{ModelError, SolverError};
pub use float::Float;
pub use model::{
    Absorption, Column, ColumnKind, Compat, EdxsModel, EnergyAxis, ModelParams, Normalisation,
};
pub use solver::{Counts, Solver, SolverParams};
