//! What edxs writes for people to read: a decomposition's output folder (arrays, CSV tables,
//! results.json, figures; [`decomposition`]), the figure primitives ([`plots`]), the rank
//! curve of `rank` and `-k auto` ([`rank_plot`]) and the fast-solver benchmark's convergence
//! figure ([`kkt_plot`]).

pub mod decomposition;
pub mod kkt_plot;
pub mod plots;
pub mod rank_plot;
