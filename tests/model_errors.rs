//! Every invalid model input is a typed error naming the value; nothing panics.

use edxs_core::{Absorption, EdxsModel, Element, ModelError, ModelParams};

fn els(s: &[&str]) -> Vec<Element> {
    s.iter().map(|x| Element::parse(x).unwrap()).collect()
}

fn err(p: ModelParams<'_>) -> ModelError {
    match EdxsModel::new(p) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[test]
fn unknown_elements_are_named() {
    let e = Element::parse("Xx").unwrap_err();
    assert!(e.to_string().contains("'Xx'"), "{e}");
    assert!(
        Element::parse("fe").is_err(),
        "symbols are case-sensitive as in espm"
    );
    assert_eq!(Element::parse("26").unwrap().symbol(), "Fe");
    assert!(matches!(
        Element::parse("99"),
        Err(ModelError::UnknownAtomicNumber { z: 99 })
    ));
    assert!(matches!(
        Element::from_z(0),
        Err(ModelError::UnknownAtomicNumber { z: 0 })
    ));
    let long = Element::parse("Unobtainium").unwrap_err();
    assert!(long.to_string().contains("Unobtain"), "{long}");
}

#[test]
fn axis_errors() {
    let e = els(&["Fe"]);
    let mut p = ModelParams::new(&e);
    p.axis.offset = 0.0;
    assert!(matches!(err(p), ModelError::InvalidOffset { offset } if offset == 0.0));
    let mut p = ModelParams::new(&e);
    p.axis.scale = -0.01;
    assert!(matches!(err(p), ModelError::InvalidScale { .. }));
    let mut p = ModelParams::new(&e);
    p.axis.channels = 0;
    assert!(matches!(
        err(p),
        ModelError::InvalidChannels { channels: 0 }
    ));
    let mut p = ModelParams::new(&e);
    p.axis.offset = f64::NAN;
    assert!(matches!(err(p), ModelError::InvalidOffset { .. }));
    // Beyond the detector curve (40.66 keV) with bremsstrahlung on.
    let mut p = ModelParams::new(&e);
    p.axis.scale = 0.05;
    p.axis.channels = 1000;
    let m = err(p);
    assert!(
        matches!(m, ModelError::EnergyOutsideDetectorCurve { .. }),
        "{m}"
    );
    assert!(m.to_string().contains("detector efficiency"), "{m}");
    // Below the detector curve (0.0978 keV).
    let mut p = ModelParams::new(&e);
    p.axis.offset = 0.05;
    assert!(matches!(
        err(p),
        ModelError::EnergyOutsideDetectorCurve { .. }
    ));
}

#[test]
fn beam_energy_must_be_tabulated() {
    let e = els(&["Fe"]);
    let mut p = ModelParams::new(&e);
    p.e0 = 150.0;
    let m = err(p);
    assert!(matches!(m, ModelError::UnsupportedBeamEnergy { e0 } if e0 == 150.0));
    assert!(m.to_string().contains("150"), "{m}");
}

#[test]
fn elements_without_lines_in_the_axis() {
    // O K (0.525 keV) lies below an axis starting at 1 keV.
    let e = els(&["Fe", "O"]);
    let mut p = ModelParams::new(&e);
    p.axis.offset = 1.0;
    let m = err(p);
    assert!(matches!(m, ModelError::NoLineInAxis { z: 8, .. }), "{m}");
    assert!(m.to_string().contains("O (Z=8)"), "{m}");
    // Ignored elements are checked too.
    let e = els(&["Fe"]);
    let ign = els(&["O"]);
    let mut p = ModelParams::new(&e);
    p.ignored = &ign;
    p.axis.offset = 1.0;
    assert!(matches!(err(p), ModelError::NoLineInAxis { z: 8, .. }));
    // Elements without lines at all (H) are rejected the same way.
    let e = els(&["H"]);
    assert!(matches!(
        err(ModelParams::new(&e)),
        ModelError::NoLineInAxis { z: 1, .. }
    ));
}

#[test]
fn list_errors() {
    assert!(matches!(err(ModelParams::new(&[])), ModelError::NoElements));
    let e = els(&["Fe", "O", "Fe"]);
    assert!(matches!(
        err(ModelParams::new(&e)),
        ModelError::DuplicateElement { z: 26 }
    ));
    let e = els(&["Fe", "O"]);
    let split = [(Element::parse("Pt").unwrap(), 5.0)];
    let mut p = ModelParams::new(&e);
    p.split = &split;
    assert!(matches!(err(p), ModelError::SplitNotModelled { z: 78 }));
    let e = els(&["Fe", "Pt"]);
    let split = [(Element::parse("Pt").unwrap(), 30.0)];
    let mut p = ModelParams::new(&e);
    p.split = &split;
    assert!(matches!(err(p), ModelError::EmptySplitColumn { z: 78, .. }));
}

#[test]
fn absorption_errors() {
    let e = els(&["Fe"]);
    for (t, d, toa) in [
        (0.0, None, 22.0),
        (-1e-5, None, 22.0),
        (f64::INFINITY, None, 22.0),
    ] {
        let mut p = ModelParams::new(&e);
        p.absorption = Some(Absorption {
            thickness: t,
            density: d,
            toa,
            atomic_fraction: false,
        });
        assert!(matches!(err(p), ModelError::NonPositiveThickness { .. }));
    }
    let mut p = ModelParams::new(&e);
    p.absorption = Some(Absorption {
        density: Some(0.0),
        ..Absorption::default()
    });
    assert!(matches!(err(p), ModelError::NonPositiveDensity { .. }));
    let mut p = ModelParams::new(&e);
    p.absorption = Some(Absorption {
        density: Some(f64::NAN),
        ..Absorption::default()
    });
    assert!(matches!(err(p), ModelError::NonPositiveDensity { .. }));
    let mut p = ModelParams::new(&e);
    p.absorption = Some(Absorption {
        toa: 0.0,
        ..Absorption::default()
    });
    assert!(matches!(err(p), ModelError::InvalidTakeOffAngle { .. }));
    // Np (93) has lines but no attenuation data.
    let e = els(&["Np"]);
    let m = err(ModelParams::new(&e));
    assert!(matches!(m, ModelError::NoAbsorptionData { z: 93 }), "{m}");
    // ...and works without absorption.
    let mut p = ModelParams::new(&e);
    p.absorption = None;
    assert!(EdxsModel::new(p).is_ok());
    // At has no tabulated density: needs an explicit one.
    let e = els(&["At"]);
    assert!(matches!(
        err(ModelParams::new(&e)),
        ModelError::UnknownDensity { z: 85 }
    ));
    let mut p = ModelParams::new(&e);
    p.absorption = Some(Absorption {
        density: Some(6.4),
        ..Absorption::default()
    });
    assert!(EdxsModel::new(p).is_ok());
}

#[test]
fn peak_width_must_be_positive() {
    let e = els(&["Fe"]);
    let mut p = ModelParams::new(&e);
    p.width_intercept = -1.0;
    assert!(matches!(err(p), ModelError::InvalidPeakWidth { .. }));
}

#[test]
fn buffers_too_small_are_errors_not_panics() {
    let e = els(&["Fe", "O"]);
    let model = EdxsModel::new(ModelParams::new(&e)).unwrap();
    let mut g = vec![0.0f64; model.g_len() - 1];
    let mut s = vec![0.0f64; model.scratch_len()];
    let m = model.build_g(&mut g, &mut s).unwrap_err();
    assert!(
        matches!(m, ModelError::BufferTooSmall { buffer: "g", .. }),
        "{m}"
    );
    let mut g = vec![0.0f64; model.g_len()];
    let mut short = vec![0.0f64; model.scratch_len() - 1];
    assert!(matches!(
        model.build_g(&mut g, &mut short),
        Err(ModelError::BufferTooSmall {
            buffer: "scratch",
            ..
        })
    ));
    // A larger G buffer is fine and its tail is left untouched.
    let mut g = vec![-7.0f64; model.g_len() + 3];
    let norm = model.build_g(&mut g, &mut s).unwrap();
    assert_eq!(&g[model.g_len()..], &[-7.0, -7.0, -7.0]);
    // Update: W too short, K = 0, negative or all-zero composition.
    let k = 2;
    let mut w = vec![0.5f64; model.n_columns() * k];
    assert!(matches!(
        model.update_bremsstrahlung(&norm, &w[..3], k, &mut g, &mut s),
        Err(ModelError::BufferTooSmall { buffer: "w", .. })
    ));
    assert!(matches!(
        model.update_bremsstrahlung(&norm, &w, 0, &mut g, &mut s),
        Err(ModelError::ZeroComponents)
    ));
    w[0] = -3.0;
    assert!(matches!(
        model.update_bremsstrahlung(&norm, &w, k, &mut g, &mut s),
        Err(ModelError::InvalidComposition)
    ));
    let zeros = vec![0.0f64; model.n_columns() * k];
    assert!(matches!(
        model.update_bremsstrahlung(&norm, &zeros, k, &mut g, &mut s),
        Err(ModelError::InvalidComposition)
    ));
    w[0] = f64::NAN;
    assert!(model
        .update_bremsstrahlung(&norm, &w, k, &mut g, &mut s)
        .is_err());
    // No bremsstrahlung: nothing to update.
    let mut p = ModelParams::new(&e);
    p.bremsstrahlung = false;
    let nb = EdxsModel::new(p).unwrap();
    let mut g = vec![0.0f64; nb.g_len()];
    let norm = nb.build_g(&mut g, &mut s).unwrap();
    let w = vec![0.5f64; nb.n_columns()];
    assert!(matches!(
        nb.update_bremsstrahlung(&norm, &w, 1, &mut g, &mut s),
        Err(ModelError::NoBremsstrahlung)
    ));
}

#[test]
fn column_layout_follows_espm() {
    let e = els(&["Fe", "Pt", "O"]);
    let cu = els(&["Cu"]);
    let split = [(Element::parse("Pt").unwrap(), 5.0)];
    let mut p = ModelParams::new(&e);
    p.ignored = &cu;
    p.split = &split;
    let model = EdxsModel::new(p).unwrap();
    let names: Vec<String> = model.columns().map(|c| c.to_string()).collect();
    assert_eq!(&names[..4], &["Fe", "Pt_lo", "Pt_hi", "O"]);
    assert!(names[4].starts_with("Cu_ign0"));
    assert_eq!(&names[names.len() - 2..], &["b0", "b1"]);
    assert_eq!(model.simplex_rows().collect::<Vec<_>>(), vec![0, 2, 3]);
    assert!(model.column(model.n_columns()).is_none());
}
