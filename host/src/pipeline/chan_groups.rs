//! Prototype (issue #14, hidden behind `EDXS_CHANNEL_GROUPS`): the spectra stage's binned fits
//! on energy channels summed in groups.
//!
//! Summing Poisson counts over adjacent channels is an exact aggregation of the model: with A
//! the L'×L 0/1 group matrix, A·Y ~ Poisson(A·G·W·H), so the same W and H are fitted with
//! A·Y and A·G. Groups are wide where every element column of G is ~0 (only the smooth
//! bremsstrahlung lives there) and narrow across the peaks. The bremsstrahlung update
//! rewrites G at full resolution from W and is aggregated after ([`GroupedUpdate`]); the
//! chosen W leaves the stage with the full-resolution G recomputed from it.
//!
//! `EDXS_CHANNEL_GROUPS=FLAT[,PEAK[,TAU]]`: at most FLAT channels per group off the peaks,
//! PEAK on them (default 1), a channel being on a peak when some element column of G is above
//! TAU (default 1e-3) times its largest value.

use super::fixed::fixed_w;
use super::recipe::{Recipe, RunSettings};
use super::solve::{raw_regularisation, solve};
use super::stages::State;
use super::start::{brems_anchor, initial};
use super::Prepared;
use crate::io::counts::SpectrumImage;
use anyhow::{anyhow, Result};
use edxs_core::physics::BremsstrahlungUpdate;
use edxs_core::solver::GUpdate;
use edxs_core::ModelError;

/// CPU seconds (user + system) of this process so far, printed with `what` when
/// `EDXS_CHANNEL_GROUPS` is set (the prototype's per-stage measurement; Linux only).
pub(super) fn cpu_mark(what: &str) {
    if std::env::var_os("EDXS_CHANNEL_GROUPS").is_none() {
        return;
    }
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which ends at the last ')'), from the state: utime and
    // stime are the 12th and 13th (clock ticks, 100 per second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    if let (Some(u), Some(s)) = (tick(11), tick(12)) {
        eprintln!("edxs: cpu {:.2} s at {what}", (u + s) / 100.0);
    }
}

/// Channel groups: group `i` is channels `bounds[i]..bounds[i + 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelGroups {
    bounds: Vec<usize>,
}

impl ChannelGroups {
    /// The groups asked for by `EDXS_CHANNEL_GROUPS` for `prep`'s G (None when unset).
    pub(super) fn from_env(prep: &Prepared<'_>) -> Result<Option<Self>> {
        let Ok(spec) = std::env::var("EDXS_CHANNEL_GROUPS") else {
            return Ok(None);
        };
        let parts: Vec<&str> = spec.split(',').map(str::trim).collect();
        let bad = || anyhow!("EDXS_CHANNEL_GROUPS={spec}: expected FLAT[,PEAK[,TAU]]");
        let flat: usize = parts[0].parse().map_err(|_| bad())?;
        let peak: usize = match parts.get(1) {
            Some(p) => p.parse().map_err(|_| bad())?,
            None => 1,
        };
        let tau: f64 = match parts.get(2) {
            Some(t) => t.parse().map_err(|_| bad())?,
            None => 1e-3,
        };
        anyhow::ensure!(flat >= 1 && peak >= 1, "{}", bad());
        let m = prep.model.n_columns();
        let l = prep.g.len() / m;
        Ok(Some(Self::from_g(
            &prep.g, l, m, &prep.rows, flat, peak, tau,
        )))
    }

    /// Groups of at most `flat` channels where every column `rows` of G (L×M) is at most
    /// `tau` times its largest entry, at most `peak` channels elsewhere.
    pub fn from_g(
        g: &[f64],
        l: usize,
        m: usize,
        rows: &[usize],
        flat: usize,
        peak: usize,
        tau: f64,
    ) -> Self {
        let top: Vec<f64> = rows
            .iter()
            .map(|&j| (0..l).map(|c| g[c * m + j]).fold(0.0, f64::max))
            .collect();
        let on_peak = |c: usize| {
            rows.iter()
                .zip(&top)
                .any(|(&j, &t)| t > 0.0 && g[c * m + j] > tau * t)
        };
        let mut bounds = vec![0];
        let mut start = 0;
        let mut kind = on_peak(0);
        for c in 1..=l {
            let here = c < l && on_peak(c);
            let width = if kind { peak } else { flat };
            if c == l || here != kind || c - start >= width {
                bounds.push(c);
                start = c;
                kind = here;
            }
        }
        ChannelGroups { bounds }
    }

    /// Number of groups L'.
    pub fn len(&self) -> usize {
        self.bounds.len() - 1
    }

    /// Group of every channel.
    fn group_of(&self) -> Vec<u32> {
        let mut of = vec![0u32; *self.bounds.last().unwrap_or(&0)];
        for (i, w) in self.bounds.windows(2).enumerate() {
            of[w[0]..w[1]].iter_mut().for_each(|v| *v = i as u32);
        }
        of
    }

    /// A·Y: the image with its channels summed in groups.
    pub fn image(&self, img: &SpectrumImage) -> Result<SpectrumImage> {
        let of = self.group_of();
        let lg = self.len();
        let mut dense = vec![0.0; lg];
        SpectrumImage::from_rows("channel-grouped image", img.pixels, lg, img.shape, |push| {
            for px in 0..img.pixels {
                dense.iter_mut().for_each(|v| *v = 0.0);
                for i in img.indptr[px]..img.indptr[px + 1] {
                    dense[of[img.indices[i] as usize] as usize] += img.values[i];
                }
                push(&dense)?;
            }
            Ok(())
        })
    }

    /// A·G into `out` (L'×M) from `g` (L×M).
    pub fn g_into(&self, g: &[f64], m: usize, out: &mut [f64]) {
        for (i, w) in self.bounds.windows(2).enumerate() {
            let row = &mut out[i * m..(i + 1) * m];
            row.iter_mut().for_each(|v| *v = 0.0);
            for c in w[0]..w[1] {
                for (o, v) in row.iter_mut().zip(&g[c * m..(c + 1) * m]) {
                    *o += v;
                }
            }
        }
    }

    /// A·G (L'×M) from `g` (L×M).
    pub fn g(&self, g: &[f64], m: usize) -> Vec<f64> {
        let mut out = vec![0.0; self.len() * m];
        self.g_into(g, m, &mut out);
        out
    }
}

/// The bremsstrahlung update at full resolution, aggregated into the grouped G.
pub(super) struct GroupedUpdate<'s, U> {
    /// The full-resolution update.
    pub inner: U,
    /// The full-resolution G (L×M) it rewrites.
    pub full: Vec<f64>,
    /// The groups.
    pub groups: &'s ChannelGroups,
}

impl<U: GUpdate<f64>> GUpdate<f64> for GroupedUpdate<'_, U> {
    fn update(&mut self, g: &mut [f64], w: &[f64], k: usize) -> Result<(), ModelError> {
        self.inner.update(&mut self.full, w, k)?;
        let m = w.len() / k;
        self.groups.g_into(&self.full, m, g);
        Ok(())
    }
}

/// The full-resolution G for `w`: `prep`'s G with its bremsstrahlung columns recomputed from
/// `w` when the fit updated them.
pub(super) fn full_g(prep: &Prepared<'_>, w: &[f64], g_update: bool) -> Result<Vec<f64>> {
    let mut g = prep.g.clone();
    if g_update && prep.model.params().bremsstrahlung {
        let mut scratch = vec![0.0; prep.model.scratch_len()];
        let mut up = BremsstrahlungUpdate {
            model: prep.model,
            norm: prep.norm,
            scratch: &mut scratch,
        };
        up.update(&mut g, w, prep.k).map_err(|e| anyhow!("{e}"))?;
    }
    Ok(g)
}

/// One binned fit (`stages::fit_state`'s joint fit: the continuum anchor, then free) on the
/// channel-grouped copy `agg` of `coarse`, with `grouped` (from [`Prepared::grouped`]). The
/// start and the anchor values come from the full-resolution `coarse` and `prep`, as without
/// groups: from the grouped counts the least-squares fits behind them are dominated by the
/// wide groups, and at 18 counts/pixel that start lost a phase (80°). Returns the state with
/// the full-resolution G of its W, and the iterations.
pub(super) fn grouped_fit(
    (prep, grouped): (&Prepared<'_>, &Prepared<'_>),
    (coarse, agg): (&SpectrumImage, &SpectrumImage),
    recipe: &Recipe,
    set: &RunSettings,
) -> Result<(State, usize)> {
    let k = prep.k;
    let m = prep.model.n_columns();
    let (_, mut w, h) = initial(prep, coarse, recipe, set.seed)?;
    let fixed = fixed_w(prep, &recipe.fix, &mut w, m, recipe.compat_espm)?;
    let reg = raw_regularisation(agg, recipe, k);
    let mut st = State {
        g: grouped.g.clone(),
        w,
        h,
        summary: None,
        history: Vec::new(),
        kkt: None,
        kkt_w: None,
        choice: None,
    };
    let mut iterations = 0;
    let mut budget = set.max_iter;
    if recipe.anchor_iter > 0 {
        let n = recipe.anchor_iter.min(budget);
        let mut held = fixed.clone().unwrap_or_else(|| vec![-1.0; m * k]);
        for (row, v) in brems_anchor(prep, coarse)? {
            for c in 0..k {
                if held[row * k + c] < 0.0 {
                    held[row * k + c] = v;
                    st.w[row * k + c] = v;
                }
            }
        }
        st = solve(grouped, agg, recipe, &reg, st, Some(&held), n, set)?;
        iterations += st.summary.map_or(0, |s| s.iterations);
        budget -= n;
    }
    if budget > 0 {
        st = solve(
            grouped,
            agg,
            recipe,
            &reg,
            st,
            fixed.as_deref(),
            budget,
            set,
        )?;
        iterations += st.summary.map_or(0, |s| s.iterations);
    }
    st.g = full_g(prep, &st.w, recipe.g_update)?;
    Ok((st, iterations))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::recipe::Start;
    use crate::pipeline::stages::fit_state;
    use crate::pipeline::SpectraCache;
    use crate::repro;

    fn groups_of(prep: &Prepared<'_>) -> ChannelGroups {
        let m = prep.model.n_columns();
        ChannelGroups::from_g(&prep.g, prep.g.len() / m, m, &prep.rows, 64, 8, 1e-2)
    }

    #[test]
    fn the_grouped_g_update_is_the_full_update_summed_over_the_groups() {
        let spec = repro::paper_model_spec();
        let model = spec.model().unwrap();
        let prep = Prepared::new(&model, 3).unwrap();
        let groups = groups_of(&prep);
        let m = model.n_columns();
        assert!(
            groups.len() < prep.g.len() / m / 4,
            "{} groups",
            groups.len()
        );
        let gp = prep.grouped(groups.clone());
        let w: Vec<f64> = (0..m * 3).map(|i| 0.01 + (i % 7) as f64 * 0.02).collect();
        let mut scratch = vec![0.0; model.scratch_len()];
        let (_, full) = gp.groups.as_ref().unwrap();
        let mut up = GroupedUpdate {
            inner: BremsstrahlungUpdate {
                model: &model,
                norm: prep.norm,
                scratch: &mut scratch,
            },
            full: full.clone(),
            groups: &groups,
        };
        let mut g = gp.g.clone();
        up.update(&mut g, &w, 3).unwrap();
        let want = groups.g(&full_g(&prep, &w, true).unwrap(), m);
        assert_eq!(g, want);
        // The update changed the bremsstrahlung columns: the test is not vacuous.
        assert_ne!(g, gp.g);
    }

    #[test]
    fn a_grouped_binned_fit_finds_the_spectra_of_the_full_resolution_fit() {
        let spec = repro::paper_model_spec();
        let model = spec.model().unwrap();
        let prep = Prepared::new(&model, 3).unwrap();
        let gp = prep.grouped(groups_of(&prep));
        let (_, full) = gp.groups.as_ref().unwrap();
        assert_eq!(full, &prep.g);
        let data = repro::paper_dataset(32, 293.0, 42).unwrap();
        let img = &data.image;
        let agg = gp.groups.as_ref().unwrap().0.image(img).unwrap();
        let total = |v: &[f64]| v.iter().sum::<f64>();
        assert_eq!(total(&agg.values), total(&img.values));
        let mut sub = Recipe::espm(0.001, 0.0, 0.01, Start::Nndsvdar, 300);
        sub.loss_every = 10;
        let set = RunSettings {
            max_iter: 3000,
            tol: 1e-8,
            threads: 1,
            seed: 0,
        };
        let (st, _) = grouped_fit((&prep, &gp), (img, &agg), &sub, &set).unwrap();
        // The checked losses of the last run never rise.
        for pair in st.history.windows(2) {
            assert!(pair[1][0] <= pair[0][0], "{pair:?}");
        }
        let (full_st, _, _) =
            fit_state(&prep, img, &sub, &set, &mut SpectraCache::default()).unwrap();
        let (l, k) = (img.channels, 3);
        let d = crate::pipeline::d_of(&st.g, &st.w, l, k);
        let e = crate::pipeline::d_of(&full_st.g, &full_st.w, l, k);
        let col = |d: &[f64], c: usize| (0..l).map(|r| d[r * k + c]).collect::<Vec<_>>();
        // Each true spectrum's angle to its nearest estimate, grouped and at full resolution.
        let nearest = |d: &[f64], t: usize| {
            (0..k)
                .map(|o| {
                    crate::metrics::spectral_angle(&data.spectra[t * l..(t + 1) * l], &col(d, o))
                })
                .fold(f64::INFINITY, f64::min)
        };
        for t in 0..k {
            let (a, b) = (nearest(&d, t), nearest(&e, t));
            eprintln!("phase {t}: grouped {a:.3}°, full resolution {b:.3}°");
            assert!(a < b + 0.5, "phase {t}: grouped {a}°, full {b}°");
        }
    }
}
