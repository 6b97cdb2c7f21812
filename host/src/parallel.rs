//! Iterations spread over threads by pixel blocks, with results that do not depend on the
//! number of threads: blocks and reduction groups are fixed by the data size alone, and the
//! groups' partial sums are added in group order.

use edxs_core::solver::{Exec, LossTerms};
use edxs_core::{Counts, Solver};
use rayon::prelude::*;

/// Pixels per block of the H pass.
pub const BLOCK: usize = 256;
/// Number of partial sums of the W statistics and of the loss (fixed, so the reduction order
/// is the same for every thread count).
pub const GROUPS: usize = 64;

/// An [`Exec`] that runs the pixel passes of each iteration on a rayon pool.
pub struct ParallelExec<'s, 'y> {
    solver: &'s Solver<'s, f64>,
    y: Counts<'y, f64>,
    pool: rayon::ThreadPool,
    shared: Vec<f64>,
    h_new: Vec<f64>,
    r_parts: Vec<f64>,
    r: Vec<f64>,
    ws: Vec<f64>,
    c: f64,
}

impl<'s, 'y> ParallelExec<'s, 'y> {
    /// Validates the counts and sets up `threads` workers (0 = one per core).
    pub fn new(
        solver: &'s Solver<'s, f64>,
        y: Counts<'y, f64>,
        threads: usize,
    ) -> anyhow::Result<Self> {
        y.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
        let (l, _, k, p) = solver.dims();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| anyhow::anyhow!("cannot start {threads} threads: {e}"))?;
        Ok(ParallelExec {
            solver,
            y,
            pool,
            shared: vec![0.0; solver.shared_len()],
            h_new: vec![0.0; k * p],
            r_parts: vec![0.0; GROUPS * l * k],
            r: vec![0.0; l * k],
            ws: vec![0.0; solver.exec_len()],
            c: y.kl_constant(),
        })
    }

    /// Pixel range of reduction group `g` (whole blocks, possibly empty).
    fn group(&self, g: usize) -> std::ops::Range<usize> {
        let p = self.solver.dims().3;
        let blocks = p.div_ceil(BLOCK);
        let (b0, b1) = (g * blocks / GROUPS, (g + 1) * blocks / GROUPS);
        (b0 * BLOCK).min(p)..(b1 * BLOCK).min(p)
    }
}

impl Exec<f64> for ParallelExec<'_, '_> {
    fn step(&mut self, g: &[f64], w: &mut [f64], h: &mut [f64]) {
        let (l, _, k, p) = self.solver.dims();
        let solver = self.solver;
        if solver.prepare(g, w, h, &mut self.shared).is_err() {
            return;
        }
        let (y, shared) = (&self.y, &self.shared[..]);
        let h_old: &[f64] = h;
        let h_new = &mut self.h_new;
        self.pool.install(|| {
            h_new.par_chunks_mut(BLOCK * k).enumerate().for_each_init(
                || vec![0.0; 2 * k],
                |acc, (b, out)| {
                    let range = b * BLOCK..((b + 1) * BLOCK).min(p);
                    solver.h_block(y, shared, h_old, range, out, acc);
                },
            )
        });
        for px in 0..p {
            for c in 0..k {
                h[c * p + px] = self.h_new[px * k + c];
            }
        }
        let ranges: Vec<_> = (0..GROUPS).map(|g| self.group(g)).collect();
        let h_now: &[f64] = h;
        let parts = &mut self.r_parts;
        self.pool.install(|| {
            parts
                .par_chunks_mut(l * k)
                .zip(ranges.par_iter())
                .for_each(|(r, range)| {
                    r.iter_mut().for_each(|v| *v = 0.0);
                    solver.r_block(y, shared, h_now, range.clone(), r);
                })
        });
        self.r.iter_mut().for_each(|v| *v = 0.0);
        for part in self.r_parts.chunks_exact(l * k) {
            for (a, b) in self.r.iter_mut().zip(part) {
                *a += *b;
            }
        }
        let _ = solver.w_from_r(g, w, h, &self.r, &mut self.ws);
    }

    fn loss(&mut self, g: &[f64], w: &[f64], h: &[f64]) -> LossTerms {
        let solver = self.solver;
        if solver.prepare(g, w, h, &mut self.shared).is_err() {
            return LossTerms::default();
        }
        let (y, shared) = (&self.y, &self.shared[..]);
        let ranges: Vec<_> = (0..GROUPS).map(|g| self.group(g)).collect();
        let parts: Vec<f64> = self.pool.install(|| {
            ranges
                .par_iter()
                .map(|range| solver.log_term_block(y, shared, h, range.clone()))
                .collect()
        });
        let log_term: f64 = parts.iter().sum();
        solver.loss_from_log_term(shared, h, log_term, self.c)
    }

    fn kl_constant(&self) -> f64 {
        self.c
    }
}
