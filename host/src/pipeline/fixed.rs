//! W entries imposed during a fit ([`FixW`](super::FixW)) as the solver's fixed-W matrix.

use super::recipe::FixW;
use super::Prepared;
use anyhow::Result;

/// The fixed-W matrix of `fix` (None when nothing is imposed), with the start `w` made to
/// agree with it.
pub(super) fn fixed_w(
    prep: &Prepared<'_>,
    fix: &FixW,
    w: &mut [f64],
    m: usize,
    espm: bool,
) -> Result<Option<Vec<f64>>> {
    let k = prep.k;
    let fixed = match fix {
        FixW::None => return Ok(None),
        FixW::Given(f) => {
            anyhow::ensure!(
                f.len() == m * k,
                "fixed W has {} entries, expected {}",
                f.len(),
                m * k
            );
            f.clone()
        }
        FixW::ZeroWhereLeast { row, against } => {
            anyhow::ensure!(*row < m, "fixed row {row} is outside W");
            let ratio = |c: usize| {
                let s: f64 = against.iter().map(|&r| w[r * k + c]).sum();
                w[row * k + c] / (s + 1e-12)
            };
            let least = (0..k)
                .min_by(|&a, &b| ratio(a).total_cmp(&ratio(b)))
                .unwrap_or(0);
            let mut f = vec![-1.0; m * k];
            f[row * k + least] = 0.0;
            f
        }
    };
    if espm {
        // espm imposes the entries after each update and leaves the start as it is.
        return Ok(Some(fixed));
    }
    for (wv, fv) in w.iter_mut().zip(&fixed) {
        if *fv >= 0.0 {
            *wv = *fv;
        }
    }
    // The start must satisfy the simplex the solver keeps (components without imposed
    // entries already do).
    for c in (0..k).filter(|&c| prep.rows.iter().any(|&r| fixed[r * k + c] >= 0.0)) {
        let s: f64 = prep.rows.iter().map(|&r| w[r * k + c]).sum();
        let imposed: f64 = prep
            .rows
            .iter()
            .filter(|&&r| fixed[r * k + c] >= 0.0)
            .map(|&r| fixed[r * k + c])
            .sum();
        let free = s - imposed;
        if free > 0.0 && imposed < 1.0 {
            for &r in &prep.rows {
                if fixed[r * k + c] < 0.0 {
                    w[r * k + c] = w[r * k + c] / free * (1.0 - imposed);
                }
            }
        }
    }
    Ok(Some(fixed))
}
