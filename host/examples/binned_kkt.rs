//! The spectra stage's binned fits, plain multiplicative updates against the default
//! accelerated ones (extrapolation and Newton steps on W, `pipeline::drive`) and against the
//! accelerated ones ended by coupled Newton steps on W and H (`decompose --solver
//! newton-tail`, `fast::schur`): KKT residual against time, iterations and seconds to a
//! residual of `--kkt`.
//!
//! ```sh
//! cargo run --release -p edxs --example binned_kkt -- [--size 128] [--doses 293,18] \
//!     [--seed 42] [--threads 0] [--kkt 1e-6] [--max-iter 10000] \
//!     [--png docs/speed/binned_kkt_vs_time.png]
//! ```
//! For each dose, the paper's image (`repro-fig1`'s data, Poisson seed `--seed`) goes through
//! the whole default two-stage decomposition once per method, with the loss rule of the
//! binned fits off (tol 0), so that each binned fit's run with the continuum held (at most
//! 1 000 iterations) and then its free run go on until their KKT residual max(W, H) is at most
//! `--kkt`, or `--max-iter` iterations. A fit counts as reaching `--kkt` in its free run (the
//! held run's residual is that of another problem). Every loss check
//! of every binned fit is observed ([`pipeline::Observer`]); the residuals cost two passes
//! over the non-zeros per check, and that time is left out of the seconds. Prints one row per
//! candidate binning and draws the largest binned image's curves (one per dose and method).

#[path = "common/args.rs"]
mod args;
use args::{arg, paper_data};
use edxs::pipeline::{self, CheckPoint, Observer, Prepared, Recipe, RunSettings, SpectraCache};
use edxs::report::kkt_plot::{kkt_png, Series};
use edxs::repro;
use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

/// The checks seen, in arrival order, and the residual that ends a fit.
struct Seen {
    checks: Mutex<Vec<CheckPoint>>,
    target: f64,
}

static SEEN: OnceLock<Seen> = OnceLock::new();

fn observe(c: &CheckPoint) -> bool {
    let seen = SEEN.get().expect("set before the fits");
    seen.checks.lock().expect("not poisoned").push(*c);
    // The continuum anchor's run too (a residual of the problem with the continuum held):
    // with the loss rule off it would run to its 1 000-iteration cap.
    c.kkt_w.max(c.kkt_h) <= seen.target
}

/// One curve per binned image: (iterations, seconds, residual, W held) with the anchor run
/// and the free run joined (the second run's counts go on from the first's).
fn curves(checks: &[CheckPoint]) -> BTreeMap<usize, Vec<(usize, f64, f64, bool)>> {
    let mut out: BTreeMap<usize, Vec<(usize, f64, f64, bool)>> = BTreeMap::new();
    let mut offset: BTreeMap<usize, (usize, f64, usize)> = BTreeMap::new();
    for c in checks {
        let o = offset.entry(c.pixels).or_insert((0, 0.0, 0));
        let curve = out.entry(c.pixels).or_default();
        if c.iteration < o.2 {
            // A new run on this image: the anchor ended where its last check was.
            if let Some(&(it, s, _, _)) = curve.last() {
                o.0 = it;
                o.1 = s;
            }
        }
        o.2 = c.iteration;
        curve.push((
            o.0 + c.iteration,
            o.1 + c.seconds,
            c.kkt_w.max(c.kkt_h),
            c.held,
        ));
    }
    out
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (size, doses, seed, threads) = paper_data(&args);
    let target: f64 = arg(&args, "--kkt", 1e-6);
    let max_iter: usize = arg(&args, "--max-iter", 10000);
    let png: String = arg(
        &args,
        "--png",
        "docs/speed/binned_kkt_vs_time.png".to_string(),
    );
    SEEN.get_or_init(|| Seen {
        checks: Mutex::new(Vec::new()),
        target,
    });
    let k = repro::K;
    let spec = repro::paper_model_spec();
    let model = spec.model()?;
    let prep = Prepared::new(&model, k)?;
    let set = RunSettings {
        max_iter,
        tol: 0.0,
        threads,
        seed: 0,
        observe: Some(Observer(&observe)),
    };
    let mut series: Vec<Series> = Vec::new();
    println!("binned fits to a KKT residual of {target:.0e} (cap {max_iter} iterations), threads {threads} (0 = one per core); seconds exclude the residuals' own passes");
    println!(
        "{:>6} {:>12} {:>7} {:>14} {:>10} {:>10} {:>10} {:>12}",
        "dose", "method", "blocks", "reached", "iters", "seconds", "final KKT", "final loss"
    );
    for dose in doses.split(',').map(|d| d.trim().parse::<f64>()) {
        let dose = dose?;
        let data = repro::paper_dataset(size, dose, seed)?;
        for name in ["plain MU", "accelerated", "Newton tail"] {
            // `decompose`'s default recipe for these data (fast_bench's), and its variants.
            let mut recipe = Recipe::two_stage(0.004, 0.1, 0.01, pipeline::auto_bin(dose));
            match name {
                "plain MU" => {
                    recipe.extrapolate = false;
                    recipe.w_newton_every = 0;
                }
                "Newton tail" => recipe.newton_tail = Some(pipeline::NEWTON_TAIL_FROM),
                _ => {}
            }
            SEEN.get().expect("set").checks.lock().expect("ok").clear();
            pipeline::fit(
                &prep,
                &data.image,
                &recipe,
                &set,
                &mut SpectraCache::default(),
            )?;
            let checks = std::mem::take(&mut *SEEN.get().expect("set").checks.lock().expect("ok"));
            let cs = curves(&checks);
            for (blocks, curve) in cs.iter().rev() {
                // Reached in the free run (the anchor's residual is of another problem).
                let reached = curve.iter().find(|c| !c.3 && c.2 <= target);
                let last = curve.last().copied().unwrap_or((0, 0.0, f64::NAN, false));
                let final_loss = checks
                    .iter()
                    .rev()
                    .find(|c| c.pixels == *blocks)
                    .map_or(f64::NAN, |c| c.loss);
                let (it, secs) = reached.map_or((last.0, last.1), |c| (c.0, c.1));
                println!(
                    "{dose:>6} {name:>12} {blocks:>7} {:>14} {it:>10} {secs:>10.3} {:>10.2e} {final_loss:>12.6e}",
                    if reached.is_some() { "yes" } else { "no (cap)" },
                    last.2,
                );
            }
            if let Some((blocks, curve)) = cs.iter().next_back() {
                series.push((
                    format!("{name}, {dose} cts, {blocks} blocks"),
                    curve.iter().map(|c| (c.1, c.2)).collect(),
                ));
            }
        }
    }
    kkt_png(
        std::path::Path::new(&png),
        &format!("binned fits of the spectra stage ({size}x{size} paper data): KKT residual against time"),
        &series,
        1,
    )?;
    println!("wrote {png}");
    Ok(())
}
