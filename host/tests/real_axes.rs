//! Real energy axes: files that start below 0 keV with a detector noise peak and 4096 channels
//! (as Bruker exports do) decompose with the default options, through Ripple and .npy alike;
//! `--energy-range` junk is refused with one line naming the value.

use edxs::io::npy;
use edxs::io::ripple::{self, DataType, RippleHeader};
use edxs_suite::{edxs, edxs_fails, read_json, tempdir};
use std::path::Path;

/// Channels prepended below the simulation's 0.1 keV start: −0.5 … 0.09 keV.
const BELOW: usize = 60;
const OFFSET: f64 = -0.5;
const SCALE: f64 = 0.01;

/// A 24×24 two-phase simulation on 0.1 keV + 4036 channels, given 60 channels from −0.5 keV in
/// front and a detector noise peak at 0 keV (σ = 60 eV, 40 counts per pixel at its top): 4096
/// channels from −0.5 keV. Returns (counts Y×X×L, true phase spectra K×4036).
fn bruker_like(dir: &Path) -> (Vec<f64>, Vec<f64>) {
    let toml = dir.join("phases.toml");
    std::fs::write(
        &toml,
        "[model]\noffset = 0.1\nscale = 0.01\nchannels = 4036\n\
         [[phase]]\nname = \"matrix\"\ncomposition = { Mg = 0.4, Si = 0.2, O = 0.4 }\nb0 = 3.0e-4\nb1 = 6.0e-4\n\
         [[phase]]\nname = \"particle\"\ncomposition = { Fe = 0.5, O = 0.5 }\nb0 = 3.0e-4\nb1 = 6.0e-4\n",
    )
    .unwrap();
    let sim = dir.join("sim");
    let o = edxs(&[
        "simulate",
        "--phases",
        toml.to_str().unwrap(),
        "--shape",
        "24x24",
        "--radius",
        "6",
        "--centers",
        "12,12",
        "-N",
        "300",
        "--out",
        sim.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (shape, counts) = npy::read_f64(&sim.join("counts.npy")).unwrap();
    assert_eq!(shape, [24, 24, 4036]);
    let (_, phases) = npy::read_f64(&sim.join("phases.npy")).unwrap();
    let l = BELOW + 4036;
    let mut out = vec![0.0; 576 * l];
    for p in 0..576 {
        for i in 0..l {
            let e = OFFSET + i as f64 * SCALE;
            let noise = (40.0 * (-0.5 * (e / 0.06).powi(2)).exp()).round();
            let x = if i >= BELOW {
                counts[p * 4036 + i - BELOW]
            } else {
                0.0
            };
            out[p * l + i] = x + noise;
        }
    }
    (out, phases)
}

/// Spectral angle in degrees.
fn angle(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    (dot / (na * nb)).clamp(-1.0, 1.0).acos().to_degrees()
}

/// Decomposes `input` with defaults (+ `extra`) and checks the crop and the phases found.
fn decomposes_with_defaults(input: &Path, extra: &[&str], truth: &[f64], out: &Path) {
    let mut args = vec![
        "decompose",
        input.to_str().unwrap(),
        "--elements",
        "Mg,Si,O,Fe",
        "-k",
        "2",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = edxs(&args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{input:?}: {stderr}");
    // One note: the 50 channels at or below 0 keV, then the noise peak's tail up to its valley.
    let notes: Vec<&str> = stderr.lines().filter(|l| l.contains("note:")).collect();
    assert_eq!(notes.len(), 1, "{stderr}");
    eprintln!("{}", notes[0]);
    assert!(notes[0].contains("of 4096; dropped 51 at or below 0 keV, 9 off the detector efficiency curve (0.098..40.664 keV), "), "{stderr}");
    assert!(
        notes[0].contains("detector noise peak below the lowest modelled line (O"),
        "{stderr}"
    );
    let res = read_json(&out.join("results.json"));
    let range = res["model"]["energy_range_kev"].as_array().unwrap();
    let (lo, hi) = (range[0].as_f64().unwrap(), range[1].as_f64().unwrap());
    // After the noise peak (2.5σ = 0.15 keV) and below O Ka minus its FWHM (0.525 − 0.07).
    assert!(lo > 0.15 && lo < 0.455, "kept from {lo} keV");
    assert!(
        (hi - (OFFSET + 4095.0 * SCALE)).abs() < 1e-9,
        "kept to {hi} keV"
    );
    let first = ((lo - OFFSET) / SCALE).round() as usize - BELOW;
    let (dshape, d) = npy::read_f64(&out.join("D.npy")).unwrap();
    let (l, k) = (dshape[0], dshape[1]);
    assert_eq!(l, 4036 - first);
    // Each true phase is found within 3° by one of the two components.
    for t in 0..2 {
        let truth = &truth[t * 4036 + first..(t + 1) * 4036];
        let best = (0..k)
            .map(|c| {
                let col: Vec<f64> = (0..l).map(|i| d[i * k + c]).collect();
                angle(&col, truth)
            })
            .fold(f64::INFINITY, f64::min);
        eprintln!("{input:?}: phase {t} found at {best:.2}°");
        assert!(best < 3.0, "{input:?}: phase {t} at {best:.2}°");
    }
}

#[test]
fn bruker_like_axes_decompose_with_defaults_from_ripple_and_npy() {
    let dir = tempdir("bruker");
    let (counts, truth) = bruker_like(&dir);
    let l = BELOW + 4036;
    // Ripple with the axis in its header, no take-off angle.
    let rpl = dir.join("map.rpl");
    let mut header = RippleHeader::new(24, 24, l, DataType::U16);
    header.energy_offset_kev = Some(OFFSET);
    header.energy_scale_kev = Some(SCALE);
    header.beam_energy_kev = Some(200.0);
    ripple::write(&rpl, &header, &counts).unwrap();
    decomposes_with_defaults(&rpl, &[], &truth, &dir.join("out-rpl"));
    // .npy with the axis on the command line.
    let np = dir.join("map.npy");
    npy::write_f64(&np, &[24, 24, l], &counts).unwrap();
    decomposes_with_defaults(
        &np,
        &["--offset", "-0.5", "--scale", "0.01"],
        &truth,
        &dir.join("out-npy"),
    );
}

#[test]
fn bad_energy_ranges_give_one_line_naming_the_value() {
    let dir = tempdir("bad");
    let np = dir.join("x.npy");
    npy::write_f64(&np, &[4, 4, 100], &vec![2.0; 1600]).unwrap();
    let out = dir.join("out");
    let axis = ["--offset", "0.2", "--scale", "0.01"];
    let cases: &[(&[&str], &str)] = &[
        (
            &["--energy-range", "abc"],
            "--energy-range: expected LO:HI in keV (e.g. 0.1:20), got 'abc'",
        ),
        (
            &["--energy-range", "0.5:x"],
            "--energy-range 0.5:x: 'x' is not an energy in keV",
        ),
        (
            &["--energy-range", "inf:2"],
            "'inf' is not an energy in keV",
        ),
        (
            &["--energy-range", "2:1"],
            "--energy-range 2:1 is empty: LO must be below HI",
        ),
        (&["--energy-range", "1:1"], "--energy-range 1:1 is empty"),
        (
            &["--energy-range", "5:8"],
            "--energy-range 5:8 keeps no channel of the axis 0.200..1.190 keV",
        ),
        (
            &["--energy-range", "-3:-1"],
            "--energy-range -3:-1 keeps no channel of the axis 0.200..1.190 keV",
        ),
        (
            &["--energy-range", "0.5:0.505"],
            "keeps 1 channel; the model needs at least 2",
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["decompose", np.to_str().unwrap(), "--elements", "Fe,O"];
        args.extend_from_slice(&axis);
        args.extend_from_slice(extra);
        args.extend(["--max-iter", "2", "--out", out.to_str().unwrap()]);
        edxs_fails(&args, want);
        assert!(!out.exists(), "{extra:?}: wrote a result");
    }
    // An axis entirely at or below 0 keV.
    let args = [
        "decompose",
        np.to_str().unwrap(),
        "--elements",
        "Fe,O",
        "--offset",
        "-2",
        "--scale",
        "0.01",
        "--out",
        out.to_str().unwrap(),
    ];
    let o = edxs(&args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("keeps no channel of the axis -2.000..-1.010 keV that the model can use (above 0 keV, on the detector curve 0.098..40.664 keV)"),
        "{stderr}"
    );
    // A good range crops and is recorded.
    let mut args = vec!["decompose", np.to_str().unwrap(), "--elements", "Fe,O"];
    args.extend_from_slice(&axis);
    args.extend([
        "--energy-range",
        "0.5:1",
        "--max-iter",
        "5",
        "--out",
        out.to_str().unwrap(),
    ]);
    let o = edxs(&args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "kept channels 30..80 (0.500..1.000 keV) of 100; dropped 49 outside --energy-range"
        ),
        "{stderr}"
    );
    let res = read_json(&out.join("results.json"));
    assert_eq!(res["data"]["channels"], 51);
    let r = &res["model"]["energy_range_kev"];
    assert!((r[0].as_f64().unwrap() - 0.5).abs() < 1e-9, "{r}");
    assert!((r[1].as_f64().unwrap() - 1.0).abs() < 1e-9, "{r}");
}
