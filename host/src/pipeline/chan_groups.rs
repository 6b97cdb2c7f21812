//! The spectra stage's binned fits on energy channels summed in groups.
//!
//! Summing Poisson counts over adjacent channels is an exact aggregation of the model: with A
//! the L'×L 0/1 group matrix, A·Y ~ Poisson(A·G·W·H), so the same W and H are fitted with
//! A·Y and A·G. Groups are wide where every line column of G is ~0 (only the smooth
//! bremsstrahlung lives there) and narrow across the peaks, in keV and in units of the
//! detector's peak width so that they follow the axis and the calibration
//! ([`GroupWidths`]). The bremsstrahlung update rewrites G at full resolution from W and is
//! aggregated after (`GroupedUpdate`); the start and the continuum anchor come from the
//! full-resolution binned image; the chosen W leaves the stage with the full-resolution G
//! recomputed from it, so the scoring and the maps stage are unchanged.
//!
//! The spectra stage uses them from [`GROUPS_MIN_COUNTS`] counts up; on the paper's axis the
//! default widths keep 167 of its 1980 channels (README "Speed",
//! `docs/speed/channel_groups.md`).

use super::recipe::{Recipe, RunSettings};
use super::stages::{joint_fit, State};
use super::Prepared;
use crate::io::counts::SpectrumImage;
use anyhow::{anyhow, Result};
use edxs_core::physics::BremsstrahlungUpdate;
use edxs_core::solver::GUpdate;
use edxs_core::ModelError;

/// Counts below which the spectra stage keeps every channel. Where counts are few, each
/// count's energy within a peak matters and the fits are cheap anyway. Measured on espm's
/// simulator: a 64² map at 18 counts/pixel (74 000 counts) lost 0.9° on one of two samplings
/// with groups (4.34° → 5.25°, final objective 1.6e-4 higher); a 128² one (295 000 counts)
/// took the same angles over 240 runs but only 23 % less CPU; from 1.2 M counts (64² at 293
/// counts/pixel) up, the same angles and objective for 2.2–2.7× less CPU.
pub const GROUPS_MIN_COUNTS: f64 = 1e6;

/// How wide the channel groups are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupWidths {
    /// Widest group off the peaks (keV).
    pub flat_kev: f64,
    /// Widest group on a peak, in FWHMs of the detector at the group's energy.
    pub peak_fwhm: f64,
    /// A channel is on a peak when some line column of G exceeds this fraction of its
    /// largest value there.
    pub tau: f64,
}

impl GroupWidths {
    /// The default: 0.64 keV off the peaks, half a FWHM on them, peaks down to 1 % of their
    /// top. Measured on espm-simulated 128² maps: 64 channels off and 8 on the peaks (this
    /// axis' 10 eV) took the same angles as no groups (`docs/speed/channel_groups.md`); half a
    /// FWHM is 4 channels at 1.5 keV and 8 at 10 keV.
    pub const DEFAULT: GroupWidths = GroupWidths {
        flat_kev: 0.64,
        peak_fwhm: 0.5,
        tau: 1e-2,
    };
}

/// A grouped copy's groups and the full-resolution G the bremsstrahlung update rewrites.
#[derive(Debug, Clone)]
pub struct Grouping {
    /// The groups.
    pub groups: ChannelGroups,
    /// The full-resolution G (L×M).
    pub full: Vec<f64>,
}

/// Channel groups: group `i` is channels `bounds[i]..bounds[i + 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelGroups {
    bounds: Vec<usize>,
}

impl ChannelGroups {
    /// The groups of `widths` for `prep`'s G and axis: line columns are every column but
    /// the bremsstrahlung ones (the ignored elements' lines too).
    pub(super) fn for_model(prep: &Prepared<'_>, widths: &GroupWidths) -> Self {
        let model = prep.model;
        let (l, m) = (model.n_channels(), model.n_columns());
        let lines: Vec<usize> = (0..m).filter(|j| !prep.brems_rows.contains(j)).collect();
        let p = model.params();
        let step = |c: usize| {
            if c + 1 < l {
                model.energy(c + 1) - model.energy(c)
            } else {
                model.energy(c) - model.energy(c.saturating_sub(1))
            }
        };
        let flat = |c: usize| widths.flat_kev / step(c);
        let peak = |c: usize| {
            let e = model.energy(c);
            widths.peak_fwhm * (p.width_slope * e + p.width_intercept) / step(c)
        };
        Self::from_g(&prep.g, l, m, &lines, flat, peak, widths.tau)
    }

    /// Groups of at most `flat(c)` channels where every column `rows` of G (L×M) is at most
    /// `tau` times its largest entry, at most `peak(c)` channels elsewhere (c: the group's
    /// first channel; widths below one channel count as one).
    pub fn from_g(
        g: &[f64],
        l: usize,
        m: usize,
        rows: &[usize],
        flat: impl Fn(usize) -> f64,
        peak: impl Fn(usize) -> f64,
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
            let width = if kind { peak(start) } else { flat(start) };
            if c == l || here != kind || (c - start) as f64 >= width.floor().max(1.0) {
                bounds.push(c);
                start = c;
                kind = here;
            }
        }
        ChannelGroups { bounds }
    }

    /// Number of groups L'.
    pub fn n_groups(&self) -> usize {
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
        let lg = self.n_groups();
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
        let mut out = vec![0.0; self.n_groups() * m];
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
    let (mut st, iterations) = joint_fit((prep, coarse), (grouped, agg), recipe, set)?;
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

    /// The generalised KL divergence of `img` from G·W·H with `prep`'s G.
    fn kl_of(prep: &Prepared<'_>, img: &SpectrumImage, w: &[f64], h: &[f64]) -> f64 {
        let (k, m) = (prep.k, prep.model.n_columns());
        let d = crate::fast::gw(&prep.g, w, img.channels, m, k);
        let pb = crate::fast::MapsProblem {
            y: img.as_ref(),
            d: &d,
            k,
            mu: &[],
            epsilon_reg: 1.0,
            lambda: 0.0,
            laplacian: edxs_core::solver::Laplacian::Identity,
            eps: 1e-14,
        };
        crate::fast::objective::objective(&pb, h).kl
    }

    /// `prep` with its G replaced (the fits' G, whose bremsstrahlung columns follow W).
    fn prep_with<'m>(prep: &Prepared<'m>, g: &[f64]) -> Prepared<'m> {
        let mut p = prep.clone();
        p.g = g.to_vec();
        p
    }

    fn groups_of(prep: &Prepared<'_>) -> ChannelGroups {
        ChannelGroups::for_model(prep, &GroupWidths::DEFAULT)
    }

    #[test]
    fn default_groups_cover_the_axis_and_follow_the_peak_width() {
        let spec = repro::paper_model_spec();
        let model = spec.model().unwrap();
        let prep = Prepared::new(&model, 3).unwrap();
        let groups = groups_of(&prep);
        let (l, m) = (model.n_channels(), model.n_columns());
        let b = &groups.bounds;
        assert_eq!((b[0], *b.last().unwrap()), (0, l));
        assert!(b.windows(2).all(|w| w[0] < w[1]), "{b:?}");
        assert!(
            groups.n_groups() < l / 8,
            "{} groups of {l} channels",
            groups.n_groups()
        );
        let p = model.params();
        let line_max: Vec<f64> = (0..m)
            .map(|j| (0..l).map(|c| prep.g[c * m + j]).fold(0.0, f64::max))
            .collect();
        let lines: Vec<usize> = (0..m).filter(|j| !prep.brems_rows.contains(j)).collect();
        let mut peak_groups = 0;
        for w in b.windows(2) {
            let on_peak = (w[0]..w[1]).any(|c| {
                lines
                    .iter()
                    .any(|&j| prep.g[c * m + j] > GroupWidths::DEFAULT.tau * line_max[j])
            });
            let (e, step) = (model.energy(w[0]), model.energy(1) - model.energy(0));
            let fwhm = p.width_slope * e + p.width_intercept;
            let most = if on_peak {
                peak_groups += 1;
                (0.5 * fwhm / step).floor().max(1.0)
            } else {
                (0.64 / step).floor()
            };
            assert!(
                (w[1] - w[0]) as f64 <= most,
                "group {w:?} at {e} keV: at most {most}"
            );
        }
        // Every line has its peak channels in narrow groups: Fe Kα (6.40 keV) is split.
        let fe = ((6.40 - model.energy(0)) / (model.energy(1) - model.energy(0))) as usize;
        let around = b.iter().filter(|&&x| x + 20 > fe && x < fe + 20).count();
        assert!(
            peak_groups > 20 && around >= 4,
            "{peak_groups} peak groups, {around} near Fe Kα"
        );
        // Wider detector peaks, wider groups: fewer of them.
        let mut wide = spec.clone();
        wide.base.width_slope *= 2.0;
        wide.base.width_intercept *= 2.0;
        let wide_model = wide.model().unwrap();
        let wide_prep = Prepared::new(&wide_model, 3).unwrap();
        let wide_groups = groups_of(&wide_prep);
        assert!(
            wide_groups.n_groups() < groups.n_groups(),
            "{} vs {}",
            wide_groups.n_groups(),
            groups.n_groups()
        );
    }

    #[test]
    fn the_spectra_stage_groups_channels_only_from_a_million_counts() {
        let spec = repro::paper_model_spec();
        let model = spec.model().unwrap();
        let prep = Prepared::new(&model, 3).unwrap();
        let set = RunSettings {
            max_iter: 200,
            tol: 1e-8,
            threads: 1,
            seed: 0,
            observe: None,
        };
        // 64² at 293 counts/pixel: 1.2 M counts; 32² at 293: 0.3 M.
        for (side, grouped) in [(64, true), (32, false)] {
            let data = repro::paper_dataset(side, 293.0, 42).unwrap();
            let total: f64 = data.image.values.iter().sum();
            assert_eq!(total >= GROUPS_MIN_COUNTS, grouped, "{total} counts");
            let (_, recipe, _, why) = crate::pipeline::default_recipe(&data.image, 0, 1);
            assert!(why.is_none(), "{why:?}");
            assert!(recipe.channel_groups.is_some());
            let fit = crate::pipeline::fit(
                &prep,
                &data.image,
                &recipe,
                &set,
                &mut SpectraCache::default(),
            )
            .unwrap();
            let n = fit.spectra_choice.unwrap().channel_groups;
            assert_eq!(n.is_some(), grouped, "{side}²: {n:?}");
            if let Some(n) = n {
                assert_eq!(n, groups_of(&prep).n_groups());
            }
        }
    }

    #[test]
    fn the_grouped_g_update_is_the_full_update_summed_over_the_groups() {
        let spec = repro::paper_model_spec();
        let model = spec.model().unwrap();
        let prep = Prepared::new(&model, 3).unwrap();
        let groups = groups_of(&prep);
        let m = model.n_columns();
        assert!(
            groups.n_groups() < prep.g.len() / m / 4,
            "{} groups",
            groups.n_groups()
        );
        let gp = prep.grouped(groups.clone());
        let w: Vec<f64> = (0..m * 3).map(|i| 0.01 + (i % 7) as f64 * 0.02).collect();
        let mut scratch = vec![0.0; model.scratch_len()];
        let full = &gp.groups.as_ref().unwrap().full;
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
        let full = &gp.groups.as_ref().unwrap().full;
        assert_eq!(full, &prep.g);
        // As the spectra stage fits it: a 64² map summed over 2×2 blocks.
        let data = repro::paper_dataset(64, 293.0, 42).unwrap();
        let binned = crate::pipeline::bin(&data.image, 2).unwrap().0;
        let img = &binned;
        let agg = gp.groups.as_ref().unwrap().groups.image(img).unwrap();
        let total = |v: &[f64]| v.iter().sum::<f64>();
        assert_eq!(total(&agg.values), total(&img.values));
        let mut sub = Recipe::espm(0.001, 0.0, 0.01, Start::Nndsvdar, 300);
        sub.loss_every = 10;
        let set = RunSettings {
            max_iter: 3000,
            tol: 1e-8,
            threads: 1,
            seed: 0,
            observe: None,
        };
        let (st, grouped_iter) = grouped_fit((&prep, &gp), (img, &agg), &sub, &set).unwrap();
        // The checked losses of the last run never rise.
        for pair in st.history.windows(2) {
            assert!(pair[1][0] <= pair[0][0], "{pair:?}");
        }
        let (full_st, full_iter, _) =
            fit_state(&prep, img, &sub, &set, &mut SpectraCache::default()).unwrap();
        // Nearly as good a fit of the full-resolution counts: with the grouped fit's W and
        // maps, the full-resolution divergence is within 1e-4 of the full-resolution fit's,
        // which minimises it (measured: 1.6e-5 higher).
        let (kl_g, kl_f) = (
            kl_of(&prep_with(&prep, &st.g), img, &st.w, &st.h),
            kl_of(&prep_with(&prep, &full_st.g), img, &full_st.w, &full_st.h),
        );
        eprintln!(
            "iterations: grouped {grouped_iter}, full {full_iter}; divergence {kl_g} vs {kl_f}"
        );
        assert!(
            kl_g <= kl_f * (1.0 + 1e-4),
            "grouped {kl_g}, full resolution {kl_f}"
        );
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
