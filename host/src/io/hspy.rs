//! HyperSpy `.hspy`/`.hdf5` spectrum images (behind the `hdf5` cargo feature, which needs the
//! system libhdf5).
//!
//! The layout HyperSpy (RosettaSciIO's hspy plugin, file format 1.2–3.3) writes:
//! `Experiments/<title>/data` (the array, navigation axes first; often chunked with gzip and
//! shuffle), `Experiments/<title>/axis-<i>` groups, one per array dimension in array order, with
//! attributes `size`, `offset`, `scale`, `name`, `units`, `navigate` (signal axes have
//! `navigate = false`; files from before 1.x keep them in `_list_<n>_axes/<i>` instead), and
//! `Experiments/<title>/metadata/...` (`mapped_parameters` before format 1.2) where every leaf
//! is an attribute of its parent group, except lists: a list of strings or numbers is a dataset
//! `_list_<key>` (strings as variable-length UTF-8), other lists a group `_list_<n>_<key>`.
//! `None` is stored as the string `"_None_"`, booleans as HDF5 enums {FALSE, TRUE}.

use super::loaded::Loaded;
use anyhow::Result;
use std::path::Path;

/// Why a build without the `hdf5` feature cannot open a HyperSpy file, and how to fix it.
pub const NO_HDF5: &str = "this edxs was built without HDF5 support, so it cannot read \
    HyperSpy .hspy/.hdf5 files; install the HDF5 library (Debian/Ubuntu: \
    `apt-get install libhdf5-dev pkg-config`) and rebuild with \
    `cargo build --release -p edxs --features hdf5`, or export the data from HyperSpy as .rpl \
    (s.save(\"data.rpl\")) or .npy";

/// Opens a HyperSpy file holding one spectrum image (rows × cols × channels, or pixels ×
/// channels with `shape`) with its energy axis and the EDS metadata found.
#[cfg(not(feature = "hdf5"))]
pub fn load(path: &Path, _shape: Option<(usize, usize)>) -> Result<Loaded> {
    anyhow::bail!("{}: {NO_HDF5}", path.display())
}

/// Opens a HyperSpy file holding one spectrum image (rows × cols × channels, or pixels ×
/// channels with `shape`) with its energy axis and the EDS metadata found.
#[cfg(feature = "hdf5")]
pub fn load(path: &Path, shape: Option<(usize, usize)>) -> Result<Loaded> {
    imp::load(path, shape)
}

#[cfg(feature = "hdf5")]
mod imp {
    use super::super::counts::SpectrumImage;
    use super::super::loaded::{take_off_angle_deg, Loaded};
    use anyhow::{bail, Context, Result};
    use h5::types::{FixedAscii, FixedUnicode, TypeDescriptor as TD, VarLenAscii, VarLenUnicode};
    use hdf5_metno as h5;
    use std::path::Path;

    /// Longest fixed-length string read in full; longer ones (never metadata we use) are cut.
    const FIXED: usize = 1024;

    /// One axis group's attributes.
    #[derive(Debug, Default)]
    struct Axis {
        size: Option<f64>,
        offset: Option<f64>,
        scale: Option<f64>,
        units: Option<String>,
        navigate: Option<bool>,
        kind: Option<String>,
        has_points: bool,
    }

    /// The element type class of a dataset or attribute.
    fn descriptor(c: &h5::Container) -> Result<TD> {
        Ok(c.dtype()?.to_descriptor()?)
    }

    /// All strings in a string attribute or dataset (scalar or 1-D); None if it is no string.
    fn strings(c: &h5::Container) -> Result<Option<Vec<String>>> {
        let td = descriptor(c)?;
        let v: Vec<String> = match td {
            TD::VarLenUnicode => c
                .read_raw::<VarLenUnicode>()?
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
            TD::VarLenAscii => c
                .read_raw::<VarLenAscii>()?
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
            TD::FixedAscii(_) => c
                .read_raw::<FixedAscii<FIXED>>()?
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
            TD::FixedUnicode(_) => c
                .read_raw::<FixedUnicode<FIXED>>()?
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
            _ => return Ok(None),
        };
        Ok(Some(v))
    }

    /// The attribute `name` of `loc`, also found under a name with stray spaces (exspy's
    /// `set_microscope_parameters` writes `"beam_energy "`).
    fn find_attr(loc: &h5::Location, name: &str) -> Result<Option<h5::Attribute>> {
        let names = loc.attr_names()?;
        let found = names
            .iter()
            .find(|n| n.as_str() == name)
            .or_else(|| names.iter().find(|n| n.trim() == name));
        Ok(match found {
            Some(n) => Some(loc.attr(n)?),
            None => None,
        })
    }

    /// A number stored as an attribute (any int/float, or a numeric string); None when absent
    /// or HyperSpy's `"_None_"`.
    fn number(loc: &h5::Location, name: &str, what: &str) -> Result<Option<f64>> {
        let Some(a) = find_attr(loc, name)? else {
            return Ok(None);
        };
        let place = format!("{what}: {}/{name}", loc.name().trim_start_matches('/'));
        match descriptor(&a)? {
            TD::Integer(_) | TD::Unsigned(_) | TD::Float(_) => {
                let v = a
                    .read_raw::<f64>()
                    .with_context(|| format!("{place}: unreadable"))?;
                match v.as_slice() {
                    [x] => Ok(Some(*x)),
                    _ => bail!("{place} holds {} values; expected one number", v.len()),
                }
            }
            TD::Boolean => bail!("{place} is a boolean; expected a number"),
            _ => match strings(&a)?.as_deref() {
                Some([s]) if s == "_None_" => Ok(None),
                Some([s]) => match s.trim().parse::<f64>() {
                    Ok(x) => Ok(Some(x)),
                    Err(_) => bail!("{place} is '{s}'; expected a number"),
                },
                _ => bail!("{place} has type {}; expected a number", descriptor(&a)?),
            },
        }
    }

    /// A string attribute; None when absent or `"_None_"`.
    fn text(loc: &h5::Location, name: &str) -> Result<Option<String>> {
        let Some(a) = find_attr(loc, name)? else {
            return Ok(None);
        };
        Ok(match strings(&a)?.as_deref() {
            Some([s]) if s != "_None_" => Some(s.clone()),
            _ => None,
        })
    }

    /// A boolean attribute (HDF5 bool enum or integer).
    fn boolean(loc: &h5::Location, name: &str) -> Result<Option<bool>> {
        let Some(a) = find_attr(loc, name)? else {
            return Ok(None);
        };
        Ok(match descriptor(&a)? {
            TD::Boolean => Some(a.read_scalar::<bool>()?),
            TD::Integer(_) | TD::Unsigned(_) => Some(a.read_scalar::<i64>()? != 0),
            _ => match strings(&a)?.as_deref() {
                Some([s]) => match s.as_str() {
                    "True" | "true" => Some(true),
                    "False" | "false" => Some(false),
                    _ => None,
                },
                _ => None,
            },
        })
    }

    /// The subgroup at `path` below `g`, if every step exists and is a group.
    fn subgroup(g: &h5::Group, path: &[&str]) -> Option<h5::Group> {
        let mut g = g.clone();
        for step in path {
            if !g.link_exists(step) {
                return None;
            }
            g = g.group(step).ok()?;
        }
        Some(g)
    }

    /// HyperSpy's list `key` of group `g`: a `_list_<key>` dataset, a `_list_<n>_<key>` group of
    /// items `0`, `1`, … (attributes or datasets), or an array attribute `key`.
    fn string_list(g: &h5::Group, key: &str, what: &str) -> Result<Option<Vec<String>>> {
        let place = format!("{what}: {}", g.name().trim_start_matches('/'));
        let ds_name = format!("_list_{key}");
        if g.link_exists(&ds_name) {
            let ds = g
                .dataset(&ds_name)
                .with_context(|| format!("{place}/{ds_name} is not a dataset"))?;
            return match strings(&ds)? {
                Some(v) => Ok(Some(v)),
                None => bail!(
                    "{place}/{ds_name} has type {}; expected strings",
                    descriptor(&ds)?
                ),
            };
        }
        let suffix = format!("_{key}");
        for name in g.member_names()? {
            let Some(rest) = name.strip_prefix("_list_") else {
                continue;
            };
            let Some(n) = rest.strip_suffix(&suffix) else {
                continue;
            };
            let Ok(n) = n.parse::<usize>() else {
                continue;
            };
            let lg = g.group(&name)?;
            let mut out = Vec::with_capacity(n);
            for i in 0..n {
                let item = i.to_string();
                let v = if let Some(s) = text(&lg, &item)? {
                    s
                } else if lg.link_exists(&item) {
                    let ds = lg.dataset(&item)?;
                    match strings(&ds)?.as_deref() {
                        Some([s]) => s.clone(),
                        _ => bail!("{place}/{name}/{item} is not a string"),
                    }
                } else {
                    bail!("{place}/{name} lacks item {item}");
                };
                out.push(v);
            }
            return Ok(Some(out));
        }
        if let Some(a) = find_attr(g, key)? {
            if let Some(v) = strings(&a)? {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    fn read_axis(g: &h5::Group, what: &str) -> Result<Axis> {
        Ok(Axis {
            size: number(g, "size", what)?,
            offset: number(g, "offset", what)?,
            scale: number(g, "scale", what)?,
            units: text(g, "units")?,
            navigate: boolean(g, "navigate")?,
            kind: text(g, "_type")?,
            has_points: g.link_exists("axis"),
        })
    }

    /// Factor turning the energy axis's units into keV; None for an axis without units, which
    /// is HyperSpy's uncalibrated default unless the signal is EDS (exspy then assumes keV).
    fn kev_per_unit(units: Option<&str>, is_eds: bool, place: &str) -> Result<Option<f64>> {
        match units.map(str::trim) {
            None | Some("" | "<undefined>" | "None") => Ok(is_eds.then_some(1.0)),
            Some("keV" | "kev" | "KeV") => Ok(Some(1.0)),
            Some("eV" | "ev") => Ok(Some(1e-3)),
            Some(u) => bail!("{place}: units '{u}' is not an energy unit (eV or keV)"),
        }
    }

    /// Values per slab read: 8 M (64 MB as f64), so that memory beyond the sparse counts stays
    /// bounded whatever the image size.
    const SLAB: usize = 1 << 23;

    /// How a `data` array is laid out, worked out once where the shape is read (the pixel
    /// count checked for overflow there) so that the slab reader takes it as one description:
    /// which axis holds the channels, which the pixels, and how many pixels they make.
    struct DataLayout {
        /// Dimensions, in array order.
        dims: Vec<usize>,
        /// The signal (energy) axis.
        signal: usize,
        /// The navigation (pixel) axes, in array order.
        nav: Vec<usize>,
        /// Product of the navigation dimensions.
        pixels: usize,
    }

    impl DataLayout {
        /// The layout of an array of dimensions `dims` whose signal axis is `signal` (an index
        /// into `dims`); None when the pixel count overflows.
        fn new(dims: &[usize], signal: usize) -> Option<Self> {
            let nav: Vec<usize> = (0..dims.len()).filter(|&i| i != signal).collect();
            let pixels = nav
                .iter()
                .try_fold(1usize, |a, &i| a.checked_mul(dims[i]))?;
            Some(DataLayout {
                dims: dims.to_vec(),
                signal,
                nav,
                pixels,
            })
        }
    }

    /// The counts of `data` (laid out as `layout` says) into the sparse form, read in slabs
    /// along the first navigation axis and converted to f64 by HDF5 slab by slab: a whole f64
    /// copy of the array never exists. The declared shape is checked against the memory plan
    /// first, since a compressed (or never written) dataset can declare far more values than
    /// its file holds.
    fn read_counts(
        data: &h5::Dataset,
        layout: &DataLayout,
        shape: Option<(usize, usize)>,
        what: &str,
        base: &str,
    ) -> Result<SpectrumImage> {
        let (dims, s, nav, pixels) = (
            &layout.dims[..],
            layout.signal,
            &layout.nav[..],
            layout.pixels,
        );
        let channels = dims[s];
        let outer = dims[nav[0]];
        // Values per index of the outer axis (pixels·channels / outer; outer ≥ 1 here).
        let per_outer = (pixels / outer.max(1)).saturating_mul(channels).max(1);
        let step = (SLAB / per_outer).clamp(1, outer.max(1));
        // The sparse counts take at most 12 bytes per value (f64 + u32 channel) and 8 per
        // pixel; a slab is read once as f64 and, with the channels not last, reordered once.
        crate::limits::need(
            &format!("reading {what} ({base}/data, shape {dims:?})"),
            crate::limits::total(&[
                crate::limits::bytes(dims, 12),
                crate::limits::bytes(&[pixels, 1], 8),
                crate::limits::bytes(&[step, per_outer], 16),
            ]),
        )?;
        let mut order: Vec<usize> = nav.to_vec();
        order.push(s);
        SpectrumImage::from_rows(what, pixels, channels, shape, |push| {
            let mut start = 0;
            while start < outer {
                let count = step.min(outer - start);
                let sel: Vec<h5::SliceOrIndex> = dims
                    .iter()
                    .enumerate()
                    .map(|(i, &n)| {
                        let (start, count) = if i == nav[0] { (start, count) } else { (0, n) };
                        h5::SliceOrIndex::SliceCount {
                            start,
                            step: 1,
                            count,
                            block: 1,
                        }
                    })
                    .collect();
                let slab = data
                    .read_slice::<f64, _, ndarray::IxDyn>(h5::Hyperslab::from(sel))
                    .with_context(|| format!("{what}: cannot read {base}/data"))?;
                // Pixel-major with the channels last: a view when they already are.
                let slab = slab.permuted_axes(ndarray::IxDyn(&order));
                let slab = slab.as_standard_layout();
                let values = slab
                    .as_slice()
                    .context("a standard-layout array is contiguous")?;
                for row in values.chunks_exact(channels) {
                    push(row)?;
                }
                start += count;
            }
            Ok(())
        })
    }

    pub(super) fn load(path: &Path, shape: Option<(usize, usize)>) -> Result<Loaded> {
        let what = path.display().to_string();
        let file =
            h5::File::open(path).with_context(|| format!("{what}: cannot open as an HDF5 file"))?;
        let Some(exps) = subgroup(&file, &["Experiments"]) else {
            bail!("{what}: no 'Experiments' group, so not a HyperSpy file");
        };
        let names: Vec<String> = exps
            .member_names()?
            .into_iter()
            .filter(|n| exps.group(n).is_ok())
            .collect();
        let name = match names.as_slice() {
            [one] => one.clone(),
            [] => bail!("{what}: the 'Experiments' group holds no signal"),
            many => bail!(
                "{what}: holds {} signals ({}); edxs reads files with one",
                many.len(),
                many.join(", ")
            ),
        };
        let exp = exps.group(&name)?;
        let base = format!("Experiments/{name}");
        if !exp.link_exists("data") {
            bail!("{what}: {base} has no 'data' dataset");
        }
        let data = exp
            .dataset("data")
            .with_context(|| format!("{what}: {base}/data is not a dataset"))?;
        let dims = data.shape();
        if !(2..=3).contains(&dims.len()) {
            bail!(
                "{what}: {base}/data has {} dimensions {dims:?}; expected rows x cols x channels \
                 or pixels x channels",
                dims.len()
            );
        }
        let td = descriptor(&data)?;
        if !matches!(td, TD::Integer(_) | TD::Unsigned(_) | TD::Float(_)) {
            bail!("{what}: {base}/data has type {td}; expected integer or float counts");
        }

        // Axes, in array order.
        let ndim = dims.len();
        let old_axes = format!("_list_{ndim}_axes");
        let mut axes = Vec::with_capacity(ndim);
        for i in 0..ndim {
            let g = subgroup(&exp, &[&format!("axis-{i}")])
                .or_else(|| subgroup(&exp, &[&old_axes, &i.to_string()]));
            axes.push(match g {
                Some(g) => read_axis(&g, &what)?,
                None => Axis::default(),
            });
        }
        for (i, (a, &n)) in axes.iter().zip(&dims).enumerate() {
            if let Some(s) = a.size {
                if s != n as f64 {
                    bail!("{what}: {base}/axis-{i} has size {s} but data dimension {i} is {n}");
                }
            }
        }
        let signal: Vec<usize> = (0..ndim)
            .filter(|&i| axes[i].navigate == Some(false))
            .collect();
        let s = match signal.as_slice() {
            [s] => *s,
            // Files without `navigate` attributes: a Signal1D's signal axis is the last one.
            [] if axes.iter().all(|a| a.navigate.is_none()) => ndim - 1,
            [] => bail!("{what}: {base} has no signal axis (every axis has navigate = true)"),
            many => bail!(
                "{what}: {base} has {} signal axes (axis-{}); expected a spectrum image with one \
                 energy axis",
                many.len(),
                many.iter()
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", axis-")
            ),
        };
        let e_axis = &axes[s];
        let e_place = format!("{what}: {base}/axis-{s}");
        if e_axis.has_points
            || e_axis
                .kind
                .as_deref()
                .is_some_and(|k| k != "UniformDataAxis")
        {
            bail!(
                "{e_place} is a non-uniform axis ({}); edxs needs a uniform energy axis",
                e_axis.kind.as_deref().unwrap_or("DataAxis")
            );
        }
        let md = subgroup(&exp, &["metadata"]).or_else(|| subgroup(&exp, &["mapped_parameters"]));
        let signal_type = match md.as_ref().and_then(|m| subgroup(m, &["Signal"])) {
            Some(g) => text(&g, "signal_type")?,
            None => None,
        };
        let is_eds = signal_type.is_some_and(|t| t.to_ascii_uppercase().contains("EDS"));
        let f = kev_per_unit(e_axis.units.as_deref(), is_eds, &e_place)?;
        let offset_kev = f.and_then(|f| e_axis.offset.map(|o| o * f));
        let scale_kev = f.and_then(|f| e_axis.scale.map(|x| x * f));

        let Some(layout) = DataLayout::new(&dims, s) else {
            bail!("{what}: {base}/data declares shape {dims:?}, whose pixel count overflows");
        };
        let (nav, pixels) = (&layout.nav, layout.pixels);
        let file_shape = (nav.len() == 2).then(|| (dims[nav[0]], dims[nav[1]]));
        let shape = match (file_shape, shape) {
            (Some(f), Some(g)) if f != g => bail!(
                "{what}: --shape {}x{} does not match the file's {}x{} pixels",
                g.0,
                g.1,
                f.0,
                f.1
            ),
            (Some(f), _) => Some(f),
            (None, Some((r, c))) if r.checked_mul(c) != Some(pixels) => bail!(
                "{what}: --shape {r}x{c} has {} pixels but the file has {pixels}",
                r as u128 * c as u128
            ),
            (None, g) => g,
        };
        let image = read_counts(&data, &layout, shape, &what, &base)?;

        // Metadata.
        let mut loaded = Loaded::bare(image);
        loaded.meta.offset_kev = offset_kev;
        loaded.meta.scale_kev = scale_kev;
        if let Some(md) = md {
            let instr = subgroup(&md, &["Acquisition_instrument", "TEM"])
                .or_else(|| subgroup(&md, &["Acquisition_instrument", "SEM"]))
                .or_else(|| subgroup(&md, &["TEM"]));
            if let Some(instr) = instr {
                loaded.meta.e0_kev = number(&instr, "beam_energy", &what)?;
                let eds = subgroup(&instr, &["Detector", "EDS"]);
                let stage = subgroup(&instr, &["Stage"]);
                let stage_num = |k: &str| -> Result<Option<f64>> {
                    match &stage {
                        Some(g) => number(g, k, &what),
                        None => Ok(None),
                    }
                };
                if let Some(eds) = eds {
                    loaded.meta.toa_deg = match number(&eds, "take_off_angle", &what)? {
                        Some(t) => Some(t),
                        None => match number(&eds, "elevation_angle", &what)? {
                            // HyperSpy's defaults for the other angles are 0.
                            Some(el) => Some(take_off_angle_deg(
                                match stage_num("tilt_alpha")? {
                                    Some(a) => a,
                                    None => number(&instr, "tilt_stage", &what)?.unwrap_or(0.0),
                                },
                                number(&eds, "azimuth_angle", &what)?.unwrap_or(0.0),
                                el,
                                stage_num("tilt_beta")?.unwrap_or(0.0),
                            )),
                            None => None,
                        },
                    };
                }
            }
            if let Some(sample) = subgroup(&md, &["Sample"]) {
                if let Some(el) = string_list(&sample, "elements", &what)? {
                    loaded.meta.elements = el
                        .iter()
                        .map(|e| e.trim().to_owned())
                        .filter(|e| !e.is_empty())
                        .collect();
                }
                loaded.meta.thickness_cm = number(&sample, "thickness", &what)?;
                loaded.meta.density = number(&sample, "density", &what)?;
            }
        }
        loaded.check(&what)?;
        Ok(loaded)
    }
}
