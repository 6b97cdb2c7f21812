//! Quantification from W: atomic percent per phase and espm's counting error.

use edxs_core::EdxsModel;

/// One element's share in one phase.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Share {
    /// Element symbol.
    pub element: String,
    /// Atomic percent (element rows of the phase renormalised to 100).
    pub at_percent: f64,
    /// Weight percent from the atomic masses.
    pub wt_percent: f64,
    /// espm's "std (%)": 100/√N with N the counts the element's column explains in this phase;
    /// None where it explains too few for a counting error to mean anything (N < 10⁻⁴: espm
    /// prints inf there, which no output file of edxs may hold).
    pub std_percent: Option<f64>,
}

/// At.%, wt.% and counting error of every phase: `w` is M×K, `g` L×M, `h` K×P (row-major).
pub fn quantify(
    model: &EdxsModel<'_>,
    g: &[f64],
    w: &[f64],
    h: &[f64],
    k: usize,
) -> Vec<Vec<Share>> {
    let m = model.n_columns();
    let p = h.len() / k.max(1);
    let colsum_g: Vec<f64> = (0..m)
        .map(|j| g.chunks_exact(m).map(|r| r[j]).sum())
        .collect();
    let rowsum_h: Vec<f64> = (0..k).map(|c| h[c * p..(c + 1) * p].iter().sum()).collect();
    let rows: Vec<usize> = model.simplex_rows().collect();
    (0..k)
        .map(|c| {
            let total: f64 = rows.iter().map(|&j| w[j * k + c]).sum();
            let mass: f64 = rows
                .iter()
                .map(|&j| w[j * k + c] * element_mass(model, j))
                .sum();
            rows.iter()
                .map(|&j| {
                    let col = model.column(j).expect("simplex row is a column");
                    let n = colsum_g[j] * w[j * k + c] * rowsum_h[c];
                    let std = 100.0 / n.sqrt();
                    Share {
                        element: col
                            .element
                            .map(|e| e.symbol().to_string())
                            .unwrap_or_default(),
                        at_percent: 100.0 * w[j * k + c] / total,
                        wt_percent: 100.0 * w[j * k + c] * element_mass(model, j) / mass,
                        std_percent: (std.is_finite() && std <= 1e4).then_some(std),
                    }
                })
                .collect()
        })
        .collect()
}

fn element_mass(model: &EdxsModel<'_>, j: usize) -> f64 {
    model
        .column(j)
        .and_then(|c| c.element)
        .map(|e| e.data().atomic_mass)
        .unwrap_or(f64::NAN)
}
