//! The order of the solver runs: an optional bremsstrahlung-anchored phase then the free fit
//! (joint), or the spectra from several binnings, the best kept, then the maps with them
//! held (two-stage), with the spectra stages cached per image.

use super::bin::bin;
use super::chan_groups::{grouped_fit, ChannelGroups, GROUPS_MIN_COUNTS};
use super::fit::{d_of, StageSeconds};
use super::fixed::fixed_w;
use super::maps_start::weighted_ls_maps;
use super::recipe::{FixW, Recipe, RunSettings, Start, CANDIDATES};
use super::score::{HeldOutBlocks, SpectraChoice};
use super::solve::{raw_regularisation, solve, Problem, Reg, Run};
use super::start::{brems_anchor, initial};
use super::Prepared;
use crate::io::counts::SpectrumImage;
use anyhow::{anyhow, Result};
use edxs_core::solver::RunSummary;
use rayon::prelude::*;

/// Solver state.
#[derive(Clone)]
pub(super) struct State {
    pub(super) g: Vec<f64>,
    pub(super) w: Vec<f64>,
    pub(super) h: Vec<f64>,
    pub(super) summary: Option<RunSummary>,
    pub(super) history: Vec<[f64; 6]>,
    pub(super) kkt: Option<f64>,
    /// KKT residual of W ([`crate::fast::kkt_w`]) at the end of the fit that set it (the
    /// chosen binned fit in the pipeline).
    pub(super) kkt_w: Option<f64>,
    /// How the spectra stage chose these spectra among its candidates.
    pub(super) choice: Option<SpectraChoice>,
    /// Wall seconds of the two-stage pipeline's parts, as far as they have run.
    pub(super) stages: Option<StageSeconds>,
}

impl State {
    fn iterations(&self) -> usize {
        self.summary.map_or(0, |s| s.iterations)
    }
}

/// What identifies a spectra stage: the recipes that share it differ only in their maps.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct StageKey {
    fix: FixW,
    bin: usize,
    anchor_iter: usize,
    start: Start,
    g_update: bool,
}

/// The spectra stages already run on one image (use one cache per image), so that recipes
/// that differ only in their map stage run the binned fits once.
#[derive(Default)]
pub struct SpectraCache {
    entries: Vec<(StageKey, State, usize, f64)>,
}

pub(super) fn fit_state(
    prep: &Prepared<'_>,
    img: &SpectrumImage,
    recipe: &Recipe,
    set: &RunSettings,
    cache: &mut SpectraCache,
) -> Result<(State, usize, f64)> {
    if recipe.two_stage_bin > 0 && !recipe.plain {
        let reg = raw_regularisation(img, recipe, prep.k);
        return two_stage(prep, img, recipe, &reg, set, cache);
    }
    let (st, iterations) = joint_fit((prep, img), (prep, img), recipe, set)?;
    Ok((st, iterations, 0.0))
}

/// One joint fit: started (and its continuum anchored) from `start`'s model and image, run on
/// `on`'s, which is the same pair or its channel-grouped copy (`chan_groups`). Returns the
/// state (with `on`'s G) and the iterations.
pub(super) fn joint_fit(
    start: (&Prepared<'_>, &SpectrumImage),
    (prep_on, img_on): (&Prepared<'_>, &SpectrumImage),
    recipe: &Recipe,
    set: &RunSettings,
) -> Result<(State, usize)> {
    let (prep, img) = start;
    let (l, k) = (img.channels, prep.k);
    let reg = raw_regularisation(img_on, recipe, k);
    let m = if recipe.plain {
        l
    } else {
        prep.model.n_columns()
    };
    let (g, mut w, h) = initial(prep, img, recipe, set.seed)?;
    let g = if prep_on.groups.is_some() {
        prep_on.g.clone()
    } else {
        g
    };
    let fixed = fixed_w(prep, &recipe.fix, &mut w, m, recipe.compat_espm)?;
    let mut st = State {
        g,
        w,
        h,
        summary: None,
        history: Vec::new(),
        kkt: None,
        kkt_w: None,
        choice: None,
        stages: None,
    };
    let problem = Problem {
        prep: prep_on,
        img: img_on,
        recipe,
        reg: &reg,
        set,
    };
    let mut iterations = 0;
    let mut budget = set.max_iter;
    if recipe.anchor_iter > 0 && !recipe.plain {
        // The continuum rows of W are outside the simplex, so from a poor start one component
        // can take all the bremsstrahlung (a "background" phase) and the others none. Holding
        // every component's b0, b1 at the mean spectrum's values until the characteristic
        // parts have settled keeps the continuum with the lines that come with it.
        let n = recipe.anchor_iter.min(budget);
        let mut held = fixed.clone().unwrap_or_else(|| vec![-1.0; m * k]);
        for (row, v) in brems_anchor(prep, img)? {
            for c in 0..k {
                if held[row * k + c] < 0.0 {
                    held[row * k + c] = v;
                    st.w[row * k + c] = v;
                }
            }
        }
        let run = Run {
            fixed: Some(&held),
            max_iter: n,
        };
        st = solve(&problem, st, run)?;
        iterations += st.iterations();
        budget -= n;
    }
    if budget > 0 {
        let run = Run {
            fixed: fixed.as_deref(),
            max_iter: budget,
        };
        st = solve(&problem, st, run)?;
        iterations += st.iterations();
    }
    Ok((st, iterations))
}

/// Spectra from binned images, then maps at full resolution with W held.
pub(super) fn two_stage(
    prep: &Prepared<'_>,
    img: &SpectrumImage,
    recipe: &Recipe,
    reg: &Reg,
    set: &RunSettings,
    cache: &mut SpectraCache,
) -> Result<(State, usize, f64)> {
    // A zero on "the component with the least of a row" is imposed on the chosen spectra, not
    // in the binned fits: decided on an NNDSVDar start it landed on the matrix at some of the
    // paper's samplings, and decided on each candidate's fit it let a rotated candidate
    // (matrix lost) win the choice (18° and 44°).
    let late = matches!(recipe.fix, FixW::ZeroWhereLeast { .. });
    let mut stage = recipe.clone();
    if late {
        stage.fix = FixW::None;
    }
    let key = StageKey {
        fix: stage.fix.clone(),
        bin: recipe.two_stage_bin.max(1),
        anchor_iter: recipe.anchor_iter,
        start: recipe.start.clone(),
        g_update: recipe.g_update,
    };
    let (mut st, mut iterations, reused) = match cache.entries.iter().find(|e| e.0 == key) {
        Some((_, st, it, secs)) => (st.clone(), *it, *secs),
        None => {
            let t0 = std::time::Instant::now();
            let (st, it) = spectra_stage(prep, img, &stage, set)?;
            let secs = t0.elapsed().as_secs_f64();
            cache.entries.push((key, st.clone(), it, secs));
            (st, it, 0.0)
        }
    };
    if late {
        let m = prep.model.n_columns();
        fixed_w(prep, &recipe.fix, &mut st.w, m, false)?;
    }
    // The maps at full resolution with the spectra held: at low counts a free W would follow
    // the noise of single pixels, and at high counts the map penalties would bend the spectra.
    let held = st.w.clone();
    let problem = Problem {
        prep,
        img,
        recipe,
        reg,
        set,
    };
    let run = Run {
        fixed: Some(&held),
        max_iter: set.max_iter,
    };
    let t0 = std::time::Instant::now();
    st = solve(&problem, st, run)?;
    if let Some(s) = st.stages.as_mut() {
        s.maps = t0.elapsed().as_secs_f64();
    }
    iterations += st.iterations();
    // Not done: the spectra again from every pixel with these maps held, then the maps
    // again. The regularised maps are biased (the log term shrinks the particles), and W
    // followed them: 15–18° instead of 3–5° on espm-simulated 64² maps at 18 counts/pixel.
    Ok((st, iterations, reused))
}

/// The spectra of the pipeline from binned images, with full-resolution starting maps.
pub(super) fn spectra_stage(
    prep: &Prepared<'_>,
    img: &SpectrumImage,
    recipe: &Recipe,
    set: &RunSettings,
) -> Result<(State, usize)> {
    let (b0, k) = (recipe.two_stage_bin.max(1), prep.k);
    // A spectrum image summed over b×b blocks has b² times the counts per pixel, enough to pin
    // the phases' spectra. A light log penalty (μ = 0.001, ε = 0.01) keeps particle phases out
    // of the pure-matrix blocks; λ is left out, since together they favour over-pure particle
    // spectra.
    // The rest (the start, the anchor, imposed entries, the G update and how the runs are
    // solved and stopped) is the pipeline's own; the fields named here are the binned fits'.
    let sub = Recipe {
        plain: false,
        mu: vec![0.001],
        lambda: 0.0,
        epsilon_reg: 0.01,
        normalized: true,
        two_stage_bin: 0,
        simplex_h: false,
        compat_espm: false,
        candidates_side_by_side: false,
        channel_groups: None,
        ..recipe.clone()
    };
    // A single fit lands in a wrong local minimum for some noise draws (one phase rotated into
    // another), each binning for different draws, so several binnings are tried.
    // The binned images are small (19² to 64² blocks by default), too small for threads to
    // share one fit well (the per-iteration synchronisation costs as much as the work), so the
    // candidates run side by side, one thread each; a fit's result does not depend on its
    // thread count, so neither does the choice.
    let (one, side) = match recipe.candidates_side_by_side {
        true => (RunSettings { threads: 1, ..*set }, set.threads),
        false => (*set, 1),
    };
    // The binned fits on channels summed in groups (`chan_groups`), when the data hold enough
    // counts for it (`GROUPS_MIN_COUNTS`) and that drops any channel.
    let grouped = recipe
        .channel_groups
        .filter(|_| img.values.iter().sum::<f64>() >= GROUPS_MIN_COUNTS)
        .map(|w| prep.grouped(ChannelGroups::for_model(prep, &w)))
        .filter(|gp| gp.g.len() < prep.g.len());
    let n_groups = grouped
        .as_ref()
        .map(|gp| gp.g.len() / prep.model.n_columns());
    let t0 = std::time::Instant::now();
    let fits: Vec<Result<(State, usize)>> = crate::fast::pool(side)?.install(|| {
        (b0..b0 + CANDIDATES)
            .into_par_iter()
            .map(|b| {
                let coarse = bin(img, b).map(|c| c.0);
                let coarse = coarse.as_ref().unwrap_or(img);
                match grouped
                    .as_ref()
                    .and_then(|gp| Some((gp, gp.groups.as_ref()?)))
                {
                    Some((gp, gr)) => {
                        let agg = gr.groups.image(coarse)?;
                        grouped_fit((prep, gp), (coarse, &agg), &sub, &one)
                    }
                    None => {
                        // The binned fits are not shared between images: each gets its own
                        // cache.
                        let mut none = SpectraCache::default();
                        let (st, it, _) = fit_state(prep, coarse, &sub, &one, &mut none)?;
                        Ok((st, it))
                    }
                }
            })
            .collect()
    });
    let binned_fits = t0.elapsed().as_secs_f64();
    let t0 = std::time::Instant::now();
    let mut cands = Vec::new();
    let mut iterations = 0;
    for fit in fits {
        let (st, it) = fit?;
        iterations += it;
        cands.push(st);
    }
    // The candidates are told apart by held-out likelihood over blocks (`score`); each one's
    // maps are fitted to the fit half with its spectra held, from a weighted least-squares
    // start, from which they converge in a few hundred iterations.
    let sub_reg = raw_regularisation(img, &sub, k);
    // The maps of held spectra with the binned fits' light log penalty on `on`'s pixels.
    let maps_of = |mut st: State, on: &SpectrumImage, reg: &Reg| -> Result<State> {
        st.h = weighted_ls_maps(&d_of(&st.g, &st.w, img.channels, k), on, k);
        let held = st.w.clone();
        let problem = Problem {
            prep,
            img: on,
            recipe: &sub,
            reg,
            set,
        };
        let run = Run {
            fixed: Some(&held),
            max_iter: set.max_iter,
        };
        solve(&problem, st, run)
    };
    // The best score, its candidate's index and state.
    let mut best: Option<(f64, usize, State)> = None;
    let mut scores = Vec::with_capacity(cands.len());
    let mut keep = |score: f64, st: State| {
        if best.as_ref().is_none_or(|(b, _, _)| score > *b) {
            best = Some((score, scores.len(), st));
        }
        scores.push(score);
    };
    // Whether the kept state already holds the chosen spectra's maps on every pixel.
    let (by, score_bin, full_maps) = match HeldOutBlocks::new(img, b0)? {
        Some(ho) => {
            let fit_reg = raw_regularisation(&ho.fit, &sub, k);
            for st in cands {
                let fitted = maps_of(st.clone(), &ho.fit, &fit_reg)?;
                iterations += fitted.iterations();
                let d = d_of(&st.g, &st.w, img.channels, k);
                keep(ho.score(&d, &fitted.h, k), st);
            }
            ("held-out log-likelihood over blocks", ho.bin, false)
        }
        None => {
            // Non-integer counts: the full-resolution maps objective with the light penalty,
            // on a grid of pixels on scans larger than 128² (the regularisation stays the
            // whole image's).
            let grid = super::score::scoring_pixels(img);
            let scored = grid.as_ref().unwrap_or(img);
            for st in cands {
                let st = maps_of(st, scored, &sub_reg)?;
                iterations += st.iterations();
                keep(-st.summary.map_or(f64::INFINITY, |s| s.final_loss), st);
            }
            (
                "minus the full-resolution objective (non-integer counts)",
                1,
                grid.is_none(),
            )
        }
    };
    let (_, chosen, mut st) = best.ok_or_else(|| anyhow!("no spectra candidate"))?;
    st.choice = Some(SpectraChoice {
        by,
        score_bin,
        candidates: (b0..b0 + CANDIDATES).zip(scores.iter().copied()).collect(),
        chosen_bin: b0 + chosen,
        channel_groups: n_groups,
    });
    // The chosen spectra's maps on every pixel: the start of the maps stage.
    if !full_maps {
        st = maps_of(st, img, &sub_reg)?;
        iterations += st.iterations();
    }
    st.stages = Some(StageSeconds {
        binned_fits,
        candidate_choice: t0.elapsed().as_secs_f64(),
        maps: 0.0,
    });
    Ok((st, iterations))
}
