//! The calibration refinement of `edxs decompose`: data whose detector had a 1 % larger
//! channel width and 10 % wider peaks than the decomposing model are recovered (the refined
//! calibration near the truth's, the phases nearer the truth than with the nominal one); data
//! with the nominal calibration keep it; too few counts, `--no-refine-calibration` and
//! `--compat espm` decompose with the nominal calibration, saying why.

use edxs::io::npy;
use edxs_suite::{edxs, read_json, tempdir};
use std::path::{Path, PathBuf};

/// Two phases on the paper's axis with the given detector calibration (channel width, FWHM
/// slope and intercept), a particle of radius 8 in a 32×32 scan.
fn simulate(
    dir: &Path,
    name: &str,
    (scale, slope, intercept): (f64, f64, f64),
    n: &str,
) -> PathBuf {
    let toml = dir.join(format!("{name}.toml"));
    std::fs::write(
        &toml,
        format!(
            "[model]\noffset = 0.3\nscale = {scale}\nchannels = 1980\nwidth_slope = {slope}\n\
             width_intercept = {intercept}\n\
             [[phase]]\nname = \"matrix\"\ncomposition = {{ Mg = 0.4, Si = 0.2, O = 0.4 }}\nb0 = 3.0e-4\nb1 = 6.0e-4\n\
             [[phase]]\nname = \"particle\"\ncomposition = {{ Fe = 0.3, Ca = 0.2, O = 0.5 }}\nb0 = 3.0e-4\nb1 = 6.0e-4\n"
        ),
    )
    .unwrap();
    let sim = dir.join(name);
    let o = edxs(&[
        "simulate",
        "--phases",
        toml.to_str().unwrap(),
        "--shape",
        "32x32",
        "--radius",
        "8",
        "--centers",
        "16,16",
        "-N",
        n,
        "--seed",
        "3",
        "--out",
        sim.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    sim
}

/// Decomposes `sim` with the nominal calibration (channel width 0.01 keV, FWHM 0.01·E + 0.065)
/// and `extra`; returns stderr and results.json.
fn decompose(sim: &Path, out: &Path, extra: &[&str]) -> (String, serde_json::Value) {
    let counts = sim.join("counts.npy");
    let mut args = vec![
        "decompose",
        counts.to_str().unwrap(),
        "--elements",
        "Mg,Si,O,Fe,Ca",
        "--offset",
        "0.3",
        "--scale",
        "0.01",
        "-k",
        "2",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = edxs(&args);
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{extra:?}: {stderr}");
    (stderr, read_json(&out.join("results.json")))
}

/// Mean over the true phases of the angle (degrees) to the nearest estimated spectrum G·W.
fn mean_angle(sim: &Path, out: &Path) -> f64 {
    let (ts, truth) = npy::read_f64(&sim.join("phases.npy")).unwrap();
    let (ds, d) = npy::read_f64(&out.join("D.npy")).unwrap();
    let (kt, l, k) = (ts[0], ts[1], ds[1]);
    assert_eq!(ds[0], l);
    let angle = |a: &[f64], b: &[f64]| {
        let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
        let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
        (dot / (na * nb)).clamp(-1.0, 1.0).acos().to_degrees()
    };
    (0..kt)
        .map(|t| {
            (0..k)
                .map(|c| {
                    let col: Vec<f64> = (0..l).map(|i| d[i * k + c]).collect();
                    angle(&col, &truth[t * l..(t + 1) * l])
                })
                .fold(f64::INFINITY, f64::min)
        })
        .sum::<f64>()
        / kt as f64
}

fn cal(res: &serde_json::Value, which: &str, key: &str) -> f64 {
    res["parameters"]["calibration"][which][key]
        .as_f64()
        .unwrap_or_else(|| panic!("no calibration.{which}.{key} in {res}"))
}

#[test]
fn a_perturbed_channel_width_and_peak_width_are_refined_and_the_phases_improve() {
    let dir = tempdir("calib-perturbed");
    let sim = simulate(&dir, "sim", (0.0101, 0.011, 0.0715), "200");
    let out = dir.join("refined");
    let (stderr, res) = decompose(&sim, &out, &[]);
    assert!(
        stderr.contains("edxs: calibration refined on the summed spectrum"),
        "{stderr}"
    );
    let c = &res["parameters"]["calibration"];
    assert_eq!(c["applied"], true, "{c}");
    // The nominal calibration is recorded as given, the refined one near the truth's.
    assert_eq!(cal(&res, "nominal", "scale_kev"), 0.01);
    let scale = cal(&res, "refined", "scale_kev");
    assert!(
        (scale / 0.0101 - 1.0).abs() < 1.5e-3,
        "channel width {scale}"
    );
    let offset = cal(&res, "refined", "offset_kev");
    // Within a channel at the axis start (the lines sit from 0.5 keV up, where the fit is).
    assert!((offset - 0.3).abs() < 0.01, "offset {offset}");
    let intercept = cal(&res, "refined", "width_intercept");
    let slope = cal(&res, "refined", "width_slope");
    assert!(
        (intercept / 0.0715 - 1.0).abs() < 0.03,
        "FWHM at 0: {intercept}"
    );
    assert!((slope / 0.011 - 1.0).abs() < 0.03, "FWHM slope: {slope}");
    // The model the fit used is the refined one, in results.json's model and in G.
    assert_eq!(res["model"]["scale_kev"].as_f64().unwrap(), scale);
    assert_eq!(res["model"]["width_slope"].as_f64().unwrap(), slope);
    let refined_angle = mean_angle(&sim, &out);
    let nominal_out = dir.join("nominal");
    let (stderr, res) = decompose(&sim, &nominal_out, &["--no-refine-calibration"]);
    assert!(!stderr.contains("calibration refined"), "{stderr}");
    assert!(!stderr.contains("note:"), "{stderr}");
    let c = &res["parameters"]["calibration"];
    assert_eq!(c["applied"], false, "{c}");
    assert_eq!(res["model"]["scale_kev"].as_f64().unwrap(), 0.01);
    // Not refined, so not timed: null, as a part that did not run, not 0 s.
    assert!(
        res["timings"]["calibration"].is_null(),
        "{}",
        res["timings"]
    );
    let nominal_angle = mean_angle(&sim, &nominal_out);
    eprintln!("mean angle: {refined_angle:.2}° refined, {nominal_angle:.2}° nominal");
    // Measured: about 1° against 16°.
    assert!(
        refined_angle < 3.0 && refined_angle < 0.25 * nominal_angle,
        "refined {refined_angle}°, nominal {nominal_angle}°"
    );
    let (_, g_refined) = npy::read_f64(&out.join("G.npy")).unwrap();
    let (_, g_nominal) = npy::read_f64(&nominal_out.join("G.npy")).unwrap();
    assert_ne!(g_refined, g_nominal);
}

#[test]
fn data_at_the_nominal_calibration_keep_it() {
    let dir = tempdir("calib-nominal");
    let sim = simulate(&dir, "sim", (0.01, 0.01, 0.065), "200");
    let out = dir.join("out");
    let (stderr, res) = decompose(&sim, &out, &[]);
    let c = &res["parameters"]["calibration"];
    // Either kept (the deviance gains no more than chance), or moved negligibly.
    let scale = cal(&res, "refined", "scale_kev");
    let offset = cal(&res, "refined", "offset_kev");
    let intercept = cal(&res, "refined", "width_intercept");
    if c["applied"] == true {
        assert!(stderr.contains("calibration refined"), "{stderr}");
    } else {
        assert!(!stderr.contains("calibration refined"), "{stderr}");
        assert!(
            c["note"].as_str().unwrap().contains("calibration kept"),
            "{c}"
        );
    }
    assert!((scale / 0.01 - 1.0).abs() < 3e-4, "{c}");
    assert!((offset - 0.3).abs() < 0.002, "{c}");
    assert!((intercept / 0.065 - 1.0).abs() < 0.02, "{c}");
    // The best fit found is near the nominal calibration too, applied or not.
    let best = |k: &str| c["best"][k].as_f64().unwrap();
    assert!((best("scale_kev") / 0.01 - 1.0).abs() < 3e-4, "{c}");
    assert!((best("width_slope") / 0.01 - 1.0).abs() < 0.03, "{c}");
    assert!(!stderr.contains("note:"), "{stderr}");
}

#[test]
fn too_few_counts_compat_espm_and_the_option_keep_the_nominal_calibration() {
    let dir = tempdir("calib-skip");
    // 32×32 pixels at 5 counts: 5 000 counts, under the 10 000 the refinement needs.
    let sim = simulate(&dir, "sim", (0.0101, 0.011, 0.0715), "5");
    let out = dir.join("few");
    let (stderr, res) = decompose(&sim, &out, &["--method", "joint", "--max-iter", "50"]);
    assert!(
        stderr.contains("edxs: note: calibration not refined:")
            && stderr.contains("under the 10000"),
        "{stderr}"
    );
    let c = &res["parameters"]["calibration"];
    assert_eq!(c["applied"], false, "{c}");
    assert_eq!(cal(&res, "refined", "scale_kev"), 0.01);
    let notes = res["parameters"]["notes"].as_array().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n.as_str().unwrap().contains("calibration not refined")),
        "{notes:?}"
    );
    // Enough counts, but the refinement turned off or espm's behaviour asked for: no note.
    let sim = simulate(&dir, "sim200", (0.0101, 0.011, 0.0715), "200");
    for (extra, why) in [
        (&["--no-refine-calibration"][..], "--no-refine-calibration"),
        (
            &["--compat", "espm", "--max-iter", "20"][..],
            "--compat espm",
        ),
    ] {
        let out = dir.join(why.trim_start_matches('-'));
        let (stderr, res) = decompose(&sim, &out, extra);
        assert!(!stderr.contains("calibration"), "{why}: {stderr}");
        let c = &res["parameters"]["calibration"];
        assert_eq!(c["applied"], false, "{c}");
        assert!(c["note"].as_str().unwrap().contains(why), "{c}");
        assert_eq!(res["model"]["scale_kev"].as_f64().unwrap(), 0.01);
        assert_eq!(res["model"]["width_intercept"].as_f64().unwrap(), 0.065);
    }
}
