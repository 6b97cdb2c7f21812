//! Where a run starts: G, W and H from NNDSVD, a random or a given start, W from the start's
//! spectra through G, and the bremsstrahlung anchor values.

use super::recipe::{Recipe, Start};
use super::Prepared;
use crate::init::{nndsvd, NndsvdVariant};
use crate::io::counts::SpectrumImage;
use anyhow::{anyhow, Result};
use edxs_core::rng::Rng;

/// Initial D (L×K) and H (K×P) for a start.
pub(super) fn start_dh(
    data: &SpectrumImage,
    start: &Start,
    k: usize,
    seed: u64,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let (l, p) = (data.channels, data.pixels);
    let variant = match start {
        Start::Nndsvd => NndsvdVariant::Nndsvd,
        Start::Nndsvda => NndsvdVariant::Nndsvda,
        _ => NndsvdVariant::Nndsvdar,
    };
    match start {
        Start::Random => {
            let mut d = vec![0.0; l * k];
            let mut h = vec![0.0; k * p];
            let mut rng = Rng::new(seed);
            edxs_core::init::random_start(data.mean(), &mut rng, &mut d, &mut h, k);
            Ok((d, h))
        }
        Start::Nndsvd | Start::Nndsvda | Start::Nndsvdar => {
            nndsvd(&data.as_ref(), k, variant, seed)
        }
        Start::Custom { .. } => Err(anyhow!("a custom start has no spectra to derive")),
    }
}

/// G, W and H at the start of a run (G empty, the identity, for plain KL-NMF).
pub(super) fn initial(
    prep: &Prepared<'_>,
    img: &SpectrumImage,
    recipe: &Recipe,
    seed: u64,
) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let (l, k, p) = (img.channels, prep.k, img.pixels);
    let g = if recipe.plain {
        Vec::new()
    } else {
        prep.g.clone()
    };
    if let Start::Custom { w, h } = &recipe.start {
        let m = if recipe.plain {
            l
        } else {
            prep.model.n_columns()
        };
        anyhow::ensure!(
            w.len() == m * k && h.len() == k * p,
            "the custom start has {} W and {} H entries, expected {m}x{k} and {k}x{p}",
            w.len(),
            h.len()
        );
        return Ok((g, floor(w.clone()), floor(h.clone())));
    }
    let (d, h) = start_dh(img, &recipe.start, k, seed)?;
    if recipe.plain {
        return Ok((g, floor(d), floor(h)));
    }
    let mut h = floor(h);
    let w = if recipe.compat_espm || recipe.simplex_h {
        // espm normalises only the element rows of the start (none with simplex_H).
        let m = prep.model.n_columns();
        let rows: &[usize] = if recipe.simplex_h { &[] } else { &prep.rows };
        let mut w = vec![0.0; m * k];
        let mut scratch = vec![0.0; edxs_core::init::physics_w_scratch_len(l, m, k)];
        use edxs_core::view::{MatMut, MatRef};
        MatRef::new("g", &prep.g, l, m)
            .and_then(|g| {
                let d = MatRef::new("d", &d, l, k)?;
                let w = MatMut::new("w", &mut w, m, k)?;
                edxs_core::init::physics_w(g, d, rows, 1e-14, w, &mut scratch)
            })
            .map_err(|e| anyhow!("initialisation: {e}"))?;
        w
    } else {
        physics_w(prep, &d, l, k)?
    };
    if recipe.simplex_h {
        for px in 0..p {
            let s: f64 = (0..k).map(|c| h[c * p + px]).sum();
            for c in 0..k {
                h[c * p + px] /= s;
            }
        }
    }
    Ok((g, w, h))
}

/// W (M×k) from spectra D (L×k), every column divided by the sum of its element rows.
pub(super) fn physics_w(prep: &Prepared<'_>, d: &[f64], l: usize, k: usize) -> Result<Vec<f64>> {
    crate::init::physics_w_whole_columns(&prep.g, d, l, prep.model.n_columns(), k, &prep.rows)
}

pub(super) fn floor(v: Vec<f64>) -> Vec<f64> {
    v.into_iter().map(|x| x.max(1e-14)).collect()
}

/// The b0 and b1 rows of W (row, value) that fit the mean spectrum with one component.
pub(super) fn brems_anchor(prep: &Prepared<'_>, img: &SpectrumImage) -> Result<Vec<(usize, f64)>> {
    let mean: Vec<f64> = img
        .sum_spectrum()
        .iter()
        .map(|v| v / img.pixels as f64)
        .collect();
    let w = physics_w(prep, &mean, img.channels, 1)?;
    Ok(prep.brems_rows.iter().map(|&r| (r, w[r])).collect())
}
