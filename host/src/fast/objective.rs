//! The core's objective recomputed on the host (plain f64, one `ln` per term), the reference
//! that the fast solvers' own bookkeeping and the KKT residual are checked against.

// K×K blocks are indexed by component on purpose; `!(x > 0)` also catches NaN on purpose.
#![allow(clippy::needless_range_loop, clippy::neg_cmp_op_on_partial_ord)]

use crate::io::counts::SparseCountsRef;
use edxs_core::solver::{Laplacian, LossTerms};

/// The maps subproblem: counts, spectra D = G·W held, and the regularisation (raw units).
#[derive(Debug, Clone, Copy)]
pub struct MapsProblem<'a> {
    /// Counts, per pixel sparse.
    pub y: SparseCountsRef<'a>,
    /// D = G·W (L×K, row-major), as the core forms it (not yet clipped at ε).
    pub d: &'a [f64],
    /// Components K.
    pub k: usize,
    /// μ: empty (0), one value, or one per component.
    pub mu: &'a [f64],
    /// ε_reg of the log term.
    pub epsilon_reg: f64,
    /// λ of the smoothness term.
    pub lambda: f64,
    /// The neighbourhood of the smoothness term.
    pub laplacian: Laplacian,
    /// Lower bound ε of D and H (the core's `log_shift`).
    pub eps: f64,
}

impl MapsProblem<'_> {
    /// μ of component `c`, as the core's `mu_of`.
    pub fn mu_of(&self, c: usize) -> f64 {
        match self.mu.len() {
            0 => 0.0,
            1 => self.mu[0],
            _ => self.mu[c],
        }
    }

    /// D̃ = max(D, ε) (L×K) and its column sums.
    pub fn clipped_d(&self) -> (Vec<f64>, Vec<f64>) {
        let k = self.k;
        let dc: Vec<f64> = self.d.iter().map(|v| v.max(self.eps)).collect();
        let mut s = vec![0.0; k];
        for row in dc.chunks_exact(k) {
            for (sv, dv) in s.iter_mut().zip(row) {
                *sv += dv;
            }
        }
        (dc, s)
    }

    /// Checks the sizes and values the solvers rely on.
    pub fn validate(&self, h: &[f64]) -> anyhow::Result<()> {
        let (l, p, k) = (self.y.channels, self.y.pixels, self.k);
        anyhow::ensure!(k >= 1, "the number of components must be at least 1");
        anyhow::ensure!(
            self.d.len() == l * k,
            "D has {} entries, expected {l}x{k}",
            self.d.len()
        );
        anyhow::ensure!(
            h.len() == k * p,
            "H has {} entries, expected {k}x{p}",
            h.len()
        );
        anyhow::ensure!(
            self.y.indptr.len() == p + 1,
            "counts: {} offsets for {p} pixels",
            self.y.indptr.len()
        );
        anyhow::ensure!(
            self.mu.len() <= 1 || self.mu.len() == k,
            "mu has {} values for {k} components",
            self.mu.len()
        );
        // The core's wording (`SolverError::InvalidParameter`), whichever solver meets it.
        anyhow::ensure!(
            self.epsilon_reg > 0.0 && self.epsilon_reg.is_finite(),
            "invalid epsilon_reg: {} (must be > 0)",
            self.epsilon_reg
        );
        anyhow::ensure!(
            self.lambda >= 0.0 && self.lambda.is_finite(),
            "invalid lambda_l: {} (must be >= 0)",
            self.lambda
        );
        if let Some(m) = self.mu.iter().find(|m| !(**m >= 0.0 && m.is_finite())) {
            anyhow::bail!("invalid mu: {m} (must be finite and >= 0)");
        }
        if let Laplacian::Grid { rows, cols } = self.laplacian {
            anyhow::ensure!(
                rows * cols == p,
                "scan shape {rows}x{cols} does not have {p} pixels"
            );
        }
        anyhow::ensure!(
            self.d.iter().all(|v| v.is_finite() && *v >= 0.0),
            "D has a negative or non-finite entry"
        );
        anyhow::ensure!(
            h.iter().all(|v| v.is_finite() && *v >= 0.0),
            "H has a negative or non-finite entry"
        );
        anyhow::ensure!(
            self.y.values.iter().all(|v| v.is_finite() && *v >= 0.0),
            "counts must be finite and >= 0"
        );
        anyhow::ensure!(
            self.y.indices.iter().all(|&c| (c as usize) < l),
            "a count's channel is outside the {l} channels"
        );
        Ok(())
    }
}

/// Σ y ln y − Σ y over the non-zeros (espm's `const_KL_`).
pub fn kl_constant(y: &SparseCountsRef<'_>) -> f64 {
    y.values
        .iter()
        .filter(|v| **v > 0.0)
        .map(|&v| v * v.ln() - v)
        .sum()
}

/// The loss terms at H (K×P, component-major) as the core reports them (each divided by L·P).
pub fn objective(pb: &MapsProblem<'_>, h: &[f64]) -> LossTerms {
    let (l, p, k) = (pb.y.channels, pb.y.pixels, pb.k);
    let eps = pb.eps;
    let (dc, s) = pb.clipped_d();
    let mut lin = 0.0;
    let mut reg = 0.0;
    let mut lap = 0.0;
    for c in 0..k {
        let row = &h[c * p..(c + 1) * p];
        lin += s[c] * row.iter().map(|v| v.max(eps)).sum::<f64>();
        let mu = pb.mu_of(c);
        if mu != 0.0 {
            reg += mu * row.iter().map(|v| (v + pb.epsilon_reg).ln()).sum::<f64>();
        }
        if pb.lambda != 0.0 {
            lap += (0..p)
                .map(|px| row[px] * edxs_core::solver::laplacian_at(pb.laplacian, row, px))
                .sum::<f64>();
        }
    }
    let mut logt = 0.0;
    for px in 0..p {
        for i in pb.y.indptr[px]..pb.y.indptr[px + 1] {
            let y = pb.y.values[i];
            if y == 0.0 {
                continue;
            }
            let li = pb.y.indices[i] as usize;
            let a: f64 = (0..k)
                .map(|c| dc[li * k + c] * h[c * p + px].max(eps))
                .sum();
            logt += y * a.ln();
        }
    }
    let n = (l * p) as f64;
    LossTerms {
        kl: (lin - logt + kl_constant(&pb.y)) / n,
        log_reg: reg / n,
        laplacian: 0.5 * pb.lambda * lap / n,
    }
}
