//! What to simulate: the built-in paper set-up (spec §3.7) or a user TOML file.
//!
//! A phases file looks like
//!
//! ```toml
//! [model]                 # every key optional; espm's defaults otherwise
//! e0 = 200.0              # keV (100, 200 or 300)
//! offset = 0.3            # keV
//! scale = 0.01            # keV per channel
//! channels = 1980
//! width_slope = 0.01
//! width_intercept = 0.065
//! thickness = 1e-5        # cm; 0 = no absorption
//! density = 4.5           # g/cm³; omitted = estimated from the composition
//! toa = 35.0              # degrees
//! atomic_fraction = false
//! elements = ["O", "Fe"]  # elements to decompose with; default: all elements of the phases
//!
//! [[phase]]
//! name = "matrix"
//! composition = { Fe = 0.5, O = 0.5 }   # relative numbers of atoms, any scale
//! b0 = 3.0e-4
//! b1 = 6.0e-4
//! scale = 1.0             # continuum multiplier, default 1
//! density = 1.0           # count-rate multiplier, default 1
//! ```

use super::phases::{parse_element, PhaseSpec};
use anyhow::{bail, Context, Result};
use edxs_core::{Absorption, Compat, Element, EnergyAxis, ModelParams};
use serde::Deserialize;
use std::path::Path;

/// A simulation set-up: model, phases, and the elements a decomposition should model.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where it came from ("preset paper" or the file path).
    pub source: String,
    /// Axis, detector and absorption of the simulated spectra (element lists empty: the
    /// elements are `elements`).
    pub model: ModelParams<'static>,
    /// Elements to model when decomposing the result.
    pub elements: Vec<Element>,
    /// The phases; phase 0 is the matrix of particle maps.
    pub phases: Vec<PhaseSpec>,
}

/// The paper's compositions (Brg, Fp, CaPv), b0/b1 and count-rate multipliers (spec §3.7).
pub fn paper() -> SimConfig {
    let el = |s: &str| Element::parse(s).expect("paper preset element");
    let comp = |pairs: &[(&str, f64)]| pairs.iter().map(|(s, c)| (el(s), *c)).collect();
    let phase = |name: &str, c: Vec<(Element, f64)>, b0, b1, density| PhaseSpec {
        name: name.into(),
        composition: c,
        b0,
        b1,
        scale: 1.0,
        density,
    };
    let phases = vec![
        phase(
            "Brg",
            comp(&[
                ("Mg", 0.245),
                ("Fe", 0.035),
                ("Ca", 0.031),
                ("Si", 0.219),
                ("Al", 0.024),
                ("O", 0.436),
                ("Cu", 0.05),
                ("Hf", 0.01),
            ]),
            0.0003458,
            0.0006268,
            1.0,
        ),
        phase(
            "Fp",
            comp(&[("Mg", 0.522), ("Fe", 0.104), ("O", 0.374), ("Cu", 0.05)]),
            0.0001629,
            0.0009812,
            0.8,
        ),
        phase(
            "CaPv",
            comp(&[
                ("Mg", 0.020),
                ("Fe", 0.018),
                ("Ca", 0.188),
                ("Si", 0.173),
                ("Al", 0.010),
                ("O", 0.572),
                ("Ti", 0.004),
                ("Cu", 0.05),
                ("Sm", 0.007),
                ("Lu", 0.006),
                ("Nd", 0.006),
            ]),
            0.0007853,
            0.0003658,
            1.2,
        ),
    ];
    let elements = [
        "O", "Ca", "Si", "Fe", "Mg", "Al", "Cu", "Hf", "Ti", "Sm", "Lu", "Nd",
    ]
    .iter()
    .map(|s| el(s))
    .collect();
    SimConfig {
        source: "preset paper".into(),
        model: ModelParams {
            elements: &[],
            split: &[],
            ignored: &[],
            e0: 200.0,
            axis: EnergyAxis {
                offset: 0.3,
                scale: 0.01,
                channels: 1980,
                compat: Compat::Espm,
            },
            width_slope: 0.01,
            width_intercept: 0.065,
            absorption: Some(Absorption {
                thickness: 100e-7,
                density: Some(4.5),
                toa: 35.0,
                atomic_fraction: false,
            }),
            bremsstrahlung: true,
        },
        elements,
        phases,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileModel {
    #[serde(default = "d_e0")]
    e0: f64,
    #[serde(default = "d_offset")]
    offset: f64,
    #[serde(default = "d_scale")]
    scale: f64,
    #[serde(default = "d_channels")]
    channels: usize,
    #[serde(default = "d_width_slope")]
    width_slope: f64,
    #[serde(default = "d_width_intercept")]
    width_intercept: f64,
    #[serde(default = "d_thickness")]
    thickness: f64,
    density: Option<f64>,
    #[serde(default = "d_toa")]
    toa: f64,
    #[serde(default)]
    atomic_fraction: bool,
    elements: Option<Vec<String>>,
}

impl Default for FileModel {
    fn default() -> Self {
        FileModel {
            e0: d_e0(),
            offset: d_offset(),
            scale: d_scale(),
            channels: d_channels(),
            width_slope: d_width_slope(),
            width_intercept: d_width_intercept(),
            thickness: d_thickness(),
            density: None,
            toa: d_toa(),
            atomic_fraction: false,
            elements: None,
        }
    }
}

fn d_e0() -> f64 {
    200.0
}
fn d_offset() -> f64 {
    0.2
}
fn d_scale() -> f64 {
    0.01
}
fn d_channels() -> usize {
    1980
}
fn d_width_slope() -> f64 {
    0.01
}
fn d_width_intercept() -> f64 {
    0.065
}
fn d_thickness() -> f64 {
    100e-7
}
fn d_toa() -> f64 {
    22.0
}
fn d_one() -> f64 {
    1.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePhase {
    name: Option<String>,
    composition: toml::Table,
    b0: f64,
    b1: f64,
    #[serde(default = "d_one")]
    scale: f64,
    #[serde(default = "d_one")]
    density: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PhasesFile {
    #[serde(default)]
    model: FileModel,
    phase: Vec<FilePhase>,
}

/// Reads a phases file (format in the module documentation).
pub fn from_toml_file(path: &Path) -> Result<SimConfig> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    from_toml_str(&text, &path.display().to_string())
}

/// Parses a phases file's text; `source` names it in messages.
pub fn from_toml_str(text: &str, source: &str) -> Result<SimConfig> {
    let f: PhasesFile =
        toml::from_str(text).with_context(|| format!("{source}: invalid phases file"))?;
    let m = &f.model;
    let absorption = if m.thickness == 0.0 {
        None
    } else {
        Some(Absorption {
            thickness: m.thickness,
            density: m.density,
            toa: m.toa,
            atomic_fraction: m.atomic_fraction,
        })
    };
    let mut phases = Vec::with_capacity(f.phase.len());
    for (i, p) in f.phase.iter().enumerate() {
        let name = p.name.clone().unwrap_or_else(|| format!("phase{i}"));
        let mut composition = Vec::with_capacity(p.composition.len());
        for (k, v) in &p.composition {
            let el = parse_element(&format!("{source}: phase '{name}'"), k)?;
            let c = match v {
                toml::Value::Float(x) => *x,
                toml::Value::Integer(n) => *n as f64,
                other => bail!(
                    "{source}: phase '{name}': concentration of {k} must be a number, got {other}"
                ),
            };
            composition.push((el, c));
        }
        phases.push(PhaseSpec {
            name,
            composition,
            b0: p.b0,
            b1: p.b1,
            scale: p.scale,
            density: p.density,
        });
    }
    super::phases::validate(&phases).with_context(|| source.to_string())?;
    let elements = match &m.elements {
        Some(list) => list
            .iter()
            .map(|s| parse_element(&format!("{source}: model.elements"), s))
            .collect::<Result<Vec<_>>>()?,
        None => {
            let mut v: Vec<Element> = Vec::new();
            for p in &phases {
                for (e, c) in &p.composition {
                    if *c > 0.0 && !v.contains(e) {
                        v.push(*e);
                    }
                }
            }
            v
        }
    };
    if elements.is_empty() {
        bail!("{source}: model.elements is empty");
    }
    Ok(SimConfig {
        source: source.to_string(),
        model: ModelParams {
            elements: &[],
            split: &[],
            ignored: &[],
            e0: m.e0,
            axis: EnergyAxis {
                offset: m.offset,
                scale: m.scale,
                channels: m.channels,
                compat: Compat::Espm,
            },
            width_slope: m.width_slope,
            width_intercept: m.width_intercept,
            absorption,
            bremsstrahlung: true,
        },
        elements,
        phases,
    })
}
