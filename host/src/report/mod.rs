//! What edxs writes for people to read: a decomposition's output folder (arrays, CSV tables,
//! results.json, figures) and the figures of `rank`.

pub mod decomposition;
pub mod plots;
pub mod rank_plot;
