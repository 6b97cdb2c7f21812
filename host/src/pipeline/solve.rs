//! One solver run from a state: the core's multiplicative updates through the parallel
//! executor, or the fast Newton maps solver when the whole W is held.

use super::drive::{drive_sparse, KktData, SparseStop};
use super::fit::history_row;
use super::recipe::{HeldSolver, Recipe, RunSettings};
use super::spec::{Normalize, SolverSpec};
use super::stages::State;
use super::Prepared;
use crate::io::counts::SpectrumImage;
use crate::parallel::ParallelExec;
use anyhow::{anyhow, bail, Result};
use edxs_core::physics::CachedBremsstrahlungUpdate;
use edxs_core::solver::{Counts, Exec, GUpdate, NoGUpdate, RunSummary, SerialExec, Simplex};
use edxs_core::Solver;

/// μ, λ, ε_reg for the raw counts of `img` (espm's `normalize` when the recipe asks for it).
pub(super) fn raw_regularisation(img: &SpectrumImage, recipe: &Recipe, k: usize) -> Reg {
    Normalize::of(img, k, recipe.normalized).regularisation(
        &recipe.mu,
        recipe.lambda,
        recipe.epsilon_reg,
    )
}

/// μ, λ_L, ε_reg on the raw counts.
pub(super) type Reg = (Vec<f64>, f64, f64);

/// What every solver run of one fit shares: the prepared model, the counts, the recipe, its
/// regularisation on those counts and the run settings.
#[derive(Clone, Copy)]
pub(super) struct Problem<'a> {
    /// The model with G built (grouped or not).
    pub prep: &'a Prepared<'a>,
    /// The counts the run fits.
    pub img: &'a SpectrumImage,
    /// What the fit does.
    pub recipe: &'a Recipe,
    /// μ, λ_L, ε_reg for `img`.
    pub reg: &'a Reg,
    /// Tolerance, threads and seed.
    pub set: &'a RunSettings,
}

/// What one run of a fit holds and how long it may go.
#[derive(Clone, Copy)]
pub(super) struct Run<'a> {
    /// W entries held (negative: free); all non-negative: the whole W is held.
    pub fixed: Option<&'a [f64]>,
    /// The run's iteration budget.
    pub max_iter: usize,
}

/// One solver run from the state's (G, W, H).
pub(super) fn solve(pb: &Problem<'_>, st: State, run: Run<'_>) -> Result<State> {
    let (prep, recipe) = (pb.prep, pb.recipe);
    let whole = run.fixed.is_some_and(|f| f.iter().all(|v| *v >= 0.0));
    // A channel-grouped fit runs on the multiplicative path only: it alone knows how to update
    // the grouped G.
    let fast = !recipe.plain && !recipe.compat_espm && !recipe.simplex_h && prep.groups.is_none();
    let newton = matches!(
        recipe.held_solver,
        HeldSolver::Newton | HeldSolver::NewtonJoint
    );
    let st = if whole && fast && newton {
        solve_newton_maps(pb, st, run.max_iter)?
    } else if fast && recipe.held_solver == HeldSolver::NewtonJoint && prep.k <= 8 {
        solve_newton_joint(pb, st, run)?
    } else {
        solve_held(pb, st, run)?
    };
    let stage = match run.fixed {
        _ if whole => "the maps stage (spectra held)",
        Some(_) => "the fit with W entries held (the continuum anchor or --fix)",
        None => "the joint fit of spectra and maps",
    };
    finite_losses(&st, stage, pb.img)?;
    Ok(st)
}

/// A run's losses must be finite: JSON has no NaN or ∞ (they would be written as `null`), and
/// a non-finite loss means the iterates cannot be trusted either.
fn finite_losses(st: &State, stage: &str, img: &SpectrumImage) -> Result<()> {
    let bad = |v: f64| !v.is_finite();
    let at = match st.summary {
        Some(s) if bad(s.initial_loss) => Some(("at the start".to_string(), s.initial_loss)),
        _ => st
            .history
            .iter()
            .enumerate()
            .find_map(|(i, row)| row[..4].iter().find(|v| bad(**v)).map(|v| (i + 1, *v)))
            .map(|(i, v)| (format!("at iteration {i}"), v))
            .or_else(|| {
                st.summary
                    .filter(|s| bad(s.final_loss))
                    .map(|s| ("at the end".to_string(), s.final_loss))
            }),
    };
    if let Some((when, v)) = at {
        let largest = img.values.iter().fold(0.0f64, |a, &b| a.max(b));
        bail!(
            "the loss of {stage} is {v} {when}; the counts (largest {largest:e}) are beyond what \
             f64 arithmetic can fit: rescale them to counts"
        );
    }
    Ok(())
}

/// One multiplicative-update run from the state's (G, W, H) with W entries held.
pub(super) fn solve_held(pb: &Problem<'_>, st: State, run: Run<'_>) -> Result<State> {
    let Problem {
        prep,
        img,
        recipe,
        reg: (mu, lambda, eps),
        set,
    } = *pb;
    let (fixed, max_iter) = (run.fixed, run.max_iter);
    let State {
        mut g,
        mut w,
        mut h,
        choice,
        stages,
        ..
    } = st;
    let (l, k) = (img.channels, prep.k);
    let m = if recipe.plain { l } else { g.len() / l };
    let g_update = recipe.g_update && !recipe.plain && prep.model.params().bremsstrahlung;
    let spec = SolverSpec {
        k,
        mu,
        lambda_l: *lambda,
        epsilon_reg: *eps,
        shape: img.shape,
        simplex: match (recipe.simplex_h, recipe.plain) {
            (true, _) => Simplex::H,
            (false, true) => Simplex::None,
            (false, false) => Simplex::W { rows: &prep.rows },
        },
        identity_g: recipe.plain,
        g_update,
        fixed_w: fixed,
        fixed_h: None,
        tol: set.tol,
        max_iter,
        espm: recipe.compat_espm,
    };
    let mut scratch = vec![0.0; prep.model.scratch_len()];
    let mut cache = vec![
        0.0;
        if g_update {
            prep.model.brems_cache_len()
        } else {
            0
        }
    ];
    let mut update: Box<dyn GUpdate<f64>> = if g_update {
        let inner =
            CachedBremsstrahlungUpdate::new(prep.model, prep.norm, &mut scratch, &mut cache)
                .map_err(|e| anyhow!("{e}"))?;
        match &prep.groups {
            // A grouped fit: G rewritten at full resolution, then summed over the groups.
            Some(gr) => Box::new(super::chan_groups::GroupedUpdate {
                inner,
                full: gr.full.clone(),
                groups: &gr.groups,
            }),
            None => Box::new(inner),
        }
    } else {
        Box::new(NoGUpdate)
    };
    let solver = Solver::new(spec.params(), l, m, img.pixels).map_err(|e| anyhow!("{e}"))?;
    let espm_serial = recipe.compat_espm && recipe.simplex_h;
    if recipe.loss_every > 1 && !recipe.compat_espm && !recipe.plain && !recipe.simplex_h {
        let accelerate = img.pixels >= super::recipe::STAGE_ACCEL_MIN_PIXELS;
        let stop = SparseStop {
            every: recipe.loss_every,
            tol: set.tol,
            kkt_tol: recipe.kkt_tol,
            kkt: KktData {
                img,
                simplex_rows: &prep.rows,
                fixed,
                mu,
                epsilon_reg: *eps,
                lambda: *lambda,
                threads: set.threads,
            },
            extrapolate: recipe.extrapolate && accelerate,
            w_newton_every: if accelerate { recipe.w_newton_every } else { 0 },
            observe: set.observe,
            newton_tail: recipe.newton_tail.filter(|_| accelerate),
        };
        let mut exec = ParallelExec::new(&solver, img.counts(), set.threads)?;
        let (summary, history, (kkt_w, kkt_h)) = drive_sparse(
            &mut exec,
            (&mut g, &mut w, &mut h),
            spec.update_every(),
            update.as_mut(),
            max_iter,
            &stop,
        )?;
        return Ok(State {
            g,
            w,
            h,
            summary: Some(summary),
            history,
            kkt: Some(kkt_h),
            kkt_w: Some(kkt_w),
            choice,
            stages,
        });
    }
    let (summary, history) = run_solver(
        &solver,
        img.counts(),
        espm_serial,
        set.threads,
        (&mut g, &mut w, &mut h),
        update.as_mut(),
    )?;
    Ok(State {
        g,
        w,
        h,
        summary: Some(summary),
        history,
        kkt: None,
        kkt_w: None,
        choice,
        stages,
    })
}

/// One joint run by alternating Newton solves of the maps and the spectra.
fn solve_newton_joint(pb: &Problem<'_>, st: State, run: Run<'_>) -> Result<State> {
    let Problem {
        prep,
        img,
        recipe,
        reg: (mu, lambda, eps),
        set,
    } = *pb;
    let (fixed, max_iter) = (run.fixed, run.max_iter);
    let g_update = recipe.g_update && prep.model.params().bremsstrahlung;
    let joint = crate::fast::joint::JointRun {
        g_update: g_update.then_some((prep.model, prep.norm)),
        simplex_rows: &prep.rows,
        fixed,
        mu,
        lambda: *lambda,
        epsilon_reg: *eps,
        max_iter,
        tol: set.tol,
        threads: set.threads,
    };
    let fit = crate::fast::joint::fit_joint(&joint, img, st.g, st.w, st.h, prep.k)?;
    Ok(State {
        g: fit.g,
        w: fit.w,
        h: fit.h,
        summary: Some(fit.summary),
        history: fit.history,
        kkt: Some(fit.kkt),
        kkt_w: None,
        choice: st.choice,
        stages: st.stages,
    })
}

/// One run with the whole W held, by the fast maps solver (G updated from W once, which is
/// what the multiplicative path's updates every 3 iterations give with W held).
pub(super) fn solve_newton_maps(pb: &Problem<'_>, st: State, max_iter: usize) -> Result<State> {
    let Problem {
        prep,
        img,
        recipe,
        reg: (mu, lambda, eps),
        set,
    } = *pb;
    let (lambda, eps) = (*lambda, *eps);
    let g_update = recipe.g_update && prep.model.params().bremsstrahlung;
    let run = crate::fast::held::HeldRun {
        g_update: g_update.then_some((prep.model, prep.norm)),
        mu,
        lambda,
        epsilon_reg: eps,
        max_sweeps: max_iter,
        tol: set.tol,
        threads: set.threads,
    };
    let fit = crate::fast::held::fit_held(&run, img, st.g, &st.w, st.h, prep.k)?;
    Ok(State {
        g: fit.g,
        w: st.w,
        h: fit.h,
        summary: Some(fit.summary),
        history: fit.history,
        kkt: Some(fit.report.kkt),
        kkt_w: st.kkt_w,
        choice: st.choice,
        stages: st.stages,
    })
}

/// Runs `solver` on `counts` from (G, W, H), updated in place, on `threads` workers (the
/// serial executor when `espm_serial`: espm's joint bisection over all pixels exists only
/// there); returns the run's summary and its [`history_row`]s.
pub fn run_solver(
    solver: &Solver<'_, f64>,
    counts: Counts<'_, f64>,
    espm_serial: bool,
    threads: usize,
    (g, w, h): (&mut [f64], &mut [f64], &mut [f64]),
    update: &mut dyn GUpdate<f64>,
) -> Result<(RunSummary, Vec<[f64; 6]>)> {
    let mut serial_ws = Vec::new();
    let mut exec: Box<dyn Exec<f64>> = if espm_serial {
        serial_ws.resize(solver.exec_len(), 0.0);
        Box::new(SerialExec::new(solver, counts, &mut serial_ws).map_err(|e| anyhow!("{e}"))?)
    } else {
        Box::new(ParallelExec::new(solver, counts, threads)?)
    };
    let mut drv = vec![0.0; solver.driver_len()];
    let mut history = Vec::new();
    let summary = solver
        .factors(g, w, h)
        .and_then(|f| {
            solver.drive(exec.as_mut(), f, &mut drv, update, &mut |r| {
                history.push(history_row(r))
            })
        })
        .map_err(|e| anyhow!("{e}"))?;
    Ok((summary, history))
}
