//! espm's physics initialisation of W against the fixture (nndsvda spectra → W).

use edxs_core::init::{physics_w, physics_w_scratch_len, random_start};
use edxs_core::rng::Rng;
use edxs_core::view::{MatMut, MatRef};
use edxs_suite::{fixtures_dir, read_npy_f64};

#[test]
fn physics_w_matches_espm() {
    let dir = fixtures_dir().join("solver");
    let (gs, g) = read_npy_f64(&dir.join("data/G.npy"));
    let (ds, d) = read_npy_f64(&dir.join("steps/init_nndsvda_W.npy"));
    let (_, want) = read_npy_f64(&dir.join("steps/init_physics_W.npy"));
    let (l, m, k) = (gs[0] as usize, gs[1] as usize, ds[1] as usize);
    let mut w = vec![0.0; m * k];
    let mut s = vec![0.0; physics_w_scratch_len(l, m, k)];
    // The fixture is espm's NMF_initialize_W alone (no simplex scaling, no ε floor).
    physics_w(
        MatRef::new("g", &g, l, m).unwrap(),
        MatRef::new("d", &d, l, k).unwrap(),
        &[],
        0.0,
        MatMut::new("w", &mut w, m, k).unwrap(),
        &mut s,
    )
    .unwrap();
    let scale = want.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    for (i, (a, b)) in w.iter().zip(&want).enumerate() {
        assert!((a - b).abs() <= 1e-9 * scale, "W[{i}] = {a}, espm {b}");
    }
    // With the simplex on the element rows, each component's element rows sum to one.
    physics_w(
        MatRef::new("g", &g, l, m).unwrap(),
        MatRef::new("d", &d, l, k).unwrap(),
        &[0, 1, 2],
        1e-14,
        MatMut::new("w", &mut w, m, k).unwrap(),
        &mut s,
    )
    .unwrap();
    for c in 0..k {
        let sum: f64 = (0..3).map(|r| w[r * k + c]).sum();
        assert!((sum - 1.0).abs() < 1e-12);
    }
}

#[test]
fn physics_w_survives_degenerate_spectra() {
    // Zero spectra and a G with a repeated column: W stays finite and on the simplex.
    let (l, m, k) = (6, 3, 2);
    let g: Vec<f64> = (0..l * m).map(|i| ((i / m) as f64 + 1.0) * 0.1).collect(); // all columns equal
    let d = vec![0.0; l * k];
    let mut w = vec![0.0; m * k];
    let mut s = vec![0.0; physics_w_scratch_len(l, m, k)];
    physics_w(
        MatRef::new("g", &g, l, m).unwrap(),
        MatRef::new("d", &d, l, k).unwrap(),
        &[0, 1],
        1e-14,
        MatMut::new("w", &mut w, m, k).unwrap(),
        &mut s,
    )
    .unwrap();
    assert!(w.iter().all(|v| v.is_finite() && *v >= 1e-14));
    assert!(((w[0] + w[k]) - 1.0).abs() < 1e-12);
    let mut short = vec![0.0; 3];
    // A spectrum matrix with the wrong number of channels is refused by name.
    let e = physics_w(
        MatRef::new("g", &g, l, m).unwrap(),
        MatRef::new("d", &d, l - 1, k).unwrap(),
        &[0],
        1e-14,
        MatMut::new("w", &mut w, m, k).unwrap(),
        &mut s,
    )
    .unwrap_err();
    assert!(e.to_string().contains("d (rows)"), "{e}");
    assert!(MatRef::new("d", &d[1..], l, k).is_err());
    assert!(physics_w(
        MatRef::new("g", &g, l, m).unwrap(),
        MatRef::new("d", &d, l, k).unwrap(),
        &[0],
        1e-14,
        MatMut::new("w", &mut w, m, k).unwrap(),
        &mut short,
    )
    .is_err());
}

#[test]
fn random_start_is_seeded_and_scaled() {
    let (l, k, p) = (50, 3, 400);
    let mut d1 = vec![0.0f64; l * k];
    let mut h1 = vec![0.0f64; k * p];
    random_start(12.0, &mut Rng::new(7), &mut d1, &mut h1, k);
    let mut d2 = vec![0.0f64; l * k];
    let mut h2 = vec![0.0f64; k * p];
    random_start(12.0, &mut Rng::new(7), &mut d2, &mut h2, k);
    assert_eq!((&d1, &h1), (&d2, &h2));
    random_start(12.0, &mut Rng::new(8), &mut d2, &mut h2, k);
    assert_ne!(h1, h2);
    // E|N(0,1)| = √(2/π): the mean of H is a·√(2/π) with a = √(12/3) = 2.
    let mean = h1.iter().sum::<f64>() / h1.len() as f64;
    assert!(
        (mean - 2.0 * (2.0 / std::f64::consts::PI).sqrt()).abs() < 0.1,
        "{mean}"
    );
    assert!(h1.iter().chain(&d1).all(|v| *v >= 0.0));
}
