//! Pixel-block pieces of an iteration, so that a host can spread the passes over the counts
//! across threads: every pixel's H step and its share of the W statistics are independent
//! given D = GW and the old H, and the shares are added by the caller in a fixed order.
//!
//! [`Solver::prepare`] fills a shared buffer ([`Solver::shared_len`] values, carved by one
//! [`Layout`]) at (W, H); [`Solver::pass`] checks it once and returns the [`Pass`] that every
//! block of the iteration reads. The fused schedule touches each non-zero twice per iteration:
//!
//! 1. the loss at (W, H): [`Pass::loss_data_block`] over all blocks gives the block's partial
//!    sums of the loss (added element-wise in block order, finished by
//!    [`Pass::loss_from_part_sums`]) and, from the same products D·h, the data term Dᵀ(y⊘DH)
//!    of every pixel, which is exactly what the next H step at the same (W, H) needs;
//! 2. the iteration: [`Pass::h_r_block`] over all blocks turns each pixel's data term into its
//!    new H and, with the pixel's non-zeros still in cache, adds its share of R = (Y⊘DH)Hᵀ at
//!    the new H (R only involves a pixel's own abundances); the shares and the row sums of the
//!    new H are added in block order and [`Solver::w_from_sums`] updates W.
//!
//! A host with its own lane kernels reads D from the pass ([`Pass::d_cols`],
//! [`Pass::d_rows4`], [`Pass::d_clear`]) and finishes a block with
//! [`Pass::h_from_data_block`] and [`Pass::loss_h_part`]: the [`Pass`] is the whole of what
//! such kernels use, so they are chosen once, when the host plans its executor.
//!
//! Every public function checks the lengths of the buffers and the pixel range it is given
//! and returns [`SolverError`] instead of indexing outside them.

// Lane-wise loops index several arrays by lane and component on purpose.
#![allow(clippy::needless_range_loop)]

use super::data::{PixelCounts, LANES};
use super::h_step::{data_term, finite_or, log_part_for, with_k, ColMajor, DStats};
use super::laplacian;
use super::layout::Layout;
use super::loss::{all_at_least, LogSum, LossTerms};
use super::params::{Laplacian, SimplexSolver};
use super::w_step::add_stats;
use super::{simplex, Solver};
use crate::error::SolverError;
use crate::float::Float;
use core::ops::Range;

/// D = G·W (L×K) over the non-zeros of G: a zero adds nothing to a sum that starts at +0 (and
/// must not add 0·∞ when W is not finite), and a large G such as plain NMF's identity is
/// mostly zeros.
fn gw<T: Float>(g: &[T], w: &[T], m: usize, k: usize, d: &mut [T]) {
    with_k!(k, K => {
        for (grow, drow) in g.chunks_exact(m).zip(d.chunks_exact_mut(K)) {
            let mut acc = [T::ZERO; K];
            for (gv, wrow) in grow.iter().zip(w.chunks_exact(K)) {
                if *gv != T::ZERO {
                    for c in 0..K {
                        acc[c] += *gv * wrow[c];
                    }
                }
            }
            drow.copy_from_slice(&acc);
        }
    }, _ => {
        for (grow, drow) in g.chunks_exact(m).zip(d.chunks_exact_mut(k)) {
            drow.iter_mut().for_each(|v| *v = T::ZERO);
            for (gv, wrow) in grow.iter().zip(w.chunks_exact(k)) {
                if *gv != T::ZERO {
                    for (dv, wv) in drow.iter_mut().zip(wrow) {
                        *dv += *gv * *wv;
                    }
                }
            }
        }
    })
}

/// The largest value of a row (−MAX for an empty one) as `Float::max` folds it, NaN skipped,
/// in lane-wise partial maxima (max is exact, so the grouping does not matter).
pub(crate) fn row_max<T: Float>(row: &[T]) -> T {
    let mut m = [-T::MAX; LANES];
    let mut chunks = row.chunks_exact(LANES);
    for c in &mut chunks {
        for j in 0..LANES {
            m[j] = if c[j] > m[j] { c[j] } else { m[j] };
        }
    }
    for (j, &v) in chunks.remainder().iter().enumerate() {
        m[j] = if v > m[j] { v } else { m[j] };
    }
    let mut out = m[0];
    for &v in &m[1..] {
        out = if v > out { v } else { out };
    }
    out
}

/// The read-only per-iteration values shared by the blocks.
#[derive(Clone, Copy)]
struct Shared<'s, T> {
    d: &'s [T],
    colsum_d: &'s [T],
    max_h: &'s [T],
    /// Every entry of D is at least ε.
    d_clear: bool,
    /// D component-major (K×L).
    dt: &'s [T],
    /// D row-major with rows padded to 4 (L×4, zeros after column K; empty when K > 4).
    d4: &'s [T],
}

impl<'s, T: Float> Shared<'s, T> {
    /// D's columns as the lane kernels read them.
    #[inline(always)]
    fn cols<const K: usize>(&self) -> ColMajor<'s, T, K> {
        let l = self.dt.len() / K;
        ColMajor(core::array::from_fn(|c| &self.dt[c * l..(c + 1) * l]))
    }
}

impl<'a, T: Float> Solver<'a, T> {
    /// Length of the per-iteration buffer shared (read-only) by the blocks: D (L×K), its column
    /// sums (K), the row maxima of H (K), one flag, D again component-major and, for K ≤ 4,
    /// D with rows padded to 4 values.
    pub fn shared_len(&self) -> usize {
        self.shared_layout().len()
    }

    /// The regions of the shared buffer, in the order of [`Solver::shared_len`]: the one place
    /// that sizes and carves it.
    fn shared_layout(&self) -> Layout<6> {
        let (l, k) = (self.l, self.k);
        let d4 = if k <= 4 { 4 * l } else { 0 };
        Layout([l * k, k, k, 1, l * k, d4])
    }

    /// The checked view of a shared buffer filled by [`Solver::prepare`] at the H `h` (K×P):
    /// what every block of one pass reads.
    pub fn pass<'p>(&'p self, shared: &'p [T], h: &'p [T]) -> Result<Pass<'p, T>, SolverError> {
        let [d, colsum_d, max_h, flag, dt, d4] = self.shared_layout().carve("shared", shared)?;
        let (k, p) = (self.k, self.p);
        if h.len() != k * p {
            return Err(SolverError::DimensionMismatch {
                buffer: "h",
                expected: k * p,
                got: h.len(),
            });
        }
        Ok(Pass {
            solver: self,
            sh: Shared {
                d,
                colsum_d,
                max_h,
                d_clear: flag[0] != T::ZERO,
                dt,
                d4,
            },
            h,
        })
    }

    /// Checks a block's pixel range, and that each of `bufs` (name, length needed, length
    /// given) is long enough.
    fn check_block(
        &self,
        range: &Range<usize>,
        bufs: &[(&'static str, usize, usize)],
    ) -> Result<(), SolverError> {
        let p = self.p;
        if range.start > range.end || range.end > p {
            return Err(SolverError::PixelRange {
                start: range.start,
                end: range.end,
                pixels: p,
            });
        }
        for &(buffer, expected, got) in bufs {
            if got < expected {
                return Err(SolverError::DimensionMismatch {
                    buffer,
                    expected,
                    got,
                });
            }
        }
        Ok(())
    }

    /// Checks that block counts have the planned dimensions.
    fn check_block_counts<C: PixelCounts<T>>(&self, y: &C) -> Result<(), SolverError> {
        for (buffer, expected, got) in [
            ("counts (channels)", self.l, y.n_channels()),
            ("counts (pixels)", self.p, y.n_pixels()),
        ] {
            if got != expected {
                return Err(SolverError::DimensionMismatch {
                    buffer,
                    expected,
                    got,
                });
            }
        }
        Ok(())
    }

    /// D = G·W (L×K) and its column sums Dᵀ1, for the serial and the block passes alike; an
    /// identity G ([`GModel::Identity`](super::GModel::Identity)) is never read.
    pub(crate) fn gw_and_colsum(&self, g: &[T], w: &[T], d: &mut [T], colsum: &mut [T]) {
        let k = self.k;
        if self.params.g_identity() {
            // 0 + 1·w is w exactly, so this equals the product with an explicit identity.
            d.copy_from_slice(&w[..self.l * k]);
        } else {
            gw(g, w, self.m, k, d);
        }
        colsum.iter_mut().for_each(|v| *v = T::ZERO);
        for drow in d.chunks_exact(k) {
            for (s, v) in colsum.iter_mut().zip(drow) {
                *s += *v;
            }
        }
    }

    /// Fills `shared` ([`Solver::shared_len`] values) at (W, H): D = GW, Dᵀ1, the row maxima
    /// of H and whether D ≥ ε; [`Solver::pass`] then views it.
    pub fn prepare(&self, g: &[T], w: &[T], h: &[T], shared: &mut [T]) -> Result<(), SolverError> {
        let (l, k, p) = (self.l, self.k, self.p);
        self.check_lens(g, w, h)?;
        let [d, colsum_d, max_h, flag, dt, d4] =
            self.shared_layout().carve_mut("shared", shared)?;
        self.gw_and_colsum(g, w, d, colsum_d);
        for (c, mh) in max_h.iter_mut().enumerate() {
            *mh = row_max(&h[c * p..(c + 1) * p]);
        }
        flag[0] = if all_at_least(d, self.params.log_shift) {
            T::ONE
        } else {
            T::ZERO
        };
        for (li, drow) in d.chunks_exact(k).enumerate() {
            for (c, v) in drow.iter().enumerate() {
                dt[c * l + li] = *v;
            }
        }
        for (row, drow) in d4.chunks_exact_mut(4).zip(d.chunks_exact(k)) {
            row.iter_mut().for_each(|v| *v = T::ZERO);
            row[..k].copy_from_slice(drow);
        }
        Ok(())
    }

    /// The new abundances of pixel `px` (into `o`, K values) from its data term Dᵀ(y⊘Dh) in
    /// `acc[..K]`; `acc[K..2K]` is scratch.
    #[inline]
    fn h_pixel(&self, sh: &Shared<'_, T>, h: &[T], px: usize, acc: &mut [T], o: &mut [T]) {
        let k = self.k;
        let prm = &self.params;
        let eps = prm.log_shift;
        let simplex_h = prm.simplex_h();
        let (data, den) = acc.split_at_mut(k);
        let den = &mut den[..k];
        let st = DStats {
            d: sh.d,
            colsum_d: sh.colsum_d,
            max_h: sh.max_h,
        };
        self.terms_from_data(st, h, px, data, |c, n, dn| {
            o[c] = n;
            den[c] = dn;
        });
        let mut nu = T::ZERO;
        if simplex_h {
            let col = o.iter().copied().zip(den.iter().copied());
            match simplex::newton(col, k, eps, T::ONE) {
                Some(v) => nu = v,
                None => {
                    o.iter_mut().for_each(|v| *v = T::ONE);
                    den.iter_mut().for_each(|v| *v = T::from_usize(k));
                }
            }
        }
        let fix = if simplex_h {
            let col = o.iter().copied().zip(den.iter().copied());
            simplex::repair(
                col,
                k,
                nu,
                eps,
                T::ONE,
                simplex::tol_of(SimplexSolver::Newton),
            )
        } else {
            None
        };
        for c in 0..k {
            let mut v = finite_or(
                simplex::value(o[c], den[c], nu, eps, fix),
                h[c * self.p + px],
            );
            if let Some(fh) = prm.fixed_h {
                let f = fh[c * self.p + px];
                if f >= T::ZERO {
                    v = f;
                }
            }
            o[c] = v;
        }
    }

    /// [`Pass::h_from_data_block`] on checked buffers.
    #[inline(always)]
    fn h_from_data(
        &self,
        sh: &Shared<'_, T>,
        h: &[T],
        range: Range<usize>,
        io: &mut [T],
        scratch: &mut [T],
    ) {
        let k = self.k;
        let prm = &self.params;
        // No simplex on H (it only applies without one on W) and nothing fixed.
        let plain = !prm.simplex_h() && prm.fixed_h.is_none();
        with_k!(k, K => {
            if plain {
                self.h_plain::<K>(sh, h, range, io);
                return;
            }
        }, _ => {});
        for (i, px) in range.enumerate() {
            scratch[..k].copy_from_slice(&io[i * k..(i + 1) * k]);
            self.h_pixel(sh, h, px, scratch, &mut io[i * k..(i + 1) * k]);
        }
    }

    /// [`Solver::h_pixel`] over a block without simplex or fixed entries, K known: the same
    /// operations, with the per-component constants and the pixel's place on the grid hoisted.
    #[inline(always)]
    fn h_plain<const K: usize>(
        &self,
        sh: &Shared<'_, T>,
        h: &[T],
        range: Range<usize>,
        io: &mut [T],
    ) {
        let p = self.p;
        let prm = &self.params;
        let (eps, lambda, eps_reg) = (prm.log_shift, prm.lambda_l, prm.epsilon_reg);
        let mu: [T; K] = core::array::from_fn(|c| prm.mu_of(c));
        let reg: [T; K] = core::array::from_fn(|c| lambda * prm.sigma_l * sh.max_h[c]);
        let (rows, cols) = match prm.laplacian {
            Laplacian::Grid { rows, cols } => (rows, cols),
            Laplacian::Identity => (0, 0),
        };
        let (mut r, mut c) = match range.start.checked_div(cols) {
            Some(r) => (r, range.start % cols),
            None => (0, 0),
        };
        for (i, px) in range.enumerate() {
            let o = &mut io[i * K..(i + 1) * K];
            for k in 0..K {
                let row = &h[k * p..(k + 1) * p];
                let hv = row[px];
                let mut num = o[k];
                let mut den = sh.colsum_d[k] + mu[k] / (hv + eps_reg);
                if lambda != T::ZERO {
                    num += reg[k];
                    let lap = if cols == 0 {
                        hv
                    } else {
                        laplacian::grid_at(row, px, r, c, rows, cols)
                    };
                    den += reg[k] + lambda * lap;
                }
                // h_pixel's (num / (den + ν)).max(ε) with ν = 0 (den + 0 = den).
                o[k] = finite_or(((hv * num) / den).max(eps), hv);
            }
            if cols > 0 {
                c += 1;
                if c == cols {
                    c = 0;
                    r += 1;
                }
            }
        }
    }

    /// Adds the share of R of pixel `px` with abundances `hp` (K values) to `r`.
    #[inline(always)]
    fn add_stats_at(
        &self,
        y: &impl PixelCounts<T>,
        sh: &Shared<'_, T>,
        hp: &[T],
        px: usize,
        r: &mut [T],
    ) {
        let k = self.k;
        let eps = self.params.log_shift;
        let d = sh.d;
        with_k!(k, K => {
            let hk: [T; K] = core::array::from_fn(|c| hp[c]);
            add_stats::<T, _, K>(y, px, sh.cols::<K>(), &hk, eps, r);
        }, _ => {
            for c in y.chunks(px) {
                let c = &c;
                for (&li, &yv) in c.channels.iter().zip(&c.counts) {
                    let li = li as usize;
                    let drow = &d[li * k..(li + 1) * k];
                    let mut dh = T::ZERO;
                    for (dv, hv) in drow.iter().zip(hp) {
                        dh += *dv * *hv;
                    }
                    let q = yv / dh.max(eps);
                    for (rv, hv) in r[li * k..(li + 1) * k].iter_mut().zip(hp) {
                        *rv += q * *hv;
                    }
                }
            }
        })
    }

    /// Length of the partial sums of the loss that [`Pass::loss_data_block`] writes per
    /// block: 1 + 3K.
    pub fn loss_part_len(&self) -> usize {
        1 + 3 * self.k
    }

    /// The W step from a complete R (L×K) and the row sums of H (K); `ws` holds `exec_len()`
    /// values.
    pub fn w_from_sums(
        &self,
        g: &[T],
        w: &mut [T],
        r: &[T],
        rowsum_h: &[T],
        ws: &mut [T],
    ) -> Result<(), SolverError> {
        let (l, m, k) = (self.l, self.m, self.k);
        for (buffer, expected, got) in [
            ("w", m * k, w.len()),
            ("r", l * k, r.len()),
            ("rowsum_h", k, rowsum_h.len()),
        ] {
            if got != expected {
                return Err(SolverError::DimensionMismatch {
                    buffer,
                    expected,
                    got,
                });
            }
        }
        if !self.g_len_ok(g.len()) {
            return Err(SolverError::DimensionMismatch {
                buffer: "g",
                expected: l * m,
                got: g.len(),
            });
        }
        let mut work = self.work(ws)?;
        work.r.copy_from_slice(&r[..l * k]);
        work.rowsum_h.copy_from_slice(&rowsum_h[..k]);
        self.w_from_stats(g, w, &mut work);
        Ok(())
    }
}

/// A shared buffer filled by [`Solver::prepare`] and the H it was filled at, checked once by
/// [`Solver::pass`]: the block passes of one iteration, and the whole of what a host's own
/// lane kernels read (D in the layouts they want, and the per-pixel finishing steps).
///
/// Every block function checks its pixel range, its buffers and the dimensions of the counts
/// and returns an error instead of indexing outside them.
///
/// # Panics
/// The block functions read the counts through [`PixelCounts::chunks`], which may panic on
/// malformed storage: validate [`Counts`](super::Counts) first ([`Counts::validate`](super::Counts::validate)), as
/// every executor does when it is made.
///
/// ```
/// use edxs_core::{Counts, Solver, SolverParams};
///
/// # fn main() -> Result<(), edxs_core::SolverError> {
/// let (l, m, k, p) = (3, 2, 1, 4);
/// let y = [1.0f64, 0.0, 2.0, 0.0, 3.0, 1.0, 2.0, 2.0, 0.0, 1.0, 0.0, 4.0];
/// let y = Counts::Dense { channels: l, pixels: p, data: &y };
/// let (g, w, h) = ([1.0, 0.0, 0.5, 0.5, 0.0, 1.0], [0.5, 0.5], [1.0; 4]);
/// let solver = Solver::new(SolverParams::new(k, &[0, 1]), l, m, p)?;
/// let mut shared = vec![0.0; solver.shared_len()];
/// solver.prepare(&g, &w, &h, &mut shared)?;
/// let pass = solver.pass(&shared, &h)?;
/// // Two blocks (on two threads in a host), their loss parts added in block order.
/// let mut data = [0.0; 4];
/// let mut sums = vec![0.0; solver.loss_part_len()];
/// for range in [0..2, 2..4] {
///     let mut part = vec![0.0; solver.loss_part_len()];
///     let (mut acc, n) = ([0.0; 2], range.len());
///     pass.loss_data_block(&y, range.clone(), &mut data[range.start..][..n], &mut part, &mut acc)?;
///     sums.iter_mut().zip(&part).for_each(|(s, v)| *s += v);
/// }
/// let loss = pass.loss_from_part_sums(&sums, y.kl_constant())?;
/// let serial = solver.loss(&y, &g, &w, &h, &mut vec![0.0; solver.exec_len()])?;
/// assert!((loss.total() - serial.total()).abs() < 1e-12);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Copy)]
pub struct Pass<'p, T> {
    solver: &'p Solver<'p, T>,
    sh: Shared<'p, T>,
    h: &'p [T],
}

impl<'p, T: Float> Pass<'p, T> {
    /// The planned solver.
    pub fn solver(&self) -> &'p Solver<'p, T> {
        self.solver
    }

    /// H (K×P) as the pass was prepared at.
    pub fn h(&self) -> &'p [T] {
        self.h
    }

    /// D component-major (K×L).
    pub fn d_cols(&self) -> &'p [T] {
        self.sh.dt
    }

    /// D row-major with each row padded to 4 values (L×4); empty when K > 4.
    pub fn d_rows4(&self) -> &'p [T] {
        self.sh.d4
    }

    /// True when every entry of D is at least ε (then max(D, ε) = D).
    pub fn d_clear(&self) -> bool {
        self.sh.d_clear
    }

    /// The new abundances of the pixels of `range` from their data terms Dᵀ(y⊘Dh) at the old H:
    /// `io` holds the data terms on entry and the new H on return (pixel-major,
    /// `range.len()×K`); `scratch` holds 2K values. This is the H part of
    /// [`Pass::h_r_block`], for hosts that run their own kernels over the counts.
    pub fn h_from_data_block(
        &self,
        range: Range<usize>,
        io: &mut [T],
        scratch: &mut [T],
    ) -> Result<(), SolverError> {
        let s = self.solver;
        let k = s.k;
        s.check_block(
            &range,
            &[
                ("io", range.len() * k, io.len()),
                ("scratch", 2 * k, scratch.len()),
            ],
        )?;
        s.h_from_data(&self.sh, self.h, range, io, scratch);
        Ok(())
    }

    /// The H part of a block's loss sums (see [`Pass::loss_data_block`]): 3K values into
    /// `out` for the pixels of `range`.
    pub fn loss_h_part(&self, range: Range<usize>, out: &mut [f64]) -> Result<(), SolverError> {
        let s = self.solver;
        let k = s.k;
        s.check_block(&range, &[("loss part", 3 * k, out.len())])?;
        s.h_sums(self.h, range, &mut out[..3 * k]);
        Ok(())
    }

    /// One iteration's pass over the pixels in `range`: each pixel's new H (pixel-major into
    /// `out`, `range.len()×K` values) from its data term Dᵀ(y⊘Dh) at the old H — taken from
    /// `data` (pixel-major, as [`Pass::loss_data_block`] leaves it for the same shared buffer
    /// and H) or computed when `None` — then its share of R at the new H, added to `r` (L×K).
    /// `acc` holds 2K values of scratch. The H written and the R added are those of the
    /// serial iteration.
    #[inline(always)]
    pub fn h_r_block<C: PixelCounts<T>>(
        &self,
        y: &C,
        range: Range<usize>,
        data: Option<&[T]>,
        out: &mut [T],
        r: &mut [T],
        acc: &mut [T],
    ) -> Result<(), SolverError> {
        let (s, sh, h) = (self.solver, &self.sh, self.h);
        let (l, k) = (s.l, s.k);
        s.check_block_counts(y)?;
        let n = range.len() * k;
        s.check_block(
            &range,
            &[
                (
                    "data",
                    if data.is_some() { n } else { 0 },
                    data.map_or(0, <[T]>::len),
                ),
                ("out", n, out.len()),
                ("r", l * k, r.len()),
                ("acc", 2 * k, acc.len()),
            ],
        )?;
        match data {
            Some(dt) => out[..n].copy_from_slice(&dt[..n]),
            None => {
                for (i, px) in range.clone().enumerate() {
                    s.data_term_any(y, sh.d, h, px, acc);
                    out[i * k..(i + 1) * k].copy_from_slice(&acc[..k]);
                }
            }
        }
        s.h_from_data(sh, h, range.clone(), out, acc);
        for (i, px) in range.enumerate() {
            s.add_stats_at(y, sh, &out[i * k..(i + 1) * k], px, r);
        }
        Ok(())
    }

    /// The loss pass over the pixels in `range`, fused with the next H step's data terms:
    /// writes each pixel's Dᵀ(y⊘max(DH, ε)) to `data` (pixel-major, `range.len()×K` values)
    /// and the block's partial sums of the loss to `part` ([`Solver::loss_part_len`] values:
    /// Σ y·ln(D̃H̃) over the non-zeros, with D̃ = max(D, ε) and H̃ = max(H, ε), then per
    /// component Σ H̃, Σ ln(H + ε_reg) and Σ H·(HΔ)). `acc` holds K values of scratch. Add the
    /// blocks' parts element-wise (in a fixed order) and finish with
    /// [`Pass::loss_from_part_sums`].
    #[inline(always)]
    pub fn loss_data_block<C: PixelCounts<T>>(
        &self,
        y: &C,
        range: Range<usize>,
        data: &mut [T],
        part: &mut [f64],
        acc: &mut [T],
    ) -> Result<(), SolverError> {
        let (s, sh, h) = (self.solver, &self.sh, self.h);
        let (k, p) = (s.k, s.p);
        let eps = s.params.log_shift;
        s.check_block_counts(y)?;
        s.check_block(
            &range,
            &[
                ("data", range.len() * k, data.len()),
                ("loss part", s.loss_part_len(), part.len()),
                ("acc", k, acc.len()),
            ],
        )?;
        let mut sum = LogSum::new();
        with_k!(k, K => {
            for (i, px) in range.clone().enumerate() {
                let hp: [T; K] = core::array::from_fn(|c| h[c * p + px]);
                let mut hc = [0.0f64; K];
                let log = log_part_for(&mut sum, sh.d_clear, &hp, eps, &mut hc);
                let a = data_term::<T, C, K>(y, px, sh.cols::<K>(), &hp, eps, log);
                data[i * K..(i + 1) * K].copy_from_slice(&a);
            }
        }, _ => {
            for (i, px) in range.clone().enumerate() {
                s.data_term_any(y, sh.d, h, px, acc);
                data[i * k..(i + 1) * k].copy_from_slice(&acc[..k]);
                s.log_term_pixel(y, sh.d, h, px, &mut sum);
            }
        });
        part[0] = sum.total();
        s.h_sums(h, range, &mut part[1..1 + 3 * k]);
        Ok(())
    }

    /// The loss terms from the element-wise sums of all blocks' parts (see
    /// [`Pass::loss_data_block`]) and the data's KL constant (O(L·K)).
    pub fn loss_from_part_sums(
        &self,
        sums: &[f64],
        kl_constant: f64,
    ) -> Result<LossTerms, SolverError> {
        let s = self.solver;
        let n = s.loss_part_len();
        if sums.len() < n {
            return Err(SolverError::DimensionMismatch {
                buffer: "loss sums",
                expected: n,
                got: sums.len(),
            });
        }
        Ok(s.loss_from_sums(self.sh.d, &sums[..n], kl_constant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solver::{Counts, SolverParams};

    /// The hoisted H update equals the general one (reached with a `fixed_h` that fixes
    /// nothing) bit for bit.
    #[test]
    fn plain_h_update_equals_the_general_one() {
        let (l, m, p) = (9usize, 4usize, 12usize);
        let g: [f64; 36] = core::array::from_fn(|i| 0.05 + ((i * 7) % 11) as f64 / 10.0);
        let y: [f64; 108] = core::array::from_fn(|i| ((i * 5) % 4) as f64);
        let counts = Counts::Dense {
            channels: l,
            pixels: p,
            data: &y,
        };
        let rows = [0usize, 1];
        let none = [-1.0f64; 3 * 12];
        for k in 1..=3 {
            for (lap, lambda) in [
                (Laplacian::Grid { rows: 3, cols: 4 }, 0.7),
                (Laplacian::Identity, 0.4),
                (Laplacian::Grid { rows: 4, cols: 3 }, 0.0),
            ] {
                let mu = [0.02];
                let mut prm = SolverParams::new(k, &rows);
                prm.mu = &mu;
                prm.lambda_l = lambda;
                prm.laplacian = lap;
                let plain = Solver::new(prm, l, m, p).unwrap();
                prm.fixed_h = Some(&none[..k * p]);
                let general = Solver::new(prm, l, m, p).unwrap();
                let w: [f64; 12] = core::array::from_fn(|i| 0.1 + i as f64 * 0.03);
                let h: [f64; 36] = core::array::from_fn(|i| 0.2 + ((i * 3) % 7) as f64);
                let (w, h) = (&w[..m * k], &h[..k * p]);
                let mut shared = [0.0; 200];
                plain.prepare(&g, w, h, &mut shared).unwrap();
                let mut acc = [0.0; 8];
                let mut data = [0.0; 36];
                for px in 0..p {
                    plain.data_term_any(&counts, &shared[..l * k], h, px, &mut acc);
                    data[px * k..(px + 1) * k].copy_from_slice(&acc[..k]);
                }
                for range in [0..p, 5..11] {
                    let n = range.len() * k;
                    let mut a = [0.0; 36];
                    let mut b = [0.0; 36];
                    a[..n].copy_from_slice(&data[range.start * k..range.end * k]);
                    b[..n].copy_from_slice(&data[range.start * k..range.end * k]);
                    let pass = plain.pass(&shared, h).unwrap();
                    pass.h_from_data_block(range.clone(), &mut a, &mut acc)
                        .unwrap();
                    let pass = general.pass(&shared, h).unwrap();
                    pass.h_from_data_block(range.clone(), &mut b, &mut acc)
                        .unwrap();
                    assert_eq!(a, b, "K = {k}, {lap:?}, range {range:?}");
                    assert!(a[..n].iter().all(|v| v.is_finite() && *v > 0.0));
                }
            }
        }
    }
}
