//! The maps solver's per-pixel pass (`edxs::fast::newton::pass`, one per pixel per Newton
//! sweep or line-search trial) over a fixed set of pixels, for instruction counting and timing:
//! 4096 pixels × ~70 non-zeros of 1980 channels, counts 1–3, K = 3, spectrum-like D.
//!
//! ```sh
//! cargo build --release -p edxs --example callgrind_pass
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*one_sweep*' \
//!     target/release/examples/callgrind_pass [--scalar]      # instructions of one sweep
//! target/release/examples/callgrind_pass --time 200           # ns per non-zero, both passes
//! ```
//! `--scalar` measures the portable pass instead of the one chosen for the CPU.

use edxs::fast::newton::{pass, pass_scalar, PixelStats};
use edxs_core::rng::Rng;
use std::time::Instant;

const L: usize = 1980;
const K: usize = 3;

/// Pixels in CSR form and D (L×K, a decaying background plus a few peaks, clipped at 1e-8).
struct Data {
    indptr: Vec<usize>,
    idx: Vec<u32>,
    val: Vec<f64>,
    d: Vec<f64>,
    h: Vec<[f64; K]>,
}

fn data(pixels: usize, per_pixel: usize) -> Data {
    let mut rng = Rng::new(42);
    let mut d = vec![0.0; L * K];
    for l in 0..L {
        let e = l as f64 / L as f64;
        for k in 0..K {
            let peak = 200.0 + 500.0 * k as f64;
            let g = (-((l as f64 - peak) / 8.0).powi(2)).exp();
            d[l * K + k] = (1e-4 * (-3.0 * e).exp() + 0.01 * g).max(1e-8);
        }
    }
    let (mut indptr, mut idx, mut val, mut h) = (vec![0], Vec::new(), Vec::new(), Vec::new());
    for _ in 0..pixels {
        let n = per_pixel / 2 + (rng.next_u64() % per_pixel as u64) as usize;
        let mut ch: Vec<u32> = (0..n).map(|_| (rng.next_u64() % L as u64) as u32).collect();
        ch.sort_unstable();
        ch.dedup();
        for c in ch {
            idx.push(c);
            val.push(1.0 + (rng.next_u64() % 3) as f64);
        }
        indptr.push(idx.len());
        h.push(std::array::from_fn(|_| 100.0 * rng.uniform() + 1e-6));
    }
    Data {
        indptr,
        idx,
        val,
        d,
        h,
    }
}

/// The measured region: one pass over every pixel; returns a checksum so nothing is elided.
#[inline(never)]
fn one_sweep(x: &Data, scalar: bool, out: &mut [PixelStats<K>]) -> f64 {
    let mut s = 0.0;
    for (p, st) in out.iter_mut().enumerate() {
        let (a, b) = (x.indptr[p], x.indptr[p + 1]);
        let (idx, val) = (&x.idx[a..b], &x.val[a..b]);
        *st = if scalar {
            pass_scalar::<K>(idx, val, &x.d, &x.h[p])
        } else {
            pass::<K>(idx, val, &x.d, &x.h[p])
        };
        s += st.logv + st.g[0] + st.hs[0][1];
    }
    s
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.parse().unwrap_or_else(|_| panic!("bad value for {name}")))
            .unwrap_or(default)
    };
    let (pixels, per_pixel) = (get("--pixels", 4096), get("--nnz", 70));
    let scalar = args.iter().any(|a| a == "--scalar");
    let x = data(pixels, per_pixel);
    let nnz = x.idx.len();
    let mut out = vec![PixelStats::<K>::default(); pixels];
    let reps = get("--time", 0);
    if reps == 0 {
        let s = one_sweep(&x, scalar, &mut out);
        println!("pixels={pixels} nnz={nnz} K={K} scalar={scalar} checksum={s:.12e}");
        return;
    }
    // Timing: both passes in the same run, interleaved, best of `reps` each.
    let (mut best_s, mut best_v) = (f64::INFINITY, f64::INFINITY);
    let (mut cs, mut cv) = (0.0, 0.0);
    for _ in 0..reps {
        let t = Instant::now();
        cs = one_sweep(&x, true, &mut out);
        best_s = best_s.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        cv = one_sweep(&x, false, &mut out);
        best_v = best_v.min(t.elapsed().as_secs_f64());
    }
    println!("pixels={pixels} nnz={nnz} K={K}, best of {reps} sweeps");
    println!(
        "scalar: {:.2} ns/non-zero, dispatched: {:.2} ns/non-zero, ratio {:.2}; checksums {cs:.15e} {cv:.15e}",
        best_s * 1e9 / nnz as f64,
        best_v * 1e9 / nnz as f64,
        best_s / best_v
    );
}
