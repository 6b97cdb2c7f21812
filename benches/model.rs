//! G construction cost for typical configurations, and the calibration refinement that builds
//! G a few hundred times (figures printed by criterion).

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

/// The refinement on the paper's model (12 elements, 1980 channels) from a summed spectrum
/// whose axis is 1 % wider and peaks 10 % wider than nominal, on one thread.
fn bench_calibration(c: &mut Criterion) {
    use edxs::calibrate::{refine_spectrum, Bounds, Calibration};
    let opts = edxs::model_options::ModelOptions {
        elements: "O,Ca,Si,Fe,Mg,Al,Cu,Hf,Ti,Sm,Lu,Nd"
            .split(',')
            .map(String::from)
            .collect(),
        e0: Some(200.0),
        offset: Some(0.3),
        scale: Some(0.01),
        width_slope: 0.01,
        width_intercept: 0.065,
        thickness: Some(1e-5),
        density: Some(4.5),
        toa: Some(35.0),
        ..Default::default()
    };
    let spec = opts.spec(&Default::default(), Some(1980), "bench").unwrap();
    let n = Calibration::of(&spec);
    let truth = Calibration {
        scale_kev: n.scale_kev * 1.01,
        width_slope: n.width_slope * 1.1,
        width_intercept: n.width_intercept * 1.1,
        ..n
    };
    let shifted = truth.apply(&spec);
    let model = shifted.model().unwrap();
    let m = model.n_columns();
    let mut g = vec![0.0; model.g_len()];
    let mut scratch = vec![0.0; model.scratch_len()];
    model.build_g(&mut g, &mut scratch).unwrap();
    let sum: Vec<f64> = g
        .chunks_exact(m)
        .map(|row| {
            row.iter()
                .enumerate()
                .map(|(j, v)| v * 1e5 * (1 + j % 5) as f64)
                .sum()
        })
        .collect();
    let mut group = c.benchmark_group("calibration");
    group.sample_size(10);
    group.bench_function("refinement paper 1980x14, 1 thread", |b| {
        b.iter(|| refine_spectrum(&spec, black_box(&sum), Bounds::default(), 1))
    });
    group.finish();
}

criterion_group!(benches, bench_build_g, bench_calibration);
criterion_main!(benches);
