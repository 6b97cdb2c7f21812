//! ESpM-NMF: multiplicative updates of W and H for Y ≈ G·W·H over caller buffers.
//!
//! Plan once with [`Solver::new`] (validates parameters and sizes), ask for
//! [`Solver::workspace_len`], then call [`Solver::iterate`] per iteration or [`Solver::run`].
//! Per iteration the work is O(nnz·K + L·M·K + P·K): the data are only touched at non-zero
//! counts, Gᵀ[(Y⊘GWH)Hᵀ] is reduced to L×K before multiplying by Gᵀ, and the denominators are
//! rank one.

mod blocks;
mod data;
mod driver;
mod h_step;
mod laplacian;
mod layout;
mod loss;
mod params;
mod simplex;
mod w_step;

pub use blocks::Pass;
pub use data::{Chunk, Counts, PixelCounts, LANES};
pub use driver::{
    Exec, Factors, GUpdate, IterReport, NoGUpdate, RunSummary, SerialExec, StopReason,
};
pub(crate) use h_step::DStats;
/// The smoothness stencil (H·Δ)_kp at one pixel, as the solver computes it.
pub use laplacian::apply as laplacian_at;
pub use layout::Layout;
pub use loss::{LogSum, LossTerms};
pub use params::{GModel, Laplacian, Simplex, SimplexSolver, SolverParams, Stopping};

/// Per-column simplex multiplier to machine precision (shared with the stream).
pub(crate) fn newton_simplex<T: Float>(
    col: impl Iterator<Item = (T, T)> + Clone,
    rows: usize,
    eps: T,
) -> Option<T> {
    simplex::newton(col, rows, eps, T::ONE)
}

/// The rounding guard of a simplex column with target 1 (shared with the stream).
pub(crate) fn simplex_repair<T: Float>(
    col: impl Iterator<Item = (T, T)> + Clone,
    rows: usize,
    nu: T,
    eps: T,
) -> Option<simplex::Fix<T>> {
    simplex::repair(
        col,
        rows,
        nu,
        eps,
        T::ONE,
        simplex::tol_of(SimplexSolver::Newton),
    )
}

/// One entry of a simplex column (shared with the stream).
pub(crate) fn simplex_value<T: Float>(
    n: T,
    d: T,
    nu: T,
    eps: T,
    fix: Option<simplex::Fix<T>>,
) -> T {
    simplex::value(n, d, nu, eps, fix)
}

use crate::error::SolverError;
use crate::float::Float;

/// A planned solver for fixed dimensions: L channels, M model columns, K components, P pixels.
#[derive(Debug, Clone, Copy)]
pub struct Solver<'a, T> {
    params: SolverParams<'a, T>,
    l: usize,
    m: usize,
    k: usize,
    p: usize,
}

/// The workspace carved into its regions (see [`Solver::layout`]).
pub(crate) struct Work<'w, T> {
    pub d: &'w mut [T],
    pub r: &'w mut [T],
    pub colsum_d: &'w mut [T],
    pub colsum_g: &'w mut [T],
    pub rowsum_h: &'w mut [T],
    pub max_h: &'w mut [T],
    pub h_new: &'w mut [T],
    pub h_den: &'w mut [T],
    pub num_w: &'w mut [T],
    pub num_s: &'w mut [T],
    pub den_s: &'w mut [T],
    pub bis: &'w mut [T],
    pub acc: &'w mut [T],
}

impl<'a, T: Float> Solver<'a, T> {
    /// Plans a solver for `channels` × `columns` G and `pixels` pixels.
    pub fn new(
        params: SolverParams<'a, T>,
        channels: usize,
        columns: usize,
        pixels: usize,
    ) -> Result<Self, SolverError> {
        let k = params.n_components;
        if k == 0 {
            return Err(SolverError::ZeroComponents);
        }
        if channels == 0 || pixels == 0 || columns == 0 {
            return Err(SolverError::EmptyData);
        }
        if params.g_identity() && columns != channels {
            return Err(SolverError::DimensionMismatch {
                buffer: "columns of an identity G (must equal the channels)",
                expected: channels,
                got: columns,
            });
        }
        let check = |name: &'static str, v: T, positive: bool| {
            let ok = v.is_finite() && if positive { v > T::ZERO } else { v >= T::ZERO };
            if ok {
                Ok(())
            } else {
                Err(SolverError::InvalidParameter {
                    name,
                    value: v.to_f64(),
                })
            }
        };
        check("epsilon_reg", params.epsilon_reg, true)?;
        check("lambda_l", params.lambda_l, false)?;
        check("sigma_l", params.sigma_l, true)?;
        check("log_shift", params.log_shift, false)?;
        check("tol", params.tol, false)?;
        if !(params.mu.len() <= 1 || params.mu.len() == k) {
            return Err(SolverError::MuLength {
                got: params.mu.len(),
                k,
            });
        }
        for &mu in params.mu {
            check("mu", mu, false)?;
        }
        if let Laplacian::Grid { rows, cols } = params.laplacian {
            if rows.checked_mul(cols) != Some(pixels) {
                return Err(SolverError::ShapeMismatch { rows, cols, pixels });
            }
        }
        match params.simplex {
            Simplex::W { rows } => {
                for (i, &row) in rows.iter().enumerate() {
                    if row >= columns || rows[..i].contains(&row) {
                        return Err(SolverError::SimplexRowOutOfRange { row });
                    }
                }
                let n = rows.len();
                if n == 0 || T::from_usize(n) * params.log_shift >= T::ONE {
                    return Err(SolverError::SimplexInfeasible { rows: n });
                }
            }
            Simplex::H if T::from_usize(k) * params.log_shift >= T::ONE => {
                return Err(SolverError::SimplexInfeasible { rows: k });
            }
            Simplex::H | Simplex::None => {}
        }
        if let Some(fw) = params.fixed_w {
            if fw.len() != columns * k {
                return Err(SolverError::DimensionMismatch {
                    buffer: "fixed_w",
                    expected: columns * k,
                    got: fw.len(),
                });
            }
            if let Simplex::W { rows } = params.simplex {
                for c in 0..k {
                    let (mut sum, mut free) = (0.0f64, 0usize);
                    for &row in rows {
                        let v = fw[row * k + c];
                        if v >= T::ZERO {
                            sum += v.to_f64();
                        } else {
                            free += 1;
                        }
                    }
                    let bad = sum > 1.0 + 1e-9
                        || (free == 0 && (sum - 1.0).abs() > 1e-9)
                        || !sum.is_finite()
                        || (free > 0 && 1.0 - sum <= free as f64 * params.log_shift.to_f64());
                    if bad {
                        return Err(SolverError::FixedWBreaksSimplex { component: c, sum });
                    }
                }
            }
        }
        if let Some(fh) = params.fixed_h {
            if fh.len() != k * pixels {
                return Err(SolverError::DimensionMismatch {
                    buffer: "fixed_h",
                    expected: k * pixels,
                    got: fh.len(),
                });
            }
        }
        Ok(Solver {
            params,
            l: channels,
            m: columns,
            k,
            p: pixels,
        })
    }

    /// The parameters.
    pub fn params(&self) -> &SolverParams<'a, T> {
        &self.params
    }

    /// Dimensions (L, M, K, P).
    pub fn dims(&self) -> (usize, usize, usize, usize) {
        (self.l, self.m, self.k, self.p)
    }

    /// Length of the workspace every call needs (iteration buffers plus the loop's copies of
    /// the previous and best W and H).
    pub fn workspace_len(&self) -> usize {
        self.exec_len() + self.driver_len()
    }

    /// Length of the iteration buffers alone (what [`Solver::iterate`] and [`Solver::loss`] use).
    pub fn exec_len(&self) -> usize {
        self.layout().len()
    }

    /// Length of the loop's buffers (previous and best W and H) for [`Solver::drive`].
    pub fn driver_len(&self) -> usize {
        self.driver_layout().len()
    }

    /// The loop's buffers: the previous W and H, then the best W and H.
    pub(crate) fn driver_layout(&self) -> Layout<4> {
        let (mk, kp) = (self.m * self.k, self.k * self.p);
        Layout([mk, kp, mk, kp])
    }

    /// The regions of the iteration workspace for these dimensions, in the field order of
    /// [`Work`]: the one place that both sizes ([`Solver::exec_len`]) and carves
    /// ([`Solver::work`]) it.
    fn layout(&self) -> Layout<13> {
        let (l, m, k, p) = (self.l, self.m, self.k, self.p);
        Layout([
            l * k,
            l * k,
            k,
            m,
            k,
            k,
            k * p,
            k * p,
            m * k,
            m * k,
            m * k,
            4 * p.max(k),
            k,
        ])
    }

    /// The workspace `ws` carved into its regions.
    pub(crate) fn work<'w>(&self, ws: &'w mut [T]) -> Result<Work<'w, T>, SolverError> {
        let [d, r, colsum_d, colsum_g, rowsum_h, max_h, h_new, h_den, num_w, num_s, den_s, bis, acc] =
            self.layout().carve_mut("workspace", ws)?;
        Ok(Work {
            d,
            r,
            colsum_d,
            colsum_g,
            rowsum_h,
            max_h,
            h_new,
            h_den,
            num_w,
            num_s,
            den_s,
            bis,
            acc,
        })
    }

    /// Checks the buffers of one call.
    pub(crate) fn check_buffers(
        &self,
        y: &Counts<'_, T>,
        g: &[T],
        w: &[T],
        h: &[T],
    ) -> Result<(), SolverError> {
        self.check_counts(y)?;
        self.check_lens(g, w, h)?;
        for (name, buf) in [("w", w), ("h", h)] {
            if let Some(i) = buf.iter().position(|v| !(*v >= T::ZERO && v.is_finite())) {
                return Err(SolverError::InvalidInitial {
                    buffer: name,
                    index: i,
                });
            }
        }
        Ok(())
    }

    /// Checks that the counts have the planned L channels and P pixels.
    pub(crate) fn check_counts(&self, y: &Counts<'_, T>) -> Result<(), SolverError> {
        let (l, p) = (self.l, self.p);
        if y.channels() != l {
            return Err(SolverError::DimensionMismatch {
                buffer: "counts (channels)",
                expected: l,
                got: y.channels(),
            });
        }
        if y.pixels() != p {
            return Err(SolverError::DimensionMismatch {
                buffer: "counts (pixels)",
                expected: p,
                got: y.pixels(),
            });
        }
        Ok(())
    }

    /// Checks the lengths of G (L×M, or anything for an identity G), W (M×K) and H (K×P).
    pub(crate) fn check_lens(&self, g: &[T], w: &[T], h: &[T]) -> Result<(), SolverError> {
        let (l, m, k, p) = (self.l, self.m, self.k, self.p);
        if !self.g_len_ok(g.len()) {
            return Err(SolverError::DimensionMismatch {
                buffer: "g",
                expected: l * m,
                got: g.len(),
            });
        }
        for (name, buf, n) in [("w", w, m * k), ("h", h, k * p)] {
            if buf.len() != n {
                return Err(SolverError::DimensionMismatch {
                    buffer: name,
                    expected: n,
                    got: buf.len(),
                });
            }
        }
        Ok(())
    }

    /// Whether `len` is an acceptable length of G: L×M, or anything for an identity G.
    pub(crate) fn g_len_ok(&self, len: usize) -> bool {
        self.params.g_identity() || len == self.l * self.m
    }

    /// D = G·W (L×K) and its column sums in the serial workspace.
    pub(crate) fn compute_d(&self, g: &[T], w: &[T], work: &mut Work<'_, T>) {
        self.gw_and_colsum(g, w, work.d, work.colsum_d);
    }

    /// One ESpM iteration as espm orders it: H, then W with the new H. Validates inputs.
    pub fn iterate(
        &self,
        y: &Counts<'_, T>,
        g: &[T],
        w: &mut [T],
        h: &mut [T],
        ws: &mut [T],
    ) -> Result<(), SolverError> {
        y.validate()?;
        self.check_buffers(y, g, w, h)?;
        let mut work = self.work(ws)?;
        self.step(y, g, w, h, &mut work);
        Ok(())
    }

    /// One iteration on validated inputs.
    pub(crate) fn step(
        &self,
        y: &Counts<'_, T>,
        g: &[T],
        w: &mut [T],
        h: &mut [T],
        work: &mut Work<'_, T>,
    ) {
        self.compute_d(g, w, work);
        self.h_step(y, h, work);
        self.w_step(y, g, w, h, work);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel shape (K = 1…4 as constants, K = 5 generic) with the simplex on W (Newton
    /// and espm's bisection) and on H, from a start with zeros in G, W and H: the entries stay
    /// finite, ≥ ε and on their simplex. Small enough for Miri (scripts/miri.sh).
    #[test]
    fn every_kernel_keeps_zero_starts_finite_and_on_the_simplex() {
        let (l, m, p) = (7usize, 3usize, 6usize);
        let y: [f64; 42] = core::array::from_fn(|i| ((i * 5) % 7) as f64);
        let mut g: [f64; 21] = core::array::from_fn(|i| ((i * 3) % 5) as f64 / 4.0);
        g[0] = 0.0;
        let rows = [0usize, 1, 2];
        for k in 1..=5usize {
            for mode in 0..3 {
                let mut prm = SolverParams::<f64>::new(k, &rows);
                prm.simplex = if mode < 2 {
                    Simplex::W { rows: &rows }
                } else {
                    Simplex::H
                };
                if mode == 1 {
                    prm.simplex_solver = SimplexSolver::EspmBisection;
                }
                prm.lambda_l = 0.5;
                prm.laplacian = Laplacian::Grid { rows: 2, cols: 3 };
                let solver = Solver::new(prm, l, m, p).unwrap();
                let mut w = [0.0f64; 15];
                let mut h = [0.0f64; 30];
                for (i, v) in w[..m * k].iter_mut().enumerate() {
                    *v = (i % 3) as f64 * 0.5;
                }
                for (i, v) in h[..k * p].iter_mut().enumerate() {
                    *v = (i % 4) as f64;
                }
                let mut ws = [0.0f64; 256];
                assert!(solver.exec_len() <= ws.len());
                let counts = Counts::Dense {
                    channels: l,
                    pixels: p,
                    data: &y,
                };
                for _ in 0..3 {
                    solver
                        .iterate(&counts, &g, &mut w[..m * k], &mut h[..k * p], &mut ws)
                        .unwrap();
                }
                let all = w[..m * k].iter().chain(&h[..k * p]);
                assert!(
                    all.clone().all(|v| v.is_finite() && *v >= 1e-14),
                    "k {k} mode {mode}"
                );
                let tol = if mode == 1 { 1e-3 } else { 1e-12 };
                if mode < 2 {
                    for c in 0..k {
                        let s: f64 = (0..m).map(|j| w[j * k + c]).sum();
                        assert!(
                            (s - 1.0).abs() < tol,
                            "k {k} mode {mode}: W column {c} sums to {s}"
                        );
                    }
                } else {
                    for px in 0..p {
                        let s: f64 = (0..k).map(|c| h[c * p + px]).sum();
                        assert!((s - 1.0).abs() < tol, "k {k}: H pixel {px} sums to {s}");
                    }
                }
            }
        }
    }
}
