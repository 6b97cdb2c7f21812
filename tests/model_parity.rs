//! G, its normalisation and the bremsstrahlung update against espm 1.1.3 fixtures.
//!
//! Fixtures come from `tests/fixtures/gen_fixtures.py` (espm itself); every entry must lie
//! within 1e-9 of its column's maximum in f64 and 1e-4 in f32.

use edxs_core::{EdxsModel, Float};
use edxs_suite::{max_rel_err_per_column, model_fixture_dirs, read_npy_f64, FixtureModel};
use std::path::Path;

fn build<T: Float>(model: &EdxsModel<'_>) -> (Vec<f64>, edxs_core::Normalisation<T>, Vec<T>) {
    let mut g = vec![T::ZERO; model.g_len()];
    let mut s = vec![T::ZERO; model.scratch_len()];
    let norm = model.build_g(&mut g, &mut s).unwrap();
    (g.iter().map(|v| v.to_f64()).collect(), norm, g)
}

fn check_fixture<T: Float>(dir: &Path, tol: f64) {
    let name = dir.file_name().unwrap().to_string_lossy().to_string();
    let fx = FixtureModel::load(dir);
    let model = EdxsModel::new(fx.params()).unwrap();
    let m = model.n_columns();
    let names: Vec<String> = model.columns().map(|c| c.espm_name().to_string()).collect();
    assert_eq!(names, fx.columns, "{name}: columns");
    assert_eq!(
        model.simplex_rows().collect::<Vec<_>>(),
        fx.simplex_rows,
        "{name}: simplex rows"
    );

    let (_, x) = read_npy_f64(&dir.join("x.npy"));
    assert_eq!(x.len(), model.n_channels());
    for (i, &want) in x.iter().enumerate() {
        assert!(
            (model.energy(i) - want).abs() <= 1e-12 * want,
            "{name}: energy {i}"
        );
    }

    let (g, norm, mut g_native) = build::<T>(&model);
    let (shape, want) = read_npy_f64(&dir.join("G.npy"));
    assert_eq!(
        shape,
        vec![model.n_channels() as u64, m as u64],
        "{name}: shape"
    );
    let (err, at) = max_rel_err_per_column(&g, &want, m);
    assert!(
        err <= tol,
        "{name}: G error {err:e} at row {} col {}",
        at / m,
        at % m
    );

    let (_, want_norm) = read_npy_f64(&dir.join("norm.npy"));
    for (j, w) in want_norm.iter().enumerate() {
        let got = norm.raw_divisor(j, m, fx.bremsstrahlung);
        assert!(
            (got - w).abs() <= tol.max(1e-12) * w.abs(),
            "{name}: norm[{j}] {got} vs {w}"
        );
    }

    let w_path = dir.join("update_W.npy");
    if w_path.exists() {
        let (wshape, w) = read_npy_f64(&w_path);
        let k = wshape[1] as usize;
        let w: Vec<T> = w.iter().map(|&v| T::from_f64(v)).collect();
        let mut s = vec![T::ZERO; model.scratch_len()];
        model
            .update_bremsstrahlung(&norm, &w, k, &mut g_native, &mut s)
            .unwrap();
        // With the efficiency and attenuation evaluated once: the same G bit for bit, and a
        // cache one value short is refused.
        let (_, _, mut g_cached) = build::<T>(&model);
        let mut cache = vec![T::ZERO; model.brems_cache_len()];
        model.fill_brems_cache(&mut cache, &mut s).unwrap();
        model
            .update_bremsstrahlung_cached(&norm, &w, k, &mut g_cached, &cache, &mut s)
            .unwrap();
        let differ = g_cached
            .iter()
            .zip(&g_native)
            .filter(|(a, b)| a.to_f64().to_bits() != b.to_f64().to_bits())
            .count();
        assert_eq!(
            differ, 0,
            "{name}: the cached update differs in {differ} entries"
        );
        let short = &cache[..cache.len() - 1];
        assert!(matches!(
            model.update_bremsstrahlung_cached(&norm, &w, k, &mut g_cached, short, &mut s),
            Err(edxs_core::ModelError::BufferTooSmall { .. })
        ));
        let got: Vec<f64> = g_native.iter().map(|v| v.to_f64()).collect();
        let (_, want) = read_npy_f64(&dir.join("G_updated.npy"));
        let (err, at) = max_rel_err_per_column(&got, &want, m);
        assert!(
            err <= tol,
            "{name}: updated G error {err:e} at row {} col {}",
            at / m,
            at % m
        );
    }
}

#[test]
fn enough_fixtures_cover_the_issue() {
    let dirs = model_fixture_dirs();
    assert!(
        dirs.len() >= 6,
        "need at least 6 model fixtures, found {}",
        dirs.len()
    );
    let configs: Vec<FixtureModel> = dirs.iter().map(|d| FixtureModel::load(d)).collect();
    for e0 in [100.0, 200.0, 300.0] {
        assert!(configs.iter().any(|c| c.e0 == e0), "no fixture at {e0} keV");
    }
    assert!(
        configs.iter().any(|c| !c.ignored.is_empty()),
        "no ignored element"
    );
    assert!(
        configs.iter().any(|c| !c.split.is_empty()),
        "no split element"
    );
    assert!(
        configs.iter().any(|c| c.absorption.is_none()),
        "no absorption-free case"
    );
    assert!(configs
        .iter()
        .any(|c| c.absorption.is_some_and(|a| a.density.is_some())));
    assert!(configs
        .iter()
        .any(|c| c.absorption.is_some_and(|a| a.atomic_fraction)));
    assert!(
        dirs.iter()
            .filter(|d| d.join("G_updated.npy").exists())
            .count()
            >= 3
    );
}

#[test]
fn g_matches_espm_in_f64() {
    for dir in model_fixture_dirs() {
        check_fixture::<f64>(&dir, 1e-9);
    }
}

#[test]
fn g_matches_espm_in_f32() {
    for dir in model_fixture_dirs() {
        check_fixture::<f32>(&dir, 1e-4);
    }
}
