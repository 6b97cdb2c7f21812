//! Iterations spread over threads by pixel groups, with results that do not depend on the
//! number of threads: the groups are fixed by the data size alone, and their partial sums are
//! added in group order.
//!
//! Each iteration reads every non-zero twice (see `edxs_core::solver` blocks): the loss pass
//! also leaves each pixel's data term Dᵀ(Y⊘DH) for the next H step, and the H step adds each
//! pixel's share of the W statistics right after updating its abundances, while its non-zeros
//! are still in cache. The counts are kept as 16-bit channels and 32-bit counts when that is
//! exact (6 bytes per non-zero, so that paper-sized data stay in the last-level cache), and
//! every sum is formed in f64.

#[cfg(target_arch = "x86_64")]
mod avx2;

use edxs_core::solver::{Chunk, Exec, LossTerms, PixelCounts, LANES};
use edxs_core::{Counts, Solver};
use rayon::prelude::*;
use std::ops::Range;

/// Smallest number of pixels per group.
pub const BLOCK: usize = 256;
/// Largest number of groups, i.e. of partial sums of the W statistics and of the loss (a
/// function of the pixel count only, so the reduction order is the same for every thread
/// count).
pub const GROUPS: usize = 16;

/// Per-pixel sparse counts with 16-bit channels and f32 counts (built only when both are exact).
struct Compact {
    channels: usize,
    pixels: usize,
    indptr: Vec<usize>,
    indices: Vec<u16>,
    values: Vec<f32>,
}

impl Compact {
    /// Packs `y` when every channel fits in 16 bits and every count is an f32 exactly.
    fn pack(y: &Counts<'_, f64>) -> Option<Self> {
        let (l, p) = (y.channels(), y.pixels());
        if l > 1 << 16 {
            return None;
        }
        let mut indptr = Vec::with_capacity(p + 1);
        indptr.push(0);
        let (mut indices, mut values) = (Vec::new(), Vec::new());
        if let Counts::Sparse { values: v, .. } = y {
            indices.reserve(v.len());
            values.reserve(v.len());
        }
        let mut exact = true;
        for px in 0..p {
            y.for_each_nz(px, |c, v| {
                let f = v as f32;
                exact &= f as f64 == v;
                indices.push(c as u16);
                values.push(f);
            });
            indptr.push(indices.len());
        }
        exact.then_some(Compact {
            channels: l,
            pixels: p,
            indptr,
            indices,
            values,
        })
    }
}

impl PixelCounts<f64> for Compact {
    fn n_channels(&self) -> usize {
        self.channels
    }

    fn n_pixels(&self) -> usize {
        self.pixels
    }

    #[inline(always)]
    fn chunks(&self, px: usize) -> impl Iterator<Item = Chunk<f64>> + '_ {
        let (s, e) = (self.indptr[px], self.indptr[px + 1]);
        CompactChunks {
            indices: &self.indices[s..e],
            values: &self.values[s..e],
        }
    }
}

/// The chunks of one pixel of [`Compact`].
struct CompactChunks<'a> {
    indices: &'a [u16],
    values: &'a [f32],
}

impl Iterator for CompactChunks<'_> {
    type Item = Chunk<f64>;

    #[inline(always)]
    fn next(&mut self) -> Option<Chunk<f64>> {
        if self.indices.len() >= LANES && self.values.len() >= LANES {
            let (a, ra) = self.indices.split_at(LANES);
            let (b, rb) = self.values.split_at(LANES);
            self.indices = ra;
            self.values = rb;
            Some(Chunk {
                channels: std::array::from_fn(|j| a[j] as u32),
                counts: std::array::from_fn(|j| b[j] as f64),
            })
        } else if self.indices.is_empty() {
            None
        } else {
            let mut c = Chunk::EMPTY;
            for (j, (a, b)) in self.indices.iter().zip(self.values).enumerate() {
                c.channels[j] = *a as u32;
                c.counts[j] = *b as f64;
            }
            self.indices = &[];
            Some(c)
        }
    }
}

/// An [`Exec`] that runs the pixel passes of each iteration on a rayon pool (or, with one
/// thread, on the calling thread, with the same groups and the same results).
pub struct ParallelExec<'s, 'y> {
    solver: &'s Solver<'s, f64>,
    y: Counts<'y, f64>,
    compact: Option<Compact>,
    /// None: one thread, the calling one.
    pool: Option<rayon::ThreadPool>,
    /// Pixels per group.
    group: usize,
    /// Run the AVX2 build of the block passes.
    avx2: bool,
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
    /// Per group: W statistics (L×K), row sums of the new H (K), loss sums, scratch (2K).
    r_parts: Vec<f64>,
    rowsum_parts: Vec<f64>,
    loss_parts: Vec<f64>,
    scratch: Vec<f64>,
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

/// Which kernels a [`ParallelExec`] may use. Every choice gives bit-identical results; the
/// switches exist for tests and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernels {
    /// Keep a compact copy of the counts (16-bit channels, f32 counts) when that is exact.
    pub compact: bool,
    /// Use the AVX2 kernels when the CPU has AVX2.
    pub avx2: bool,
}

impl Default for Kernels {
    fn default() -> Self {
        Kernels {
            compact: true,
            avx2: true,
        }
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

    /// [`ParallelExec::new`] with a choice of kernels.
    pub fn with_kernels(
        solver: &'s Solver<'s, f64>,
        y: Counts<'y, f64>,
        threads: usize,
        kernels: Kernels,
    ) -> anyhow::Result<Self> {
        y.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        let (l, m, k, p) = solver.dims();
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
        Ok(ParallelExec {
            solver,
            y,
            compact: if kernels.compact {
                Compact::pack(&y)
            } else {
                None
            },
            pool,
            group,
            avx2: kernels.avx2 && has_avx2(),
            shared: vec![0.0; solver.shared_len()],
            data: vec![0.0; k * p],
            // Filled by the first loss: an identity G may be passed empty.
            key_g: Vec::with_capacity(l * m),
            key_w: vec![0.0; m * k],
            key_h: vec![0.0; k * p],
            have_data: false,
            h_new: vec![0.0; k * p],
            h_next: vec![0.0; k * p],
            r_parts: vec![0.0; groups * l * k],
            rowsum_parts: vec![0.0; groups * k],
            loss_parts: vec![0.0; groups * part],
            scratch: vec![0.0; groups * 2 * k],
            r: vec![0.0; l * k],
            rowsum: vec![0.0; k],
            loss_sums: vec![0.0; part],
            ws: vec![0.0; solver.exec_len()],
            c: y.kl_constant(),
        })
    }

    /// The kernels in use: compact counts, and AVX2 (both only when possible).
    pub fn kernels(&self) -> Kernels {
        Kernels {
            compact: self.compact.is_some(),
            avx2: self.avx2,
        }
    }

    /// Pixel range of group `g`.
    fn range(group: usize, p: usize, g: usize) -> Range<usize> {
        (g * group).min(p)..((g + 1) * group).min(p)
    }

    fn step_with<C: Passes>(&mut self, y: &C, g: &[f64], w: &mut [f64], h: &mut [f64]) {
        let solver = self.solver;
        let (l, _, k, p) = solver.dims();
        let lk = l * k;
        // Right after the loss at the same (G, W, H), D, Dᵀ1, max H and the data terms are
        // all at hand.
        let fresh =
            self.have_data && same(g, &self.key_g) && same(w, &self.key_w) && same(h, &self.key_h);
        self.have_data = false;
        if !fresh && solver.prepare(g, w, h, &mut self.shared).is_err() {
            return;
        }
        let (shared, group, avx2) = (&self.shared[..], self.group, self.avx2);
        let h_old: &[f64] = h;
        let data = &self.data;
        let next = Scatter(self.h_next.as_mut_ptr());
        let (h_new, parts, sums, scratch) = (
            &mut self.h_new,
            &mut self.r_parts,
            &mut self.rowsum_parts,
            &mut self.scratch,
        );
        let body =
            |gi: usize, out: &mut [f64], r: &mut [f64], rowsum: &mut [f64], acc: &mut [f64]| {
                let range = Self::range(group, p, gi);
                let dt = fresh.then(|| &data[range.start * k..range.end * k]);
                r.iter_mut().for_each(|v| *v = 0.0);
                y.h_r(avx2, solver, shared, h_old, range.clone(), dt, out, r, acc);
                rowsum.iter_mut().for_each(|v| *v = 0.0);
                for (i, px) in range.enumerate() {
                    for (c, s) in rowsum.iter_mut().enumerate() {
                        let v = out[i * k + c];
                        *s += v;
                        // SAFETY: (c, px) is this group's own entry of the K×P buffer.
                        unsafe { next.write(c * p + px, v) };
                    }
                }
            };
        match &self.pool {
            Some(pool) => pool.install(|| {
                h_new
                    .par_chunks_mut(group * k)
                    .zip(parts.par_chunks_mut(lk))
                    .zip(sums.par_chunks_mut(k))
                    .zip(scratch.par_chunks_mut(2 * k))
                    .enumerate()
                    .for_each(|(gi, (((out, r), rowsum), acc))| body(gi, out, r, rowsum, acc))
            }),
            None => h_new
                .chunks_mut(group * k)
                .zip(parts.chunks_mut(lk))
                .zip(sums.chunks_mut(k))
                .zip(scratch.chunks_mut(2 * k))
                .enumerate()
                .for_each(|(gi, (((out, r), rowsum), acc))| body(gi, out, r, rowsum, acc)),
        }
        h.copy_from_slice(&self.h_next);
        // The group sums are small (groups × L × K); added here rather than in another
        // parallel region, whose wake-up costs more than the additions.
        self.r.iter_mut().for_each(|v| *v = 0.0);
        for part in self.r_parts.chunks_exact(lk) {
            for (a, b) in self.r.iter_mut().zip(part) {
                *a += *b;
            }
        }
        self.rowsum.iter_mut().for_each(|v| *v = 0.0);
        for part in self.rowsum_parts.chunks_exact(k) {
            for (a, b) in self.rowsum.iter_mut().zip(part) {
                *a += *b;
            }
        }
        let _ = solver.w_from_sums(g, w, &self.r, &self.rowsum, &mut self.ws);
    }

    fn loss_with<C: Passes>(&mut self, y: &C, g: &[f64], w: &[f64], h: &[f64]) -> LossTerms {
        let solver = self.solver;
        let (_, _, k, p) = solver.dims();
        if solver.prepare(g, w, h, &mut self.shared).is_err() {
            return LossTerms::default();
        }
        let (shared, group, avx2) = (&self.shared[..], self.group, self.avx2);
        let part = solver.loss_part_len();
        let (data, parts, scratch) = (&mut self.data, &mut self.loss_parts, &mut self.scratch);
        let body = |gi: usize, dt: &mut [f64], lp: &mut [f64], acc: &mut [f64]| {
            let range = Self::range(group, p, gi);
            y.loss_data(avx2, solver, shared, h, range, dt, lp, acc);
        };
        match &self.pool {
            Some(pool) => pool.install(|| {
                data.par_chunks_mut(group * k)
                    .zip(parts.par_chunks_mut(part))
                    .zip(scratch.par_chunks_mut(2 * k))
                    .enumerate()
                    .for_each(|(gi, ((dt, lp), acc))| body(gi, dt, lp, acc))
            }),
            None => data
                .chunks_mut(group * k)
                .zip(parts.chunks_mut(part))
                .zip(scratch.chunks_mut(2 * k))
                .enumerate()
                .for_each(|(gi, ((dt, lp), acc))| body(gi, dt, lp, acc)),
        }
        self.loss_sums.iter_mut().for_each(|v| *v = 0.0);
        for lp in self.loss_parts.chunks_exact(part) {
            for (a, b) in self.loss_sums.iter_mut().zip(lp) {
                *a += *b;
            }
        }
        self.key_g.clear();
        self.key_g.extend_from_slice(g);
        self.key_w.copy_from_slice(w);
        self.key_h.copy_from_slice(h);
        self.have_data = true;
        solver.loss_from_part_sums(&self.shared, &self.loss_sums, self.c)
    }
}

/// The two block passes over one storage: the core's portable lane kernels, compiled a second
/// time for AVX2 and picked at run time (the same IEEE operations in the same order, since Rust
/// never fuses a multiply and an add, so the results do not depend on the CPU); [`Compact`]
/// storage has its own AVX2 kernels with the same arithmetic.
trait Passes: PixelCounts<f64> + Sized {
    /// This storage's own AVX2 iteration pass; false (nothing done) where it has none.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[allow(clippy::too_many_arguments)]
    unsafe fn own_h_r(
        &self,
        _solver: &Solver<'_, f64>,
        _shared: &[f64],
        _h: &[f64],
        _range: Range<usize>,
        _data: Option<&[f64]>,
        _out: &mut [f64],
        _r: &mut [f64],
        _acc: &mut [f64],
    ) -> bool {
        false
    }

    /// This storage's own AVX2 loss pass; false (nothing done) where it has none.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[allow(clippy::too_many_arguments)]
    unsafe fn own_loss_data(
        &self,
        _solver: &Solver<'_, f64>,
        _shared: &[f64],
        _h: &[f64],
        _range: Range<usize>,
        _data: &mut [f64],
        _part: &mut [f64],
    ) -> bool {
        false
    }

    #[allow(clippy::too_many_arguments)]
    fn h_r(
        &self,
        avx2: bool,
        solver: &Solver<'_, f64>,
        shared: &[f64],
        h: &[f64],
        range: Range<usize>,
        data: Option<&[f64]>,
        out: &mut [f64],
        r: &mut [f64],
        acc: &mut [f64],
    ) {
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: `avx2` is only true when the CPU reports AVX2.
            unsafe {
                if !self.own_h_r(solver, shared, h, range.clone(), data, out, r, acc) {
                    portable::h_r_avx2(solver, self, shared, h, range, data, out, r, acc);
                }
            }
            return;
        }
        let _ = avx2;
        solver.h_r_block(self, shared, h, range, data, out, r, acc);
    }

    #[allow(clippy::too_many_arguments)]
    fn loss_data(
        &self,
        avx2: bool,
        solver: &Solver<'_, f64>,
        shared: &[f64],
        h: &[f64],
        range: Range<usize>,
        data: &mut [f64],
        part: &mut [f64],
        acc: &mut [f64],
    ) {
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: `avx2` is only true when the CPU reports AVX2.
            unsafe {
                if !self.own_loss_data(solver, shared, h, range.clone(), data, part) {
                    portable::loss_data_avx2(solver, self, shared, h, range, data, part, acc);
                }
            }
            return;
        }
        let _ = avx2;
        solver.loss_data_block(self, shared, h, range, data, part, acc);
    }
}

impl Passes for Counts<'_, f64> {}

impl Passes for Compact {
    #[cfg(target_arch = "x86_64")]
    unsafe fn own_h_r(
        &self,
        solver: &Solver<'_, f64>,
        shared: &[f64],
        h: &[f64],
        range: Range<usize>,
        data: Option<&[f64]>,
        out: &mut [f64],
        r: &mut [f64],
        acc: &mut [f64],
    ) -> bool {
        // SAFETY: the caller guarantees AVX2; the counts are this solver's.
        unsafe { avx2::h_r(solver, self, shared, h, range, data, out, r, acc) }
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn own_loss_data(
        &self,
        solver: &Solver<'_, f64>,
        shared: &[f64],
        h: &[f64],
        range: Range<usize>,
        data: &mut [f64],
        part: &mut [f64],
    ) -> bool {
        // SAFETY: the caller guarantees AVX2; the counts are this solver's.
        unsafe { avx2::loss_data(solver, self, shared, h, range, data, part) }
    }
}

/// The core's portable block passes compiled for AVX2.
#[cfg(target_arch = "x86_64")]
mod portable {
    use super::*;

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn h_r_avx2<C: PixelCounts<f64>>(
        solver: &Solver<'_, f64>,
        y: &C,
        shared: &[f64],
        h: &[f64],
        range: Range<usize>,
        data: Option<&[f64]>,
        out: &mut [f64],
        r: &mut [f64],
        acc: &mut [f64],
    ) {
        solver.h_r_block(y, shared, h, range, data, out, r, acc);
    }

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn loss_data_avx2<C: PixelCounts<f64>>(
        solver: &Solver<'_, f64>,
        y: &C,
        shared: &[f64],
        h: &[f64],
        range: Range<usize>,
        data: &mut [f64],
        part: &mut [f64],
        acc: &mut [f64],
    ) {
        solver.loss_data_block(y, shared, h, range, data, part, acc);
    }
}

/// True when the AVX2 kernels can run here.
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
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
    fn step(&mut self, g: &[f64], w: &mut [f64], h: &mut [f64]) {
        match self.compact.take() {
            Some(c) => {
                self.step_with(&c, g, w, h);
                self.compact = Some(c);
            }
            None => {
                let y = self.y;
                self.step_with(&y, g, w, h);
            }
        }
    }

    fn loss(&mut self, g: &[f64], w: &[f64], h: &[f64]) -> LossTerms {
        match self.compact.take() {
            Some(c) => {
                let t = self.loss_with(&c, g, w, h);
                self.compact = Some(c);
                t
            }
            None => {
                let y = self.y;
                self.loss_with(&y, g, w, h)
            }
        }
    }

    fn kl_constant(&self) -> f64 {
        self.c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use edxs_core::solver::{Laplacian, NoGUpdate, SimplexSolver};
    use edxs_core::SolverParams;
    use edxs_suite::synthetic;

    /// Every kernel choice and thread count gives the same bits, K = 1…5, with and without the
    /// smoothness and log terms, with simplex on W or on H.
    #[test]
    fn kernels_agree_bit_for_bit() {
        let s = synthetic(23, 29, 150.0, 7);
        let p = s.rows * s.cols;
        let counts = Counts::Sparse {
            channels: s.l,
            pixels: p,
            indptr: &s.indptr,
            indices: &s.indices,
            values: &s.values,
        };
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
            prm.simplex_w = !simplex_h;
            prm.simplex_h = simplex_h;
            prm.simplex_solver = SimplexSolver::Newton;
            prm.log_shift = eps;
            prm.max_iter = 6;
            prm.tol = 0.0;
            prm.g_update_every = 0;
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
                        &mut g,
                        &mut w,
                        &mut h,
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
}
