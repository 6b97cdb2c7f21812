//! NNDSVD initialisation from sparse counts: parity with sklearn's `_initialize_nmf`, the
//! truncated SVD against a dense one, NNDSVDar's fill, input errors and degenerate matrices.

use edxs::init::{nndsvd, truncated_svd, NndsvdVariant};
use edxs::io::counts::SparseCountsRef;
use std::path::Path;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/solver");

fn fixture(rel: &str) -> (Vec<usize>, Vec<f64>) {
    edxs::io::npy::read_f64(&Path::new(FIXTURES).join(rel)).expect("reading fixture")
}

/// Owned per-pixel sparse storage, so tests can build and corrupt inputs.
#[derive(Clone)]
struct Sparse {
    l: usize,
    p: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f64>,
}

impl Sparse {
    /// From a dense L×P row-major matrix, keeping only non-zeros.
    fn from_dense(l: usize, p: usize, x: &[f64]) -> Self {
        assert_eq!(x.len(), l * p);
        let mut s = Sparse {
            l,
            p,
            indptr: vec![0],
            indices: vec![],
            values: vec![],
        };
        for px in 0..p {
            for ch in 0..l {
                let v = x[ch * p + px];
                if v != 0.0 {
                    s.indices.push(ch as u32);
                    s.values.push(v);
                }
            }
            s.indptr.push(s.values.len());
        }
        s
    }

    fn r(&self) -> SparseCountsRef<'_> {
        SparseCountsRef {
            channels: self.l,
            pixels: self.p,
            indptr: &self.indptr,
            indices: &self.indices,
            values: &self.values,
        }
    }
}

/// Deterministic test data without pulling in a random-number crate.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn unit(&mut self) -> f64 {
        self.next() as f64 / (1u64 << 31) as f64
    }
}

/// Dense L×P matrix with the given fraction of non-zero integer counts 1..=20.
fn random_counts(l: usize, p: usize, density: f64, seed: u64) -> Vec<f64> {
    let mut g = Lcg(seed);
    (0..l * p)
        .map(|_| {
            if g.unit() < density {
                (1 + g.next() % 20) as f64
            } else {
                0.0
            }
        })
        .collect()
}

fn max_abs(x: &[f64]) -> f64 {
    x.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

/// max|a − b| / max|b|, the mixed tolerance of the brief.
fn scaled_err(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let e = got
        .iter()
        .zip(want)
        .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
    e / max_abs(want)
}

fn solver_x() -> Sparse {
    let (shape, x) = fixture("data/X.npy");
    assert_eq!(shape, [512, 120]);
    Sparse::from_dense(shape[0], shape[1], &x)
}

fn assert_finite_nonneg(name: &str, x: &[f64]) {
    for (i, &v) in x.iter().enumerate() {
        assert!(v.is_finite() && v >= 0.0, "{name}[{i}] = {v}");
    }
}

#[test]
fn nndsvd_and_nndsvda_match_sklearn() {
    let x = solver_x();
    for (variant, name) in [
        (NndsvdVariant::Nndsvd, "nndsvd"),
        (NndsvdVariant::Nndsvda, "nndsvda"),
    ] {
        let (w, h) = nndsvd(&x.r(), 3, variant, 0).unwrap();
        let (ws, wref) = fixture(&format!("steps/init_{name}_W.npy"));
        let (hs, href) = fixture(&format!("steps/init_{name}_H.npy"));
        assert_eq!(ws, [512, 3]);
        assert_eq!(hs, [3, 120]);
        let (ew, eh) = (scaled_err(&w, &wref), scaled_err(&h, &href));
        eprintln!("{name}: max|ΔW|/max|W| = {ew:.3e}, max|ΔH|/max|H| = {eh:.3e}");
        assert!(ew <= 1e-6, "{name} W error {ew:e}");
        assert!(eh <= 1e-6, "{name} H error {eh:e}");
        // The zero pattern must match too, or the comparison above would hide a flipped part.
        if variant == NndsvdVariant::Nndsvd {
            for (a, b) in w.iter().chain(&h).zip(wref.iter().chain(&href)) {
                assert_eq!(*a == 0.0, *b == 0.0, "zero pattern differs: {a} vs {b}");
            }
        }
    }
}

#[test]
fn nndsvdar_keeps_sklearns_non_zero_entries() {
    // The random fill is ours, but every entry that NNDSVD left non-zero is deterministic.
    let x = solver_x();
    let (w, h) = nndsvd(&x.r(), 3, NndsvdVariant::Nndsvdar, 0).unwrap();
    let (_, w0) = fixture("steps/init_nndsvd_W.npy");
    let (_, h0) = fixture("steps/init_nndsvd_H.npy");
    let (_, war) = fixture("steps/init_nndsvdar_W.npy");
    let (_, har) = fixture("steps/init_nndsvdar_H.npy");
    let scale = max_abs(&war).max(max_abs(&har));
    let mut worst = 0.0f64;
    for ((a, b), z) in w
        .iter()
        .chain(&h)
        .zip(war.iter().chain(&har))
        .zip(w0.iter().chain(&h0))
    {
        if *z != 0.0 {
            worst = worst.max((a - b).abs() / scale);
        }
    }
    eprintln!("nndsvdar non-zero entries: max|Δ|/max = {worst:.3e}");
    assert!(worst <= 1e-6, "nndsvdar error {worst:e}");
}

#[test]
fn nndsvdar_fills_zeros_with_small_seeded_values() {
    let x = solver_x();
    let mean = x.values.iter().sum::<f64>() / (x.l * x.p) as f64;
    let (w0, h0) = nndsvd(&x.r(), 3, NndsvdVariant::Nndsvd, 7).unwrap();
    let (w1, h1) = nndsvd(&x.r(), 3, NndsvdVariant::Nndsvdar, 7).unwrap();
    let (w2, h2) = nndsvd(&x.r(), 3, NndsvdVariant::Nndsvdar, 7).unwrap();
    let (w3, h3) = nndsvd(&x.r(), 3, NndsvdVariant::Nndsvdar, 8).unwrap();
    assert_finite_nonneg("W", &w1);
    assert_finite_nonneg("H", &h1);

    let zeros = w0.iter().chain(&h0).filter(|v| **v == 0.0).count();
    assert!(zeros > 0, "test data must leave some zeros to fill");
    for (a, b) in w0.iter().chain(&h0).zip(w1.iter().chain(&h1)) {
        if *a == 0.0 {
            // |N(0,1)| above 10 has probability 1e-23.
            assert!(*b > 0.0 && *b <= 0.1 * mean, "fill {b} vs mean {mean}");
        } else {
            assert_eq!(a.to_bits(), b.to_bits(), "non-zero entry changed");
        }
    }

    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&w1), bits(&w2));
    assert_eq!(bits(&h1), bits(&h2));
    assert_ne!(bits(&w1), bits(&w3));
    // Only the fill depends on the seed: the converged SVD does not.
    let fill_differs = w1
        .iter()
        .chain(&h1)
        .zip(w3.iter().chain(&h3))
        .zip(w0.iter().chain(&h0))
        .any(|((a, b), z)| *z == 0.0 && a != b);
    assert!(fill_differs);
}

#[test]
fn nndsvd_is_deterministic_and_nearly_seed_independent() {
    let x = solver_x();
    let (wa, ha) = nndsvd(&x.r(), 3, NndsvdVariant::Nndsvda, 1).unwrap();
    let (wb, hb) = nndsvd(&x.r(), 3, NndsvdVariant::Nndsvda, 1).unwrap();
    let (wc, hc) = nndsvd(&x.r(), 3, NndsvdVariant::Nndsvda, 12345).unwrap();
    assert!(wa.iter().zip(&wb).all(|(a, b)| a.to_bits() == b.to_bits()));
    assert!(ha.iter().zip(&hb).all(|(a, b)| a.to_bits() == b.to_bits()));
    let (ew, eh) = (scaled_err(&wc, &wa), scaled_err(&hc, &ha));
    eprintln!("seed 1 vs 12345: W {ew:.3e}, H {eh:.3e}");
    assert!(ew <= 1e-9 && eh <= 1e-9, "seed dependence {ew:e} {eh:e}");
}

/// Descending singular values of a dense L×P row-major matrix.
fn dense_singular_values(l: usize, p: usize, x: &[f64]) -> Vec<f64> {
    let m = nalgebra::DMatrix::from_row_slice(l, p, x);
    let svd = nalgebra::SVD::new(m, false, false);
    svd.singular_values.iter().copied().collect()
}

fn check_svd_against_dense(l: usize, p: usize, density: f64, k: usize, seed: u64) {
    let dense = random_counts(l, p, density, seed);
    let sp = Sparse::from_dense(l, p, &dense);
    let t = truncated_svd(&sp.r(), k, 99).unwrap();
    let want = dense_singular_values(l, p, &dense);
    eprintln!(
        "{l}×{p} k={k}: {} iterations, residual {:.2e}, converged {}",
        t.iterations, t.residual, t.converged
    );
    assert!(t.converged);
    assert_eq!(t.s.len(), k);
    for (j, (got, want)) in t.s.iter().zip(&want).enumerate() {
        let rel = (got - want).abs() / want;
        assert!(rel <= 1e-9, "σ_{j}: {got} vs {want} (rel {rel:e})");
    }
    // The vectors: orthonormal, and A v = σ u.
    for i in 0..k {
        for j in 0..k {
            let uu: f64 = (0..l).map(|r| t.u[r * k + i] * t.u[r * k + j]).sum();
            let vv: f64 = (0..p).map(|c| t.vt[i * p + c] * t.vt[j * p + c]).sum();
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((uu - want).abs() < 1e-12 && (vv - want).abs() < 1e-12);
        }
        for r in 0..l {
            let av: f64 = (0..p).map(|c| dense[r * p + c] * t.vt[i * p + c]).sum();
            assert!((av - t.s[i] * t.u[r * k + i]).abs() <= 1e-9 * t.s[0]);
        }
    }
}

#[test]
fn truncated_svd_matches_dense_svd() {
    check_svd_against_dense(70, 90, 0.15, 6, 1);
    // Wide and tall, and a block that covers the whole matrix (b = min(L, P)).
    check_svd_against_dense(150, 40, 0.05, 4, 2);
    check_svd_against_dense(9, 60, 0.3, 5, 3);
}

#[test]
fn invalid_inputs_are_rejected_with_a_reason() {
    let good = Sparse::from_dense(6, 5, &random_counts(6, 5, 0.5, 4));
    assert!(nndsvd(&good.r(), 2, NndsvdVariant::Nndsvd, 0).is_ok());
    let err = |s: &Sparse, k: usize| {
        format!(
            "{:#}",
            nndsvd(&s.r(), k, NndsvdVariant::Nndsvda, 0).unwrap_err()
        )
    };
    let expect = |msg: String, needle: &str| {
        assert!(msg.contains(needle), "message {msg:?} lacks {needle:?}");
    };

    expect(err(&good, 0), "k = 0");
    expect(err(&good, 6), "exceeds min(channels, pixels)");

    let mut s = good.clone();
    s.indptr.pop();
    expect(err(&s, 2), "indptr has 5 entries");

    let mut s = good.clone();
    s.indptr[2] = s.indptr[3] + 1;
    expect(err(&s, 2), "not monotone");

    let mut s = good.clone();
    *s.indptr.last_mut().unwrap() += 1;
    expect(err(&s, 2), "number of stored values");

    let mut s = good.clone();
    s.indices[0] = 6;
    expect(err(&s, 2), "out of range");

    let mut s = good.clone();
    let (a, b) = (s.indptr[0], s.indptr[1]);
    assert!(b - a >= 2, "test needs two entries in pixel 0");
    s.indices.swap(a, a + 1);
    expect(err(&s, 2), "strictly increasing");

    let mut s = good.clone();
    s.values[1] = -1.0;
    expect(err(&s, 2), "negative");

    let mut s = good.clone();
    s.values[1] = f64::NAN;
    expect(err(&s, 2), "not finite");

    let mut s = good.clone();
    s.values[1] = f64::INFINITY;
    expect(err(&s, 2), "not finite");

    let mut s = good.clone();
    s.values.pop();
    expect(err(&s, 2), "indices has");

    assert!(truncated_svd(&good.r(), 0, 0).is_err());
}

fn all_variants(s: &Sparse, k: usize) -> Vec<(Vec<f64>, Vec<f64>)> {
    [
        NndsvdVariant::Nndsvd,
        NndsvdVariant::Nndsvda,
        NndsvdVariant::Nndsvdar,
    ]
    .into_iter()
    .map(|v| {
        let (w, h) = nndsvd(&s.r(), k, v, 3).unwrap();
        assert_eq!(w.len(), s.l * k);
        assert_eq!(h.len(), k * s.p);
        assert_finite_nonneg("W", &w);
        assert_finite_nonneg("H", &h);
        (w, h)
    })
    .collect()
}

#[test]
fn all_zero_matrix_gives_zero_factors() {
    let s = Sparse::from_dense(10, 7, &[0.0; 70]);
    for (w, h) in all_variants(&s, 3) {
        assert!(w.iter().chain(&h).all(|v| *v == 0.0));
    }
    let t = truncated_svd(&s.r(), 3, 0).unwrap();
    assert!(t.s.iter().all(|v| *v == 0.0) && t.converged);
}

#[test]
fn empty_pixels_channels_and_low_rank_stay_finite() {
    // Zero rows and columns.
    let (l, p) = (40, 30);
    let mut x = random_counts(l, p, 0.3, 5);
    for ch in (0..l).step_by(3) {
        (0..p).for_each(|c| x[ch * p + c] = 0.0);
    }
    for c in (0..p).step_by(4) {
        (0..l).for_each(|ch| x[ch * p + c] = 0.0);
    }
    let s = Sparse::from_dense(l, p, &x);
    let out = all_variants(&s, 4);
    let (w, h) = &out[0];
    for ch in (0..l).step_by(3) {
        assert!(w[ch * 4..ch * 4 + 4].iter().all(|v| *v == 0.0));
    }
    for c in (0..p).step_by(4) {
        assert!((0..4).all(|j| h[j * p + c] == 0.0));
    }

    // Rank 1 with k = 3: the extra singular values are zero and so are their components.
    let mut x = vec![0.0; l * p];
    for ch in 0..l {
        for c in 0..p {
            x[ch * p + c] = ((ch % 5) * (c % 3)) as f64;
        }
    }
    let s = Sparse::from_dense(l, p, &x);
    let out = all_variants(&s, 3);
    let (w, h) = &out[0];
    let peak = max_abs(w).max(max_abs(h));
    for j in 1..3 {
        let col = (0..l).map(|ch| w[ch * 3 + j]).fold(0.0f64, f64::max);
        let row = max_abs(&h[j * p..(j + 1) * p]);
        assert!(col <= 1e-6 * peak && row <= 1e-6 * peak, "component {j}");
    }

    // A single non-zero entry.
    let mut x = vec![0.0; 12];
    x[5] = 3.0;
    all_variants(&Sparse::from_dense(3, 4, &x), 3);
}

#[test]
fn extreme_magnitudes_neither_overflow_nor_change_the_result() {
    // Scaling X by 4^m scales W and H by exactly 2^m (above sklearn's 1e-6 cut-off).
    let (l, p) = (30, 25);
    let x = random_counts(l, p, 0.4, 6);
    let base = Sparse::from_dense(l, p, &x);
    let (w0, h0) = nndsvd(&base.r(), 3, NndsvdVariant::Nndsvd, 0).unwrap();
    for m in [300i32, -300] {
        let mut big = base.clone();
        let c = 4f64.powi(m);
        big.values.iter_mut().for_each(|v| *v *= c);
        let (w, h) = nndsvd(&big.r(), 3, NndsvdVariant::Nndsvd, 0).unwrap();
        let f = 2f64.powi(m);
        for (a, b) in w.iter().zip(&w0).chain(h.iter().zip(&h0)) {
            assert!(a.is_finite());
            if *b != 0.0 && *a != 0.0 {
                assert_eq!(*a, b * f);
            }
        }
    }
}

#[test]
fn the_one_in_a_million_cut_off_is_absolute() {
    // sklearn zeroes entries below 1e-6 whatever the scale of X: with X·1e-12, W and H shrink
    // by 1e-6 and straddle the cut-off.
    let (l, p) = (30, 25);
    let base = Sparse::from_dense(l, p, &random_counts(l, p, 0.4, 6));
    let (w0, h0) = nndsvd(&base.r(), 3, NndsvdVariant::Nndsvd, 0).unwrap();
    let mut small = base.clone();
    small.values.iter_mut().for_each(|v| *v *= 1e-12);
    let (w, h) = nndsvd(&small.r(), 3, NndsvdVariant::Nndsvd, 0).unwrap();
    let (mut cut, mut kept) = (0, 0);
    for (a, b) in w.iter().zip(&w0).chain(h.iter().zip(&h0)) {
        let expected = b * 1e-6;
        if expected < 1e-6 * (1.0 - 1e-9) {
            assert_eq!(*a, 0.0, "{a} should have been cut (unscaled {b})");
            cut += usize::from(expected > 0.0);
        } else if expected > 1e-6 * (1.0 + 1e-9) {
            assert!((a - expected).abs() <= 1e-9 * expected, "{a} vs {expected}");
            kept += 1;
        }
    }
    assert!(cut > 0 && kept > 0, "cut {cut}, kept {kept}");
}
