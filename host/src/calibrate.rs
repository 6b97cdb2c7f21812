//! The detector calibration refined from the data before decomposing: the energy axis
//! (offset, channel width) and the peak widths of the model fitted to the summed spectrum.
//!
//! Real detectors drift (energy offset and gain) and their resolution is rarely the nominal
//! one, and a file's calibration is often slightly off; a G whose peaks sit a few channels
//! from the data's, or are 10 % too narrow, bends every phase spectrum the decomposition
//! returns (README "Robustness": a 1 % channel-width error alone cost 12.6°). The summed
//! spectrum of all pixels holds far more counts than any phase, so it pins the calibration
//! down: it is fitted as G(θ)·a, a ≥ 0 (one weight per column of G), by the Poisson deviance,
//! over θ = (channel-width factor, offset change in channels, peak-width factor), each in a
//! bounded range. Every θ is scored by its profile deviance (a re-fitted by projected Newton,
//! M ~ 14 unknowns); θ is found on a coarse grid, then refined by Nelder–Mead.
//! The refinement is applied only when it lowers the deviance by more than
//! [`MIN_DEVIANCE_DROP`], so data with the nominal calibration keep it.

use crate::io::counts::SpectrumImage;
use crate::model_options::ModelSpec;
use edxs_core::{Column, EdxsModel};
use nalgebra::{DMatrix, DVector};
use rayon::prelude::*;
use serde::Serialize;

/// Summed counts under which the refinement is skipped: too few to place the peaks better
/// than the nominal calibration does.
pub const MIN_COUNTS: f64 = 10_000.0;

/// Deviance drop under which the refined calibration is not applied: the 0.1 % point of χ²
/// with 3 degrees of freedom (what fitting three parameters gains on noise alone).
pub const MIN_DEVIANCE_DROP: f64 = 16.27;

/// The calibration of a model: its energy axis and peak widths.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Calibration {
    /// Energy of channel 0, keV.
    pub offset_kev: f64,
    /// Channel width, keV.
    pub scale_kev: f64,
    /// FWHM slope: FWHM(E) = width_slope·E + width_intercept.
    pub width_slope: f64,
    /// FWHM at 0 keV, keV.
    pub width_intercept: f64,
}

impl Calibration {
    /// The calibration of `spec`'s model.
    pub fn of(spec: &ModelSpec) -> Self {
        Calibration {
            offset_kev: spec.base.axis.offset,
            scale_kev: spec.base.axis.scale,
            width_slope: spec.base.width_slope,
            width_intercept: spec.base.width_intercept,
        }
    }

    /// `spec` with this calibration.
    pub fn apply(&self, spec: &ModelSpec) -> ModelSpec {
        let mut s = spec.clone();
        s.base.axis.offset = self.offset_kev;
        s.base.axis.scale = self.scale_kev;
        s.base.width_slope = self.width_slope;
        s.base.width_intercept = self.width_intercept;
        s
    }
}

/// How far the refinement may move the calibration from the nominal one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Bounds {
    /// Largest relative change of the channel width (0.03: ±3 %).
    pub scale: f64,
    /// Largest change of the energy offset, in channels.
    pub offset_channels: f64,
    /// Largest relative change of the peak widths (0.3: ±30 %).
    pub width: f64,
}

impl Default for Bounds {
    /// ±3 % channel width, ±5 channels, ±30 % peak width.
    fn default() -> Self {
        Bounds {
            scale: 0.03,
            offset_channels: 5.0,
            width: 0.3,
        }
    }
}

/// What the refinement did, as results.json records it (`parameters.calibration`).
#[derive(Debug, Clone, Serialize)]
pub struct Refinement {
    /// The calibration the options and the file gave.
    pub nominal: Calibration,
    /// The calibration the decomposition uses (the nominal one unless `applied`).
    pub refined: Calibration,
    /// Whether the refined calibration replaced the nominal one.
    pub applied: bool,
    /// Best fit found, applied or not (None when skipped).
    pub best: Option<Calibration>,
    /// Poisson deviance of the summed spectrum with the nominal calibration.
    pub deviance_nominal: Option<f64>,
    /// Poisson deviance of the summed spectrum with the best calibration found.
    pub deviance_refined: Option<f64>,
    /// Counts in the summed spectrum.
    pub total_counts: f64,
    /// The counts' mean channel, where the printed line gives the shift of the axis.
    pub pivot_channel: f64,
    /// Models built and fitted.
    pub evaluations: usize,
    /// Wall time of the refinement, seconds.
    pub seconds: f64,
    /// The bounds used.
    pub bounds: Bounds,
    /// Why the refinement was skipped or not applied.
    pub note: Option<String>,
    /// Whether `decompose` should show the note (a skip the user did not ask for).
    #[serde(skip)]
    pub tell: bool,
}

impl Refinement {
    /// The nominal calibration kept, with a note saying why.
    fn kept(nominal: Calibration, total: f64, bounds: Bounds, note: String) -> Self {
        Refinement {
            nominal,
            refined: nominal,
            applied: false,
            best: None,
            deviance_nominal: None,
            deviance_refined: None,
            total_counts: total,
            pivot_channel: 0.0,
            evaluations: 0,
            seconds: 0.0,
            bounds,
            note: Some(note),
            tell: true,
        }
    }

    /// The record of a run with the refinement turned off.
    pub fn off(spec: &ModelSpec, img: &SpectrumImage, why: &str) -> Self {
        let total = img.values.iter().sum();
        let mut r = Refinement::kept(
            Calibration::of(spec),
            total,
            Bounds::default(),
            why.to_string(),
        );
        r.tell = false;
        r
    }

    /// The note `decompose` shows and keeps in results.json's notes: why the refinement was
    /// skipped, when the user did not ask for it to be.
    pub fn user_note(&self) -> Option<&str> {
        self.note.as_deref().filter(|_| self.tell)
    }

    /// Channel-width factor, shift at the pivot (channels) and peak-width factor of `c`
    /// relative to the nominal calibration.
    pub fn relative(&self, c: &Calibration) -> (f64, f64, f64) {
        let n = &self.nominal;
        let f = c.scale_kev / n.scale_kev;
        // Energy of the pivot channel, in nominal channels (the axis is linear in both).
        let shift = ((c.offset_kev - n.offset_kev) / n.scale_kev) + self.pivot_channel * (f - 1.0);
        let w = if n.width_intercept != 0.0 {
            c.width_intercept / n.width_intercept
        } else {
            c.width_slope / n.width_slope
        };
        (f, shift, w)
    }

    /// The one line `decompose` prints when the calibration changed (None when it did not).
    pub fn line(&self) -> Option<String> {
        if !self.applied {
            return None;
        }
        let (n, r) = (&self.nominal, &self.refined);
        let (f, shift, w) = self.relative(r);
        Some(format!(
            "calibration refined on the summed spectrum: offset {:.4} -> {:.4} keV, channel \
             width {:.6} -> {:.6} keV ({:+.2} %), {:+.2} channels at {:.2} keV, peak widths \
             x{:.3} (deviance {:.0} -> {:.0}); --no-refine-calibration keeps the nominal one",
            n.offset_kev,
            r.offset_kev,
            n.scale_kev,
            r.scale_kev,
            100.0 * (f - 1.0),
            shift,
            n.offset_kev + self.pivot_channel * n.scale_kev,
            w,
            self.deviance_nominal.unwrap_or(f64::NAN),
            self.deviance_refined.unwrap_or(f64::NAN),
        ))
    }
}

/// Refines the calibration of `spec` on the summed spectrum of `img` within `bounds`; the
/// nominal calibration is kept (with a note) when the data hold too few counts, when the
/// nominal model cannot be fitted, or when the refinement gains too little.
pub fn refine(spec: &ModelSpec, img: &SpectrumImage, bounds: Bounds, threads: usize) -> Refinement {
    let t0 = std::time::Instant::now();
    let sum = img.sum_spectrum();
    let mut r = refine_spectrum(spec, &sum, bounds, threads);
    r.seconds = t0.elapsed().as_secs_f64();
    r
}

/// [`refine`] on a summed spectrum, the grid's points shared among `threads` workers (0 = one
/// per core; the result does not depend on it).
pub fn refine_spectrum(
    spec: &ModelSpec,
    sum: &[f64],
    bounds: Bounds,
    threads: usize,
) -> Refinement {
    let nominal = Calibration::of(spec);
    let total: f64 = sum.iter().sum();
    if total.is_nan() || total < MIN_COUNTS {
        return Refinement::kept(
            nominal,
            total,
            bounds,
            format!(
                "calibration not refined: {total:.0} counts in all, under the {MIN_COUNTS:.0} \
                 it needs"
            ),
        );
    }
    if sum.len() != spec.base.axis.channels {
        return Refinement::kept(
            nominal,
            total,
            bounds,
            format!(
                "calibration not refined: the model has {} channels, the data {}",
                spec.base.axis.channels,
                sum.len()
            ),
        );
    }
    let pivot = sum
        .iter()
        .enumerate()
        .map(|(i, v)| i as f64 * v)
        .sum::<f64>()
        / total;
    let mut p = match Profile::new(spec, sum) {
        Some(p) => p,
        None => {
            return Refinement::kept(
                nominal,
                total,
                bounds,
                "calibration not refined: the nominal model does not fit the summed spectrum"
                    .into(),
            )
        }
    };
    let d0 = p.deviance([1.0, 0.0, 1.0]);
    if !d0.is_finite() {
        return Refinement::kept(
            nominal,
            total,
            bounds,
            "calibration not refined: the nominal model does not fit the summed spectrum".into(),
        );
    }
    let lo = [
        1.0 - bounds.scale,
        -bounds.offset_channels,
        1.0 - bounds.width,
    ];
    let hi = [
        1.0 + bounds.scale,
        bounds.offset_channels,
        1.0 + bounds.width,
    ];
    let mut x = [1.0, 0.0, 1.0];
    let mut best = d0;
    // A coarse grid first: the profile deviance has a minimum wherever some peaks line up
    // with other lines, so a local search from the nominal values could stop at one. Channel
    // width and offset together (a line moves with both, so one cannot be scanned with the
    // other held), in steps that leave every line within a fraction of its width of a grid
    // point (a quarter of 0.5 % moves a line at 20 keV by 2.5 channels, its FWHM is 26); then
    // the peak widths.
    let steps = [0.005, 1.0, 0.05];
    let grid = |c: usize, i: usize| {
        let n = ((hi[c] - lo[c]) / steps[c]).round().max(1.0);
        (lo[c] + (hi[c] - lo[c]) * i as f64 / n, n as usize)
    };
    // Every grid point's fit starts from the nominal one's weights, not from the previous
    // point's, so the points can be shared among threads and the result does not depend on
    // how (the grid took 60 % of the refinement's time, one point after the other).
    let a0 = p.a.clone();
    let pool = match crate::fast::pool(threads) {
        Ok(pool) => pool,
        Err(e) => {
            return Refinement::kept(
                nominal,
                total,
                bounds,
                format!("calibration not refined: {e}"),
            )
        }
    };
    let scan = |p: &mut Profile<'_>, points: Vec<[f64; 3]>, x: &mut [f64; 3], best: &mut f64| {
        let fits: Vec<(f64, Vec<f64>)> = pool.install(|| {
            points
                .par_iter()
                .map_init(
                    // A worker's own buffers; its evaluations are counted below.
                    || p.clone(),
                    |q, t| {
                        q.a.clone_from(&a0);
                        (q.deviance(*t), q.a.clone())
                    },
                )
                .collect()
        });
        p.evaluations += points.len();
        for (t, (d, a)) in points.iter().zip(fits) {
            if d < *best {
                *best = d;
                *x = *t;
                p.a = a;
            }
        }
    };
    let points = (0..=grid(0, 0).1)
        .flat_map(|i| (0..=grid(1, 0).1).map(move |j| [grid(0, i).0, grid(1, j).0, x[2]]))
        .collect();
    scan(&mut p, points, &mut x, &mut best);
    let points = (0..=grid(2, 0).1)
        .map(|i| [x[0], x[1], grid(2, i).0])
        .collect();
    scan(&mut p, points, &mut x, &mut best);
    // Then Nelder–Mead from the best grid point, in grid-step units: a line moves with both
    // the channel width and the offset, a correlated valley that coordinate searches cross
    // only in many small steps.
    let (xn, dn) = nelder_mead(&mut p, x, best, steps, (lo, hi));
    if dn < best {
        best = dn;
        x = xn;
    }
    let found = p.calibration(x);
    let drop = d0 - best;
    let applied = drop > MIN_DEVIANCE_DROP;
    let note = (!applied).then(|| {
        format!(
            "calibration kept: refining it lowers the summed spectrum's deviance by {drop:.1}, \
             under {MIN_DEVIANCE_DROP}"
        )
    });
    Refinement {
        nominal,
        refined: if applied { found } else { nominal },
        applied,
        best: Some(found),
        deviance_nominal: Some(d0),
        deviance_refined: Some(best),
        total_counts: total,
        pivot_channel: pivot,
        evaluations: p.evaluations,
        seconds: 0.0,
        bounds,
        note,
        tell: false,
    }
}

/// Nelder–Mead on the profile deviance from `x0` (deviance `f0`), coordinates in units of
/// `unit` and clamped to the bounds; stops when the simplex is under 1e-3 units across or
/// after 400 evaluations. Returns the best point and its deviance.
fn nelder_mead(
    p: &mut Profile<'_>,
    x0: [f64; 3],
    f0: f64,
    unit: [f64; 3],
    (lo, hi): ([f64; 3], [f64; 3]),
) -> ([f64; 3], f64) {
    let clamp = |mut x: [f64; 3]| {
        for c in 0..3 {
            x[c] = x[c].clamp(lo[c], hi[c]);
        }
        x
    };
    let eval = |p: &mut Profile<'_>, x: [f64; 3]| {
        let x = clamp(x);
        (x, p.deviance(x))
    };
    let mut simplex: Vec<([f64; 3], f64)> = vec![(x0, f0)];
    for c in 0..3 {
        let mut x = x0;
        // Towards the inside of the bounds, half a grid step.
        x[c] += if x0[c] + 0.5 * unit[c] <= hi[c] {
            0.5
        } else {
            -0.5
        } * unit[c];
        simplex.push(eval(p, x));
    }
    let comb = |a: &[f64; 3], b: &[f64; 3], t: f64| -> [f64; 3] {
        [0, 1, 2].map(|c| a[c] + t * (b[c] - a[c]))
    };
    let start = p.evaluations;
    while p.evaluations - start < 400 {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let size = simplex[1..]
            .iter()
            .map(|(x, _)| {
                (0..3)
                    .map(|c| ((x[c] - simplex[0].0[c]) / unit[c]).abs())
                    .fold(0.0, f64::max)
            })
            .fold(0.0, f64::max);
        if size < 1e-3 {
            break;
        }
        let centroid = [0, 1, 2].map(|c| simplex[..3].iter().map(|(x, _)| x[c]).sum::<f64>() / 3.0);
        let worst = simplex[3];
        let reflected = eval(p, comb(&centroid, &worst.0, -1.0));
        if reflected.1 < simplex[0].1 {
            let expanded = eval(p, comb(&centroid, &worst.0, -2.0));
            simplex[3] = if expanded.1 < reflected.1 {
                expanded
            } else {
                reflected
            };
        } else if reflected.1 < simplex[2].1 {
            simplex[3] = reflected;
        } else {
            let contracted = if reflected.1 < worst.1 {
                eval(p, comb(&centroid, &reflected.0, 0.5))
            } else {
                eval(p, comb(&centroid, &worst.0, 0.5))
            };
            if contracted.1 < worst.1.min(reflected.1) {
                simplex[3] = contracted;
            } else {
                let best = simplex[0].0;
                for v in simplex.iter_mut().skip(1) {
                    *v = eval(p, comb(&best, &v.0, 0.5));
                }
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    simplex[0]
}

/// The profile deviance of the summed spectrum as a function of the calibration.
#[derive(Clone)]
struct Profile<'a> {
    spec: &'a ModelSpec,
    sum: &'a [f64],
    columns: Vec<Column>,
    /// Column weights of the last fit: the next one starts there.
    a: Vec<f64>,
    g: Vec<f64>,
    scratch: Vec<f64>,
    /// Σ s·ln s − s over the channels, the saturated model's part of the deviance.
    saturated: f64,
    evaluations: usize,
}

impl<'a> Profile<'a> {
    fn new(spec: &'a ModelSpec, sum: &'a [f64]) -> Option<Self> {
        let model = spec.model().ok()?;
        let columns: Vec<Column> = model.columns().collect();
        let saturated = sum
            .iter()
            .filter(|s| **s > 0.0)
            .map(|s| s * s.ln() - s)
            .sum();
        Some(Profile {
            spec,
            sum,
            a: Vec::new(),
            g: vec![0.0; model.g_len()],
            scratch: vec![0.0; model.scratch_len()],
            columns,
            saturated,
            evaluations: 0,
        })
    }

    /// The calibration of (channel-width factor, offset change in channels, peak-width
    /// factor).
    fn calibration(&self, [f, shift, w]: [f64; 3]) -> Calibration {
        let n = Calibration::of(self.spec);
        Calibration {
            offset_kev: n.offset_kev + shift * n.scale_kev,
            scale_kev: n.scale_kev * f,
            width_slope: n.width_slope * w,
            width_intercept: n.width_intercept * w,
        }
    }

    /// Deviance of the best non-negative fit at θ; +∞ where the model cannot be built with the
    /// same columns.
    fn deviance(&mut self, theta: [f64; 3]) -> f64 {
        self.evaluations += 1;
        let spec = self.calibration(theta).apply(self.spec);
        let Ok(model) = EdxsModel::new(spec.params()) else {
            return f64::INFINITY;
        };
        if model.n_columns() != self.columns.len()
            || !model.columns().zip(&self.columns).all(|(a, b)| a == *b)
        {
            return f64::INFINITY;
        }
        if self.scratch.len() < model.scratch_len() {
            self.scratch.resize(model.scratch_len(), 0.0);
        }
        if model.build_g(&mut self.g, &mut self.scratch).is_err() {
            return f64::INFINITY;
        }
        let m = self.columns.len();
        if self.a.len() != m {
            self.a = start(&self.g, self.sum, m);
        }
        let (a, f) = poisson_nnls(&self.g, self.sum, m, self.a.clone());
        if !f.is_finite() {
            return f64::INFINITY;
        }
        self.a = a;
        // f = Σ μ − s·ln μ; the deviance is 2·(f + Σ s·ln s − s).
        2.0 * (f + self.saturated)
    }
}

/// Equal counts from every column, scaled to the total.
fn start(g: &[f64], s: &[f64], m: usize) -> Vec<f64> {
    let total: f64 = s.iter().sum();
    let mut colsum = vec![0.0; m];
    for row in g.chunks_exact(m) {
        for (c, v) in colsum.iter_mut().zip(row) {
            *c += v;
        }
    }
    colsum
        .iter()
        .map(|c| {
            if *c > 0.0 {
                total / (m as f64 * c)
            } else {
                0.0
            }
        })
        .collect()
}

/// Σ μ − s·ln μ with μ = G·a (+∞ where μ ≤ 0 under a count).
fn objective(g: &[f64], s: &[f64], m: usize, a: &[f64], mu: &mut [f64]) -> f64 {
    let mut f = 0.0;
    for ((row, si), mi) in g.chunks_exact(m).zip(s).zip(mu.iter_mut()) {
        let v: f64 = row.iter().zip(a).map(|(x, y)| x * y).sum();
        *mi = v;
        if *si > 0.0 {
            if v <= 0.0 {
                return f64::INFINITY;
            }
            f += v - si * v.ln();
        } else {
            f += v;
        }
    }
    f
}

/// The non-negative a minimising Σ μ − s·ln μ, μ = G·a (G row-major L×M), by projected Newton
/// (Bertsekas): Newton on the free weights, the ones at zero with a positive gradient held,
/// a projected backtracking line search; from `a` (a few multiplicative steps first bring a
/// cold start near). Returns a and the objective.
fn poisson_nnls(g: &[f64], s: &[f64], m: usize, mut a: Vec<f64>) -> (Vec<f64>, f64) {
    let l = s.len();
    let mut mu = vec![0.0; l];
    let mut f = objective(g, s, m, &a, &mut mu);
    if !f.is_finite() {
        a = start(g, s, m);
        f = objective(g, s, m, &a, &mut mu);
    }
    let mut grad = vec![0.0; m];
    let mut hess = vec![0.0; m * m];
    let mut trial = vec![0.0; m];
    let mut mu_t = vec![0.0; l];
    for _ in 0..200 {
        grad.iter_mut().for_each(|v| *v = 0.0);
        hess.iter_mut().for_each(|v| *v = 0.0);
        for ((row, si), mi) in g.chunks_exact(m).zip(s).zip(&mu) {
            let r = if *si > 0.0 { si / mi } else { 0.0 };
            let w = if *si > 0.0 { r / mi } else { 0.0 };
            for j in 0..m {
                grad[j] += row[j] * (1.0 - r);
                if w > 0.0 && row[j] != 0.0 {
                    let wj = w * row[j];
                    for k in j..m {
                        hess[j * m + k] += wj * row[k];
                    }
                }
            }
        }
        let free: Vec<usize> = (0..m)
            .filter(|&j| a[j] > 1e-12 * a.iter().fold(0.0f64, |x, y| x.max(*y)) || grad[j] < 0.0)
            .collect();
        if free.is_empty() {
            break;
        }
        let n = free.len();
        let h = DMatrix::from_fn(n, n, |i, j| {
            let (p, q) = (free[i].min(free[j]), free[i].max(free[j]));
            hess[p * m + q] + if i == j { 1e-12 * hess[p * m + p] } else { 0.0 }
        });
        let rhs = DVector::from_fn(n, |i, _| -grad[free[i]]);
        let d = match h.cholesky() {
            Some(c) => c.solve(&rhs),
            None => rhs.clone(),
        };
        let mut t = 1.0;
        let mut improved = false;
        for _ in 0..40 {
            trial.copy_from_slice(&a);
            for (i, &j) in free.iter().enumerate() {
                trial[j] = (a[j] + t * d[i]).max(0.0);
            }
            let ft = objective(g, s, m, &trial, &mut mu_t);
            let pred: f64 = (0..m).map(|j| grad[j] * (trial[j] - a[j])).sum();
            if ft.is_finite() && ft <= f + 1e-4 * pred.min(0.0) {
                improved = ft < f;
                let done = f - ft <= 1e-13 * f.abs().max(1.0);
                a.copy_from_slice(&trial);
                std::mem::swap(&mut mu, &mut mu_t);
                f = ft;
                if done {
                    return (a, f);
                }
                break;
            }
            t *= 0.5;
        }
        if !improved {
            break;
        }
    }
    (a, f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_options::ModelOptions;

    /// The paper's elements on espm's default axis.
    fn spec() -> ModelSpec {
        let opts = ModelOptions {
            elements: ["O", "Mg", "Si", "Fe", "Ca", "Cu"]
                .map(String::from)
                .to_vec(),
            offset: Some(0.3),
            ..Default::default()
        };
        opts.spec(&Default::default(), Some(1980), "test").unwrap()
    }

    /// G(calibration)·a, noiseless, for weights `a`.
    fn sum_of(spec: &ModelSpec, c: &Calibration, a: &[f64]) -> Vec<f64> {
        let s = c.apply(spec);
        let model = s.model().unwrap();
        let m = model.n_columns();
        let mut g = vec![0.0; model.g_len()];
        let mut scratch = vec![0.0; model.scratch_len()];
        model.build_g(&mut g, &mut scratch).unwrap();
        g.chunks_exact(m)
            .map(|row| row.iter().zip(a).map(|(x, y)| x * y).sum())
            .collect()
    }

    const WEIGHTS: [f64; 8] = [4e4, 3e4, 2e4, 1e4, 5e3, 2e3, 8e4, 6e4];

    #[test]
    fn a_perturbed_calibration_is_recovered_from_a_noiseless_sum() {
        let spec = spec();
        let nominal = Calibration::of(&spec);
        let truth = Calibration {
            offset_kev: 0.312,
            scale_kev: 0.01 * 1.012,
            width_slope: 0.01 * 0.85,
            width_intercept: 0.065 * 0.85,
        };
        let sum = sum_of(&spec, &truth, &WEIGHTS);
        let r = refine_spectrum(&spec, &sum, Bounds::default(), 0);
        assert!(r.applied, "{r:?}");
        assert_eq!(r.nominal, nominal);
        let got = r.refined;
        assert!(
            (got.scale_kev / truth.scale_kev - 1.0).abs() < 1e-4,
            "{got:?}"
        );
        assert!(
            (got.offset_kev - truth.offset_kev).abs() < 0.05 * 0.01,
            "{got:?}"
        );
        assert!(
            (got.width_intercept / truth.width_intercept - 1.0).abs() < 2e-3,
            "{got:?}"
        );
        assert!(
            (got.width_slope / truth.width_slope - 1.0).abs() < 2e-3,
            "{got:?}"
        );
        let (d0, d1) = (r.deviance_nominal.unwrap(), r.deviance_refined.unwrap());
        assert!(d1 < 1e-3 * d0, "deviance {d0} -> {d1}");
    }

    #[test]
    fn the_refinement_does_not_depend_on_the_thread_count() {
        let spec = spec();
        let truth = Calibration {
            offset_kev: 0.306,
            scale_kev: 0.01 * 0.993,
            width_slope: 0.01 * 1.1,
            width_intercept: 0.065 * 1.1,
        };
        // Poisson-like noise (deterministic) so that the grid's minimum is not exact.
        let sum: Vec<f64> = sum_of(&spec, &truth, &WEIGHTS)
            .iter()
            .enumerate()
            .map(|(i, v)| {
                (v + ((i * 7919) % 13) as f64 * v.sqrt() / 6.0 - v.sqrt())
                    .max(0.0)
                    .round()
            })
            .collect();
        let one = refine_spectrum(&spec, &sum, Bounds::default(), 1);
        for threads in [2, 3] {
            let r = refine_spectrum(&spec, &sum, Bounds::default(), threads);
            assert_eq!(r.best, one.best, "{threads} threads");
            assert_eq!(r.deviance_refined, one.deviance_refined);
            assert_eq!(r.evaluations, one.evaluations);
        }
        assert!(one.applied, "{one:?}");
    }

    #[test]
    fn a_noiseless_sum_at_the_nominal_calibration_keeps_it() {
        let spec = spec();
        let nominal = Calibration::of(&spec);
        let sum = sum_of(&spec, &nominal, &WEIGHTS);
        let r = refine_spectrum(&spec, &sum, Bounds::default(), 0);
        assert!(!r.applied, "{r:?}");
        assert_eq!(r.refined, nominal);
        assert!(
            r.note.as_deref().unwrap().contains("calibration kept"),
            "{r:?}"
        );
        assert!(r.line().is_none());
        let (f, shift, w) = r.relative(&r.best.unwrap());
        assert!((f - 1.0).abs() < 1e-5 && shift.abs() < 0.01 && (w - 1.0).abs() < 1e-3);
    }

    #[test]
    fn too_few_counts_or_a_wrong_length_skip_the_refinement_with_a_note() {
        let spec = spec();
        let nominal = Calibration::of(&spec);
        let mut sum = sum_of(&spec, &nominal, &WEIGHTS);
        let total: f64 = sum.iter().sum();
        sum.iter_mut().for_each(|v| *v *= 0.5 * MIN_COUNTS / total);
        let r = refine_spectrum(&spec, &sum, Bounds::default(), 0);
        assert!(!r.applied && r.refined == nominal && r.evaluations == 0);
        assert!(r.user_note().unwrap().contains("under the 10000"), "{r:?}");
        let r = refine_spectrum(&spec, &[1e3; 100], Bounds::default(), 0);
        assert!(
            !r.applied
                && r.user_note()
                    .unwrap()
                    .contains("1980 channels, the data 100")
        );
        let mut bad = sum_of(&spec, &nominal, &WEIGHTS);
        bad[7] = f64::NAN;
        let r = refine_spectrum(&spec, &bad, Bounds::default(), 0);
        assert!(!r.applied && r.user_note().is_some(), "{r:?}");
    }

    #[test]
    fn poisson_nnls_recovers_exact_weights_and_zeroes_the_unused_column() {
        // Three columns, the third unused by the data: its weight must end at zero.
        let l = 50;
        let m = 3;
        let mut g = vec![0.0; l * m];
        for i in 0..l {
            let x = i as f64 / l as f64;
            g[i * m] = 1.0 + x;
            g[i * m + 1] = (-((x - 0.3) / 0.05).powi(2)).exp();
            g[i * m + 2] = (-((x - 0.7) / 0.05).powi(2)).exp();
        }
        let truth = [100.0, 500.0, 0.0];
        let s: Vec<f64> = g
            .chunks_exact(m)
            .map(|r| r.iter().zip(&truth).map(|(a, b)| a * b).sum())
            .collect();
        let (a, _) = poisson_nnls(&g, &s, m, start(&g, &s, m));
        assert!((a[0] - 100.0).abs() < 1e-6 * 100.0, "{a:?}");
        assert!((a[1] - 500.0).abs() < 1e-6 * 500.0, "{a:?}");
        assert!(a[2].abs() < 1e-6, "{a:?}");
    }
}
