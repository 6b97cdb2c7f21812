//! sklearn's NNDSVD initialisation (Boutsidis & Gallopoulos 2008) as `_initialize_nmf` does it.

use super::svd;
use crate::io::counts::SparseCountsRef;
use anyhow::Result;
use edxs_core::rng::Rng;

/// Which sklearn NNDSVD variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NndsvdVariant {
    /// Zeros stay zero (they then stay zero under multiplicative updates).
    Nndsvd,
    /// Zeros become mean(X), so multiplicative updates can move them.
    Nndsvda,
    /// Zeros become |mean(X)·N(0,1)/100|: small random values that break symmetry.
    Nndsvdar,
}

/// sklearn drops entries below this (`eps` of `_initialize_nmf`) before filling zeros.
const EPS: f64 = 1e-6;

/// sklearn `_initialize_nmf(X, k, init=variant)` with X = the L×P count matrix: returns
/// (W: L×K row-major, H: K×P row-major).
///
/// `seed` drives the randomised SVD and, for Nndsvdar, the small random fill of zeros. The SVD is
/// iterated to convergence, so W and H agree with sklearn's to rounding for any seed; Nndsvdar's
/// fill uses our own generator (W's zeros in row-major order, then H's, like sklearn) and is not
/// bit-compatible with NumPy's `RandomState`. Where sklearn divides 0 by 0 (a component whose
/// positive and negative parts both vanish, e.g. for an all-zero matrix) the component is set to
/// zero instead of NaN.
pub fn nndsvd(
    y: &SparseCountsRef<'_>,
    k: usize,
    variant: NndsvdVariant,
    seed: u64,
) -> Result<(Vec<f64>, Vec<f64>)> {
    y.validate()?;
    y.check_rank(k)?;
    let f = svd::factors(y, k, seed, &svd::SvdOptions::default())?;
    let (l, p) = (y.channels, y.pixels);
    let mut w = vec![0.0; l * k];
    let mut h = vec![0.0; k * p];
    // S was computed for scale·A; √(S/scale) folds the exact scale back in.
    let unscale = (1.0 / f.scale).sqrt();

    for j in 0..k {
        let x = f.u.column(j);
        let v = f.v.column(j);
        let (sign, sigma) = if j == 0 {
            // The leading pair of a non-negative matrix has one sign; |·| removes rounding noise.
            (None, 1.0)
        } else {
            let (xp, xn) = part_norms(x.iter());
            let (yp, yn) = part_norms(v.iter());
            let (mp, mn) = (xp * yp, xn * yn);
            if mp > mn {
                (Some((1.0, xp, yp)), mp)
            } else {
                (Some((-1.0, xn, yn)), mn)
            }
        };
        if sigma == 0.0 {
            continue;
        }
        let lbd = (f.s_scaled[j] * sigma).sqrt() * unscale;
        let (wx, wy) = match sign {
            None => (lbd, lbd),
            Some((_, nx, ny)) => (lbd / nx, lbd / ny),
        };
        let keep = |t: f64| match sign {
            None => t.abs(),
            Some((s, _, _)) => (s * t).max(0.0),
        };
        for (i, &t) in x.iter().enumerate() {
            w[i * k + j] = wx * keep(t);
        }
        for (dst, &t) in h[j * p..(j + 1) * p].iter_mut().zip(v.iter()) {
            *dst = wy * keep(t);
        }
    }

    for t in w.iter_mut().chain(h.iter_mut()) {
        if *t < EPS {
            *t = 0.0;
        }
    }

    match variant {
        NndsvdVariant::Nndsvd => {}
        NndsvdVariant::Nndsvda => {
            let avg = mean(y, f.scale);
            for t in w.iter_mut().chain(h.iter_mut()) {
                if *t == 0.0 {
                    *t = avg;
                }
            }
        }
        NndsvdVariant::Nndsvdar => {
            let avg = mean(y, f.scale);
            // A fresh generator from the same seed, as sklearn uses a fresh RandomState.
            let mut rng = Rng::new(seed);
            for t in w.iter_mut().chain(h.iter_mut()) {
                if *t == 0.0 {
                    *t = (avg * rng.normal() / 100.0).abs();
                }
            }
        }
    }
    Ok((w, h))
}

/// Norms of the positive part and of the negative part of a vector.
fn part_norms<'a>(x: impl Iterator<Item = &'a f64>) -> (f64, f64) {
    let (mut p, mut n) = (0.0, 0.0);
    for &t in x {
        if t > 0.0 {
            p += t * t;
        } else {
            n += t * t;
        }
    }
    (p.sqrt(), n.sqrt())
}

/// mean(X) over all L·P entries, summed on the scaled values so that it cannot overflow.
fn mean(y: &SparseCountsRef<'_>, scale: f64) -> f64 {
    let sum: f64 = y.values.iter().map(|v| v * scale).sum();
    sum / (y.channels as f64 * y.pixels as f64) / scale
}
