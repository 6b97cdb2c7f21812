//! Flags and parsers shared by several subcommands: the model options of every subcommand
//! that builds G (named after espm's parameters, mapped onto the plain [`ModelOptions`]),
//! `--energy-range` and `--shape`.

use crate::model_options::ModelOptions;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};

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

impl ModelArgs {
    /// The plain model options of these flags (`--compat` is a solver choice, read apart).
    pub fn options(&self) -> ModelOptions {
        ModelOptions {
            elements: self.elements.clone(),
            e0: self.e0,
            offset: self.offset,
            scale: self.scale,
            channels: self.channels,
            width_slope: self.width_slope,
            width_intercept: self.width_intercept,
            thickness: self.thickness,
            density: self.density,
            toa: self.toa,
            atomic_fraction: self.atomic_fraction,
            no_absorption: self.no_absorption,
            ignored: self.ignored.clone(),
            split: self.split.clone(),
            no_bremsstrahlung: self.no_bremsstrahlung,
        }
    }
}

/// The `--energy-range` option, shared by the subcommands that read spectrum images.
#[derive(Debug, Clone, Default, Args)]
pub struct EnergyRangeArgs {
    /// Keep the channels from LO to HI keV, e.g. 0.1:20 (either side may be left empty).
    /// Without a LO, channels at or below 0 keV and a detector noise peak below the lowest
    /// modelled line are dropped automatically.
    #[arg(
        long = "energy-range",
        value_name = "LO:HI",
        allow_hyphen_values = true
    )]
    pub energy_range: Option<String>,
}

/// Parses `--shape` "ROWSxCOLS".
pub fn parse_shape(s: &str) -> Result<(usize, usize)> {
    let (r, c) = s
        .split_once(['x', 'X'])
        .with_context(|| format!("--shape: expected ROWSxCOLS, got '{s}'"))?;
    let r: usize = r
        .trim()
        .parse()
        .with_context(|| format!("--shape: bad row count '{r}'"))?;
    let c: usize = c
        .trim()
        .parse()
        .with_context(|| format!("--shape: bad column count '{c}'"))?;
    if r == 0 || c == 0 {
        bail!("--shape: {r}x{c} has no pixel");
    }
    r.checked_mul(c)
        .with_context(|| format!("--shape: {r}x{c} pixels overflow"))?;
    Ok((r, c))
}
