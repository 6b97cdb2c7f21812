//! G construction cost for typical configurations (figures printed by criterion).

use criterion::{criterion_group, criterion_main, Criterion};
use edxs_core::{EdxsModel, Element, ModelParams};
use std::hint::black_box;

fn elements(symbols: &[&str]) -> Vec<Element> {
    symbols.iter().map(|s| Element::parse(s).unwrap()).collect()
}

fn bench_build_g(c: &mut Criterion) {
    let paper = elements(&[
        "O", "Ca", "Si", "Fe", "Mg", "Al", "Cu", "Hf", "Ti", "Sm", "Lu", "Nd",
    ]);
    let cu = elements(&["Cu"]);
    let mut params = ModelParams::new(&paper);
    params.ignored = &cu;
    params.axis.offset = 0.3;
    let model = EdxsModel::new(params).unwrap();
    let mut g64 = vec![0.0f64; model.g_len()];
    let mut s64 = vec![0.0f64; model.scratch_len()];
    c.bench_function("build_g paper 1980x25 f64", |b| {
        b.iter(|| model.build_g(black_box(&mut g64), &mut s64).unwrap())
    });
    let mut g32 = vec![0.0f32; model.g_len()];
    let mut s32 = vec![0.0f32; model.scratch_len()];
    c.bench_function("build_g paper 1980x25 f32", |b| {
        b.iter(|| model.build_g(black_box(&mut g32), &mut s32).unwrap())
    });
}

criterion_group!(benches, bench_build_g);
criterion_main!(benches);
