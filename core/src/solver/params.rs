//! Solver parameters, named as in espm's `SmoothNMF`.

/// How the simplex multiplier is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SimplexSolver {
    /// Safeguarded Newton per column, to machine precision (columns sum to 1 within 1e-12).
    #[default]
    Newton,
    /// espm's joint bisection (tolerance 1e-5, 100 steps): columns sum to 1 only within 1e-5.
    EspmBisection,
}

/// When the iterations stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stopping {
    /// Stop when |Δloss| ≤ tol·|loss| between iterations or at `max_iter`; the best iterate
    /// (lowest loss) is what the caller gets back.
    #[default]
    Relative,
    /// espm's rules: max relative change of W and H below tol, |Δloss/initial loss| below tol,
    /// NaN, or a loss increase (keeping the worse iterate), or `max_iter`.
    Espm,
}

/// The neighbourhood used by the smoothness term.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Laplacian {
    /// The 4-neighbour graph Laplacian of a `rows × cols` scan (row-major pixels, free boundary).
    Grid {
        /// Scan rows.
        rows: usize,
        /// Scan columns.
        cols: usize,
    },
    /// The identity (espm without `shape_2d`: λ then acts as a ridge on H).
    Identity,
}

/// Which sums the multiplicative updates hold at one (espm's `simplex_W` / `simplex_H`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Simplex<'a> {
    /// No sum constraint (the plain KL-NMF updates).
    None,
    /// The listed rows of W (the element fractions) sum to 1 in every component (espm's
    /// `simplex_W`: the model's element rows, all rows for a plain G).
    W {
        /// The rows of W on the simplex, distinct and below M.
        rows: &'a [usize],
    },
    /// Every pixel's abundances sum to 1 (espm's `simplex_H`).
    H,
}

/// What G is, and how often the loop refreshes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GModel {
    /// G is an L×M matrix given by the caller, refreshed from W through the run's
    /// [`GUpdate`](super::GUpdate) every `update_every` iterations (espm: 3 with a physics
    /// model; 0 = never).
    Matrix {
        /// Iterations between G updates (0 = never).
        update_every: usize,
    },
    /// G is the identity (espm's `G=None`, plain KL-NMF; needs M = L): the `g` buffer is then
    /// never read and may be empty, so no L×L matrix is stored or multiplied, and G is never
    /// updated.
    Identity,
}

/// Everything that defines the ESpM-NMF problem and its iterations.
///
/// Start from [`SolverParams::new`] (espm's defaults) and set the fields to change; the enums
/// make contradictory settings (simplex on W and on H, an identity G with G updates)
/// unrepresentable, and [`Solver::new`](super::Solver::new) checks the values.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct SolverParams<'a, T> {
    /// Number of phases K.
    pub n_components: usize,
    /// Weight μ of the log sparsity term: one value, or one per component.
    pub mu: &'a [T],
    /// ε_reg inside the log term, > 0.
    pub epsilon_reg: T,
    /// Weight λ of the Laplacian smoothness term.
    pub lambda_l: T,
    /// The neighbourhood of the smoothness term.
    pub laplacian: Laplacian,
    /// Bound σ_L on the Laplacian's largest eigenvalue (8 for the 4-neighbour grid).
    pub sigma_l: T,
    /// The sum constraint: on W's simplex rows (espm's default), on H, or none.
    pub simplex: Simplex<'a>,
    /// W entries to impose (M×K, row-major); negative entries are free.
    pub fixed_w: Option<&'a [T]>,
    /// H entries to impose (K×P, row-major); negative entries are free.
    pub fixed_h: Option<&'a [T]>,
    /// Lower bound ε of W and H (espm's `log_shift`, 1e-14).
    pub log_shift: T,
    /// How the simplex multiplier is solved.
    pub simplex_solver: SimplexSolver,
    /// Stopping rule.
    pub stopping: Stopping,
    /// Stopping tolerance.
    pub tol: T,
    /// Iteration cap.
    pub max_iter: usize,
    /// G: a matrix (and how often it is updated) or the identity.
    pub g: GModel,
}

impl<'a, T: crate::Float> SolverParams<'a, T> {
    /// espm's defaults for K components with `simplex_rows` of W on the simplex (μ = λ = 0,
    /// ε_reg = 1, tol 1e-4, 200 iterations, G updated every 3 iterations) with our default
    /// simplex solve and stopping rule.
    pub fn new(n_components: usize, simplex_rows: &'a [usize]) -> Self {
        SolverParams {
            n_components,
            mu: &[],
            epsilon_reg: T::ONE,
            lambda_l: T::ZERO,
            laplacian: Laplacian::Identity,
            sigma_l: T::from_f64(8.0),
            simplex: Simplex::W { rows: simplex_rows },
            fixed_w: None,
            fixed_h: None,
            log_shift: T::from_f64(1e-14),
            simplex_solver: SimplexSolver::Newton,
            stopping: Stopping::Relative,
            tol: T::from_f64(1e-4),
            max_iter: 200,
            g: GModel::Matrix { update_every: 3 },
        }
    }

    /// μ for component `k` (0 when `mu` is empty).
    ///
    /// # Panics
    /// When `mu` holds K values and `k` ≥ K ([`Solver::new`](super::Solver::new) checks that
    /// `mu` holds 1 or K values).
    pub fn mu_of(&self, k: usize) -> T {
        match self.mu.len() {
            0 => T::ZERO,
            1 => self.mu[0],
            _ => self.mu[k],
        }
    }

    /// The rows of W on the simplex (empty unless [`Simplex::W`]).
    pub(crate) fn simplex_w_rows(&self) -> &'a [usize] {
        match self.simplex {
            Simplex::W { rows } => rows,
            _ => &[],
        }
    }

    /// True with [`Simplex::W`].
    pub(crate) fn simplex_w(&self) -> bool {
        matches!(self.simplex, Simplex::W { .. })
    }

    /// True with [`Simplex::H`].
    pub(crate) fn simplex_h(&self) -> bool {
        matches!(self.simplex, Simplex::H)
    }

    /// True with [`GModel::Identity`].
    pub(crate) fn g_identity(&self) -> bool {
        matches!(self.g, GModel::Identity)
    }
}
