//! End-to-end tests of `edxs model`: output files against the espm fixtures, and error lines.

use edxs_suite::{
    edxs, edxs_fails, max_rel_err_per_column, model_fixture_dirs, read_json, read_npy_f64, tempdir,
    FixtureModel,
};

#[test]
fn model_writes_g_matching_espm_for_every_fixture() {
    let out = tempdir("model");
    for dir in model_fixture_dirs() {
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let fx = FixtureModel::load(&dir);
        let g_path = out.join(format!("{name}.npy"));
        let mut args = fx.cli_args();
        args.extend(["--out".to_string(), g_path.display().to_string()]);
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let o = edxs(&["model"].iter().copied().chain(args).collect::<Vec<_>>());
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        // The table lists every column with its lines.
        for el in &fx.elements {
            assert!(
                stdout.contains(&format!("  {}", el.symbol())),
                "{name}: {stdout}"
            );
        }
        let (shape, got) = read_npy_f64(&g_path);
        let (want_shape, want) = read_npy_f64(&dir.join("G.npy"));
        assert_eq!(shape, want_shape, "{name}");
        let (err, _) = max_rel_err_per_column(&got, &want, shape[1] as usize);
        assert!(err < 1e-9, "{name}: {err}");
        let meta = read_json(&g_path.with_extension("json"));
        let cols: Vec<String> = meta["espm_columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert_eq!(cols, fx.columns, "{name}");
        let (_, x) = read_npy_f64(&dir.join("x.npy"));
        let axis = meta["energy_kev"].as_array().unwrap();
        assert_eq!(axis.len(), x.len());
        assert!((axis[5].as_f64().unwrap() - x[5]).abs() < 1e-12);
        // No temporary file is left behind.
        let leftovers: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }
}

#[test]
fn bad_model_options_give_one_clear_line() {
    let cases: &[(&[&str], &str)] = &[
        (&["--elements", "Fe,Xx"], "unknown element 'Xx'"),
        (
            &["--elements", "Fe", "--e0", "150"],
            "--e0 150: no X-ray line table for this beam energy",
        ),
        (
            &["--elements", "Fe", "--offset", "0"],
            "energy offset must be positive",
        ),
        (
            &["--elements", "Fe", "--offset", "-1"],
            "energy offset must be positive",
        ),
        (
            &["--elements", "Fe", "--scale", "0"],
            "energy scale must be positive",
        ),
        (
            &["--elements", "Fe", "--channels", "0"],
            "need at least 2 channels",
        ),
        (
            &["--elements", "Fe", "--thickness", "0"],
            "sample thickness must be positive",
        ),
        (
            &["--elements", "Fe", "--density", "-2"],
            "sample density must be positive",
        ),
        (&["--elements", "Fe", "--toa", "95"], "take-off angle"),
        (
            &["--elements", "O", "--offset", "1.0"],
            "O (Z=8) has no X-ray line inside the energy axis",
        ),
        (
            &["--elements", "Fe", "--ignored", "O", "--offset", "1"],
            "O (Z=8) has no X-ray line",
        ),
        (
            &["--elements", "Fe", "--split", "Pt=5"],
            "not among the modelled elements",
        ),
        (
            &["--elements", "Fe", "--split", "Fe"],
            "expected ELEMENT=keV",
        ),
        (&["--elements", "Fe,Fe"], "listed twice"),
        (&["--elements", "Np"], "no mass attenuation data for Np"),
        (
            &["--elements", "Fe", "--channels", "5000"],
            "outside the detector efficiency curve",
        ),
    ];
    for (args, want) in cases {
        let full: Vec<&str> = ["model"].iter().chain(args.iter()).copied().collect();
        let o = edxs_fails(&full, want);
        assert!(o.stdout.is_empty(), "{args:?}: wrote to stdout");
    }
    // No element at all (model has no data file to take them from).
    let o = edxs(&["model"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no element given"));
    // Usage errors are clap's (exit 2).
    let o = edxs(&["model", "--elements", "Fe", "--e0", "abc"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn unwritable_output_fails_cleanly() {
    let o = edxs(&[
        "model",
        "--elements",
        "Fe",
        "--out",
        "/nonexistent-dir/G.npy",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("/nonexistent-dir/G.npy"), "{stderr}");
}
