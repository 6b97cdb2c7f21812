//! Model options shared by every subcommand that builds G, named after espm's parameters.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use edxs_core::{Absorption, Compat, EdxsModel, Element, EnergyAxis, ModelParams};

/// Which reference behaviour to reproduce (`--compat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompatArg {
    /// espm 1.1.3 exactly: its model and its solver (bisection to 1e-5, its stopping rules).
    Espm,
    /// espm's model with edxs's solver: exact simplex solve, relative-change stopping that
    /// keeps the best iterate (the default of `decompose`).
    Edxs,
}

/// Command-line options that define the EDXS model G.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Modelled elements, comma separated symbols or atomic numbers (e.g. Fe,Pt,O); default:
    /// the data file's list.
    #[arg(long, value_delimiter = ',')]
    pub elements: Vec<String>,
    /// Beam energy in keV; selects the line table (100, 200 or 300) [default: file, else 200].
    #[arg(long)]
    pub e0: Option<f64>,
    /// Energy of the first channel, keV [default: file, else 0.2].
    #[arg(long)]
    pub offset: Option<f64>,
    /// Channel width, keV [default: file, else 0.01].
    #[arg(long)]
    pub scale: Option<f64>,
    /// Number of channels (default: 1980 for `model`, the data's for `decompose`).
    #[arg(long)]
    pub channels: Option<usize>,
    /// FWHM slope: FWHM(E) = width_slope·E + width_intercept.
    #[arg(long, default_value_t = 0.01)]
    pub width_slope: f64,
    /// FWHM at 0 keV, keV.
    #[arg(long, default_value_t = 0.065)]
    pub width_intercept: f64,
    /// Sample thickness in cm (absorption) [default: file, else 1e-5].
    #[arg(long)]
    pub thickness: Option<f64>,
    /// Sample density in g/cm³ [default: file, else estimated from the composition].
    #[arg(long)]
    pub density: Option<f64>,
    /// Take-off angle in degrees [default: file, else 22].
    #[arg(long)]
    pub toa: Option<f64>,
    /// Treat compositions as atomic fractions for absorption (espm's atomic_fraction).
    #[arg(long)]
    pub atomic_fraction: bool,
    /// Do not model absorption in the sample (espm's thickness 0).
    #[arg(long)]
    pub no_absorption: bool,
    /// Elements modelled line by line outside the simplex (e.g. Cu from the grid).
    #[arg(long, value_delimiter = ',')]
    pub ignored: Vec<String>,
    /// Split an element's lines into two columns at an energy, e.g. Pt=5.0 (repeatable).
    #[arg(long, value_delimiter = ',')]
    pub split: Vec<String>,
    /// Leave out the two bremsstrahlung columns.
    #[arg(long)]
    pub no_bremsstrahlung: bool,
    /// Reference behaviour: `espm` (espm 1.1.3 exactly) or `edxs` (espm's model, edxs's solver;
    /// the default of `decompose`). G is espm's in both.
    #[arg(long, value_enum)]
    pub compat: Option<CompatArg>,
}

/// Parsed element lists that a [`ModelParams`] can borrow.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    /// Modelled elements.
    pub elements: Vec<Element>,
    /// Ignored elements.
    pub ignored: Vec<Element>,
    /// Split elements with cut energies.
    pub split: Vec<(Element, f64)>,
    /// Notes for the user (e.g. elements dropped from the file's list).
    pub warnings: Vec<String>,
    /// Everything else, with empty element lists (filled by [`ModelSpec::params`]).
    pub base: ModelParamsOwned,
}

/// The scalar part of [`ModelParams`].
#[derive(Debug, Clone, Copy)]
pub struct ModelParamsOwned {
    /// Beam energy (keV).
    pub e0: f64,
    /// Energy axis.
    pub axis: EnergyAxis,
    /// FWHM slope.
    pub width_slope: f64,
    /// FWHM intercept (keV).
    pub width_intercept: f64,
    /// Absorption, if modelled.
    pub absorption: Option<Absorption>,
    /// Whether G has the bremsstrahlung columns.
    pub bremsstrahlung: bool,
}

fn parse_elements(what: &str, list: &[String]) -> Result<Vec<Element>> {
    list.iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| Element::parse(s).map_err(|e| anyhow::anyhow!("--{what}: {e}")))
        .collect()
}

/// What a data file says about the acquisition; command-line options override it.
#[derive(Debug, Clone, Default)]
pub struct FileMeta {
    /// Number of channels of the data.
    pub channels: Option<usize>,
    /// Energy of the first channel (keV).
    pub offset: Option<f64>,
    /// Channel width (keV).
    pub scale: Option<f64>,
    /// Beam energy (keV).
    pub e0: Option<f64>,
    /// Element symbols listed in the file.
    pub elements: Vec<String>,
    /// Take-off angle (degrees).
    pub toa: Option<f64>,
    /// Thickness (cm).
    pub thickness: Option<f64>,
    /// Density (g/cm³).
    pub density: Option<f64>,
    /// Name of the file, for messages.
    pub source: String,
}

impl ModelArgs {
    /// Parses and checks the options (the model itself validates the physics), filling what is
    /// not given from the file's metadata, then from espm's defaults.
    pub fn spec(&self, meta: &FileMeta) -> Result<ModelSpec> {
        let e0 = self.e0.or(meta.e0).unwrap_or(200.0);
        // A value taken from the file is the file's fault: name it and the way around it,
        // rather than failing later as a bad model parameter.
        if let (None, Some(e)) = (self.e0, meta.e0) {
            if edxs_tables::line_table(e).is_none() {
                bail!(
                    "{}: beam energy {e} keV in the file has no X-ray line table (tabulated: \
                     100, 200, 300 keV); give --e0 to override it",
                    meta.source
                );
            }
        }
        if let Some(e) = self.e0.filter(|e| edxs_tables::line_table(*e).is_none()) {
            bail!(
                "--e0 {e}: no X-ray line table for this beam energy (tabulated: 100, 200, 300 keV)"
            );
        }
        let toa_ok = |t: f64| t > 0.0 && t <= 90.0;
        if let (Some(t), false) = (self.toa, self.no_absorption) {
            if !toa_ok(t) {
                bail!("--toa {t}: the take-off angle must be in (0, 90] degrees");
            }
        }
        if let (None, Some(t), false) = (self.toa, meta.toa, self.no_absorption) {
            if !toa_ok(t) {
                bail!(
                    "{}: take-off angle {t}° from the file's detector angles is outside \
                     (0, 90]; give --toa to override it (or --no-absorption)",
                    meta.source
                );
            }
        }
        let axis = EnergyAxis {
            offset: self.offset.or(meta.offset).unwrap_or(0.2),
            scale: self.scale.or(meta.scale).unwrap_or(0.01),
            channels: self.channels.or(meta.channels).unwrap_or(1980),
            // Both --compat modes build espm's G; they differ in the solver only.
            compat: Compat::Espm,
        };
        let mut warnings = Vec::new();
        let elements = if !self.elements.is_empty() {
            parse_elements("elements", &self.elements)?
        } else {
            // Elements from the file that cannot be modelled on this axis are dropped, not fatal.
            let table = edxs_tables::line_table(e0);
            let mut kept = Vec::new();
            let mut dropped = Vec::new();
            for s in meta
                .elements
                .iter()
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
            {
                let el = Element::parse(s)
                    .map_err(|e| anyhow::anyhow!("{}: Sample.elements: {e}", meta.source))?;
                let has_line = table.is_some_and(|t| {
                    t.lines_of(el.z())
                        .iter()
                        .any(|l| axis.contains_line(l.energy))
                });
                if has_line || table.is_none() {
                    kept.push(el);
                } else {
                    dropped.push(el.symbol());
                }
            }
            if !dropped.is_empty() {
                warnings.push(format!(
                    "{}: dropped element(s) {} listed in the file: no X-ray line on the energy axis {:.3}..{:.3} keV",
                    meta.source,
                    dropped.join(", "),
                    axis.first(),
                    axis.last()
                ));
            }
            kept
        };
        if elements.is_empty() {
            bail!("--elements: no element given and the data file lists none");
        }
        let ignored = parse_elements("ignored", &self.ignored)?;
        let mut split = Vec::new();
        for s in self.split.iter().filter(|s| !s.trim().is_empty()) {
            let (el, cut) = s
                .split_once('=')
                .with_context(|| format!("--split: expected ELEMENT=keV, got '{s}'"))?;
            let el = Element::parse(el).map_err(|e| anyhow::anyhow!("--split: {e}"))?;
            let cut: f64 = cut
                .trim()
                .parse()
                .with_context(|| format!("--split: '{cut}' is not an energy in keV"))?;
            split.push((el, cut));
        }
        if let Some(d) = self.density.or(meta.density) {
            // Osmium, the densest element, is 22.6 g/cm³: anything far above is a typo or a
            // unit mistake, and absorption would silently zero every line.
            // (Zero, negative and NaN are the core's to name.)
            if d > 30.0 {
                let from = if self.density.is_some() {
                    "--density".to_string()
                } else {
                    format!("{}: density", meta.source)
                };
                let shown = if d >= 1e6 {
                    format!("{d:e}")
                } else {
                    format!("{d}")
                };
                bail!("{from} {shown} g/cm³ is outside (0, 30]: no sample is that dense");
            }
        }
        let absorption = if self.no_absorption {
            None
        } else {
            Some(Absorption {
                thickness: self.thickness.or(meta.thickness).unwrap_or(100e-7),
                density: self.density.or(meta.density),
                toa: self.toa.or(meta.toa).unwrap_or(22.0),
                atomic_fraction: self.atomic_fraction,
            })
        };
        Ok(ModelSpec {
            elements,
            ignored,
            split,
            warnings,
            base: ModelParamsOwned {
                e0,
                axis,
                width_slope: self.width_slope,
                width_intercept: self.width_intercept,
                absorption,
                bremsstrahlung: !self.no_bremsstrahlung,
            },
        })
    }
}

impl ModelSpec {
    /// The core parameters, borrowing the element lists.
    pub fn params(&self) -> ModelParams<'_> {
        let b = self.base;
        ModelParams {
            elements: &self.elements,
            split: &self.split,
            ignored: &self.ignored,
            e0: b.e0,
            axis: b.axis,
            width_slope: b.width_slope,
            width_intercept: b.width_intercept,
            absorption: b.absorption,
            bremsstrahlung: b.bremsstrahlung,
        }
    }

    /// The validated model.
    pub fn model(&self) -> Result<EdxsModel<'_>> {
        EdxsModel::new(self.params()).map_err(|e| anyhow::anyhow!("model: {e}"))
    }
}
