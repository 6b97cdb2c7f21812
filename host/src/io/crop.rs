//! The energy window a decomposition uses: `--energy-range LO:HI`, and the channels no model
//! can explain dropped automatically (at or below 0 keV, a detector noise peak at the start).
//!
//! Real files start below zero (Bruker axes at −0.47 keV) and carry the detector's noise peak
//! around 0 keV; espm's notebooks crop them by hand (`isig[0.1:20.0]`). Here every reader's
//! output goes through [`load`], so .npy (with `--offset/--scale`), Ripple and HyperSpy files
//! are cropped the same way. Channel `i` of a file is at `offset + i·scale` keV (the file's
//! own, HyperSpy, axis); the model then builds its axis on the kept channels as espm would on
//! the cropped signal (espm's `linspace` step included).

use super::counts::SpectrumImage;
use super::input;
use super::loaded::Loaded;
use crate::model_options::{ModelOptions, ModelSpec};
use anyhow::{bail, Result};
use std::path::Path;

/// Highest energy (keV) a detector noise peak is looked for at: the zero peak of an SDD is
/// centred at 0 keV with a FWHM of a few tens of eV, so its tail is gone well before this.
pub const NOISE_PEAK_MAX_KEV: f64 = 0.4;

/// A parsed `--energy-range`: bounds in keV, None where open.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct EnergyRange {
    /// Lowest energy kept (keV).
    pub lo: Option<f64>,
    /// Highest energy kept (keV).
    pub hi: Option<f64>,
}

/// Why two bounds do not make an [`EnergyRange`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EnergyRangeError {
    /// A bound is NaN or infinite.
    NotFinite {
        /// Whether it is the low bound (else the high one).
        low: bool,
        /// The value.
        value: f64,
    },
    /// The low bound is not below the high one.
    Empty {
        /// The low bound (keV).
        lo: f64,
        /// The high bound (keV).
        hi: f64,
    },
}

impl std::fmt::Display for EnergyRangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            EnergyRangeError::NotFinite { value, .. } => {
                write!(f, "{value} is not an energy in keV")
            }
            EnergyRangeError::Empty { lo, hi } => write!(
                f,
                "({lo}, {hi}) is empty: the low bound must be below the high one"
            ),
        }
    }
}

impl std::error::Error for EnergyRangeError {}

impl EnergyRange {
    /// The range `lo..hi` (keV, None where open) if both bounds are finite and `lo < hi`: the
    /// one check of `--energy-range` and of the Python binding's `energy_range`.
    pub fn checked(lo: Option<f64>, hi: Option<f64>) -> Result<Self, EnergyRangeError> {
        for (low, v) in [(true, lo), (false, hi)] {
            if let Some(value) = v.filter(|v| !v.is_finite()) {
                return Err(EnergyRangeError::NotFinite { low, value });
            }
        }
        if let (Some(lo), Some(hi)) = (lo, hi) {
            if lo >= hi {
                return Err(EnergyRangeError::Empty { lo, hi });
            }
        }
        Ok(EnergyRange { lo, hi })
    }

    /// Parses "LO:HI", ":HI" or "LO:" (keV); junk, non-finite and empty ranges are errors
    /// naming the value.
    pub fn parse(s: &str) -> Result<Self> {
        let Some((lo, hi)) = s.split_once(':') else {
            bail!("--energy-range: expected LO:HI in keV (e.g. 0.1:20), got '{s}'");
        };
        let (lo, hi) = (lo.trim(), hi.trim());
        let bound = |v: &str| -> Result<Option<f64>> {
            if v.is_empty() {
                return Ok(None);
            }
            match v.parse::<f64>() {
                Ok(x) => Ok(Some(x)),
                Err(_) => bail!("--energy-range {s}: '{v}' is not an energy in keV"),
            }
        };
        EnergyRange::checked(bound(lo)?, bound(hi)?).map_err(|e| match e {
            EnergyRangeError::NotFinite { low, .. } => {
                let v = if low { lo } else { hi };
                anyhow::anyhow!("--energy-range {s}: '{v}' is not an energy in keV")
            }
            EnergyRangeError::Empty { .. } => {
                anyhow::anyhow!("--energy-range {s} is empty: LO must be below HI")
            }
        })
    }
}

/// A loaded input with its channels cropped, and the model options to use with it.
#[derive(Debug, Clone)]
pub struct Cropped {
    /// The kept channels, with `offset_kev`/`scale_kev` describing them.
    pub loaded: Loaded,
    /// The model options with `--offset`/`--scale` set to the kept channels' axis (unchanged
    /// when nothing was cropped); build the model from these, not from the command line's.
    pub model: ModelOptions,
    /// First kept channel of the file.
    pub first_channel: usize,
    /// Energies of the first and last kept channels on the file's axis (keV); recorded in
    /// results as `energy_range_kev`. None when the axis is unknown and nothing was cropped.
    pub energy_range_kev: Option<[f64; 2]>,
    /// What was dropped and why, one line for the user (None when nothing was).
    pub note: Option<String>,
}

/// Loads `path` (see [`input::load`]) and crops it: the channels outside `range` (an
/// `--energy-range` value, "LO:HI" in keV), at or below
/// 0 keV, and (when `range` has no LO) a detector noise peak below the lowest modelled line.
pub fn load(
    path: &Path,
    shape: Option<(usize, usize)>,
    model: &ModelOptions,
    range: Option<&str>,
) -> Result<Cropped> {
    let loaded = input::load(path, shape)?;
    let range = range
        .map(EnergyRange::parse)
        .transpose()?
        .unwrap_or_default();
    crop(loaded, &path.display().to_string(), model, range)
}

/// Crops an already loaded input; `what` names it in messages.
pub fn crop(
    loaded: Loaded,
    what: &str,
    model: &ModelOptions,
    range: EnergyRange,
) -> Result<Cropped> {
    let l = loaded.image.channels;
    let offset = model.offset.or(loaded.meta.offset_kev);
    let scale = model.scale.or(loaded.meta.scale_kev);
    let (Some(offset), Some(scale)) = (offset, scale) else {
        // Without a calibrated axis only an explicit range needs one.
        if range != EnergyRange::default() {
            bail!("{what}: --energy-range needs the energy axis: the file has none, give --offset and --scale");
        }
        return Ok(unchanged(loaded, model));
    };
    if !(scale > 0.0 && scale.is_finite() && offset.is_finite()) {
        // The model reports a bad axis with its own message.
        return Ok(unchanged(loaded, model));
    }
    let energy = |i: usize| offset + i as f64 * scale;
    // A millionth of a channel of slack so that -0.47 + 47·0.01 counts as 0 keV and 0.1:20
    // keeps the channel printed as 0.100.
    let tiny = 1e-6 * scale;
    let lo_e = range.lo.unwrap_or(f64::NEG_INFINITY) - tiny;
    let hi_e = range.hi.unwrap_or(f64::INFINITY) + tiny;
    // espm's detector efficiency is tabulated on [dmin, dmax] only, and its G runs from the
    // first channel to one channel width past the last (its linspace stop): channels outside
    // cannot be modelled.
    let (dmin, dmax) = edxs_core::model::detector_range();
    let positive = |i: usize| energy(i) > tiny;
    let on_curve = |i: usize| energy(i) >= dmin && energy(i) + scale <= dmax;
    let in_range = |i: usize| energy(i) >= lo_e && energy(i) <= hi_e;
    let keep = |i: usize| positive(i) && on_curve(i) && in_range(i);
    let first = (0..l).find(|&i| keep(i));
    let last = (0..l).rev().find(|&i| keep(i));
    let (Some(mut first), Some(last)) = (first, last) else {
        let asked = match (range.lo, range.hi) {
            (None, None) => String::new(),
            (a, b) => format!(
                "--energy-range {}:{} ",
                a.map_or(String::new(), |v| v.to_string()),
                b.map_or(String::new(), |v| v.to_string())
            ),
        };
        bail!(
            "{what}: {asked}keeps no channel of the axis {:.3}..{:.3} keV that the model can use \
             (above 0 keV, on the detector curve {dmin:.3}..{dmax:.3} keV)",
            energy(0),
            energy(l - 1),
        );
    };
    let dropped =
        |f: &dyn Fn(usize) -> bool| (0..first).chain(last + 1..l).filter(|&i| f(i)).count();
    let nonpositive = dropped(&|i| !positive(i));
    let off_curve = dropped(&|i| positive(i) && !on_curve(i));
    let by_range = dropped(&|i| positive(i) && on_curve(i));
    let mut noise = None;
    if range.lo.is_none() {
        if let Some((cut, line)) = noise_peak_end(&loaded, model, first, last, &energy) {
            noise = Some((cut - first, line));
            first = cut;
        }
    }
    let n = last - first + 1;
    if n < 2 {
        bail!(
            "{what}: the energy range {:.3}..{:.3} keV keeps {n} channel; the model needs at least 2",
            energy(first),
            energy(last)
        );
    }
    let range_kev = [energy(first), energy(last)];
    if first == 0 && n == l {
        let mut c = unchanged(loaded, model);
        c.energy_range_kev = Some(range_kev);
        return Ok(c);
    }
    let mut why = Vec::new();
    if nonpositive > 0 {
        why.push(format!("{nonpositive} at or below 0 keV"));
    }
    if off_curve > 0 {
        why.push(format!(
            "{off_curve} off the detector efficiency curve ({dmin:.3}..{dmax:.3} keV)"
        ));
    }
    if let Some((dropped, line)) = &noise {
        why.push(format!(
            "{dropped} of the detector noise peak below the lowest modelled line ({line})"
        ));
    }
    if by_range > 0 {
        why.push(format!("{by_range} outside --energy-range"));
    }
    let note = format!(
        "{what}: kept channels {first}..{last} ({:.3}..{:.3} keV) of {l}; dropped {}",
        range_kev[0],
        range_kev[1],
        why.join(", ")
    );
    let mut out = model.clone();
    if out.channels == Some(l) {
        out.channels = None;
    }
    out.offset = Some(range_kev[0]);
    out.scale = Some(scale);
    let mut loaded = loaded;
    crop_channels_in_place(&mut loaded.image, first, n);
    loaded.meta.offset_kev = Some(range_kev[0]);
    loaded.meta.scale_kev = Some(scale);
    Ok(Cropped {
        loaded,
        model: out,
        first_channel: first,
        energy_range_kev: Some(range_kev),
        note: Some(note),
    })
}

impl Cropped {
    /// The model spec of the (cropped) file: [`Cropped::model`] filled from the file's
    /// metadata; `source` names the file in messages.
    pub fn spec(&self, source: &str) -> Result<ModelSpec> {
        let ld = &self.loaded;
        self.model.spec(&ld.meta, Some(ld.image.channels), source)
    }
}

fn unchanged(loaded: Loaded, model: &ModelOptions) -> Cropped {
    Cropped {
        loaded,
        model: model.clone(),
        first_channel: 0,
        energy_range_kev: None,
        note: None,
    }
}

/// Keeps the channels `first..first + n` of every pixel, moving the kept counts down in the
/// image's own buffers: a large image is not held twice.
pub fn crop_channels_in_place(img: &mut SpectrumImage, first: usize, n: usize) {
    let (lo, hi) = (first as u32, (first + n) as u32);
    let mut kept = 0;
    let mut start = 0;
    for p in 0..img.pixels {
        let end = img.indptr[p + 1];
        for i in start..end {
            let c = img.indices[i];
            if c >= lo && c < hi {
                img.indices[kept] = c - lo;
                img.values[kept] = img.values[i];
                kept += 1;
            }
        }
        start = end;
        img.indptr[p + 1] = kept;
    }
    img.indices.truncate(kept);
    img.values.truncate(kept);
    img.indices.shrink_to_fit();
    img.values.shrink_to_fit();
    img.channels = n;
}

/// The channels `first..first + n` of every pixel.
pub fn crop_channels(img: &SpectrumImage, first: usize, n: usize) -> SpectrumImage {
    let mut out = img.clone();
    crop_channels_in_place(&mut out, first, n);
    out
}

/// The first channel after a detector noise peak, if the summed spectrum between `first` and
/// one FWHM below the lowest modelled line (of at least 1 % of its element's strongest line;
/// and below [`NOISE_PEAK_MAX_KEV`]) falls from a
/// maximum to a minimum by more than Poisson noise can explain; with the line it was measured
/// against ("O Ka at 0.525 keV").
///
/// The continuum itself rises from 0 keV (absorption in the sample and the detector window),
/// so a fall at the start of the axis is the noise peak's tail.
fn noise_peak_end(
    loaded: &Loaded,
    model: &ModelOptions,
    first: usize,
    last: usize,
    energy: &dyn Fn(usize) -> f64,
) -> Option<(usize, String)> {
    // An unusable model is reported when it is built; here it only means no noise-peak check.
    let spec = model
        .spec(&loaded.meta, Some(loaded.image.channels), "")
        .ok()?;
    let table = edxs_tables::line_table(spec.base.e0)?;
    let (line_e, el, line) = spec
        .elements
        .iter()
        .chain(&spec.ignored)
        .flat_map(|el| {
            let lines = table.lines_of(el.z());
            let strongest = lines.iter().map(|ln| ln.cs).fold(0.0, f64::max);
            // Lines below 1 % of the element's strongest (Si L1M3 at 0.146 keV is 0.2 % of
            // Si Kα) would make any noise peak "a line".
            lines
                .iter()
                .filter(move |ln| ln.cs >= 0.01 * strongest)
                .map(move |ln| (ln.energy, el.symbol(), ln.iupac()))
        })
        .filter(|(e, _, _)| *e > 0.0 && *e >= energy(first) && *e <= energy(last))
        .min_by(|a, b| a.0.total_cmp(&b.0))?;
    let fwhm = model.width_slope * line_e + model.width_intercept;
    let top = (line_e - fwhm).min(NOISE_PEAK_MAX_KEV);
    let end = (first..=last).take_while(|&i| energy(i) < top).last()?;
    if end < first + 2 {
        return None;
    }
    let sum = loaded.image.sum_spectrum();
    let s = &sum[first..=end];
    // The minimum (last one of equal values), then the highest point before it.
    let (v, &min) = s
        .iter()
        .enumerate()
        .rev()
        .min_by(|a, b| a.1.total_cmp(b.1))?;
    let max = s[..v].iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // A fall of five standard deviations of the minimum's Poisson count, and at least twice it.
    let significant = max > 2.0 * min && max - min > 5.0 * (min + 1.0).sqrt();
    if v == 0 || !significant {
        return None;
    }
    Some((first + v, format!("{el} {line} at {line_e:.3} keV")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(extra: &[(&str, f64)]) -> ModelOptions {
        let mut m = ModelOptions {
            elements: vec!["O".into(), "Fe".into()],
            ..ModelOptions::default()
        };
        for &(k, v) in extra {
            match k {
                "offset" => m.offset = Some(v),
                "scale" => m.scale = Some(v),
                "channels" => m.channels = Some(v as usize),
                _ => unreachable!("{k}"),
            }
        }
        m
    }

    /// `pixels` identical spectra with `f(E)` counts at channel energies `offset + i·scale`.
    fn image(offset: f64, scale: f64, l: usize, f: impl Fn(f64) -> f64) -> Loaded {
        let row: Vec<f64> = (0..l)
            .map(|i| f(offset + i as f64 * scale).round())
            .collect();
        let data: Vec<f64> = (0..4).flat_map(|_| row.clone()).collect();
        let mut ld =
            Loaded::bare(SpectrumImage::from_dense("t", &data, 4, l, Some((2, 2))).unwrap());
        ld.meta.offset_kev = Some(offset);
        ld.meta.scale_kev = Some(scale);
        ld
    }

    #[test]
    fn parses_ranges_and_names_bad_ones() {
        assert_eq!(
            EnergyRange::parse("0.1:20").unwrap(),
            EnergyRange {
                lo: Some(0.1),
                hi: Some(20.0)
            }
        );
        assert_eq!(
            EnergyRange::parse(":5").unwrap(),
            EnergyRange {
                lo: None,
                hi: Some(5.0)
            }
        );
        assert_eq!(
            EnergyRange::parse("-0.2:").unwrap(),
            EnergyRange {
                lo: Some(-0.2),
                hi: None
            }
        );
        for (bad, want) in [
            ("abc", "expected LO:HI in keV (e.g. 0.1:20), got 'abc'"),
            ("1:x", "--energy-range 1:x: 'x' is not an energy in keV"),
            ("nan:2", "'nan' is not an energy"),
            ("5:2", "--energy-range 5:2 is empty"),
            ("2:2", "--energy-range 2:2 is empty"),
        ] {
            let e = EnergyRange::parse(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn checked_bounds_name_the_bad_value() {
        assert_eq!(
            EnergyRange::checked(Some(0.1), None),
            Ok(EnergyRange {
                lo: Some(0.1),
                hi: None
            })
        );
        assert_eq!(
            EnergyRange::checked(Some(1.0), Some(f64::INFINITY)),
            Err(EnergyRangeError::NotFinite {
                low: false,
                value: f64::INFINITY
            })
        );
        let e = EnergyRange::checked(Some(f64::NAN), Some(2.0)).unwrap_err();
        assert!(
            matches!(e, EnergyRangeError::NotFinite { low: true, .. }),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "NaN is not an energy in keV");
        let e = EnergyRange::checked(Some(3.0), Some(3.0)).unwrap_err();
        assert_eq!(e, EnergyRangeError::Empty { lo: 3.0, hi: 3.0 });
        assert!(e.to_string().contains("(3, 3) is empty"), "{e}");
    }

    #[test]
    fn drops_nonpositive_channels_and_the_noise_peak_but_not_a_rising_continuum() {
        // A zero peak (FWHM 118 eV) on a continuum rising from 0 keV, O Ka at 0.525 keV.
        let zero = |e: f64| 5000.0 * (-0.5 * (e / 0.05f64).powi(2)).exp();
        let cont = |e: f64| {
            if e > 0.0 {
                50.0 * (1.0 - (-e / 0.3).exp())
            } else {
                0.0
            }
        };
        let ld = image(-0.47, 0.01, 4096, |e| zero(e) + cont(e));
        let c = crop(ld, "t", &model(&[]), EnergyRange::default()).unwrap();
        // Channel 47 is at 0 keV (offset -0.47 + 47·0.01), so 48 channels are at or below it.
        let first = c.first_channel;
        let e_first = -0.47 + first as f64 * 0.01;
        assert!(first > 57, "kept from {first}");
        assert!(
            zero(e_first) < 0.1 * cont(e_first),
            "noise peak left at {e_first} keV: {} over {}",
            zero(e_first),
            cont(e_first)
        );
        assert!(e_first < 0.525 - 0.07, "cut into O Ka: {e_first}");
        assert_eq!(c.loaded.image.channels, 4096 - first);
        assert_eq!(c.model.offset, Some(e_first));
        assert_eq!(c.loaded.meta.offset_kev, Some(e_first));
        let note = c.note.unwrap();
        assert!(
            note.contains("48 at or below 0 keV, 9 off the detector efficiency curve"),
            "{note}"
        );
        assert!(
            note.contains("noise peak below the lowest modelled line (O"),
            "{note}"
        );
        assert_eq!(note.lines().count(), 1);
        // The counts moved with their channels.
        let orig: Vec<f64> = (0..4096)
            .map(|i| (zero(-0.47 + i as f64 * 0.01) + cont(-0.47 + i as f64 * 0.01)).round())
            .collect();
        let sum = c.loaded.image.sum_spectrum();
        for (i, v) in sum.iter().enumerate() {
            assert_eq!(*v, 4.0 * orig[first + i], "channel {i}");
        }

        // Without the noise peak only the channels the model cannot use go (0.1 keV is the
        // first on the detector curve).
        let ld = image(-0.47, 0.01, 4096, cont);
        let c = crop(ld, "t", &model(&[]), EnergyRange::default()).unwrap();
        assert_eq!(c.first_channel, 57);
        assert!(!c.note.unwrap().contains("noise"));

        // An explicit LO is taken as given (no noise-peak search), HI cuts the top.
        let ld = image(-0.47, 0.01, 4096, |e| zero(e) + cont(e));
        let r = EnergyRange::parse("0.1:20").unwrap();
        let c = crop(ld, "t", &model(&[]), r).unwrap();
        assert_eq!(c.first_channel, 57);
        let [lo, hi] = c.energy_range_kev.unwrap();
        assert!(
            (lo - 0.1).abs() < 1e-9 && (hi - 20.0).abs() < 1e-9,
            "{lo}..{hi}"
        );
        assert_eq!(c.loaded.image.channels, 1991);
    }

    #[test]
    fn a_positive_axis_without_range_is_left_alone() {
        let ld = image(0.2, 0.01, 1980, |e| 10.0 + e);
        let c = crop(ld, "t", &model(&[]), EnergyRange::default()).unwrap();
        assert!(c.note.is_none());
        assert_eq!(c.loaded.image.channels, 1980);
        assert_eq!(c.model.offset, None);
    }

    #[test]
    fn command_line_axis_is_used_and_ranges_off_the_data_are_refused() {
        let mut ld = image(0.0, 0.01, 100, |_| 3.0);
        ld.meta.offset_kev = None;
        ld.meta.scale_kev = None;
        let m = model(&[("offset", -0.5), ("scale", 0.02), ("channels", 100.0)]);
        let c = crop(ld.clone(), "t", &m, EnergyRange::default()).unwrap();
        // -0.5 + 25·0.02 = 0: channels 0..=25 dropped, and 26..=29 below the detector curve.
        assert_eq!(c.first_channel, 30);
        assert_eq!(c.model.channels, None);
        assert!((c.model.offset.unwrap() - 0.1).abs() < 1e-12);
        let e = crop(ld.clone(), "t", &m, EnergyRange::parse("3:4").unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--energy-range 3:4 keeps no channel of the axis -0.500..1.480 keV"),
            "{e}"
        );
        let e = crop(
            ld.clone(),
            "t",
            &model(&[]),
            EnergyRange::parse("1:2").unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("needs the energy axis"), "{e}");
    }
}
