//! Phase spectra from compositions, as espm's `EDXS.generate_phases` (spec §3.1).
//!
//! The characteristic part of a phase is Σ_elt c_elt·κ_elt, the columns of G weighted by the
//! concentrations (G's common divisor cancels when the part is normalised to sum 1). The
//! continuum is `scale·(b0·B0 + b1·B1)` with absorption for the average composition of all
//! phases: G's bremsstrahlung columns recomputed for that mixture and multiplied back by
//! their divisors. Each phase is finally normalised to sum 1.

use anyhow::{bail, Context, Result};
use edxs_core::{EdxsModel, Element, ModelParams};

/// One phase to simulate (espm's phase dictionary plus its count-rate multiplier).
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseSpec {
    /// Name shown in reports.
    pub name: String,
    /// Elements with their relative number of atoms (any scale; espm's `elements_dict`).
    pub composition: Vec<(Element, f64)>,
    /// Bremsstrahlung amplitude of the B0 shape.
    pub b0: f64,
    /// Bremsstrahlung amplitude of the B1 shape.
    pub b1: f64,
    /// Multiplier of the whole continuum (espm's `scale`).
    pub scale: f64,
    /// Count-rate multiplier of the phase (espm's "densities", not g/cm³).
    pub density: f64,
}

/// Simulated phase spectra with what went into them.
#[derive(Debug, Clone)]
pub struct PhaseSet {
    /// K×L spectra, each row summing to 1.
    pub spectra: Vec<f64>,
    /// Channels L.
    pub channels: usize,
    /// Elements present in some phase (c > 0), in order of first appearance.
    pub elements: Vec<Element>,
    /// The average composition used for the continuum's absorption (sums to 1).
    pub absorption_mix: Vec<(Element, f64)>,
    /// Share of each phase's counts in the continuum (before the final normalisation).
    pub continuum_share: Vec<f64>,
}

/// Checks a phase list: names, finite non-negative numbers, no duplicate element.
pub fn validate(phases: &[PhaseSpec]) -> Result<()> {
    if phases.is_empty() {
        bail!("no phase given");
    }
    for (i, p) in phases.iter().enumerate() {
        let who = format!("phase {i} ('{}')", p.name);
        if p.composition.is_empty() {
            bail!("{who}: empty composition");
        }
        for (j, (el, c)) in p.composition.iter().enumerate() {
            if !(*c >= 0.0 && c.is_finite()) {
                bail!("{who}: concentration of {el} is {c}; it must be finite and >= 0");
            }
            if p.composition[..j].iter().any(|(e, _)| e == el) {
                bail!("{who}: {el} appears twice in the composition");
            }
        }
        if !(p.composition.iter().map(|(_, c)| c).sum::<f64>() > 0.0) {
            bail!("{who}: all concentrations are zero");
        }
        for (what, v) in [("b0", p.b0), ("b1", p.b1), ("scale", p.scale)] {
            if !(v >= 0.0 && v.is_finite()) {
                bail!("{who}: {what} is {v}; it must be finite and >= 0");
            }
        }
        if !(p.density > 0.0 && p.density.is_finite()) {
            bail!(
                "{who}: density (count-rate multiplier) is {}; it must be finite and > 0",
                p.density
            );
        }
    }
    Ok(())
}

/// The spectra of `phases` on the axis and detector of `model` (its bremsstrahlung flag,
/// ignored and split lists play no part), as espm's `generate_phases`.
pub fn generate_phases(model: &ModelParams<'_>, phases: &[PhaseSpec]) -> Result<PhaseSet> {
    validate(phases)?;
    // espm sums the compositions element-wise (Counter addition drops totals <= 0), then
    // divides by the grand total.
    let mut mix: Vec<(Element, f64)> = Vec::new();
    for p in phases {
        for &(el, c) in &p.composition {
            match mix.iter_mut().find(|(e, _)| *e == el) {
                Some((_, t)) => *t += c,
                None => mix.push((el, c)),
            }
        }
    }
    mix.retain(|(_, t)| *t > 0.0);
    let total: f64 = mix.iter().map(|(_, t)| t).sum();
    let mix: Vec<(Element, f64)> = mix.into_iter().map(|(e, t)| (e, t / total)).collect();
    let elements: Vec<Element> = mix.iter().map(|(e, _)| *e).collect();

    let params = ModelParams {
        elements: &elements,
        split: &[],
        ignored: &[],
        e0: model.e0,
        axis: model.axis,
        width_slope: model.width_slope,
        width_intercept: model.width_intercept,
        absorption: model.absorption,
        bremsstrahlung: true,
    };
    let edxs = EdxsModel::new(params)
        .map_err(|e| anyhow::anyhow!("simulation model (elements {}): {e}", symbols(&elements)))?;
    let (l, m) = (edxs.n_channels(), edxs.n_columns());
    let mut g = vec![0.0; edxs.g_len()];
    let mut scratch = vec![0.0; edxs.scratch_len()];
    let norm = edxs
        .build_g(&mut g, &mut scratch)
        .map_err(|e| anyhow::anyhow!("simulation model: {e}"))?;
    // One component whose element rows are the mixture: update_bremsstrahlung then evaluates
    // the continuum's absorption for exactly espm's c_abs.
    let mut w = vec![0.0; m];
    for (j, (_, c)) in mix.iter().enumerate() {
        w[j] = *c;
    }
    edxs.update_bremsstrahlung(&norm, &w, 1, &mut g, &mut scratch)
        .map_err(|e| anyhow::anyhow!("simulation continuum: {e}"))?;
    let b0_raw: Vec<f64> = g
        .chunks_exact(m)
        .map(|r| r[m - 2] * norm.raw_divisor(m - 2, m, true))
        .collect();
    let b1_raw: Vec<f64> = g
        .chunks_exact(m)
        .map(|r| r[m - 1] * norm.raw_divisor(m - 1, m, true))
        .collect();

    let mut spectra = vec![0.0; phases.len() * l];
    let mut continuum_share = Vec::with_capacity(phases.len());
    for (p, out) in phases.iter().zip(spectra.chunks_exact_mut(l)) {
        for &(el, c) in &p.composition {
            let Some(j) = elements.iter().position(|e| *e == el) else {
                continue; // zero in every phase: contributes nothing
            };
            for (o, row) in out.iter_mut().zip(g.chunks_exact(m)) {
                *o += c * row[j];
            }
        }
        let sum: f64 = out.iter().sum();
        if !(sum > 0.0 && sum.is_finite()) {
            bail!(
                "phase '{}': its characteristic spectrum is empty on this axis",
                p.name
            );
        }
        out.iter_mut().for_each(|v| *v /= sum);
        let mut cont = 0.0;
        for (i, o) in out.iter_mut().enumerate() {
            let c = (p.b0 * b0_raw[i] + p.b1 * b1_raw[i]) * p.scale;
            cont += c;
            *o += c;
        }
        let total: f64 = out.iter().sum();
        if let Some(i) = out.iter().position(|v| !(*v >= 0.0 && v.is_finite())) {
            bail!(
                "phase '{}': spectrum is {} at channel {i} ({:.4} keV); the continuum is \
                 negative above E0 or the parameters overflow",
                p.name,
                out[i],
                edxs.energy(i)
            );
        }
        out.iter_mut().for_each(|v| *v /= total);
        continuum_share.push(cont / total);
    }
    Ok(PhaseSet {
        spectra,
        channels: l,
        elements,
        absorption_mix: mix,
        continuum_share,
    })
}

/// Comma-separated symbols.
pub fn symbols(elements: &[Element]) -> String {
    elements
        .iter()
        .map(|e| e.symbol())
        .collect::<Vec<_>>()
        .join(",")
}

/// Parses "Fe" or "26" into an element, naming `what` in the error.
pub fn parse_element(what: &str, s: &str) -> Result<Element> {
    Element::parse(s)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("{what}: '{s}' is not an element"))
}
