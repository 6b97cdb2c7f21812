//! The executor: the pixel groups of every pass on a rayon pool, their partial sums added in
//! group order.

use super::kernels::{plan, BlockKernel, Kernels};
use super::{BLOCK, GROUPS};
use edxs_core::solver::{Exec, Layout, LossTerms};
use edxs_core::{Counts, Solver, SolverError};
use rayon::prelude::*;
use std::ops::Range;

/// An [`Exec`] that runs the pixel passes of each iteration on a rayon pool (or, with one
/// thread, on the calling thread, with the same groups and the same results).
pub struct ParallelExec<'s, 'y> {
    solver: &'s Solver<'s, f64>,
    /// The block passes, chosen once by [`plan`].
    kernel: Box<dyn BlockKernel + 'y>,
    /// What `kernel` uses.
    kernels: Kernels,
    /// None: one thread, the calling one.
    pool: Option<rayon::ThreadPool>,
    /// Pixels per group.
    group: usize,
    shared: Vec<f64>,
    /// Data terms Dᵀ(Y⊘DH) per pixel (P×K) left by the last loss pass, valid (as is `shared`)
    /// for G, W and H equal to `key_g`, `key_w` and `key_h` when `have_data`.
    data: Vec<f64>,
    key_g: Vec<f64>,
    key_w: Vec<f64>,
    key_h: Vec<f64>,
    have_data: bool,
    /// New H, pixel-major (P×K) as the blocks write it and component-major (K×P).
    h_new: Vec<f64>,
    h_next: Vec<f64>,
    /// The regions of each group's share of `parts`: see [`ParallelExec::group_layout`].
    group_layout: Layout<4>,
    /// Per group, one after the other: its partial sums and scratch.
    parts: Vec<f64>,
    r: Vec<f64>,
    rowsum: Vec<f64>,
    loss_sums: Vec<f64>,
    ws: Vec<f64>,
    c: f64,
}

/// A raw pointer that the groups write through at disjoint indices.
#[derive(Clone, Copy)]
struct Scatter(*mut f64);
// SAFETY: every group writes a disjoint set of indices (its own pixels), and the buffer
// outlives the parallel pass that uses the pointer.
unsafe impl Send for Scatter {}
unsafe impl Sync for Scatter {}

impl Scatter {
    /// Writes `v` at index `i`.
    ///
    /// # Safety
    /// `i` is in bounds and no other thread touches it during the pass.
    unsafe fn write(&self, i: usize, v: f64) {
        // SAFETY: as the caller promises.
        unsafe { *self.0.add(i) = v };
    }
}

impl<'s, 'y> ParallelExec<'s, 'y> {
    /// Validates the counts and sets up `threads` workers (0 = one per core).
    pub fn new(
        solver: &'s Solver<'s, f64>,
        y: Counts<'y, f64>,
        threads: usize,
    ) -> anyhow::Result<Self> {
        Self::with_kernels(solver, y, threads, Kernels::default())
    }

    /// [`ParallelExec::new`] with a choice of kernels, made here once for every pass.
    pub fn with_kernels(
        solver: &'s Solver<'s, f64>,
        y: Counts<'y, f64>,
        threads: usize,
        kernels: Kernels,
    ) -> anyhow::Result<Self> {
        y.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        let (l, m, k, p) = solver.dims();
        if (y.channels(), y.pixels()) != (l, p) {
            anyhow::bail!(
                "counts of {} channels x {} pixels given to a solver planned for {l} x {p}",
                y.channels(),
                y.pixels()
            );
        }
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let pool = if threads == 1 {
            None
        } else {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .map_err(|e| anyhow::anyhow!("cannot start {threads} threads: {e}"))?,
            )
        };
        let group = p.div_ceil(GROUPS).max(BLOCK);
        let groups = p.div_ceil(group);
        let part = solver.loss_part_len();
        let group_layout = Self::group_layout(solver);
        let (kernel, kernels) = plan(y, kernels);
        Ok(ParallelExec {
            solver,
            kernel,
            kernels,
            pool,
            group,
            shared: vec![0.0; solver.shared_len()],
            data: vec![0.0; k * p],
            // Filled by the first loss: an identity G may be passed empty.
            key_g: Vec::with_capacity(l * m),
            key_w: vec![0.0; m * k],
            key_h: vec![0.0; k * p],
            have_data: false,
            h_new: vec![0.0; k * p],
            h_next: vec![0.0; k * p],
            group_layout,
            parts: vec![0.0; groups * group_layout.len()],
            r: vec![0.0; l * k],
            rowsum: vec![0.0; k],
            loss_sums: vec![0.0; part],
            ws: vec![0.0; solver.exec_len()],
            c: y.kl_constant(),
        })
    }

    /// The kernels in use: compact counts, and AVX2 (both only when possible).
    pub fn kernels(&self) -> Kernels {
        self.kernels
    }

    /// The regions of one group's partial sums and scratch: the W statistics R (L×K), the row
    /// sums of the new H (K), the loss sums ([`Solver::loss_part_len`]) and the blocks'
    /// scratch (2K); the one place that sizes and carves them.
    fn group_layout(solver: &Solver<'_, f64>) -> Layout<4> {
        let (l, _, k, _) = solver.dims();
        Layout([l * k, k, solver.loss_part_len(), 2 * k])
    }

    /// Pixel range of group `g`.
    fn range(group: usize, p: usize, g: usize) -> Range<usize> {
        (g * group).min(p)..((g + 1) * group).min(p)
    }

    /// One iteration: the fused H and R pass over the groups, then the W step.
    fn step_groups(&mut self, g: &[f64], w: &mut [f64], h: &mut [f64]) -> Result<(), SolverError> {
        let solver = self.solver;
        let (_, _, k, p) = solver.dims();
        // Right after the loss at the same (G, W, H), D, Dᵀ1, max H and the data terms are
        // all at hand.
        let fresh =
            self.have_data && same(g, &self.key_g) && same(w, &self.key_w) && same(h, &self.key_h);
        self.have_data = false;
        if !fresh {
            solver.prepare(g, w, h, &mut self.shared)?;
        }
        let pass = solver.pass(&self.shared, h)?;
        let (group, kernel, layout) = (self.group, &*self.kernel, self.group_layout);
        let data = &self.data;
        let next = Scatter(self.h_next.as_mut_ptr());
        let body = |gi: usize, out: &mut [f64], part: &mut [f64]| -> Result<(), SolverError> {
            let [r, rowsum, _, acc] = layout.carve_mut("group part", part)?;
            let range = Self::range(group, p, gi);
            let dt = fresh.then(|| &data[range.start * k..range.end * k]);
            r.iter_mut().for_each(|v| *v = 0.0);
            kernel.h_r(&pass, range.clone(), dt, out, r, acc)?;
            rowsum.iter_mut().for_each(|v| *v = 0.0);
            for (i, px) in range.enumerate() {
                for (c, s) in rowsum.iter_mut().enumerate() {
                    let v = out[i * k + c];
                    *s += v;
                    // SAFETY: (c, px) is this group's own entry of the K×P buffer.
                    unsafe { next.write(c * p + px, v) };
                }
            }
            Ok(())
        };
        let (h_new, parts) = (&mut self.h_new, &mut self.parts);
        match &self.pool {
            Some(pool) => pool.install(|| {
                h_new
                    .par_chunks_mut(group * k)
                    .zip(parts.par_chunks_mut(layout.len()))
                    .enumerate()
                    .try_for_each(|(gi, (out, part))| body(gi, out, part))
            })?,
            None => h_new
                .chunks_mut(group * k)
                .zip(parts.chunks_mut(layout.len()))
                .enumerate()
                .try_for_each(|(gi, (out, part))| body(gi, out, part))?,
        }
        h.copy_from_slice(&self.h_next);
        // The group sums are small (groups × L × K); added here rather than in another
        // parallel region, whose wake-up costs more than the additions.
        self.r.iter_mut().for_each(|v| *v = 0.0);
        self.rowsum.iter_mut().for_each(|v| *v = 0.0);
        for part in self.parts.chunks_exact(layout.len()) {
            let [r, rowsum, _, _] = layout.carve("group part", part)?;
            for (a, b) in self.r.iter_mut().zip(r) {
                *a += *b;
            }
            for (a, b) in self.rowsum.iter_mut().zip(rowsum) {
                *a += *b;
            }
        }
        solver.w_from_sums(g, w, &self.r, &self.rowsum, &mut self.ws)
    }

    /// The loss at (W, H), leaving each pixel's data term for the next step.
    fn loss_groups(&mut self, g: &[f64], w: &[f64], h: &[f64]) -> Result<LossTerms, SolverError> {
        let solver = self.solver;
        let (_, _, k, p) = solver.dims();
        self.have_data = false;
        solver.prepare(g, w, h, &mut self.shared)?;
        let pass = solver.pass(&self.shared, h)?;
        let (group, kernel, layout) = (self.group, &*self.kernel, self.group_layout);
        let body = |gi: usize, dt: &mut [f64], part: &mut [f64]| {
            let [_, _, lp, acc] = layout.carve_mut("group part", part)?;
            let range = Self::range(group, p, gi);
            kernel.loss_data(&pass, range, dt, lp, acc)
        };
        let (data, parts) = (&mut self.data, &mut self.parts);
        match &self.pool {
            Some(pool) => pool.install(|| {
                data.par_chunks_mut(group * k)
                    .zip(parts.par_chunks_mut(layout.len()))
                    .enumerate()
                    .try_for_each(|(gi, (dt, part))| body(gi, dt, part))
            })?,
            None => data
                .chunks_mut(group * k)
                .zip(parts.chunks_mut(layout.len()))
                .enumerate()
                .try_for_each(|(gi, (dt, part))| body(gi, dt, part))?,
        }
        self.loss_sums.iter_mut().for_each(|v| *v = 0.0);
        for part in self.parts.chunks_exact(layout.len()) {
            let [_, _, lp, _] = layout.carve("group part", part)?;
            for (a, b) in self.loss_sums.iter_mut().zip(lp) {
                *a += *b;
            }
        }
        let terms = pass.loss_from_part_sums(&self.loss_sums, self.c)?;
        self.key_g.clear();
        self.key_g.extend_from_slice(g);
        self.key_w.copy_from_slice(w);
        self.key_h.copy_from_slice(h);
        self.have_data = true;
        Ok(terms)
    }
}

/// Bitwise equality (so an iterate is reused only when it is exactly the same).
fn same(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len()
        && a.chunks(1024).zip(b.chunks(1024)).all(|(x, y)| {
            x.iter()
                .zip(y)
                .fold(true, |acc, (p, q)| acc & (p.to_bits() == q.to_bits()))
        })
}

impl Exec<f64> for ParallelExec<'_, '_> {
    fn step(&mut self, g: &[f64], w: &mut [f64], h: &mut [f64]) -> Result<(), SolverError> {
        self.step_groups(g, w, h)
    }

    fn loss(&mut self, g: &[f64], w: &[f64], h: &[f64]) -> Result<LossTerms, SolverError> {
        self.loss_groups(g, w, h)
    }

    fn kl_constant(&self) -> f64 {
        self.c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parallel::Kernels;
    use edxs_core::solver::{GModel, Laplacian, NoGUpdate, Simplex, SimplexSolver};
    use edxs_core::SolverParams;
    use edxs_suite::synthetic;

    /// Every kernel choice and thread count gives the same bits, K = 1…5, with and without the
    /// smoothness and log terms, with simplex on W or on H.
    #[test]
    fn kernels_agree_bit_for_bit() {
        let s = synthetic(23, 29, 150.0, 7);
        let p = s.rows * s.cols;
        let counts = s.sparse_counts();
        // (K, λ, μ, simplex on H, ε): ε = 1e-3 clips D and the zeros of the start clip H.
        for (k, lambda, mu, simplex_h, eps) in [
            (3, 1.0, 0.004, false, 1e-14),
            (3, 1.0, 0.004, false, 1e-3),
            (3, 1.0, 0.004, false, 0.05),
            (1, 0.0, 0.0, false, 1e-14),
            (2, 0.5, 0.01, true, 1e-3),
            (4, 1.0, 0.0, false, 1e-14),
            (5, 0.3, 0.02, false, 1e-3),
        ] {
            let mus = [mu];
            let mut prm = SolverParams::new(k, &s.simplex_rows);
            prm.mu = &mus;
            prm.epsilon_reg = 0.01;
            prm.lambda_l = lambda;
            prm.laplacian = Laplacian::Grid {
                rows: s.rows,
                cols: s.cols,
            };
            prm.simplex = if simplex_h {
                Simplex::H
            } else {
                Simplex::W {
                    rows: &s.simplex_rows,
                }
            };
            prm.simplex_solver = SimplexSolver::Newton;
            prm.log_shift = eps;
            prm.max_iter = 6;
            prm.tol = 0.0;
            prm.g = GModel::Matrix { update_every: 0 };
            let solver = Solver::new(prm, s.l, s.m, p).unwrap();
            let run = |kernels: Kernels, threads: usize| {
                let mut w: Vec<f64> = (0..s.m * k).map(|i| 0.02 + (i % 7) as f64 * 0.01).collect();
                let mut h: Vec<f64> = (0..k * p)
                    .map(|i| {
                        if i % 97 == 0 {
                            0.0
                        } else {
                            1.0 + (i % 5) as f64
                        }
                    })
                    .collect();
                let mut g = s.g.clone();
                let mut drv = vec![0.0; solver.driver_len()];
                let mut exec =
                    ParallelExec::with_kernels(&solver, counts, threads, kernels).unwrap();
                let mut losses = vec![];
                solver
                    .drive(
                        &mut exec,
                        solver.factors(&mut g, &mut w, &mut h).unwrap(),
                        &mut drv,
                        &mut NoGUpdate,
                        &mut |r| losses.push(r.loss.total()),
                    )
                    .unwrap();
                (w, h, losses, exec.kernels())
            };
            let reference = run(
                Kernels {
                    compact: false,
                    avx2: false,
                },
                1,
            );
            assert!(!reference.3.compact && !reference.3.avx2);
            for compact in [false, true] {
                for avx2 in [false, true] {
                    for threads in [1, 2, 3] {
                        let got = run(Kernels { compact, avx2 }, threads);
                        assert_eq!(got.3.compact, compact, "counts are f32-exact");
                        assert_eq!(
                            (&got.0, &got.1, &got.2),
                            (&reference.0, &reference.1, &reference.2),
                            "K = {k}, compact {compact}, avx2 {avx2}, {threads} threads"
                        );
                    }
                }
            }
        }
    }

    /// A wrong buffer is an error from `step` and `loss`, on every kernel, and the executor
    /// still works with the right buffers afterwards (the step used to return silently, the
    /// loss to return zeros, and the W update's result was dropped).
    #[test]
    fn errors_are_returned() {
        let s = synthetic(9, 11, 50.0, 3);
        let p = s.rows * s.cols;
        let counts = s.sparse_counts();
        let solver = Solver::new(SolverParams::new(3, &s.simplex_rows), s.l, s.m, p).unwrap();
        for compact in [false, true] {
            for avx2 in [false, true] {
                let kernels = Kernels { compact, avx2 };
                let mut exec = ParallelExec::with_kernels(&solver, counts, 2, kernels).unwrap();
                let (mut w, mut h) = (vec![0.05; s.m * 3], vec![1.0; 3 * p]);
                let e = exec.loss(&s.g[1..], &w, &h).unwrap_err();
                assert!(matches!(
                    e,
                    SolverError::DimensionMismatch { buffer: "g", .. }
                ));
                let mut short = vec![0.05; s.m * 3 - 1];
                let e = exec.step(&s.g, &mut short, &mut h).unwrap_err();
                assert!(matches!(
                    e,
                    SolverError::DimensionMismatch { buffer: "w", .. }
                ));
                let before = exec.loss(&s.g, &w, &h).unwrap().total();
                exec.step(&s.g, &mut w, &mut h).unwrap();
                let after = exec.loss(&s.g, &w, &h).unwrap().total();
                assert!(
                    before > 0.0 && after < before,
                    "{kernels:?}: {before} -> {after}"
                );
            }
        }
        let small = Solver::new(SolverParams::new(3, &s.simplex_rows), s.l, s.m, p - 1).unwrap();
        let e = ParallelExec::new(&small, counts, 1)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("planned for"), "{e}");
    }
}
