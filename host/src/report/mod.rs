//! Everything a decomposition writes: arrays, tables, JSON and figures.

pub mod plots;
pub mod rank_plot;
