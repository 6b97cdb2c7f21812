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

/// Everything that defines the ESpM-NMF problem and its iterations.
#[derive(Debug, Clone, Copy)]
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
    /// Constrain the simplex rows of W (element fractions) to sum to 1.
    pub simplex_w: bool,
    /// W rows on the simplex (espm: the model's element rows; all rows for a plain G).
    pub simplex_rows: &'a [usize],
    /// Constrain every pixel's abundances to sum to 1 instead (ignored if `simplex_w`).
    pub simplex_h: bool,
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
    /// Update G from W every this many iterations (espm: 3 with a physics model; 0 = never).
    pub g_update_every: usize,
    /// G is the identity (espm's `G=None`, plain KL-NMF; needs M = L): `g` is then never read
    /// and may be empty, so no L×L matrix is stored or multiplied, and G is never updated.
    pub g_identity: bool,
}

impl<'a, T: crate::Float> SolverParams<'a, T> {
    /// espm's defaults for K components (μ = λ = 0, ε_reg = 1, simplex on W, tol 1e-4,
    /// 200 iterations) with our default simplex solve and stopping rule.
    pub fn new(n_components: usize, simplex_rows: &'a [usize]) -> Self {
        SolverParams {
            n_components,
            mu: &[],
            epsilon_reg: T::ONE,
            lambda_l: T::ZERO,
            laplacian: Laplacian::Identity,
            sigma_l: T::from_f64(8.0),
            simplex_w: true,
            simplex_rows,
            simplex_h: false,
            fixed_w: None,
            fixed_h: None,
            log_shift: T::from_f64(1e-14),
            simplex_solver: SimplexSolver::Newton,
            stopping: Stopping::Relative,
            tol: T::from_f64(1e-4),
            max_iter: 200,
            g_update_every: 3,
            g_identity: false,
        }
    }

    /// μ for component `k` (0 when `mu` is empty).
    pub fn mu_of(&self, k: usize) -> T {
        match self.mu.len() {
            0 => T::ZERO,
            1 => self.mu[0],
            _ => self.mu[k],
        }
    }
}
