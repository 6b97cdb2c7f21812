//! What a fit does ([`Recipe`]: the method, its start, regularisation and imposed W entries)
//! and how long it runs ([`RunSettings`]), with the defaults `edxs decompose` picks.

use super::bin::{auto_bin_for, cannot_bin};
use crate::io::counts::SpectrumImage;

/// Binnings tried by the spectra stage (block sides `bin`, `bin + 1`, …).
pub const CANDIDATES: usize = 4;

/// Iterations of the spectra stage with the bremsstrahlung held (longer than for a joint fit:
/// the binned fits are cheap, and releasing early let a phase drift at some noise draws).
pub const STAGE_ANCHOR_ITER: usize = 1000;

/// Iteration cap of each pipeline fit by default: every Figure 1 run settled before it.
pub const TWO_STAGE_MAX_ITER: usize = 10000;

/// Relative loss change at which a pipeline fit stops by default (Figure 1's tolerance: at
/// 1e-6 the maps stop before the log and Laplacian terms have acted).
pub const TWO_STAGE_TOL: f64 = 1e-8;

/// Iterations between the loss evaluations of the spectra stage's binned fits (the loss cost
/// more than the update; `drive` in this module's parent).
pub const LOSS_EVERY: usize = 10;

/// KKT residual (of W and of H, [`crate::fast::kkt_w`], [`crate::fast::kkt`]) at which the
/// spectra stage's binned fits also stop: the relative-change rule at 1e-8 ends them at
/// 1e-6–1e-4 (measured on espm-simulated 128² maps), so this rarely ends a fit first.
pub const STAGE_KKT_TOL: f64 = 1e-6;

/// Loss checks between two Newton steps on W in the spectra stage's binned fits
/// (`drive` in this module's parent): at every third check (every 30 iterations) the spectra
/// reached a W residual of 1e-7–1e-6 where the updates alone stopped at 1e-4.
pub const STAGE_W_NEWTON_EVERY: usize = 3;

/// Fewest pixels (blocks) of a binned image on which its fit is accelerated (extrapolation
/// and Newton steps on W); smaller ones run the plain updates, which cost milliseconds there.
/// On 16×16 maps (binned images of 9–64 blocks) the Newton steps took the paper's phases
/// from a mean 3.0° to 6.6° and 5.1° at two of eight samplings (the held-out choice then
/// preferred a candidate with worse spectra); on 48×48 maps (81–576 blocks) the angles were
/// the same on average over six samplings.
pub const STAGE_ACCEL_MIN_PIXELS: usize = 100;

/// Mean relative loss change per iteration from which `decompose --solver newton-tail` ends
/// the binned fits by coupled Newton steps (the extrapolation's start; not the default:
/// `docs/speed/joint_newton.md`).
pub const NEWTON_TAIL_FROM: f64 = 1e-5;

/// The fit `edxs decompose` performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// One joint fit of W and H (espm's way).
    Joint,
    /// The two-stage pipeline: spectra from binned blocks, then the maps with them held.
    TwoStage,
}

impl Method {
    /// The name written to results.json and printed.
    pub fn name(self) -> &'static str {
        match self {
            Method::Joint => "joint",
            Method::TwoStage => "two-stage",
        }
    }

    /// Default (μ, λ, ε_reg) in normalised units: on the pipeline's maps (the spectra are
    /// held there, so the penalties shape only the maps) the paper's μ and ε_reg with a
    /// lighter λ; espm's defaults for a joint fit, where the paper's values bend the spectra
    /// (README "Figure 1").
    pub fn regularisation(self) -> (f64, f64, f64) {
        match self {
            // λ = 0.1 rather than the paper's 1: in normalised units λ does not fall with the
            // dose, and on espm-simulated 64² maps λ = 1 blurred the particles' edges (map MSE
            // 0.0077 at 293 counts/pixel, 0.0011 with 0.1; 0.0061 with 0.1 at 18 counts).
            Method::TwoStage => (0.004, 0.1, 0.01),
            Method::Joint => (0.0, 0.0, 1.0),
        }
    }

    /// Default iteration cap (per fit) and relative tolerance.
    pub fn limits(self) -> (usize, f64) {
        match self {
            Method::Joint => (1000, 1e-6),
            Method::TwoStage => (TWO_STAGE_MAX_ITER, TWO_STAGE_TOL),
        }
    }

    /// Default start.
    pub fn start(self) -> Start {
        match self {
            Method::Joint => Start::Nndsvda,
            Method::TwoStage => Start::Nndsvdar,
        }
    }
}

/// What `edxs decompose` runs on `img` with only K given (and the seed and threads): the
/// two-stage pipeline where the scan can be binned, else the joint fit (with the reason), each
/// with its default regularisation (normalised units), start and limits. The library's
/// entry point for "the best method we have" (the Python binding and `rank` use it).
pub fn default_recipe(
    img: &SpectrumImage,
    seed: u64,
    threads: usize,
) -> (Method, Recipe, RunSettings, Option<&'static str>) {
    let b = auto_bin_for(img.mean() * img.channels as f64, img.shape);
    let why = cannot_bin(img, b);
    let method = if why.is_none() {
        Method::TwoStage
    } else {
        Method::Joint
    };
    let (mu, lambda, eps) = method.regularisation();
    let recipe = match method {
        Method::TwoStage => Recipe::two_stage(mu, lambda, eps, b),
        Method::Joint => Recipe::espm(mu, lambda, eps, method.start(), 0),
    };
    let (max_iter, tol) = method.limits();
    let set = RunSettings {
        max_iter,
        tol,
        threads,
        seed,
        observe: None,
    };
    (method, recipe, set, why)
}

/// How a run starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// sklearn's NNDSVD (zeros kept).
    Nndsvd,
    /// NNDSVD with zeros filled by the mean count (deterministic: no seed used).
    Nndsvda,
    /// sklearn's NNDSVDar (zeros filled by small random values).
    Nndsvdar,
    /// sklearn's random start.
    Random,
    /// Given W0 (M×K, or L×K for plain KL-NMF) and H0 (K×P), floored at 1e-14.
    Custom {
        /// W0, row-major.
        w: Vec<f64>,
        /// H0, row-major.
        h: Vec<f64>,
    },
}

/// W entries imposed during a fit.
#[derive(Debug, Clone, PartialEq)]
pub enum FixW {
    /// Nothing imposed.
    None,
    /// The entries ≥ 0 of this M×K matrix are imposed, the others free (espm's `fixed_W`).
    Given(Vec<f64>),
    /// W(`row`, c) = 0 in the component whose start has the least of it for its sum over
    /// `against` (Si in the ferropericlase-like phase needs no knowledge of the truth).
    ZeroWhereLeast {
        /// The row set to zero.
        row: usize,
        /// The rows it is compared with.
        against: Vec<usize>,
    },
}

/// What a fit does.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// Plain KL-NMF (G = identity, no simplex, no G update) instead of ESpM-NMF.
    pub plain: bool,
    /// μ: one value or one per component.
    pub mu: Vec<f64>,
    /// λ of the Laplacian smoothness term.
    pub lambda: f64,
    /// ε_reg of the log term.
    pub epsilon_reg: f64,
    /// μ, λ and ε_reg are in espm's normalised units (data scaled so that the mean pixel total
    /// is K); otherwise they apply to the raw counts.
    pub normalized: bool,
    /// W entries imposed.
    pub fix: FixW,
    /// Starting point.
    pub start: Start,
    /// Iterations with every component's bremsstrahlung held at the mean spectrum's (0 = none).
    pub anchor_iter: usize,
    /// Two stages when > 0: the spectra from lightly regularised ESpM on the image summed over
    /// blocks of `two_stage_bin` to `two_stage_bin + CANDIDATES − 1` pixels a side (the one
    /// whose spectra best predict held-out counts kept), then the full-resolution maps
    /// with W held and this recipe's regularisation.
    pub two_stage_bin: usize,
    /// Update the bremsstrahlung columns of G from W every 3 iterations (espm's NMF_update).
    pub g_update: bool,
    /// Each pixel's abundances on the simplex instead of the phases' compositions (espm's
    /// `simplex_H`); joint fits only.
    pub simplex_h: bool,
    /// espm 1.1.3's solver exactly: its bisection for the simplex, its stopping rule and its
    /// start (element rows of W normalised, the bremsstrahlung rows left as they come).
    pub compat_espm: bool,
    /// How runs with the whole W held (the maps and the candidate choice) are solved.
    pub held_solver: HeldSolver,
    /// Multiplicative-update runs evaluate the loss (for the stopping test) every this many
    /// iterations (1: after each, by the core's driver).
    pub loss_every: usize,
    /// Multiplicative-update runs with `loss_every` > 1 also stop when the KKT residuals of W
    /// and H are both at most this (0: never).
    pub kkt_tol: f64,
    /// Multiplicative-update runs with `loss_every` > 1 extrapolate their iterates (momentum,
    /// guarded at each loss check).
    pub extrapolate: bool,
    /// Multiplicative-update runs with `loss_every` > 1 take a Newton step on W with H held
    /// every this many loss checks (0: never).
    pub w_newton_every: usize,
    /// Mean relative loss change per iteration below which those runs go on by coupled Newton
    /// steps on W and H (`fast::schur`; None: the updates to the end).
    pub newton_tail: Option<f64>,
    /// The spectra stage's binned fits run side by side, one thread each, instead of one
    /// after the other on every thread.
    pub candidates_side_by_side: bool,
    /// The spectra stage's binned fits run on channels summed in groups of these widths
    /// ([`super::GroupWidths`]) instead of every channel, on data of at least
    /// [`super::chan_groups::GROUPS_MIN_COUNTS`] counts.
    pub channel_groups: Option<super::chan_groups::GroupWidths>,
}

/// The solver of the runs with the whole W held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeldSolver {
    /// Per-pixel projected Newton sweeps ([`crate::fast`]): converged in tens of passes.
    Newton,
    /// As `Newton`, and the joint fits too (the spectra stage's binned fits) by alternating
    /// Newton solves of the maps and of the spectra ([`crate::fast::joint`]).
    NewtonJoint,
    /// The core's multiplicative updates (thousands of iterations; for comparisons).
    Multiplicative,
}

impl Recipe {
    /// A joint ESpM fit with `mu`, `lambda`, `epsilon_reg` in normalised units from `start`.
    pub fn espm(mu: f64, lambda: f64, epsilon_reg: f64, start: Start, anchor_iter: usize) -> Self {
        Recipe {
            plain: false,
            mu: vec![mu],
            lambda,
            epsilon_reg,
            normalized: true,
            fix: FixW::None,
            start,
            anchor_iter,
            two_stage_bin: 0,
            g_update: true,
            simplex_h: false,
            compat_espm: false,
            held_solver: HeldSolver::Newton,
            loss_every: 1,
            kkt_tol: 0.0,
            extrapolate: false,
            w_newton_every: 0,
            newton_tail: None,
            candidates_side_by_side: false,
            channel_groups: None,
        }
    }

    /// The two-stage pipeline with blocks of `bin` pixels a side first and this regularisation
    /// (normalised units) on the maps.
    pub fn two_stage(mu: f64, lambda: f64, epsilon_reg: f64, bin: usize) -> Self {
        let mut r = Recipe::espm(mu, lambda, epsilon_reg, Start::Nndsvdar, STAGE_ANCHOR_ITER);
        r.two_stage_bin = bin.max(1);
        r.loss_every = LOSS_EVERY;
        r.kkt_tol = STAGE_KKT_TOL;
        r.extrapolate = true;
        r.w_newton_every = STAGE_W_NEWTON_EVERY;
        r.candidates_side_by_side = true;
        r.channel_groups = Some(super::chan_groups::GroupWidths::DEFAULT);
        r
    }
}

/// Iteration settings shared by every run.
#[derive(Debug, Clone, Copy)]
pub struct RunSettings {
    /// Iteration cap of a run (of each stage for two-stage recipes).
    pub max_iter: usize,
    /// Relative loss change at which a run stops.
    pub tol: f64,
    /// Worker threads (0 = one per core).
    pub threads: usize,
    /// Seed of every initialisation.
    pub seed: u64,
    /// Sees every loss check of the binned fits (benchmarks; None in every program run).
    pub observe: Option<Observer>,
}

/// One loss check of a binned fit, as an [`Observer`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct CheckPoint {
    /// Pixels (blocks) of the fitted image: tells the candidates' binnings apart.
    pub pixels: usize,
    /// Iterations of this run so far.
    pub iteration: usize,
    /// The run's seconds so far, without the observer's own time (the residuals below).
    pub seconds: f64,
    /// The objective.
    pub loss: f64,
    /// KKT residual of W with H held.
    pub kkt_w: f64,
    /// KKT residual of H with W held.
    pub kkt_h: f64,
    /// Entries of W are held in this run (the continuum anchor before the free run, or
    /// `--fix`).
    pub held: bool,
}

/// A benchmark's view of the binned fits' loss checks, called from the fits' threads; it
/// returns true to end the run at that check. Its KKT residuals cost two passes over the
/// non-zeros per check, so only benchmarks set one (`examples/binned_kkt.rs`).
#[derive(Clone, Copy)]
pub struct Observer(pub &'static (dyn Fn(&CheckPoint) -> bool + Sync));

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}
