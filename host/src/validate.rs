//! Checks shared by every subcommand on what comes from files and options, so that bad or
//! degenerate input stops with one line naming it instead of a panic, a hang or a confident
//! answer computed from nothing.

use crate::io::counts::SpectrumImage;
use anyhow::{bail, Result};
use std::path::Path;

/// The first NaN or infinite value of `values` (flat index and value), named with `what`.
pub fn finite(what: &str, values: &[f64]) -> Result<()> {
    if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        bail!("{what}: value {i} (flat index) is {v}; every value must be finite");
    }
    Ok(())
}

/// Every dimension of `shape` must be at least 1; `names` says what each axis is.
pub fn non_empty(what: &str, shape: &[usize], names: &str) -> Result<()> {
    if shape.contains(&0) {
        bail!("{what}: shape {shape:?} ({names}) has an empty axis; nothing to work with");
    }
    Ok(())
}

/// Counts a decomposition into `k` phases can use: some counts in all, and at least `k` pixels
/// and `k` channels holding any, else every phase would be fitted to nothing.
pub fn counts(what: &str, data: &SpectrumImage, k: usize) -> Result<()> {
    let total: f64 = data.values.iter().sum();
    if !total.is_finite() {
        bail!("{what}: the counts add up to {total}; they must be finite");
    }
    if total < 1.0 {
        bail!(
            "{what}: holds {total:e} counts in all; a Poisson decomposition needs counts \
             (at least 1 in total), not {}",
            if total == 0.0 {
                "an empty image"
            } else {
                "rescaled values"
            }
        );
    }
    let pixels = data.indptr.windows(2).filter(|w| w[1] > w[0]).count();
    let mut seen = vec![false; data.channels];
    for &c in &data.indices {
        if let Some(s) = seen.get_mut(c as usize) {
            *s = true;
        }
    }
    let channels = seen.iter().filter(|s| **s).count();
    // K beyond the image's size is decompose's own error, with its own message.
    if k <= data.pixels.min(data.channels) && (pixels < k || channels < k) {
        bail!(
            "{what}: only {pixels} pixels and {channels} channels hold counts; {k} phases need \
             at least {k} of each"
        );
    }
    Ok(())
}

/// Everything `decompose` checks on loaded data before it allocates its factors: usable counts
/// and a memory plan for `m` model columns, `k` phases and `threads` workers.
pub fn decompose(
    input: &Path,
    data: &SpectrumImage,
    m: usize,
    k: usize,
    threads: usize,
) -> Result<()> {
    let what = input.display().to_string();
    counts(&what, data, k.max(1))?;
    crate::limits::decompose(
        &format!("decomposing {what} into {k} phases"),
        data.channels,
        m,
        k,
        data.pixels,
        threads,
    )
}
