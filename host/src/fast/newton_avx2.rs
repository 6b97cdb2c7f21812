//! [`pass`](super::newton::pass) written with AVX2 and FMA intrinsics, for K ≤ [`MAX_K`]: the
//! pass is the maps solver's inner loop (every Newton sweep and every line-search trial makes
//! one over every non-zero), and the scalar loop spends ~23 cycles per non-zero.
//!
//! Four non-zeros per step, one per lane: their D rows are loaded and transposed in registers
//! (D is L×K row-major), a = D_row·h, r = y/a and w = r/a are formed with the scalar pass's
//! operations in its order (no fused multiply-add), so the log products, and hence Σ y·ln(a),
//! are bit for bit the scalar pass's (each lane is one lane of its [`LogSum`], closed by the
//! same [`one_ln`]). The gradient
//! and Hessian accumulate per lane with fused multiply-adds and are summed across lanes at the
//! end: they differ from the scalar pass's in the last bits only. Each result is a function of
//! one pixel's data alone, so it does not depend on the thread count.

// Lane- and component-indexed loops on purpose.
#![allow(clippy::needless_range_loop)]

use super::newton::{one_ln, pass_scalar, PixelStats};
use crate::parallel::avx2::{fallback, lane_sum, transpose4, LogRegs};
use edxs_core::solver::{LogSum, LANES};
use std::arch::x86_64::*;

/// Largest K with a vector kernel (above, the Hessian's accumulators no longer fit the
/// registers and the scalar pass is used).
pub(super) const MAX_K: usize = 8;

/// Whether the CPU runs these kernels (checked at run time; the result is cached by std).
#[inline(always)]
pub(super) fn available() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// The four rows `c` of D (L×K row-major at `d`) as K vectors, lane j holding row c[j].
///
/// # Safety
/// Each K·c[j] + K ≤ D's length.
#[inline(always)]
unsafe fn rows<const K: usize>(d: *const f64, c: &[usize; LANES]) -> [__m256d; K] {
    let mut out = [_mm256_setzero_pd(); K];
    if K == 1 {
        out[0] = _mm256_set_pd(*d.add(c[3]), *d.add(c[2]), *d.add(c[1]), *d.add(c[0]));
        return out;
    }
    let mut b = 0;
    while b < K {
        let nb = (K - b).min(4);
        let at = |j: usize| d.add(K * c[j] + b);
        if nb == 1 {
            out[b] = _mm256_set_pd(*at(3), *at(2), *at(1), *at(0));
        } else if nb == 2 {
            let r02 = _mm256_insertf128_pd::<1>(
                _mm256_castpd128_pd256(_mm_loadu_pd(at(0))),
                _mm_loadu_pd(at(2)),
            );
            let r13 = _mm256_insertf128_pd::<1>(
                _mm256_castpd128_pd256(_mm_loadu_pd(at(1))),
                _mm_loadu_pd(at(3)),
            );
            out[b] = _mm256_unpacklo_pd(r02, r13);
            out[b + 1] = _mm256_unpackhi_pd(r02, r13);
        } else {
            // Three or four entries: four row loads (masked to the row for three, so that
            // nothing past D is read) and a 4×4 transpose.
            let load = |j: usize| {
                if nb == 4 {
                    _mm256_loadu_pd(at(j))
                } else {
                    _mm256_maskload_pd(at(j), _mm256_set_epi64x(0, -1, -1, -1))
                }
            };
            let t = transpose4([load(0), load(1), load(2), load(3)]);
            out[b..b + nb].copy_from_slice(&t[..nb]);
        }
        b += nb;
    }
    out
}

/// The per-lane accumulators of one pixel: g and the Hessian's upper triangle.
struct Acc<const K: usize> {
    g: [__m256d; K],
    hs: [[__m256d; K]; K],
}

/// One step of four non-zeros (`c`, `y`); `live` masks the lanes that hold a non-zero (all
/// but in the last, partial step). Returns a = D_row·h and the lanes that need the log
/// fallback.
#[inline(always)]
unsafe fn step<const K: usize>(
    d: *const f64,
    c: &[usize; LANES],
    y: __m256d,
    live: Option<__m256d>,
    h: &[__m256d; K],
    acc: &mut Acc<K>,
    regs: &mut LogRegs,
) -> (__m256d, i32) {
    let dg = rows::<K>(d, c);
    // The scalar pass's a = ((0 + d₀h₀) + d₁h₁) + …, r = y·(1/a), w = r·(1/a).
    let mut a = _mm256_mul_pd(dg[0], h[0]);
    for k in 1..K {
        a = _mm256_add_pd(a, _mm256_mul_pd(dg[k], h[k]));
    }
    let inv = _mm256_div_pd(_mm256_set1_pd(1.0), a);
    let mut r = _mm256_mul_pd(y, inv);
    let mut w = _mm256_mul_pd(r, inv);
    if let Some(m) = live {
        // Padding lanes (count 0, a real lane's row) add nothing even where a is not finite.
        r = _mm256_and_pd(r, m);
        w = _mm256_and_pd(w, m);
    }
    for i in 0..K {
        acc.g[i] = _mm256_fmadd_pd(dg[i], r, acc.g[i]);
        let wi = _mm256_mul_pd(dg[i], w);
        for j in i..K {
            acc.hs[i][j] = _mm256_fmadd_pd(wi, dg[j], acc.hs[i][j]);
        }
    }
    (a, regs.add(y, a))
}

/// [`pass_scalar`] with AVX2 and FMA, for K ≤ [`MAX_K`] (larger K, or a channel outside D,
/// go to the scalar pass, which then panics on the channel as it always did).
///
/// # Safety
/// The CPU has AVX2 and FMA ([`available`]).
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn pass<const K: usize>(
    idx: &[u32],
    val: &[f64],
    d: &[f64],
    h: &[f64; K],
) -> PixelStats<K> {
    let len = idx.len().min(val.len());
    let (idx, val) = (&idx[..len], &val[..len]);
    // The loads below are unchecked: every channel must have its K entries in D.
    let rows_in_d = (d.len() / K.max(1)) as u64;
    let top = idx.iter().fold(0u32, |m, &c| m.max(c)) as u64;
    if K == 0 || K > MAX_K || (len > 0 && top >= rows_in_d) {
        return pass_scalar(idx, val, d, h);
    }
    let dp = d.as_ptr();
    let hv: [__m256d; K] = std::array::from_fn(|k| _mm256_set1_pd(h[k]));
    let mut acc = Acc::<K> {
        g: [_mm256_setzero_pd(); K],
        hs: [[_mm256_setzero_pd(); K]; K],
    };
    let mut sum = LogSum::new();
    let mut regs = LogRegs::load(&sum);
    let full = len - len % LANES;
    let mut i = 0;
    // The hot loop makes no call (a call would put the accumulators in memory): a step whose
    // log terms need the fallback leaves it, and the fallback runs before it resumes.
    loop {
        let mut pending = None;
        while i < full {
            let c: [usize; LANES] = std::array::from_fn(|j| *idx.get_unchecked(i + j) as usize);
            let y = _mm256_loadu_pd(val.as_ptr().add(i));
            let (a, bad) = step::<K>(dp, &c, y, None, &hv, &mut acc, &mut regs);
            i += LANES;
            if bad != 0 {
                pending = Some((bad, y, a));
                break;
            }
        }
        match pending {
            Some((bad, y, a)) => fallback(&mut sum, bad, y, a),
            None => break,
        }
    }
    if i < len {
        let n = len - i;
        let first = *idx.get_unchecked(i) as usize;
        let (mut c, mut yv, mut live) = ([first; LANES], [0.0f64; LANES], [0i64; LANES]);
        for j in 0..n {
            c[j] = *idx.get_unchecked(i + j) as usize;
            yv[j] = *val.get_unchecked(i + j);
            live[j] = -1;
        }
        let y = _mm256_loadu_pd(yv.as_ptr());
        let m = _mm256_castsi256_pd(_mm256_loadu_si256(live.as_ptr() as *const __m256i));
        let (a, bad) = step::<K>(dp, &c, y, Some(m), &hv, &mut acc, &mut regs);
        if bad != 0 {
            fallback(&mut sum, bad, y, a);
        }
    }
    regs.store(&mut sum);
    let mut st = PixelStats::<K>::default();
    for i in 0..K {
        st.g[i] = lane_sum(acc.g[i]);
        for j in i..K {
            let v = lane_sum(acc.hs[i][j]);
            st.hs[i][j] = v;
            st.hs[j][i] = v;
        }
    }
    st.logv = one_ln(&sum);
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    use edxs_core::rng::Rng;

    /// Uniform integer below `n`.
    fn below(rng: &mut Rng, n: usize) -> usize {
        (rng.next_u64() % n as u64) as usize
    }

    fn count(rng: &mut Rng) -> f64 {
        match below(rng, 20) {
            0 => 0.5 + rng.uniform() * 3.0,
            1 => 16.0 + below(rng, 200) as f64,
            _ => 1.0 + below(rng, 3) as f64,
        }
    }

    fn close(got: f64, want: f64, what: &str) {
        assert!(
            (got - want).abs() <= 1e-12 * want.abs() && got.is_finite(),
            "{what}: {got} vs {want}"
        );
    }

    fn agree<const K: usize>(rng: &mut Rng, scale_d: f64, scale_h: f64) {
        let l = 37;
        let d: Vec<f64> = (0..l * K)
            .map(|_| (1e-12f64).max(rng.uniform()) * scale_d)
            .collect();
        for len in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 70, 71] {
            let idx: Vec<u32> = (0..len).map(|_| below(rng, l) as u32).collect();
            let val: Vec<f64> = (0..len).map(|_| count(rng)).collect();
            let h: [f64; K] = std::array::from_fn(|_| (1e-9 + rng.uniform()) * scale_h);
            let want = pass_scalar::<K>(&idx, &val, &d, &h);
            // SAFETY: the caller checked `available`.
            let got = unsafe { pass::<K>(&idx, &val, &d, &h) };
            let what = format!("K = {K}, {len} non-zeros, D ~ {scale_d:e}, h ~ {scale_h:e}");
            // The log products are the scalar pass's operations lane by lane.
            assert_eq!(got.logv.to_bits(), want.logv.to_bits(), "{what}: logv");
            for i in 0..K {
                close(got.g[i], want.g[i], &format!("{what}: g[{i}]"));
                for j in 0..K {
                    close(
                        got.hs[i][j],
                        want.hs[i][j],
                        &format!("{what}: hs[{i}][{j}]"),
                    );
                }
            }
            if len == 0 {
                assert_eq!((got.g, got.hs, got.logv), ([0.0; K], [[0.0; K]; K], 0.0));
            }
        }
    }

    fn agree_all<const K: usize>(rng: &mut Rng) {
        // Ordinary, tiny (a < 2⁻⁶⁰) and huge (a > 2⁶⁰) values of a = d·h.
        for (sd, sh) in [(1.0, 1.0), (1e-3, 50.0), (1e-12, 1e-10), (1e10, 1e12)] {
            agree::<K>(rng, sd, sh);
        }
    }

    #[test]
    fn the_vector_pass_agrees_with_the_scalar_pass() {
        if !available() {
            eprintln!("skipped: the CPU has no AVX2/FMA");
            return;
        }
        let mut rng = Rng::new(7);
        for _ in 0..20 {
            agree_all::<1>(&mut rng);
            agree_all::<2>(&mut rng);
            agree_all::<3>(&mut rng);
            agree_all::<4>(&mut rng);
            agree_all::<5>(&mut rng);
            agree_all::<6>(&mut rng);
            agree_all::<7>(&mut rng);
            agree_all::<8>(&mut rng);
        }
    }
}
