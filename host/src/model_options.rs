//! The model options every command that builds G shares, named after espm's parameters, and
//! what a data file says about the acquisition: together they give the core's
//! [`ModelParams`]. Plain data; the command line's clap flags map onto [`ModelOptions`].

use anyhow::{bail, Context, Result};
use edxs_core::{Absorption, Compat, EdxsModel, Element, EnergyAxis, ModelParams};

/// The options that define the EDXS model G; None where the data file (then espm's default)
/// decides.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    /// Modelled elements, symbols or atomic numbers; empty: the data file's list.
    pub elements: Vec<String>,
    /// Beam energy in keV; selects the line table (100, 200 or 300) [default: file, else 200].
    pub e0: Option<f64>,
    /// Energy of the first channel, keV [default: file, else 0.2].
    pub offset: Option<f64>,
    /// Channel width, keV [default: file, else 0.01].
    pub scale: Option<f64>,
    /// Number of channels [default: the data's, else 1980].
    pub channels: Option<usize>,
    /// FWHM slope: FWHM(E) = width_slope·E + width_intercept.
    pub width_slope: f64,
    /// FWHM at 0 keV, keV.
    pub width_intercept: f64,
    /// Sample thickness in cm (absorption) [default: file, else 1e-5].
    pub thickness: Option<f64>,
    /// Sample density in g/cm³ [default: file, else estimated from the composition].
    pub density: Option<f64>,
    /// Take-off angle in degrees [default: file, else 22].
    pub toa: Option<f64>,
    /// Treat compositions as atomic fractions for absorption (espm's atomic_fraction).
    pub atomic_fraction: bool,
    /// Do not model absorption in the sample (espm's thickness 0).
    pub no_absorption: bool,
    /// Elements modelled line by line outside the simplex (e.g. Cu from the grid).
    pub ignored: Vec<String>,
    /// Elements whose lines are split into two columns at an energy, as "Pt=5.0".
    pub split: Vec<String>,
    /// Leave out the two bremsstrahlung columns.
    pub no_bremsstrahlung: bool,
}

impl Default for ModelOptions {
    /// Everything from the file or espm's defaults (FWHM 0.01·E + 0.065 keV).
    fn default() -> Self {
        ModelOptions {
            elements: Vec::new(),
            e0: None,
            offset: None,
            scale: None,
            channels: None,
            width_slope: 0.01,
            width_intercept: 0.065,
            thickness: None,
            density: None,
            toa: None,
            atomic_fraction: false,
            no_absorption: false,
            ignored: Vec::new(),
            split: Vec::new(),
            no_bremsstrahlung: false,
        }
    }
}

/// What a data file says about the acquisition (None where it says nothing); the options
/// override it.
///
/// Units: energies in keV (eV axes are converted by the readers), take-off angle in degrees,
/// thickness in cm (espm's convention: espm's `set_analysis_parameters(thickness=1e-5)` stores
/// `Sample.thickness` in cm and passes it unchanged to its absorption model), density in g/cm³.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileMeta {
    /// Energy of channel 0 in keV.
    pub offset_kev: Option<f64>,
    /// Channel width in keV.
    pub scale_kev: Option<f64>,
    /// Beam energy in keV.
    pub e0_kev: Option<f64>,
    /// Element symbols as the file lists them (HyperSpy's `Sample.elements`).
    pub elements: Vec<String>,
    /// Take-off angle in degrees, stored or computed from the detector and stage angles.
    pub toa_deg: Option<f64>,
    /// Sample thickness in cm.
    pub thickness_cm: Option<f64>,
    /// Sample density in g/cm³.
    pub density: Option<f64>,
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
    pub base: ModelParams<'static>,
}

fn parse_elements(what: &str, list: &[String]) -> Result<Vec<Element>> {
    list.iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| Element::parse(s).map_err(|e| anyhow::anyhow!("--{what}: {e}")))
        .collect()
}

impl ModelOptions {
    /// Parses and checks the options (the model itself validates the physics), filling what is
    /// not given from the file's metadata `meta` (of a file of `channels` channels, named
    /// `source` in messages), then from espm's defaults.
    pub fn spec(
        &self,
        meta: &FileMeta,
        channels: Option<usize>,
        source: &str,
    ) -> Result<ModelSpec> {
        let e0 = self.e0.or(meta.e0_kev).unwrap_or(200.0);
        // A value taken from the file is the file's fault: name it and the way around it,
        // rather than failing later as a bad model parameter.
        if let (None, Some(e)) = (self.e0, meta.e0_kev) {
            if edxs_tables::line_table(e).is_none() {
                bail!(
                    "{}: beam energy {e} keV in the file has no X-ray line table (tabulated: \
                     100, 200, 300 keV); give --e0 to override it",
                    source
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
        if let (None, Some(t), false) = (self.toa, meta.toa_deg, self.no_absorption) {
            if !toa_ok(t) {
                bail!(
                    "{}: take-off angle {t}° from the file's detector angles is outside \
                     (0, 90]; give --toa to override it (or --no-absorption)",
                    source
                );
            }
        }
        let axis = EnergyAxis {
            offset: self.offset.or(meta.offset_kev).unwrap_or(0.2),
            scale: self.scale.or(meta.scale_kev).unwrap_or(0.01),
            channels: self.channels.or(channels).unwrap_or(1980),
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
                    .map_err(|e| anyhow::anyhow!("{}: Sample.elements: {e}", source))?;
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
                    source,
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
                    format!("{}: density", source)
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
                thickness: self.thickness.or(meta.thickness_cm).unwrap_or(100e-7),
                density: self.density.or(meta.density),
                toa: self.toa.or(meta.toa_deg).unwrap_or(22.0),
                atomic_fraction: self.atomic_fraction,
            })
        };
        Ok(ModelSpec {
            elements,
            ignored,
            split,
            warnings,
            base: ModelParams {
                elements: &[],
                split: &[],
                ignored: &[],
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
        ModelParams {
            elements: &self.elements,
            split: &self.split,
            ignored: &self.ignored,
            ..self.base
        }
    }

    /// The validated model.
    pub fn model(&self) -> Result<EdxsModel<'_>> {
        EdxsModel::new(self.params()).map_err(|e| anyhow::anyhow!("model: {e}"))
    }
}
