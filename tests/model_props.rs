//! Property tests: for random valid configurations G is finite, non-negative and normalised.

use edxs_core::{Absorption, EdxsModel, Element, EnergyAxis, Float, ModelParams};
use proptest::prelude::*;

/// Elements with attenuation data and a known density (At and Fr have none).
fn pool() -> Vec<u8> {
    (5u8..=92).filter(|z| *z != 85 && *z != 87).collect()
}

#[derive(Debug, Clone)]
struct Config {
    zs: Vec<u8>,
    e0: f64,
    offset: f64,
    scale: f64,
    channels: usize,
    slope: f64,
    intercept: f64,
    absorption: Option<Absorption>,
    brems: bool,
    k: usize,
    w_seed: u64,
}

fn config() -> impl Strategy<Value = Config> {
    let abs = prop_oneof![
        Just(None),
        (
            1e-7f64..1e-4,
            prop::option::of(0.5f64..20.0),
            5.0f64..90.0,
            any::<bool>()
        )
            .prop_map(
                |(thickness, density, toa, atomic_fraction)| Some(Absorption {
                    thickness,
                    density,
                    toa,
                    atomic_fraction,
                })
            ),
    ];
    (
        prop::sample::subsequence(pool(), 1..6),
        prop::sample::select(vec![100.0, 200.0, 300.0]),
        0.1f64..1.5,
        0.004f64..0.02,
        64usize..1500,
        0.0f64..0.02,
        0.03f64..0.12,
        abs,
        any::<bool>(),
        1usize..4,
        any::<u64>(),
    )
        .prop_map(
            |(zs, e0, offset, scale, channels, slope, intercept, absorption, brems, k, w_seed)| {
                Config {
                    zs,
                    e0,
                    offset,
                    scale,
                    channels,
                    slope,
                    intercept,
                    absorption,
                    brems,
                    k,
                    w_seed,
                }
            },
        )
}

fn check<T: Float>(cfg: &Config, tol: f64) -> Result<(), TestCaseError> {
    let axis = EnergyAxis {
        offset: cfg.offset,
        scale: cfg.scale,
        channels: cfg.channels,
        compat: Default::default(),
    };
    // Keep only elements with a line inside the axis (the model rejects the others).
    let table = edxs_tables::line_table(cfg.e0).unwrap();
    let elements: Vec<Element> = cfg
        .zs
        .iter()
        .filter(|&&z| {
            table
                .lines_of(z)
                .iter()
                .any(|l| axis.contains_line(l.energy))
        })
        .map(|&z| Element::from_z(z as u32).unwrap())
        .collect();
    prop_assume!(!elements.is_empty());
    let params = ModelParams {
        elements: &elements,
        split: &[],
        ignored: &[],
        e0: cfg.e0,
        axis,
        width_slope: cfg.slope,
        width_intercept: cfg.intercept,
        absorption: cfg.absorption,
        bremsstrahlung: cfg.brems,
    };
    let model = EdxsModel::new(params).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let (l, m) = (model.n_channels(), model.n_columns());
    let mut g = vec![T::ZERO; model.g_len()];
    let mut s = vec![T::ZERO; model.scratch_len()];
    let norm = model
        .build_g(&mut g, &mut s)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(
        g.iter().all(|v| v.is_finite() && *v >= T::ZERO),
        "negative or non-finite entry"
    );
    let sums: Vec<f64> = (0..m)
        .map(|j| (0..l).map(|i| g[i * m + j].to_f64()).sum())
        .collect();
    let n_char = if cfg.brems { m - 2 } else { m };
    let mean_char = sums[..n_char].iter().sum::<f64>() / n_char as f64;
    prop_assert!(
        (mean_char - 1.0).abs() < tol,
        "characteristic mean sum {mean_char}"
    );
    if cfg.brems {
        prop_assert!((sums[m - 2] - 1.0).abs() < tol, "b0 sum {}", sums[m - 2]);
        prop_assert!((sums[m - 1] - 1.0).abs() < tol, "b1 sum {}", sums[m - 1]);
        // Updating from any non-negative W keeps G finite and non-negative.
        let mut state = cfg.w_seed | 1;
        let w: Vec<T> = (0..m * cfg.k)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                T::from_f64((state % 1000) as f64 / 1000.0 + 1e-3)
            })
            .collect();
        model
            .update_bremsstrahlung(&norm, &w, cfg.k, &mut g, &mut s)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(g.iter().all(|v| v.is_finite() && *v >= T::ZERO));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn g_is_finite_nonnegative_and_normalised_f64(cfg in config()) {
        check::<f64>(&cfg, 1e-9)?;
    }

    #[test]
    fn g_is_finite_nonnegative_and_normalised_f32(cfg in config()) {
        check::<f32>(&cfg, 1e-4)?;
    }
}
