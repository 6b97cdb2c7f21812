//! The real 88_ES-LP_G8 map (80×80×1917, 200 keV, 11 elements): the decomposition's summed
//! model must reproduce the summed data within 5 % in each major K-line window, and every
//! phase's at.% must sum to 100. Needs `--features hdf5` and `../shared/data` (CI has both;
//! without the data it prints "SKIP: ..."; EDXS_SHARED_DATA=1 makes the absence an error).

#![cfg(feature = "hdf5")]

use edxs::io::npy;
use edxs_suite::{read_json, shared_or_skip, tempdir};
use std::path::PathBuf;
use std::process::Command;

fn map(test: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/88_ES-LP_G8/88_ES-LP_G8_selection2_cropped2.hspy");
    shared_or_skip(&p, "EDXS_SHARED_DATA", test)
}

#[test]
fn summed_model_matches_the_summed_data_in_every_major_peak() {
    let Some(input) = map("summed_model_matches_the_summed_data_in_every_major_peak") else {
        return;
    };
    // A private parent folder: a run writing beside another in the shared temp folder waits
    // for its lock and says so on stderr.
    let dir = tempdir("real");
    let out = dir.join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_edxs"))
        .args([
            "decompose",
            input.to_str().unwrap(),
            "-k",
            "3",
            "--ignored",
            "Cu",
        ])
        .args(["--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    // O-K lies below the first channel (0.83 keV): it is dropped with a warning naming it.
    assert!(stderr.contains("dropped element(s) O"), "{stderr}");
    let res = read_json(&out.join("results.json"));
    for phase in res["phases"].as_array().unwrap() {
        let at: f64 = phase
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["at_percent"].as_f64().unwrap())
            .sum();
        assert!((at - 100.0).abs() < 1e-6, "at.% sums to {at}");
    }
    let (dshape, d) = npy::read_f64(&out.join("D.npy")).unwrap();
    let (hshape, h) = npy::read_f64(&out.join("H.npy")).unwrap();
    let (l, k, p) = (dshape[0], dshape[1], hshape[1]);
    let loaded = edxs::io::input::load(&input, None).unwrap();
    let data = loaded.image.sum_spectrum();
    let (offset, scale) = (
        loaded.meta.offset_kev.unwrap(),
        loaded.meta.scale_kev.unwrap(),
    );
    let rowsum: Vec<f64> = (0..k).map(|c| h[c * p..(c + 1) * p].iter().sum()).collect();
    let model: Vec<f64> = (0..l)
        .map(|i| (0..k).map(|c| d[i * k + c] * rowsum[c]).sum())
        .collect();
    // Kα energies (keV); windows ± one FWHM (espm's 0.01·E + 0.065), on the data's own axis.
    for (el, e) in [
        ("Mg", 1.2536),
        ("Al", 1.4866),
        ("Si", 1.7397),
        ("Ca", 3.6917),
        ("Fe", 6.4039),
    ] {
        let fwhm = 0.01 * e + 0.065;
        let chans = (0..l).filter(|&i| ((offset + i as f64 * scale) - e).abs() <= fwhm);
        let (sd, sm) = chans.fold((0.0, 0.0), |(a, b), i| (a + data[i], b + model[i]));
        let rel = (sm - sd).abs() / sd;
        eprintln!("{el}: data {sd:.0} model {sm:.0} ({:.2} %)", 100.0 * rel);
        assert!(
            rel <= 0.05,
            "{el} window: model {sm} vs data {sd} ({:.1} %)",
            100.0 * rel
        );
    }
}

/// The first and last kept channel's energies in the file's calibration (results.json's
/// `parameters.calibration.nominal`, which the refinement starts from).
fn kept_range(res: &serde_json::Value) -> [f64; 2] {
    let nominal = &res["parameters"]["calibration"]["nominal"];
    let (offset, scale) = (
        nominal["offset_kev"].as_f64().unwrap(),
        nominal["scale_kev"].as_f64().unwrap(),
    );
    let l = res["data"]["channels"].as_f64().unwrap();
    [offset, offset + (l - 1.0) * scale]
}

/// `edxs decompose FILE` with nothing else: the elements come from the file (O, below the
/// first channel, dropped with a note), and `--energy-range` crops and is recorded.
#[test]
fn decomposes_with_defaults_and_with_an_energy_range() {
    let Some(input) = map("summed_model_matches_the_summed_data_in_every_major_peak") else {
        return;
    };
    let dir = tempdir("real-defaults");
    let out = dir.join("out");
    let run = |extra: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_edxs"))
            .arg("decompose")
            .arg(&input)
            .args(extra)
            .args(["--max-iter", "300", "--out", out.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(o.status.success(), "{extra:?}: {stderr}");
        (stderr, read_json(&out.join("results.json")))
    };
    let (stderr, res) = run(&[]);
    assert!(stderr.contains("dropped element(s) O"), "{stderr}");
    assert!(
        !stderr.contains("kept channels"),
        "nothing to crop: {stderr}"
    );
    // The channels kept are recorded in the file's calibration; the model's axis is the
    // refined one, within a channel or two of it.
    let range = kept_range(&res);
    assert!((range[0] - 0.83152).abs() < 1e-4, "{range:?}");
    let model = &res["model"]["energy_range_kev"];
    assert!(
        (model[0].as_f64().unwrap() - range[0]).abs() < 0.03,
        "{model} vs {range:?}"
    );
    let w: Vec<f64> = res["W"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
        .collect();
    assert!(w.iter().all(|v| v.is_finite() && *v >= 0.0), "{w:?}");

    let (stderr, res) = run(&["--energy-range", "1:15"]);
    assert!(
        stderr.contains("kept channels 17..1416 (1.002..14.998 keV) of 1917; dropped 517 outside --energy-range"),
        "{stderr}"
    );
    assert_eq!(res["data"]["channels"], 1400);
    let range = kept_range(&res);
    assert!((range[0] - 1.0016).abs() < 1e-3, "{range:?}");
    assert!((range[1] - 15.0).abs() < 0.01, "{range:?}");
}
