//! The one driver of every decomposition: `decompose`, `demo`, `repro-fig1`, `rank`, the
//! benches and the Python binding map their options to a [`Recipe`] and call [`fit()`], which
//! returns one [`Fit`].
//!
//! Two methods: one joint fit of W and H from a start (espm's way), or two stages: the phase
//! spectra from the image binned to enough counts per pixel (several binnings, the one whose
//! spectra give held-out counts the highest likelihood kept: `score`), then the
//! full-resolution maps with the spectra held.
//!
//! One file per idea: [`request`] (what a user asks, resolved into a recipe), [`recipe`] (what a
//! fit does and its defaults), [`prepared`] (G built
//! once), [`fit`](mod@fit) (the entry point and its result), `stages` (the order of the
//! solver runs), [`bin`](mod@bin) (blocks of pixels), `start` and `maps_start` (where runs
//! start), `fixed` (imposed W entries), `solve` (one solver run), [`spec`] (the core solver's parameters and espm's `normalize`,
//! shared with the Python binding's direct fit), `drive` (the binned fits'
//! multiplicative updates with a sparse stopping test), [`chan_groups`] (the binned fits on
//! energy channels summed in groups), `score` (how the spectra candidates
//! are told apart) and [`held_out`] (binomial thinning and held-out likelihood, shared with
//! `rank`).

pub mod bin;
pub mod chan_groups;
mod drive;
pub mod fit;
mod fixed;
pub mod held_out;
mod maps_start;
pub mod prepared;
pub mod recipe;
pub mod request;
mod score;
pub mod solve;
pub mod spec;
mod stages;
mod start;

pub use bin::{auto_bin, auto_bin_for, bin, cannot_bin, MAX_BINNED_SIDE};
pub use chan_groups::{ChannelGroups, GroupWidths};
pub use fit::{d_of, fit, history_row, Fit, StageSeconds};
pub use prepared::Prepared;
pub use recipe::{
    default_recipe, CheckPoint, FixW, HeldSolver, Method, Observer, Recipe, RunSettings, Start,
    CANDIDATES, LOSS_EVERY, NEWTON_TAIL_FROM, STAGE_ANCHOR_ITER, STAGE_KKT_TOL,
    STAGE_W_NEWTON_EVERY, TWO_STAGE_MAX_ITER, TWO_STAGE_TOL,
};
pub use request::{CustomStart, DecomposeRequest, InitChoice, MethodChoice, SolverChoice, Units};
pub use score::SpectraChoice;
pub use solve::run_solver;
pub use spec::{Normalize, SolverSpec, G_UPDATE_EVERY};
pub use stages::SpectraCache;
