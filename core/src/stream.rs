//! Streaming ESpM-NMF: update the decomposition as frames of counts arrive.
//!
//! A frame is the counts of some pixels: one scan line, or a whole pass at a fraction of the
//! dose. [`Stream::accumulate`] adds a frame to the caller's count buffer and updates H of the
//! pixels it touched (one multiplicative step each, W fixed, in frame order);
//! [`Stream::commit`] folds the touched pixels' share of the W statistics
//! R = (Y⊘GWH)Hᵀ (L×K) and s = H1 (K) into running sums and takes a W step from them;
//! [`Stream::full_pass`] runs batch iterations over everything accumulated and makes the
//! statistics exact again.
//!
//! **Update rule.** With ρ the forgetting factor, at each commit
//! R ← ρ·R + R_touched, s ← ρ·s + s_touched (later rounds of the same commit replace the
//! touched pixels' previous share instead of adding it again), then
//! W ← max(W ⊙ GᵀR / ((G1)sᵀ + ν), ε) with ν putting W's element rows on the simplex.
//! Choose ρ = 1 when frames tile the scan (each pixel's share enters once), ρ < 1 to let
//! early, low-dose passes fade, and ρ = 0 when every frame revisits every pixel.
//!
//! **When the loss decreases.** The H step of `accumulate` is the batch majorise–minimise step
//! restricted to the touched pixels, so (with λ = 0) it never increases the loss on the counts
//! accumulated so far. The W step of `commit` is exactly the batch W step — and so also never
//! increases that loss — when its statistics are exact: ρ = 0 and the frame touched every pixel,
//! or right after a full pass. Otherwise the statistics mix pixels evaluated at earlier W and
//! H and the step is a stochastic approximation without that guarantee; `full_pass` restores
//! it.
//!
//! **Against a batch fit (the bound the tests check).** T passes over the scan with R rounds
//! per commit give every pixel T·R H steps, as many as T·R batch iterations would. On the
//! accumulated counts, the stream's loss after the last frame is then no higher than that of a
//! batch fit from the same start after T·R iterations, and after [`Stream::full_pass`] of n
//! iterations no higher than the batch fit's after T·R + n; run on to the same total count of
//! iterations, the two end within 1% of each other. This is measured, not proved (the W step on
//! mixed statistics carries no guarantee): `tests/stream.rs` checks it on the firmware's event
//! stream (16×16 pixels, 128 channels, 16 556 counts, T = 4, R = 2, ρ = 0.9, n = 10) over
//! three random splits of the dose into passes — 0.749–0.753 after the frames against 0.802
//! for 8 batch iterations, 0.678–0.682 after the full pass against 0.697 for 18, and
//! 0.2867 against 0.2881 after 500 — and for twenty dose-split passes with ρ = 0 (within 1% of
//! the converged batch loss).
//!
//! **Memory.** [`state_len`], [`touched_len`], [`frame_indptr_len`], [`frame_entries_len`]
//! and [`StreamLens`] give every buffer's length as `const fn`s, so firmware can size static
//! buffers; the accumulated counts (P·L values) dominate.
//!
//! **Cost.** `accumulate`: O(nnz of the frame) to add the counts, O(L·M·K) for GW, and
//! O(nnz of the touched pixels' accumulated counts · K) for their H. `commit`: the same pass
//! over the touched pixels plus O(L·M·K). Nothing allocates; the caller owns every buffer.

use crate::error::SolverError;
use crate::float::Float;
use crate::solver::{Counts, Layout, Solver, SolverParams};

/// Length of [`Stream`]'s `state` buffer for L `channels`, M `columns` of G, K `components` and
/// P `pixels` (what [`Stream::state_len`] returns, as a `const fn` for static buffers): the
/// accumulated counts P·L, the statistics 2·L·K + 3·K and the solver workspace.
pub const fn state_len(channels: usize, columns: usize, components: usize, pixels: usize) -> usize {
    let (l, m, k, p) = (channels, columns, components, pixels);
    let max_pk = if p > k { p } else { k };
    // `Solver::exec_len` + `Solver::driver_len`; tests/stream.rs checks the two agree.
    let workspace =
        2 * l * k + m + 4 * k + 2 * k * p + 3 * m * k + 4 * max_pk + 2 * (m * k + k * p);
    p * l + 2 * l * k + 3 * k + workspace
}

/// Length of the `touched` bitmap for P `pixels` (one bit per pixel, in `u32` words).
pub const fn touched_len(pixels: usize) -> usize {
    pixels.div_ceil(32)
}

/// Length of a frame's `indptr` for a frame of `frame_pixels` pixels.
pub const fn frame_indptr_len(frame_pixels: usize) -> usize {
    frame_pixels + 1
}

/// Largest number of entries (`channels`/`counts`) of a frame of `frame_pixels` pixels once
/// its events are merged per (pixel, channel): one per channel and pixel, whatever the dose.
pub const fn frame_entries_len(channels: usize, frame_pixels: usize) -> usize {
    channels * frame_pixels
}

/// Every buffer of a streaming run, in elements, for L channels, M columns of G, K components,
/// P pixels and frames of at most `frame_pixels` pixels with merged counts. The model's scratch
/// (`EdxsModel::scratch_len`) depends on the model and is not included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLens {
    /// G, L×M floats.
    pub g: usize,
    /// W, M×K floats.
    pub w: usize,
    /// H, K×P floats.
    pub h: usize,
    /// [`state_len`] floats.
    pub state: usize,
    /// [`touched_len`] `u32` words.
    pub touched: usize,
    /// `Frame::pixels`, `u32`.
    pub frame_pixels: usize,
    /// `Frame::indptr`, `usize` ([`frame_indptr_len`]).
    pub frame_indptr: usize,
    /// `Frame::channels` (`u32`) and `Frame::counts` (floats), each ([`frame_entries_len`]).
    pub frame_entries: usize,
}

impl StreamLens {
    /// The lengths for the given dimensions.
    pub const fn new(
        channels: usize,
        columns: usize,
        components: usize,
        pixels: usize,
        frame_pixels: usize,
    ) -> Self {
        StreamLens {
            g: channels * columns,
            w: columns * components,
            h: components * pixels,
            state: state_len(channels, columns, components, pixels),
            touched: touched_len(pixels),
            frame_pixels,
            frame_indptr: frame_indptr_len(frame_pixels),
            frame_entries: frame_entries_len(channels, frame_pixels),
        }
    }

    /// Bytes of all these buffers with `float_bytes`-byte floats and `usize_bytes`-byte
    /// offsets (4 and 4 for f32 on a 32-bit MCU).
    pub const fn bytes(&self, float_bytes: usize, usize_bytes: usize) -> usize {
        float_bytes * (self.g + self.w + self.h + self.state + self.frame_entries)
            + 4 * (self.touched + self.frame_pixels + self.frame_entries)
            + usize_bytes * self.frame_indptr
    }
}

/// The counts of one frame: pixel `pixels[i]` received `counts[j]` in channel `channels[j]`
/// for j in `indptr[i]..indptr[i+1]`.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a, T> {
    /// Scan index (row-major) of each pixel in the frame.
    pub pixels: &'a [u32],
    /// `pixels.len() + 1` offsets into `channels`/`counts`.
    pub indptr: &'a [usize],
    /// Channel of each count.
    pub channels: &'a [u32],
    /// The counts.
    pub counts: &'a [T],
}

/// A planned streaming solver (dimensions, parameters, forgetting factor).
#[derive(Debug, Clone, Copy)]
pub struct Stream<'a, T> {
    solver: Solver<'a, T>,
    forgetting: T,
}

/// The stream's buffers, carved from the caller's slices.
struct State<'s, T> {
    y: &'s mut [T],
    r: &'s mut [T],
    r_prev: &'s mut [T],
    s: &'s mut [T],
    s_prev: &'s mut [T],
    max_h: &'s mut [T],
    ws: &'s mut [T],
}

impl<'a, T: Float> Stream<'a, T> {
    /// Plans a stream; `forgetting` (ρ) must lie in [0, 1]. The solver's simplex-on-H,
    /// stopping and G-update settings apply to [`Stream::full_pass`].
    pub fn new(
        params: SolverParams<'a, T>,
        channels: usize,
        columns: usize,
        pixels: usize,
        forgetting: T,
    ) -> Result<Self, SolverError> {
        if !(forgetting >= T::ZERO && forgetting <= T::ONE) {
            return Err(SolverError::InvalidParameter {
                name: "forgetting",
                value: forgetting.to_f64(),
            });
        }
        Ok(Stream {
            solver: Solver::new(params, channels, columns, pixels)?,
            forgetting,
        })
    }

    /// The batch solver behind the stream.
    pub fn solver(&self) -> &Solver<'a, T> {
        &self.solver
    }

    /// Length of the `state` buffer: the accumulated counts (P·L, pixel-major, readable by the
    /// caller as the first P·L values), the statistics and the solver workspace.
    pub fn state_len(&self) -> usize {
        self.state_layout().len()
    }

    /// The regions of `state` in the field order of [`State`]: the one place that sizes and
    /// carves it ([`state_len`] repeats the sum as a `const fn`; tests/stream.rs checks that
    /// the two agree).
    fn state_layout(&self) -> Layout<7> {
        let (l, _, k, p) = self.solver.dims();
        Layout([p * l, l * k, l * k, k, k, k, self.solver.workspace_len()])
    }

    /// Length of the `touched` bitmap (one bit per pixel).
    pub fn touched_len(&self) -> usize {
        self.solver.dims().3.div_ceil(32)
    }

    fn state<'s>(&self, state: &'s mut [T]) -> Result<State<'s, T>, SolverError> {
        let [y, r, r_prev, s, s_prev, max_h, ws] = self.state_layout().carve_mut("state", state)?;
        Ok(State {
            y,
            r,
            r_prev,
            s,
            s_prev,
            max_h,
            ws,
        })
    }

    /// The accumulated counts as the solver reads them.
    fn dense<'y>(&self, y: &'y [T]) -> Counts<'y, T> {
        let (l, _, _, p) = self.solver.dims();
        Counts::Dense {
            channels: l,
            pixels: p,
            data: y,
        }
    }

    fn check_touched(&self, touched: &[u32]) -> Result<(), SolverError> {
        if touched.len() < self.touched_len() {
            return Err(SolverError::DimensionMismatch {
                buffer: "touched",
                expected: self.touched_len(),
                got: touched.len(),
            });
        }
        Ok(())
    }

    /// Starts an acquisition: no counts, empty statistics, nothing touched. W and H are the
    /// caller's starting point.
    pub fn reset(&self, state: &mut [T], touched: &mut [u32]) -> Result<(), SolverError> {
        self.check_touched(touched)?;
        let st = self.state(state)?;
        for buf in [st.y, st.r, st.r_prev, st.s, st.s_prev, st.max_h] {
            buf.iter_mut().for_each(|v| *v = T::ZERO);
        }
        touched.iter_mut().for_each(|v| *v = 0);
        Ok(())
    }

    fn check_frame(&self, f: &Frame<'_, T>) -> Result<(), SolverError> {
        let (l, _, _, p) = self.solver.dims();
        if f.indptr.len() != f.pixels.len() + 1 {
            return Err(SolverError::DimensionMismatch {
                buffer: "frame indptr",
                expected: f.pixels.len() + 1,
                got: f.indptr.len(),
            });
        }
        if f.channels.len() != f.counts.len() {
            return Err(SolverError::DimensionMismatch {
                buffer: "frame counts",
                expected: f.channels.len(),
                got: f.counts.len(),
            });
        }
        if f.indptr[0] != 0 || f.indptr[f.pixels.len()] != f.counts.len() {
            return Err(SolverError::MalformedSparse { pixel: 0 });
        }
        for (i, &px) in f.pixels.iter().enumerate() {
            let (a, b) = (f.indptr[i], f.indptr[i + 1]);
            if px as usize >= p || a > b || b > f.counts.len() {
                return Err(SolverError::MalformedSparse { pixel: px as usize });
            }
            for j in a..b {
                let (c, v) = (f.channels[j] as usize, f.counts[j]);
                if c >= l {
                    return Err(SolverError::MalformedSparse { pixel: px as usize });
                }
                if !(v >= T::ZERO && v.is_finite()) {
                    return Err(SolverError::InvalidCount {
                        pixel: px as usize,
                        channel: c,
                        value: v.to_f64(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Adds a frame's counts and updates H of the pixels it touches (W fixed).
    pub fn accumulate(
        &self,
        frame: &Frame<'_, T>,
        g: &[T],
        w: &[T],
        h: &mut [T],
        state: &mut [T],
        touched: &mut [u32],
    ) -> Result<(), SolverError> {
        self.check_frame(frame)?;
        self.check_touched(touched)?;
        let l = self.solver.dims().0;
        let st = self.state(state)?;
        self.solver.check_buffers(&self.dense(st.y), g, w, h)?;
        for (i, &px) in frame.pixels.iter().enumerate() {
            let px = px as usize;
            for j in frame.indptr[i]..frame.indptr[i + 1] {
                st.y[px * l + frame.channels[j] as usize] += frame.counts[j];
            }
            touched[px / 32] |= 1 << (px % 32);
        }
        let mut work = self.solver.work(st.ws)?;
        self.solver.compute_d(g, w, &mut work);
        let y = self.dense(st.y);
        for &px in frame.pixels {
            self.update_pixel(&y, h, px as usize, st.max_h, &mut work);
        }
        Ok(())
    }

    /// One H step for pixel `px` with the current D, then the running maximum of H.
    fn update_pixel(
        &self,
        y: &Counts<'_, T>,
        h: &mut [T],
        px: usize,
        max_h: &mut [T],
        work: &mut crate::solver::Work<'_, T>,
    ) {
        let (_, _, k, p) = self.solver.dims();
        let prm = self.solver.params();
        let eps = prm.log_shift;
        // Keep the Laplacian bound valid: the running maximum only grows.
        for (c, m) in max_h.iter_mut().enumerate() {
            *m = m.max(h[c * p + px]);
        }
        let (num, rest) = work.num_s.split_at_mut(k);
        let den = &mut rest[..k];
        let st = crate::solver::DStats {
            d: work.d,
            colsum_d: work.colsum_d,
            max_h,
        };
        self.solver.pixel_terms(y, st, h, px, work.acc, |c, n, d| {
            num[c] = n;
            den[c] = d;
        });
        let mut nu = T::ZERO;
        if prm.simplex_h() {
            let col = num.iter().copied().zip(den.iter().copied());
            match crate::solver::newton_simplex(col, k, eps) {
                Some(v) => nu = v,
                None => {
                    num.iter_mut().for_each(|v| *v = T::ONE);
                    den.iter_mut().for_each(|v| *v = T::from_usize(k));
                }
            }
        }
        let fix = if prm.simplex_h() && !prm.simplex_w() {
            let col = num.iter().copied().zip(den.iter().copied());
            crate::solver::simplex_repair(col, k, nu, eps)
        } else {
            None
        };
        for c in 0..k {
            let i = c * p + px;
            let mut v = crate::solver::simplex_value(num[c], den[c], nu, eps, fix);
            if let Some(fh) = prm.fixed_h {
                if fh[i] >= T::ZERO {
                    v = fh[i];
                }
            }
            h[i] = v;
            max_h[c] = max_h[c].max(v);
        }
    }

    /// Folds the touched pixels into the W statistics and takes a W step; `rounds` > 1
    /// alternates further H steps of the touched pixels with W steps.
    pub fn commit(
        &self,
        rounds: usize,
        g: &[T],
        w: &mut [T],
        h: &mut [T],
        state: &mut [T],
        touched: &mut [u32],
    ) -> Result<(), SolverError> {
        self.check_touched(touched)?;
        let (l, _, k, p) = self.solver.dims();
        let st = self.state(state)?;
        self.solver.check_buffers(&self.dense(st.y), g, w, h)?;
        let is_touched = |px: usize| touched[px / 32] & (1 << (px % 32)) != 0;
        let mut work = self.solver.work(st.ws)?;
        let y = self.dense(st.y);
        for round in 0..rounds.max(1) {
            if round > 0 {
                self.solver.compute_d(g, w, &mut work);
                for px in (0..p).filter(|&px| is_touched(px)) {
                    self.update_pixel(&y, h, px, st.max_h, &mut work);
                }
            } else {
                self.solver.compute_d(g, w, &mut work);
            }
            // This round's share of the touched pixels, gathered in the solver's R buffer.
            work.r.iter_mut().for_each(|v| *v = T::ZERO);
            work.rowsum_h.iter_mut().for_each(|v| *v = T::ZERO);
            for px in (0..p).filter(|&px| is_touched(px)) {
                self.solver.add_pixel_stats(&y, work.d, h, px, work.r);
                for c in 0..k {
                    work.rowsum_h[c] += h[c * p + px];
                }
            }
            let keep = if round == 0 { self.forgetting } else { T::ONE };
            for i in 0..l * k {
                let prev = if round == 0 { T::ZERO } else { st.r_prev[i] };
                st.r[i] = keep * st.r[i] - prev + work.r[i];
                st.r_prev[i] = work.r[i];
            }
            for c in 0..k {
                let prev = if round == 0 { T::ZERO } else { st.s_prev[c] };
                st.s[c] = keep * st.s[c] - prev + work.rowsum_h[c];
                st.s_prev[c] = work.rowsum_h[c];
            }
            work.r.copy_from_slice(st.r);
            work.rowsum_h.copy_from_slice(st.s);
            self.solver.w_from_stats(g, w, &mut work);
        }
        touched.iter_mut().for_each(|v| *v = 0);
        Ok(())
    }

    /// `iterations` batch iterations over everything accumulated, after which the statistics
    /// are exact (as if one frame with ρ = 0 had touched every pixel).
    pub fn full_pass(
        &self,
        iterations: usize,
        g: &[T],
        w: &mut [T],
        h: &mut [T],
        state: &mut [T],
        touched: &mut [u32],
    ) -> Result<(), SolverError> {
        self.check_touched(touched)?;
        let (_, _, k, p) = self.solver.dims();
        let st = self.state(state)?;
        let y = self.dense(st.y);
        self.solver.check_buffers(&y, g, w, h)?;
        let mut work = self.solver.work(st.ws)?;
        for _ in 0..iterations {
            self.solver.step(&y, g, w, h, &mut work);
        }
        self.solver.compute_d(g, w, &mut work);
        st.r.iter_mut().for_each(|v| *v = T::ZERO);
        for px in 0..p {
            self.solver.add_pixel_stats(&y, work.d, h, px, st.r);
        }
        for c in 0..k {
            st.s[c] = h[c * p..(c + 1) * p].iter().fold(T::ZERO, |a, &v| a + v);
            st.max_h[c] = h[c * p..(c + 1) * p].iter().fold(T::ZERO, |a, &v| a.max(v));
        }
        st.r_prev.iter_mut().for_each(|v| *v = T::ZERO);
        st.s_prev.iter_mut().for_each(|v| *v = T::ZERO);
        touched.iter_mut().for_each(|v| *v = 0);
        Ok(())
    }

    /// The loss on the counts accumulated so far (averaged over L·P as espm reports it).
    pub fn loss(
        &self,
        g: &[T],
        w: &[T],
        h: &[T],
        state: &mut [T],
    ) -> Result<crate::solver::LossTerms, SolverError> {
        let st = self.state(state)?;
        let y = self.dense(st.y);
        self.solver.check_buffers(&y, g, w, h)?;
        let c = y.kl_constant();
        let mut work = self.solver.work(st.ws)?;
        Ok(self.solver.loss_terms(&y, g, w, h, c, &mut work))
    }

    /// The counts accumulated so far (P×L, pixel-major).
    pub fn counts<'s>(&self, state: &'s [T]) -> &'s [T] {
        let (l, _, _, p) = self.solver.dims();
        &state[..(p * l).min(state.len())]
    }
}
