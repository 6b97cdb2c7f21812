//! Cross-checks against the independently produced espm vectors in `../shared/reference-vectors`.
//!
//! Users do not have that folder: without it each test prints "SKIP: <test>: ... is missing"
//! and checks nothing; CI (which has it) sets `EDXS_SHARED_REFS` to make its absence an error.

use edxs_core::{Absorption, EdxsModel, Element, ModelParams};
use edxs_suite::{max_rel_err_per_column, read_npy_f64, shared_or_skip};
use std::path::PathBuf;

/// The reference folder (`EDXS_SHARED_REFS`, else `../shared/reference-vectors`), or None after
/// a printed "SKIP" naming `test`.
fn refs(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("EDXS_SHARED_REFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference-vectors")
        });
    shared_or_skip(&dir.join("A_G.npy"), "EDXS_SHARED_REFS", test)?;
    Some(dir)
}

fn els(s: &[&str]) -> Vec<Element> {
    s.iter().map(|x| Element::parse(x).unwrap()).collect()
}

fn config_a(elements: &[Element]) -> ModelParams<'_> {
    let mut p = ModelParams::new(elements);
    p.axis.offset = 0.1;
    p.axis.scale = 0.0195;
    p.axis.channels = 1024;
    p.absorption = Some(Absorption {
        thickness: 100e-7,
        density: None,
        toa: 22.0,
        atomic_fraction: false,
    });
    p
}

fn check(name: &str, params: ModelParams<'_>) {
    let Some(dir) = refs(name) else { return };
    let model = EdxsModel::new(params).unwrap();
    let mut g = vec![0.0f64; model.g_len()];
    let mut s = vec![0.0f64; model.scratch_len()];
    model.build_g(&mut g, &mut s).unwrap();
    let (shape, want) = read_npy_f64(&dir.join(name));
    assert_eq!(
        shape,
        vec![model.n_channels() as u64, model.n_columns() as u64]
    );
    let (err, at) = max_rel_err_per_column(&g, &want, model.n_columns());
    assert!(err < 1e-9, "{name}: max rel err {err} at {at}");
}

#[test]
fn config_a_matches() {
    let e = els(&["Fe", "Pt", "O"]);
    check("A_G.npy", config_a(&e));
}

#[test]
fn config_a_density5_matches() {
    let e = els(&["Fe", "Pt", "O"]);
    let mut p = config_a(&e);
    p.absorption.as_mut().unwrap().density = Some(5.0);
    check("A2_G.npy", p);
}

#[test]
fn config_b_defaults_match() {
    let e = els(&["Si", "O", "Ca", "Fe"]);
    check("B_G.npy", ModelParams::new(&e));
}

#[test]
fn config_a_split_and_cu_match() {
    let e = els(&["Fe", "Pt", "O"]);
    let split = [(Element::parse("Pt").unwrap(), 5.0)];
    let mut p = config_a(&e);
    p.split = &split;
    check("A_G_splitPt.npy", p);
    let cu = els(&["Cu"]);
    let mut p = config_a(&e);
    p.ignored = &cu;
    check("A_G_defaultCu.npy", p);
}

#[test]
fn paper_g_matches() {
    let e = els(&[
        "O", "Ca", "Si", "Fe", "Mg", "Al", "Cu", "Hf", "Ti", "Sm", "Lu", "Nd",
    ]);
    let cu = els(&["Cu"]);
    let mut p = ModelParams::new(&e);
    p.ignored = &cu;
    p.axis.offset = 0.3;
    p.absorption = Some(Absorption {
        thickness: 100e-7,
        density: Some(4.5),
        toa: 35.0,
        atomic_fraction: false,
    });
    check("P_G.npy", p);
}
