//! Every file edxs writes for people to read, one file per output: a decomposition's folder
//! (arrays, CSV tables, results.json, figures; [`decomposition`]), the rank curve of `rank`
//! ([`rank`], figure in [`rank_plot`]), a simulation's counts and truth ([`simulation`]), an
//! evaluation against the truth ([`evaluation`]), the demo's folder ([`demo`]), G of `model`
//! ([`model`]), the Figure 1 reproduction ([`fig1`], figure in [`fig1_plot`]), the figure
//! primitives ([`plots`]) and the fast-solver benchmark's convergence figure ([`kkt_plot`]).
//! Folders are written through [`crate::io::output`] (a new folder swapped in whole), single
//! files through [`crate::io::atomic`] (written beside, then renamed), so an interrupted run
//! leaves the previous output intact.

pub mod decomposition;
pub mod demo;
pub mod evaluation;
pub mod fig1;
pub mod fig1_plot;
pub mod kkt_plot;
pub mod model;
pub mod plots;
pub mod rank;
pub mod rank_plot;
pub mod simulation;
