//! The computation the firmware checks, written once for both sides: the model, the fixed
//! start and the solver configuration.
//!
//! `host/examples/firmware_data.rs` compiles this very file (`#[path]` module) to make the
//! reference W and H, so the host reference and the firmware cannot drift apart. It therefore
//! uses only `core` and `edxs_core`, and allocates nothing.

use edxs_core::init::{physics_w, physics_w_scratch_len, random_start};
use edxs_core::physics::BremsstrahlungUpdate;
use edxs_core::rng::Rng;
use edxs_core::solver::{IterReport, Laplacian, RunSummary, Stopping};
use edxs_core::view::{MatMut, MatRef};
use edxs_core::{
    Compat, Counts, EdxsModel, Element, EnergyAxis, ModelError, ModelParams, Solver, SolverError,
    SolverParams,
};

/// Atomic numbers of the modelled elements: O, Mg, Si, Ca, Fe.
pub const ELEMENTS: [u32; 5] = [8, 12, 14, 20, 26];
/// Energy channels L.
pub const CHANNELS: usize = 256;
/// Energy of the first channel (keV).
pub const OFFSET: f64 = 0.2;
/// Channel width (keV): 256 channels reach 10.4 keV, past Fe Kβ.
pub const SCALE: f64 = 0.04;
/// Scan rows.
pub const ROWS: usize = 32;
/// Scan columns.
pub const COLS: usize = 32;
/// Pixels P.
pub const PIXELS: usize = ROWS * COLS;
/// Phases K.
pub const K: usize = 3;
/// Columns M of G: one per element and the two bremsstrahlung columns.
pub const M: usize = ELEMENTS.len() + 2;
/// Iterations run; the tolerance is 0, so the loop never stops early on a real change.
pub const ITERATIONS: usize = 40;
/// Seed of the random start (H and the spectra W is fitted to).
pub const SEED: u64 = 7;
/// The paper's regularisation: μ of the log term.
pub const MU: f32 = 0.004;
/// ε_reg inside the log term.
pub const EPSILON_REG: f32 = 0.01;
/// λ of the Laplacian term on the 32×32 grid.
pub const LAMBDA_L: f32 = 1.0;
/// Scratch of `EdxsModel::scratch_len()` for this model without absorption (the host example
/// asserts it; the firmware gets a `BufferTooSmall` error if it is ever short).
pub const G_SCRATCH_LEN: usize = 2 * 160 + CHANNELS;
/// `Solver::workspace_len()` for this problem.
pub const WORKSPACE_LEN: usize = workspace_len(CHANNELS, M, K, PIXELS);

/// `Solver::workspace_len()` restated as a `const fn` so that static buffers can be sized at
/// compile time; `budget` checks it against the core for many sizes.
pub const fn workspace_len(l: usize, m: usize, k: usize, p: usize) -> usize {
    let max_pk = if p > k { p } else { k };
    let exec = 2 * l * k + m + 4 * k + 2 * k * p + 3 * m * k + 4 * max_pk;
    let driver = 2 * (m * k + k * p);
    exec + driver
}

/// The caller's buffers (f32), sized by the constants above.
pub struct Buffers<'b> {
    /// G, L×M row-major.
    pub g: &'b mut [f32],
    /// Scratch of the model ([`G_SCRATCH_LEN`]).
    pub g_scratch: &'b mut [f32],
    /// W, M×K row-major.
    pub w: &'b mut [f32],
    /// H, K×P row-major.
    pub h: &'b mut [f32],
    /// Solver workspace ([`WORKSPACE_LEN`]); also holds the start's temporaries.
    pub workspace: &'b mut [f32],
}

/// The modelled elements.
pub fn elements() -> Result<[Element; ELEMENTS.len()], ModelError> {
    let mut out = [Element::from_z(ELEMENTS[0])?; ELEMENTS.len()];
    for (e, &z) in out.iter_mut().zip(&ELEMENTS) {
        *e = Element::from_z(z)?;
    }
    Ok(out)
}

/// espm's defaults on a 256-channel axis, without absorption.
pub fn model_params(elements: &[Element]) -> ModelParams<'_> {
    ModelParams {
        axis: EnergyAxis {
            offset: OFFSET,
            scale: SCALE,
            channels: CHANNELS,
            compat: Compat::Espm,
        },
        absorption: None,
        ..ModelParams::new(elements)
    }
}

/// The solver configuration: the paper's regularisation, a fixed iteration count.
pub fn solver_params(simplex_rows: &[usize]) -> SolverParams<'_, f32> {
    let mut p = SolverParams::new(K, simplex_rows);
    p.mu = &[MU];
    p.epsilon_reg = EPSILON_REG;
    p.lambda_l = LAMBDA_L;
    p.laplacian = Laplacian::Grid {
        rows: ROWS,
        cols: COLS,
    };
    p.stopping = Stopping::Relative;
    p.tol = 0.0;
    p.max_iter = ITERATIONS;
    p
}

/// Builds G, makes the fixed start (random H and spectra, W fitted to them as espm's
/// `NMF_initialize_W`) and runs the solver with G updates; `on_iter` sees every iteration.
pub fn solve(
    counts: &Counts<'_, f32>,
    b: Buffers<'_>,
    on_iter: &mut dyn FnMut(&IterReport),
) -> Result<RunSummary, SolverError> {
    let elements = elements()?;
    let model = EdxsModel::new(model_params(&elements))?;
    if model.n_columns() != M {
        return Err(SolverError::DimensionMismatch {
            buffer: "columns of G",
            expected: M,
            got: model.n_columns(),
        });
    }
    let norm = model.build_g(b.g, b.g_scratch)?;
    let mut rows = [0usize; ELEMENTS.len()];
    let mut n_rows = 0;
    for (slot, row) in rows.iter_mut().zip(model.simplex_rows()) {
        *slot = row;
        n_rows += 1;
    }
    let params = solver_params(&rows[..n_rows]);
    let solver = Solver::new(params, CHANNELS, M, PIXELS)?;

    // The start's temporaries live in the workspace, which `run` overwrites anyway.
    let need = CHANNELS * K + physics_w_scratch_len(CHANNELS, M, K);
    if b.workspace.len() < need.max(solver.workspace_len()) {
        return Err(SolverError::DimensionMismatch {
            buffer: "workspace",
            expected: need.max(solver.workspace_len()),
            got: b.workspace.len(),
        });
    }
    let (d, scratch) = b.workspace.split_at_mut(CHANNELS * K);
    let mean = total_counts(counts) / (CHANNELS * PIXELS) as f64;
    random_start(mean, &mut Rng::new(SEED), d, b.h, K);
    physics_w(
        MatRef::new("g", b.g, CHANNELS, M)?,
        MatRef::new("d", d, CHANNELS, K)?,
        &rows[..n_rows],
        params.log_shift,
        MatMut::new("w", b.w, M, K)?,
        scratch,
    )?;

    let mut update = BremsstrahlungUpdate {
        model: &model,
        norm,
        scratch: b.g_scratch,
    };
    let f = solver.factors(b.g, b.w, b.h)?;
    solver.run_with(counts, f, b.workspace, &mut update, on_iter)
}

/// Sum of all counts, in f64 (exact for any realistic total).
pub fn total_counts(counts: &Counts<'_, f32>) -> f64 {
    let values = match *counts {
        Counts::Dense { data, .. } => data,
        Counts::Sparse { values, .. } => values,
    };
    values.iter().map(|&v| v as f64).sum()
}
