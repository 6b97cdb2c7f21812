//! The two passes over the non-zeros written with AVX2 intrinsics, for counts held as
//! [`Compact`] (16-bit channels, f32 counts) and K ≤ 4.
//!
//! They do exactly the operations of the core's portable lane kernels, in the same order (each
//! lane of a vector is one lane of a core [`Chunk`](edxs_core::solver::Chunk), there is no
//! fused multiply-add, and every sum is taken in the same order), so the results are bit for
//! bit those of the portable code on any CPU; only the instruction count changes.

// Lane-wise loops index several arrays by lane and component on purpose.
#![allow(clippy::needless_range_loop)]

use super::compact::Compact;
use edxs_core::solver::Pass;
use edxs_core::solver::{LogSum, LANES};
use edxs_core::SolverError;
use std::arch::x86_64::*;
use std::ops::Range;

const TWO_52: f64 = 4_503_599_627_370_496.0;

/// Lane registers of a [`LogSum`] (shared with the maps solver's pass, `fast::newton_avx2`).
pub(crate) struct LogRegs {
    prod: __m256d,
    expo: __m256i,
}

impl LogRegs {
    #[inline(always)]
    pub(crate) unsafe fn load(s: &LogSum) -> Self {
        LogRegs {
            prod: _mm256_loadu_pd(s.prod.as_ptr()),
            expo: _mm256_loadu_si256(s.expo.as_ptr() as *const __m256i),
        }
    }

    #[inline(always)]
    pub(crate) unsafe fn store(&self, s: &mut LogSum) {
        _mm256_storeu_pd(s.prod.as_mut_ptr(), self.prod);
        _mm256_storeu_si256(s.expo.as_mut_ptr() as *mut __m256i, self.expo);
    }

    /// [`LogSum::add`] on four lanes, except the fallback: returns the mask of the lanes that
    /// need it (see [`fallback`]), so that the hot loop makes no call.
    #[inline(always)]
    pub(crate) unsafe fn add(&mut self, y: __m256d, x: __m256d) -> i32 {
        let one = _mm256_set1_pd(1.0);
        let two52 = _mm256_set1_pd(TWO_52);
        let yb = _mm256_add_pd(y, two52);
        let n = _mm256_castpd_si256(yb);
        let exact = _mm256_and_pd(
            _mm256_cmp_pd::<_CMP_EQ_OQ>(_mm256_sub_pd(yb, two52), y),
            _mm256_cmp_pd::<_CMP_LE_OQ>(y, _mm256_set1_pd(LogSum::MAX_POWER)),
        );
        let moderate = _mm256_and_pd(
            _mm256_cmp_pd::<_CMP_GE_OQ>(x, _mm256_set1_pd(LogSum::MIN_X)),
            _mm256_cmp_pd::<_CMP_LE_OQ>(x, _mm256_set1_pd(LogSum::MAX_X)),
        );
        let x2 = _mm256_mul_pd(x, x);
        let x4 = _mm256_mul_pd(x2, x2);
        let x8 = _mm256_mul_pd(x4, x4);
        // Bit b of the integer y selects x^(2^b): shifted to the sign bit for blendv.
        let a = _mm256_blendv_pd(one, x, _mm256_castsi256_pd(_mm256_slli_epi64::<63>(n)));
        let b = _mm256_blendv_pd(one, x2, _mm256_castsi256_pd(_mm256_slli_epi64::<62>(n)));
        let c = _mm256_blendv_pd(one, x4, _mm256_castsi256_pd(_mm256_slli_epi64::<61>(n)));
        let d = _mm256_blendv_pd(one, x8, _mm256_castsi256_pd(_mm256_slli_epi64::<60>(n)));
        let f = _mm256_mul_pd(_mm256_mul_pd(_mm256_mul_pd(a, b), c), d);
        let ok = _mm256_or_pd(
            _mm256_cmp_pd::<_CMP_EQ_OQ>(y, _mm256_setzero_pd()),
            _mm256_and_pd(exact, moderate),
        );
        let f = _mm256_blendv_pd(one, f, ok);
        self.prod = _mm256_mul_pd(self.prod, f);
        let bits = _mm256_castpd_si256(self.prod);
        let e = _mm256_and_si256(_mm256_srli_epi64::<52>(bits), _mm256_set1_epi64x(0x7ff));
        self.expo = _mm256_add_epi64(self.expo, _mm256_sub_epi64(e, _mm256_set1_epi64x(1023)));
        let m = _mm256_or_si256(
            _mm256_and_si256(bits, _mm256_set1_epi64x((1i64 << 52) - 1)),
            _mm256_set1_epi64x(0x3ff0_0000_0000_0000),
        );
        self.prod = _mm256_castsi256_pd(m);
        !_mm256_movemask_pd(ok) & 0xf
    }
}

/// The fallback of [`LogSum::add`] for the lanes in `bad`, in lane order.
#[inline(never)]
pub(crate) unsafe fn fallback(sum: &mut LogSum, bad: i32, y: __m256d, x: __m256d) {
    let (mut ya, mut xa) = ([0.0; LANES], [0.0; LANES]);
    _mm256_storeu_pd(ya.as_mut_ptr(), y);
    _mm256_storeu_pd(xa.as_mut_ptr(), x);
    for j in 0..LANES {
        if bad & (1 << j) != 0 {
            sum.add_direct(ya[j], xa[j]);
        }
    }
}

/// A full chunk's channels and counts.
#[inline(always)]
unsafe fn load_full(idx: &[u16], val: &[f32], i: usize) -> ([usize; LANES], __m256d) {
    let c = std::array::from_fn(|j| *idx.get_unchecked(i + j) as usize);
    (c, _mm256_cvtps_pd(_mm_loadu_ps(val.as_ptr().add(i))))
}

/// The last, partial chunk (n = len − i < 4 entries), padded with channel 0 and count 0.
#[inline(always)]
unsafe fn load_tail(idx: &[u16], val: &[f32], i: usize) -> ([usize; LANES], __m256d) {
    let (mut c, mut v) = ([0usize; LANES], [0.0f64; LANES]);
    for j in 0..idx.len() - i {
        c[j] = *idx.get_unchecked(i + j) as usize;
        v[j] = *val.get_unchecked(i + j) as f64;
    }
    (c, _mm256_loadu_pd(v.as_ptr()))
}

/// D as the kernels read it: component-major slices (K = 1) or rows padded to 4 (K ≥ 2), and
/// the pass's ε.
#[derive(Clone, Copy)]
struct DView<const K: usize> {
    cols: [*const f64; K],
    rows4: *const f64,
    eps: f64,
}

/// One pixel's abundances broadcast to every lane, with max(h, ε) (for the clipped log
/// products) and ε.
struct Lanes<const K: usize> {
    h: [__m256d; K],
    hc: [__m256d; K],
    eps: __m256d,
}

/// A pixel's non-zeros: channels and counts.
type Nz<'a> = (&'a [u16], &'a [f32]);

/// D·h of a chunk and D's entries: the core's `dh = ((0 + d₀h₀) + d₁h₁) + …`. For K ≥ 2 each
/// lane's row is one load and the four rows are transposed in registers.
#[inline(always)]
unsafe fn gather_dh<const K: usize>(
    dv: &DView<K>,
    c: &[usize; LANES],
    h: &[__m256d; K],
) -> ([__m256d; K], __m256d) {
    let mut dg = [_mm256_setzero_pd(); K];
    if K == 1 {
        let b = dv.cols[0];
        dg[0] = _mm256_set_pd(*b.add(c[3]), *b.add(c[2]), *b.add(c[1]), *b.add(c[0]));
    } else {
        let t = transpose4([
            _mm256_loadu_pd(dv.rows4.add(4 * c[0])),
            _mm256_loadu_pd(dv.rows4.add(4 * c[1])),
            _mm256_loadu_pd(dv.rows4.add(4 * c[2])),
            _mm256_loadu_pd(dv.rows4.add(4 * c[3])),
        ]);
        dg[..K.min(4)].copy_from_slice(&t[..K.min(4)]);
    }
    let mut dh = _mm256_setzero_pd();
    for k in 0..K {
        dh = _mm256_add_pd(dh, _mm256_mul_pd(dg[k], h[k]));
    }
    (dg, dh)
}

/// y / max(dh, ε) as the core's `at_least`.
#[inline(always)]
unsafe fn quotient(y: __m256d, dh: __m256d, eps: __m256d) -> __m256d {
    let m = _mm256_cmp_pd::<_CMP_GE_OQ>(dh, eps);
    _mm256_div_pd(y, _mm256_blendv_pd(eps, dh, m))
}

/// One chunk of [`data_term`]: adds to `acc` and, with `MODE` 1 or 2, the chunk's log part to
/// the log lanes (1: of D·h itself, valid when D, h ≥ ε; 2: of max(D, ε)·`hc`, the core's
/// clipped products, `hc` = max(h, ε)). Returns the log argument and the lanes that need the
/// log fallback. (Telling clipped chunks apart costs a badly predicted branch: slower.)
#[inline(always)]
unsafe fn data_chunk<const K: usize, const MODE: u8>(
    dt: &DView<K>,
    c: &[usize; LANES],
    y: __m256d,
    px: &Lanes<K>,
    acc: &mut [__m256d; K],
    regs: &mut LogRegs,
) -> (__m256d, i32) {
    let (hc, epsv) = (&px.hc, px.eps);
    let (dg, dh) = gather_dh::<K>(dt, c, &px.h);
    let q = quotient(y, dh, epsv);
    for k in 0..K {
        acc[k] = _mm256_add_pd(acc[k], _mm256_mul_pd(dg[k], q));
    }
    match MODE {
        1 => (dh, regs.add(y, dh)),
        2 => {
            let mut x = _mm256_setzero_pd();
            for k in 0..K {
                let m = _mm256_cmp_pd::<_CMP_GE_OQ>(dg[k], epsv);
                let d = _mm256_blendv_pd(epsv, dg[k], m);
                x = _mm256_add_pd(x, _mm256_mul_pd(d, hc[k]));
            }
            (x, regs.add(y, x))
        }
        _ => (dh, 0),
    }
}

/// Dᵀ(y⊘max(Dh, ε)) of one pixel and, with `MODE` 1 or 2 (see [`data_chunk`]), its
/// Σ y·ln(D̃h̃) into `regs`/`sum`; `hc` = max(h, ε) for mode 2. The hot loop makes no call (a
/// call would make the compiler keep the accumulators in memory); the rare log fallback runs
/// between loop stretches.
#[inline(always)]
unsafe fn data_term<const K: usize, const MODE: u8>(
    (idx, val): Nz<'_>,
    dt: &DView<K>,
    h: &[f64; K],
    hc: &[f64; K],
    regs: &mut LogRegs,
    sum: &mut LogSum,
) -> [f64; K] {
    let mut px = Lanes {
        h: [_mm256_setzero_pd(); K],
        hc: [_mm256_setzero_pd(); K],
        eps: _mm256_set1_pd(dt.eps),
    };
    for k in 0..K {
        px.h[k] = _mm256_set1_pd(h[k]);
        px.hc[k] = _mm256_set1_pd(hc[k]);
    }
    let mut acc = [_mm256_setzero_pd(); K];
    let len = idx.len();
    let full = len - len % LANES;
    let mut i = 0;
    loop {
        let mut pending = None;
        while i < full {
            let (c, y) = load_full(idx, val, i);
            let (x, bad) = data_chunk::<K, MODE>(dt, &c, y, &px, &mut acc, regs);
            i += LANES;
            if bad != 0 {
                pending = Some((bad, y, x));
                break;
            }
        }
        match pending {
            Some((bad, y, x)) => fallback(sum, bad, y, x),
            None => break,
        }
    }
    if i < len {
        let (c, y) = load_tail(idx, val, i);
        let (x, bad) = data_chunk::<K, MODE>(dt, &c, y, &px, &mut acc, regs);
        if bad != 0 {
            fallback(sum, bad, y, x);
        }
    }
    std::array::from_fn(|k| lane_sum(acc[k]))
}

/// The four rows `r` (four entries each) as four columns: lane j of column i is row j's
/// entry i.
#[inline(always)]
pub(crate) unsafe fn transpose4(r: [__m256d; 4]) -> [__m256d; 4] {
    let t0 = _mm256_unpacklo_pd(r[0], r[1]);
    let t1 = _mm256_unpackhi_pd(r[0], r[1]);
    let t2 = _mm256_unpacklo_pd(r[2], r[3]);
    let t3 = _mm256_unpackhi_pd(r[2], r[3]);
    [
        _mm256_permute2f128_pd::<0x20>(t0, t2),
        _mm256_permute2f128_pd::<0x20>(t1, t3),
        _mm256_permute2f128_pd::<0x31>(t0, t2),
        _mm256_permute2f128_pd::<0x31>(t1, t3),
    ]
}

/// The lanes of `v` summed in lane order, ((v₀ + v₁) + v₂) + v₃.
#[inline(always)]
pub(crate) unsafe fn lane_sum(v: __m256d) -> f64 {
    let mut a = [0.0; LANES];
    _mm256_storeu_pd(a.as_mut_ptr(), v);
    ((a[0] + a[1]) + a[2]) + a[3]
}

/// One pixel's abundances as the scatter of R reads them: broadcast to every lane, as
/// numbers, the first two as one 128-bit pair, and ε.
struct ScatterLanes<const K: usize> {
    hv: [__m256d; K],
    h: [f64; K],
    h01: __m128d,
    eps: __m256d,
}

/// Adds one chunk's share of R (`n` real lanes).
#[inline(always)]
unsafe fn scatter_chunk<const K: usize>(
    dt: &DView<K>,
    c: &[usize; LANES],
    y: __m256d,
    n: usize,
    px: &ScatterLanes<K>,
    rp: *mut f64,
) {
    let (h, h01) = (&px.h, px.h01);
    let (_, dh) = gather_dh::<K>(dt, c, &px.hv);
    let q = quotient(y, dh, px.eps);
    let mut qa = [0.0; LANES];
    _mm256_storeu_pd(qa.as_mut_ptr(), q);
    for j in 0..n {
        let row = rp.add(c[j] * K);
        let qj = qa[j];
        if K >= 2 {
            // Two entries at once: the same products and sums as one at a time.
            let v = _mm_add_pd(_mm_loadu_pd(row), _mm_mul_pd(_mm_set1_pd(qj), h01));
            _mm_storeu_pd(row, v);
            for k in 2..K {
                *row.add(k) += qj * h[k];
            }
        } else {
            *row += qj * h[0];
        }
    }
}

/// Adds one pixel's share of R (L×K, row-major) at abundances `h`.
#[inline(always)]
unsafe fn add_stats<const K: usize>(
    (idx, val): Nz<'_>,
    dt: &DView<K>,
    h: &[f64; K],
    r: &mut [f64],
) {
    let mut hv = [_mm256_setzero_pd(); K];
    for k in 0..K {
        hv[k] = _mm256_set1_pd(h[k]);
    }
    let px = ScatterLanes {
        hv,
        h: *h,
        h01: if K >= 2 {
            _mm_loadu_pd(h.as_ptr())
        } else {
            _mm_setzero_pd()
        },
        eps: _mm256_set1_pd(dt.eps),
    };
    let rp = r.as_mut_ptr();
    let len = idx.len();
    let full = len - len % LANES;
    let mut i = 0;
    while i < full {
        let (c, y) = load_full(idx, val, i);
        scatter_chunk::<K>(dt, &c, y, LANES, &px, rp);
        i += LANES;
    }
    if i < len {
        let (c, y) = load_tail(idx, val, i);
        scatter_chunk::<K>(dt, &c, y, len - i, &px, rp);
    }
}

/// The views of D in the pass (checked by the core: K×L columns and, for K ≤ 4, L×4 rows).
fn view<const K: usize>(pass: &Pass<'_, f64>) -> DView<K> {
    let dt = pass.d_cols();
    let l = dt.len() / K;
    DView {
        cols: std::array::from_fn(|k| dt[k * l..].as_ptr()),
        rows4: pass.d_rows4().as_ptr(),
        eps: pass.solver().params().log_shift,
    }
}

/// Checks what the kernels read and write through raw pointers or unchecked loads: the
/// counts are the solver's (channels < L index D), the range lies within the pixels, R holds
/// L×K values, and `blk` (the block's pixel-major output) `range.len()`×K.
fn check(
    pass: &Pass<'_, f64>,
    y: &Compact,
    range: &Range<usize>,
    blk: usize,
    r: Option<usize>,
) -> Result<(), SolverError> {
    let (l, _, k, p) = pass.solver().dims();
    let h = pass.h();
    let mismatch = |buffer, expected, got| SolverError::DimensionMismatch {
        buffer,
        expected,
        got,
    };
    if (y.channels, y.pixels) != (l, p) || y.indptr.len() != p + 1 {
        return Err(mismatch("compact counts (pixels)", p, y.pixels));
    }
    if h.len() != k * p {
        return Err(mismatch("h", k * p, h.len()));
    }
    if range.start > range.end || range.end > p {
        return Err(SolverError::PixelRange {
            start: range.start,
            end: range.end,
            pixels: p,
        });
    }
    if blk < range.len() * k {
        return Err(mismatch("block output", range.len() * k, blk));
    }
    match r {
        Some(n) if n < l * k => Err(mismatch("r", l * k, n)),
        _ => Ok(()),
    }
}

/// The loss pass of [`Pass::loss_data_block`] over `range`: these kernels for K ≤ 4, the
/// core's portable ones (compiled for AVX2) above.
///
/// # Safety
/// The CPU has AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn loss_data(
    pass: &Pass<'_, f64>,
    y: &Compact,
    range: Range<usize>,
    data: &mut [f64],
    part: &mut [f64],
    acc: &mut [f64],
) -> Result<(), SolverError> {
    let solver = pass.solver();
    let (_, _, k, p) = solver.dims();
    if k > 4 {
        return pass.loss_data_block(y, range, data, part, acc);
    }
    check(pass, y, &range, data.len(), None)?;
    if part.is_empty() {
        return Err(SolverError::DimensionMismatch {
            buffer: "loss part",
            expected: solver.loss_part_len(),
            got: 0,
        });
    }
    let args = (y, pass.h(), p, pass.d_clear(), range.clone());
    match k {
        1 => loss_data_k::<1>(args, view(pass), data, part),
        2 => loss_data_k::<2>(args, view(pass), data, part),
        3 => loss_data_k::<3>(args, view(pass), data, part),
        _ => loss_data_k::<4>(args, view(pass), data, part),
    }
    pass.loss_h_part(range, &mut part[1..])
}

#[inline(always)]
unsafe fn loss_data_k<const K: usize>(
    (y, h, p, d_clear, range): (&Compact, &[f64], usize, bool, Range<usize>),
    cols: DView<K>,
    data: &mut [f64],
    part: &mut [f64],
) {
    let eps = cols.eps;
    let mut sum = LogSum::new();
    let mut regs = LogRegs::load(&sum);
    for (i, px) in range.enumerate() {
        let (s, e) = (y.indptr[px], y.indptr[px + 1]);
        let hp: [f64; K] = std::array::from_fn(|c| h[c * p + px]);
        // The core's choice (`log_part_for`): the products themselves when nothing is clipped.
        let hc: [f64; K] = std::array::from_fn(|c| if hp[c] >= eps { hp[c] } else { eps });
        let same = d_clear && hp.iter().all(|&v| v >= eps);
        let nz = (&y.indices[s..e], &y.values[s..e]);
        let a = if same {
            data_term::<K, 1>(nz, &cols, &hp, &hc, &mut regs, &mut sum)
        } else {
            data_term::<K, 2>(nz, &cols, &hp, &hc, &mut regs, &mut sum)
        };
        data[i * K..(i + 1) * K].copy_from_slice(&a);
    }
    regs.store(&mut sum);
    part[0] = sum.total();
}

/// The iteration pass of [`Pass::h_r_block`] over `range`: these kernels for K ≤ 4, the
/// core's portable ones (compiled for AVX2) above.
///
/// # Safety
/// The CPU has AVX2.
#[target_feature(enable = "avx2")]
pub(super) unsafe fn h_r(
    pass: &Pass<'_, f64>,
    y: &Compact,
    range: Range<usize>,
    data: Option<&[f64]>,
    out: &mut [f64],
    r: &mut [f64],
    acc: &mut [f64],
) -> Result<(), SolverError> {
    let k = pass.solver().dims().2;
    if k > 4 {
        return pass.h_r_block(y, range, data, out, r, acc);
    }
    check(pass, y, &range, out.len(), Some(r.len()))?;
    if let Some(d) = data {
        check(pass, y, &range, d.len(), None)?;
    }
    let args = (pass, y, range, data);
    match k {
        1 => h_r_k::<1>(args, out, r, acc),
        2 => h_r_k::<2>(args, out, r, acc),
        3 => h_r_k::<3>(args, out, r, acc),
        _ => h_r_k::<4>(args, out, r, acc),
    }
}

type HrArgs<'a, 'b> = (
    &'a Pass<'b, f64>,
    &'a Compact,
    Range<usize>,
    Option<&'a [f64]>,
);

#[inline(always)]
unsafe fn h_r_k<const K: usize>(
    (pass, y, range, data): HrArgs<'_, '_>,
    out: &mut [f64],
    r: &mut [f64],
    acc: &mut [f64],
) -> Result<(), SolverError> {
    let (h, p) = (pass.h(), pass.solver().dims().3);
    let cols = view::<K>(pass);
    let mut unused = LogSum::new();
    let mut regs = LogRegs::load(&unused);
    match data {
        Some(d) => out[..range.len() * K].copy_from_slice(&d[..range.len() * K]),
        None => {
            for (i, px) in range.clone().enumerate() {
                let (s, e) = (y.indptr[px], y.indptr[px + 1]);
                let hp: [f64; K] = std::array::from_fn(|c| h[c * p + px]);
                let nz = (&y.indices[s..e], &y.values[s..e]);
                let a = data_term::<K, 0>(nz, &cols, &hp, &hp, &mut regs, &mut unused);
                out[i * K..(i + 1) * K].copy_from_slice(&a);
            }
        }
    }
    pass.h_from_data_block(range.clone(), out, acc)?;
    for (i, px) in range.enumerate() {
        let (s, e) = (y.indptr[px], y.indptr[px + 1]);
        let hn: [f64; K] = std::array::from_fn(|c| out[i * K + c]);
        add_stats::<K>((&y.indices[s..e], &y.values[s..e]), &cols, &hn, r);
    }
    Ok(())
}
