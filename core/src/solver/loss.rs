//! The objective, evaluated in O(nnz·K + (L+P)·K) without any dense L×P pass.
//!
//! KL = Σ_k (Σ_l D̃_lk)(Σ_p H̃_kp) − Σ_nz y·ln(D̃H̃) + C, with D̃ = max(GW, ε), H̃ = max(H, ε) and
//! C = Σ y ln y − Σ y (espm's `const_KL_`); plus Σ μ_k ln(H + ε_reg) and ½λ·tr(HΔHᵀ). espm
//! reports each term divided by L·P, and so do we.
//!
//! Sums of logarithms are formed as the logarithm of running products ([`LogSum`]): one
//! multiplication per term instead of one `ln`, which would otherwise dominate the pass.

// Lane-wise loops index several arrays by lane and component on purpose.
#![allow(clippy::needless_range_loop)]

use super::data::{Chunk, PixelCounts, LANES};
use super::params::Laplacian;
use super::{laplacian, Solver, Work};
use crate::float::Float;

/// Σ y·ln(x) over many terms, as the logarithm of [`LANES`] running products whose binary
/// exponents are kept apart in integers (so the products never overflow): one multiplication
/// per term, and one `ln` per lane at the end. Terms that are not small integer powers of a
/// moderate x (y ∉ {0,…,15} or x ∉ [2⁻⁶⁰, 2⁶⁰]) fall back to y·ln(x). The rounding error is
/// that of the sum of the logarithms (a few ulp per term).
///
/// The state is public so that a host can run [`LogSum::add`] in its own vector code; doing
/// the same operations in the same order gives the same sum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogSum {
    /// Running product of each lane, kept in [1, 2).
    pub prod: [f64; LANES],
    /// Binary exponent taken out of each lane's product.
    pub expo: [i64; LANES],
    /// Terms added directly as y·ln(x).
    pub rest: f64,
}

const TWO_52: f64 = 4_503_599_627_370_496.0;
const MANTISSA: u64 = (1 << 52) - 1;
const ONE_BITS: u64 = 0x3ff0_0000_0000_0000;

impl Default for LogSum {
    fn default() -> Self {
        Self::new()
    }
}

impl LogSum {
    /// Largest y taken as a power (y must be an integer in 0…15).
    pub const MAX_POWER: f64 = 15.0;
    /// Smallest x taken as a power (2⁻⁶⁰).
    pub const MIN_X: f64 = 8.673_617_379_884_035e-19;
    /// Largest x taken as a power (2⁶⁰).
    pub const MAX_X: f64 = 1.152_921_504_606_847e18;

    /// The empty sum.
    pub const fn new() -> Self {
        LogSum {
            prod: [1.0; LANES],
            expo: [0; LANES],
            rest: 0.0,
        }
    }

    /// Adds y_j·ln(x_j) for each lane; y ≥ 0 (lanes with y = 0 add nothing). Straight-line
    /// lane-wise code (no branch but the rare fallback), so that it compiles to vector
    /// instructions.
    #[inline(always)]
    pub fn add(&mut self, y: [f64; LANES], x: [f64; LANES]) {
        let mut f = [1.0f64; LANES];
        let mut bad = [false; LANES];
        for j in 0..LANES {
            let (yv, xv) = (y[j], x[j]);
            // y + 2⁵² holds y's integer value in its low mantissa bits when y is an integer.
            let yb = yv + TWO_52;
            let n = yb.to_bits();
            let exact = (yb - TWO_52 == yv) & (yv <= Self::MAX_POWER);
            // `&` rather than `contains` (`&&`), so that no branch is made.
            #[allow(clippy::manual_range_contains)]
            let moderate = (xv >= Self::MIN_X) & (xv <= Self::MAX_X);
            let x2 = xv * xv;
            let x4 = x2 * x2;
            let x8 = x4 * x4;
            let a = if n & 1 != 0 { xv } else { 1.0 };
            let b = if n & 2 != 0 { x2 } else { 1.0 };
            let c = if n & 4 != 0 { x4 } else { 1.0 };
            let d = if n & 8 != 0 { x8 } else { 1.0 };
            let ok = (yv == 0.0) | (exact & moderate);
            f[j] = if ok { ((a * b) * c) * d } else { 1.0 };
            bad[j] = !ok;
        }
        for j in 0..LANES {
            self.prod[j] *= f[j];
        }
        if bad.iter().fold(false, |a, &b| a | b) {
            for j in 0..LANES {
                if bad[j] {
                    self.add_direct(y[j], x[j]);
                }
            }
        }
        for j in 0..LANES {
            let bits = self.prod[j].to_bits();
            self.expo[j] += ((bits >> 52) & 0x7ff) as i64 - 1023;
            self.prod[j] = f64::from_bits((bits & MANTISSA) | ONE_BITS);
        }
    }

    /// Adds y·ln(x) directly (the fallback of [`LogSum::add`]).
    #[inline(never)]
    pub fn add_direct(&mut self, y: f64, x: f64) {
        self.rest += y * libm::log(x);
    }

    /// The sum: Σ_j (ln prod_j + e_j·ln 2) + the terms that were added directly.
    pub fn total(&self) -> f64 {
        let mut s = 0.0f64;
        for j in 0..LANES {
            s += libm::log(self.prod[j]) + self.expo[j] as f64 * core::f64::consts::LN_2;
        }
        s + self.rest
    }
}

/// Σ ln(x) over a slice (each term once), through [`LogSum`].
pub(crate) fn sum_ln<T: Float>(xs: &[T], shift: f64) -> f64 {
    let mut acc = LogSum::new();
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        let mut x = [1.0; LANES];
        for j in 0..LANES {
            x[j] = c[j].to_f64() + shift;
        }
        acc.add([1.0; LANES], x);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let (mut y, mut x) = ([0.0; LANES], [1.0; LANES]);
        for (j, v) in rest.iter().enumerate() {
            y[j] = 1.0;
            x[j] = v.to_f64() + shift;
        }
        acc.add(y, x);
    }
    acc.total()
}

/// Σ_p h_p·(hΔ)_p over the pixels `range` of one component row, with `laplacian::apply`'s
/// arithmetic but without a division per pixel.
pub(crate) fn laplacian_energy<T: Float>(
    lap: Laplacian,
    row: &[T],
    range: core::ops::Range<usize>,
) -> f64 {
    let mut e = 0.0f64;
    match lap {
        Laplacian::Identity => {
            for px in range {
                e += row[px].to_f64() * laplacian::apply(lap, row, px).to_f64();
            }
        }
        Laplacian::Grid { rows, cols } => {
            if range.is_empty() {
                return 0.0;
            }
            let (mut r, mut c) = (range.start / cols, range.start % cols);
            for px in range {
                let v = laplacian::grid_at(row, px, r, c, rows, cols);
                e += row[px].to_f64() * v.to_f64();
                c += 1;
                if c == cols {
                    c = 0;
                    r += 1;
                }
            }
        }
    }
    e
}

/// True when every value is at least ε (then clipping at ε changes nothing).
#[inline]
pub(crate) fn all_at_least<T: Float>(v: &[T], eps: T) -> bool {
    v.iter().fold(true, |a, &x| a & (x >= eps))
}

/// True when T is f64 (so a product formed in T equals the same product formed in f64).
#[inline(always)]
pub(crate) fn is_f64<T: Float>() -> bool {
    T::EPSILON.to_f64() == f64::EPSILON
}

/// Adds Σ y·ln(max(D,ε)·max(h,ε)) of one chunk to `acc` (runtime K; `hc` = max(h, ε) in f64).
#[inline(always)]
pub(crate) fn log_chunk<T: Float>(c: &Chunk<T>, d: &[T], hc: &[f64], eps: T, acc: &mut LogSum) {
    let k = hc.len();
    let mut x = [0.0f64; LANES];
    let mut y = [0.0f64; LANES];
    for j in 0..LANES {
        let row = &d[c.channels[j] as usize * k..][..k];
        let mut dh = 0.0f64;
        for (dv, hv) in row.iter().zip(hc) {
            dh += dv.max(eps).to_f64() * *hv;
        }
        x[j] = dh;
        y[j] = c.counts[j].to_f64();
    }
    acc.add(y, x);
}

/// The terms of the loss, each divided by L·P as espm reports them.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LossTerms {
    /// Generalised KL divergence between Y and GWH (with the constant).
    pub kl: f64,
    /// Σ μ ln(H + ε_reg).
    pub log_reg: f64,
    /// ½λ·tr(HΔHᵀ).
    pub laplacian: f64,
}

impl LossTerms {
    /// The total loss.
    pub fn total(&self) -> f64 {
        self.kl + self.log_reg + self.laplacian
    }
}

impl<T: Float> Solver<'_, T> {
    /// The loss terms at (W, H) with `kl_constant` = [`super::Counts::kl_constant`]; accumulates in f64.
    pub(crate) fn loss_terms<C: PixelCounts<T>>(
        &self,
        y: &C,
        g: &[T],
        w: &[T],
        h: &[T],
        kl_constant: f64,
        work: &mut Work<'_, T>,
    ) -> LossTerms {
        self.compute_d(g, w, work);
        let log_term = self.log_term_pixels(y, work.d, h, 0..self.p);
        self.loss_from_parts(work.d, h, log_term, kl_constant)
    }

    /// Adds Σ y·ln(D̃H̃) of pixel `px` to `acc`.
    #[inline]
    pub(crate) fn log_term_pixel<C: PixelCounts<T>>(
        &self,
        y: &C,
        d: &[T],
        h: &[T],
        px: usize,
        acc: &mut LogSum,
    ) {
        let (k, p) = (self.k, self.p);
        let eps = self.params.log_shift;
        let mut hc = [0.0f64; 8];
        if k <= hc.len() {
            for (c, v) in hc[..k].iter_mut().enumerate() {
                *v = h[c * p + px].max(eps).to_f64();
            }
            let hc = &hc[..k];
            for c in y.chunks(px) {
                let c = &c;
                log_chunk(c, d, hc, eps, acc);
            }
        } else {
            for c in y.chunks(px) {
                let c = &c;
                let mut x = [0.0f64; LANES];
                let mut yv = [0.0f64; LANES];
                for j in 0..LANES {
                    let li = c.channels[j] as usize;
                    let mut dh = 0.0f64;
                    for cc in 0..k {
                        dh += d[li * k + cc].max(eps).to_f64() * h[cc * p + px].max(eps).to_f64();
                    }
                    x[j] = dh;
                    yv[j] = c.counts[j].to_f64();
                }
                acc.add(yv, x);
            }
        }
    }

    /// Σ y·ln(D̃H̃) over the non-zeros of the pixels in `range`, with D̃ = max(D, ε) and
    /// H̃ = max(H, ε) (the data-dependent part of the KL divergence).
    pub(crate) fn log_term_pixels<C: PixelCounts<T>>(
        &self,
        y: &C,
        d: &[T],
        h: &[T],
        range: core::ops::Range<usize>,
    ) -> f64 {
        let mut acc = LogSum::new();
        for px in range {
            self.log_term_pixel(y, d, h, px, &mut acc);
        }
        acc.total()
    }

    /// The loss terms from the data's log part (summed over all pixels) and the KL constant;
    /// the rest costs O((L+P)·K).
    pub(crate) fn loss_from_parts(
        &self,
        d: &[T],
        h: &[T],
        log_term: f64,
        kl_constant: f64,
    ) -> LossTerms {
        let k = self.k;
        let mut sums = [0.0f64; 1 + 3 * 8];
        if k <= 8 {
            let sums = &mut sums[..1 + 3 * k];
            sums[0] = log_term;
            self.h_sums(h, 0..self.p, &mut sums[1..]);
            return self.loss_from_sums(d, sums, kl_constant);
        }
        // Many components: the same sums, one component at a time.
        let (l, p) = (self.l, self.p);
        let prm = &self.params;
        let eps = prm.log_shift;
        let mut lin = 0.0f64;
        let (mut reg, mut lap) = (0.0f64, 0.0f64);
        for c in 0..k {
            let row = &h[c * p..(c + 1) * p];
            let sd = (0..l).fold(0.0f64, |a, li| a + d[li * k + c].max(eps).to_f64());
            let sh = row.iter().fold(0.0f64, |a, v| a + v.max(eps).to_f64());
            lin += sd * sh;
            let mu = prm.mu_of(c).to_f64();
            if mu != 0.0 {
                reg += mu * sum_ln(row, prm.epsilon_reg.to_f64());
            }
            if prm.lambda_l != T::ZERO {
                lap += laplacian_energy(prm.laplacian, row, 0..p);
            }
        }
        self.terms(lin, log_term, reg, lap, kl_constant)
    }

    /// Per component c over the pixels of `range`, into `out` (3K values): Σ max(H, ε) at
    /// `out[c]`, Σ ln(H + ε_reg) at `out[K + c]` (0 when μ_c = 0) and Σ H·(HΔ) at `out[2K + c]`
    /// (0 when λ = 0).
    pub(crate) fn h_sums(&self, h: &[T], range: core::ops::Range<usize>, out: &mut [f64]) {
        let (k, p) = (self.k, self.p);
        let prm = &self.params;
        let eps = prm.log_shift;
        for c in 0..k {
            let row = &h[c * p..(c + 1) * p];
            out[c] = row[range.clone()]
                .iter()
                .fold(0.0f64, |a, v| a + v.max(eps).to_f64());
            out[k + c] = if prm.mu_of(c) != T::ZERO {
                sum_ln(&row[range.clone()], prm.epsilon_reg.to_f64())
            } else {
                0.0
            };
            out[2 * k + c] = if prm.lambda_l != T::ZERO {
                laplacian_energy(prm.laplacian, row, range.clone())
            } else {
                0.0
            };
        }
    }

    /// The loss terms from `sums` = [Σ y·ln(D̃H̃), then [`Solver::h_sums`]'s 3K values] over all
    /// pixels.
    pub(crate) fn loss_from_sums(&self, d: &[T], sums: &[f64], kl_constant: f64) -> LossTerms {
        let (l, k) = (self.l, self.k);
        let prm = &self.params;
        let eps = prm.log_shift;
        let mut lin = 0.0f64;
        let (mut reg, mut lap) = (0.0f64, 0.0f64);
        for c in 0..k {
            let sd = (0..l).fold(0.0f64, |a, li| a + d[li * k + c].max(eps).to_f64());
            lin += sd * sums[1 + c];
            let mu = prm.mu_of(c).to_f64();
            if mu != 0.0 {
                reg += mu * sums[1 + k + c];
            }
            lap += sums[1 + 2 * k + c];
        }
        self.terms(lin, sums[0], reg, lap, kl_constant)
    }

    fn terms(&self, lin: f64, log_term: f64, reg: f64, lap: f64, kl_constant: f64) -> LossTerms {
        let n = (self.l * self.p) as f64;
        LossTerms {
            kl: (lin - log_term + kl_constant) / n,
            log_reg: reg / n,
            laplacian: 0.5 * self.params.lambda_l.to_f64() * lap / n,
        }
    }

    /// The loss at (W, H). Validates inputs.
    pub fn loss(
        &self,
        y: &super::data::Counts<'_, T>,
        g: &[T],
        w: &[T],
        h: &[T],
        ws: &mut [T],
    ) -> Result<LossTerms, crate::error::SolverError> {
        y.validate()?;
        self.check_buffers(y, g, w, h)?;
        let mut work = self.work(ws)?;
        Ok(self.loss_terms(y, g, w, h, y.kl_constant(), &mut work))
    }
}
