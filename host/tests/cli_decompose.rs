//! End-to-end tests of `edxs decompose`: espm parity through the CLI, input layouts, errors.

use edxs::io::npy;
use edxs_suite::{
    edxs, edxs_fails, fixtures_dir, npy_v1, read_json, read_npy_f64, rel_err, tempdir,
};
use std::path::{Path, PathBuf};
use std::process::Output;

/// The solver fixture's counts written as P×L and Y×X×L .npy files.
fn write_inputs(dir: &Path) -> (PathBuf, PathBuf) {
    let (shape, x) = read_npy_f64(&fixtures_dir().join("solver/data/X.npy"));
    let (l, p) = (shape[0] as usize, shape[1] as usize);
    let mut pl = vec![0.0; l * p];
    for li in 0..l {
        for px in 0..p {
            pl[px * l + li] = x[li * p + px];
        }
    }
    let a = dir.join("x_pl.npy");
    let b = dir.join("x_yxl.npy");
    npy::write_f64(&a, &[p, l], &pl).unwrap();
    npy::write_f64(&b, &[10, 12, l], &pl).unwrap();
    (a, b)
}

const MODEL: &[&str] = &[
    "--elements",
    "Fe,Pt,O",
    "--offset",
    "0.2",
    "--scale",
    "0.04",
    "--density",
    "5.0",
];

#[test]
fn custom_start_in_espm_mode_matches_espm() {
    let dir = tempdir("parity");
    let (_, yxl) = write_inputs(&dir);
    let fx = fixtures_dir().join("solver");
    let out = dir.join("out");
    let w0 = fx.join("data/W0.npy").display().to_string();
    let h0 = fx.join("data/H0.npy").display().to_string();
    for (run, extra) in [
        ("espm_000", vec![]),
        (
            "espm_smooth",
            vec!["--mu", "0.004", "--lambda-l", "1", "--epsilon-reg", "0.01"],
        ),
        ("fixed_w", vec!["--fix", "0:Pt=0", "--fix", "1:Fe=0"]),
        ("simplex_h", vec!["--lambda-l", "1", "--simplex-h"]),
    ] {
        let mut args = vec!["decompose", yxl.to_str().unwrap()];
        args.extend_from_slice(MODEL);
        args.extend([
            "-k", "3", "--init", "custom", "--w0", &w0, "--h0", &h0, "--compat", "espm",
        ]);
        args.extend([
            "--max-iter",
            "25",
            "--tol",
            "1e-12",
            "--out",
            out.to_str().unwrap(),
        ]);
        args.extend(extra.iter().copied());
        let o = edxs(&args);
        assert!(
            o.status.success(),
            "{run}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let (_, w) = read_npy_f64(&out.join("W.npy"));
        let (_, h) = read_npy_f64(&out.join("H.npy"));
        let (_, want_w) = read_npy_f64(&fx.join(run).join("W.npy"));
        let (_, want_h) = read_npy_f64(&fx.join(run).join("H.npy"));
        assert!(
            rel_err(&w, &want_w) < 1e-8,
            "{run}: W {}",
            rel_err(&w, &want_w)
        );
        assert!(
            rel_err(&h, &want_h) < 1e-8,
            "{run}: H {}",
            rel_err(&h, &want_h)
        );
        let csv = std::fs::read_to_string(out.join("losses.csv")).unwrap();
        let losses: Vec<f64> = csv
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
            .collect();
        let (_, want_l) = read_npy_f64(&fx.join(run).join("losses.npy"));
        assert_eq!(losses.len(), want_l.len(), "{run}");
        assert!(
            rel_err(&losses, &want_l) < 1e-10,
            "{run}: losses {}",
            rel_err(&losses, &want_l)
        );
        let summary = read_json(&out.join("results.json"));
        assert_eq!(summary["iterations"], 25);
        // at.% of every phase sums to 100.
        let quant = std::fs::read_to_string(out.join("quant.csv")).unwrap();
        for c in 0..3 {
            let s: f64 = quant
                .lines()
                .skip(1)
                .filter(|l| l.starts_with(&format!("{c},")))
                .map(|l| l.split(',').nth(2).unwrap().parse::<f64>().unwrap())
                .sum();
            assert!((s - 100.0).abs() < 1e-6, "{run}: phase {c} sums to {s}");
        }
        // No inf or NaN in the file: a counting error too large to mean anything is empty.
        for line in quant.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), 5, "{run}: {line}");
            for v in &f[2..4] {
                assert!(v.parse::<f64>().unwrap().is_finite(), "{run}: {line}");
            }
            assert!(
                f[4].is_empty() || f[4].parse::<f64>().unwrap().is_finite(),
                "{run}: {line}"
            );
        }
    }
}

#[test]
fn both_layouts_and_every_init_give_finite_results() {
    let dir = tempdir("layouts");
    let (pl, yxl) = write_inputs(&dir);
    let mut results = vec![];
    for (input, shape) in [(&yxl, None), (&pl, Some("10x12"))] {
        let out = dir.join(format!("out{}", results.len()));
        let mut args = vec!["decompose", input.to_str().unwrap()];
        args.extend_from_slice(MODEL);
        args.extend([
            "-k",
            "3",
            "--max-iter",
            "60",
            "--lambda-l",
            "0.5",
            "--out",
            out.to_str().unwrap(),
        ]);
        if let Some(s) = shape {
            args.extend(["--shape", s]);
        }
        let o = edxs(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        results.push(read_npy_f64(&out.join("W.npy")).1);
    }
    assert_eq!(
        results[0], results[1],
        "Y×X×L and P×L --shape must agree exactly"
    );
    for init in ["random", "nndsvd", "nndsvda", "nndsvdar"] {
        let out = dir.join(format!("init-{init}"));
        let mut args = vec!["decompose", yxl.to_str().unwrap()];
        args.extend_from_slice(MODEL);
        args.extend([
            "-k",
            "3",
            "--init",
            init,
            "--seed",
            "294",
            "--max-iter",
            "40",
            "--out",
            out.to_str().unwrap(),
        ]);
        let o = edxs(&args);
        assert!(
            o.status.success(),
            "{init}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let (_, w) = read_npy_f64(&out.join("W.npy"));
        let (_, h) = read_npy_f64(&out.join("H.npy"));
        assert!(
            w.iter().chain(&h).all(|v| v.is_finite() && *v >= 0.0),
            "{init}"
        );
        for c in 0..3 {
            let s: f64 = (0..3).map(|j| w[j * 3 + c]).sum();
            assert!(
                (s - 1.0).abs() < 1e-12,
                "{init}: component {c} element rows sum to {s}"
            );
        }
    }
}

#[test]
fn bad_inputs_give_one_line_and_no_output() {
    let dir = tempdir("bad");
    let (pl, yxl) = write_inputs(&dir);
    let neg = dir.join("neg.npy");
    let mut data = vec![1.0; 4 * 512];
    data[3 * 512 + 7] = -1.0;
    npy::write_f64(&neg, &[4, 512], &data).unwrap();
    let nan = dir.join("nan.npy");
    data[3 * 512 + 7] = f64::NAN;
    npy::write_f64(&nan, &[4, 512], &data).unwrap();
    let truncated = dir.join("trunc.npy");
    let bytes = std::fs::read(&pl).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let garbage = dir.join("garbage.npy");
    std::fs::write(&garbage, b"this is not a numpy file").unwrap();
    let one_d = dir.join("one_d.npy");
    npy::write_f64(&one_d, &[512], &vec![1.0; 512]).unwrap();
    // A complex-valued array: a dtype counts cannot have.
    let complex = dir.join("complex.npy");
    std::fs::write(&complex, npy_v1("'<c16'", false, "(2, 3)", &[0u8; 6 * 16])).unwrap();
    let (pl, yxl) = (pl.to_str().unwrap(), yxl.to_str().unwrap());
    let w_bad = dir.join("w_bad.npy");
    npy::write_f64(&w_bad, &[4, 3], &[0.3; 12]).unwrap();
    let out = dir.join("out");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["/nonexistent/x.npy"],
            "/nonexistent/x.npy: no such file",
        ),
        (
            vec![neg.to_str().unwrap()],
            "pixel 3 (row 0, col 3), channel 7 is -1",
        ),
        (vec![nan.to_str().unwrap()], "channel 7 is NaN"),
        (vec![truncated.to_str().unwrap()], "trunc.npy"),
        (vec![garbage.to_str().unwrap()], "not a valid .npy file"),
        (
            vec![one_d.to_str().unwrap()],
            "expected a P x L or Y x X x L array",
        ),
        (
            vec![pl, "--shape", "10x11"],
            "--shape 10x11 has 110 pixels but the file has 120",
        ),
        (vec![pl, "--shape", "ax3"], "--shape: bad row count"),
        (
            vec![yxl, "--shape", "12x10"],
            "does not match the file's 10x12",
        ),
        (vec![yxl, "-k", "0"], "at least 1"),
        (vec![yxl, "-k", "121"], "larger than the data allows"),
        (
            vec![yxl, "--fix", "0:Cu=0"],
            "'Cu' is not a column of the model",
        ),
        (vec![yxl, "--fix", "5:Fe=0"], "component 5 does not exist"),
        (
            vec![yxl, "--fix", "0:Fe=0.8", "--fix", "0:O=0.5"],
            "sum to 1.3",
        ),
        (
            vec![yxl, "--fix", "0-Fe"],
            "expected COMPONENT:COLUMN=VALUE",
        ),
        (vec![yxl, "--init", "custom"], "needs --w0"),
        (
            vec![
                yxl,
                "--init",
                "custom",
                "--w0",
                w_bad.to_str().unwrap(),
                "--h0",
                w_bad.to_str().unwrap(),
            ],
            "must have shape 5x3",
        ),
        (
            vec![yxl, "--channels", "500"],
            "--channels 500 does not match the 512 channels",
        ),
        (vec![yxl, "--mu", "-1"], "invalid mu"),
        (vec![yxl, "--epsilon-reg", "0"], "invalid epsilon_reg"),
        (vec![yxl, "--mu", "0.1,0.2"], "mu has 2 values"),
        (vec![yxl, "--elements", "Fe,Xx"], "unknown element 'Xx'"),
        (
            vec![yxl, "--e0", "150"],
            "--e0 150: no X-ray line table for this beam energy",
        ),
        (vec![complex.to_str().unwrap()], "unsupported dtype"),
        (
            vec![yxl, "--config", "/nonexistent.toml"],
            "cannot read config",
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["decompose"];
        args.push(extra[0]);
        if !extra.contains(&"--elements") {
            args.extend_from_slice(MODEL);
        }
        args.extend_from_slice(&extra[1..]);
        args.extend(["--max-iter", "2", "--out", out.to_str().unwrap()]);
        edxs_fails(&args, want);
        assert!(!out.join("W.npy").exists(), "{extra:?}: wrote a result");
    }
}

#[test]
fn results_are_identical_for_every_thread_count() {
    let dir = tempdir("threads");
    let (_, yxl) = write_inputs(&dir);
    let mut outs = vec![];
    for threads in ["1", "2", "3"] {
        let out = dir.join(format!("t{threads}"));
        let mut args = vec!["decompose", yxl.to_str().unwrap()];
        args.extend_from_slice(MODEL);
        args.extend([
            "-k",
            "3",
            "--max-iter",
            "50",
            "--mu",
            "0.01",
            "--lambda-l",
            "0.5",
        ]);
        args.extend(["--threads", threads, "--out", out.to_str().unwrap()]);
        let o = edxs(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let w = std::fs::read(out.join("W.npy")).unwrap();
        let h = std::fs::read(out.join("H.npy")).unwrap();
        let losses = std::fs::read_to_string(out.join("losses.csv")).unwrap();
        outs.push((w, h, losses));
    }
    assert!(
        outs.windows(2).all(|p| p[0] == p[1]),
        "thread count changed the result"
    );
}

#[test]
fn config_file_gives_options_and_the_command_line_overrides_it() {
    let dir = tempdir("config");
    let (_, yxl) = write_inputs(&dir);
    let cfg = dir.join("run.toml");
    std::fs::write(
        &cfg,
        "elements = [\"Fe\", \"Pt\", \"O\"]\noffset = 0.2\nscale = 0.04\ndensity = 5.0\nn_components = 2\nmu = 0.01\nlambda_l = 0.5\nmax_iter = 20\nno_g_update = true\nsimplex_h = false\n",
    )
    .unwrap();
    let (a, b) = (dir.join("a"), dir.join("b"));
    // Config alone, with -k overridden on the command line.
    let o = edxs(&[
        "decompose",
        yxl.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
        "-k",
        "3",
        "--out",
        a.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The same options spelled out.
    let mut args = vec!["decompose", yxl.to_str().unwrap()];
    args.extend_from_slice(MODEL);
    args.extend([
        "--n-components",
        "3",
        "--mu",
        "0.01",
        "--lambda-l",
        "0.5",
        "--max-iter",
        "20",
    ]);
    args.extend(["--no-g-update", "--out", b.to_str().unwrap()]);
    let o = edxs(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let res = read_json(&a.join("results.json"));
    assert_eq!(res["parameters"]["n_components"], 3);
    assert_eq!(res["parameters"]["g_update"], false);
    assert_eq!(
        std::fs::read(a.join("W.npy")).unwrap(),
        std::fs::read(b.join("W.npy")).unwrap()
    );
    // A broken or missing config is one clear line.
    std::fs::write(&cfg, "mu = [").unwrap();
    let o = edxs(&[
        "decompose",
        yxl.to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a valid TOML file"));
    let o = edxs(&[
        "decompose",
        yxl.to_str().unwrap(),
        "--config",
        "/nonexistent.toml",
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot read config /nonexistent.toml"));
}

#[test]
fn normalize_gives_the_iterates_of_scaled_counts() {
    // espm's normalize=True multiplies the counts by f = K / (mean pixel total); --normalize
    // must give the same W, and H divided by f, as running the scaled counts without it.
    let dir = tempdir("normalize");
    let (pl, _) = write_inputs(&dir);
    let (shape, x) = npy::read_f64(&pl).unwrap();
    let (p, l) = (shape[0], shape[1]);
    let k = 2usize;
    let f = k as f64 / (x.iter().sum::<f64>() / p as f64);
    let scaled = dir.join("x_scaled.npy");
    npy::write_f64(
        &scaled,
        &[p, l],
        &x.iter().map(|v| v * f).collect::<Vec<_>>(),
    )
    .unwrap();
    let start = dir.join("start");
    let reg = [
        "-k",
        "2",
        "--shape",
        "10x12",
        "--mu",
        "0.004",
        "--lambda-l",
        "1",
        "--epsilon-reg",
        "0.01",
    ];
    let run = |input: &Path, out: &Path, extra: &[&str]| {
        let mut args = vec!["decompose", input.to_str().unwrap()];
        args.extend_from_slice(MODEL);
        args.extend_from_slice(&reg);
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", out.to_str().unwrap()]);
        let o = edxs(&args);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    run(&pl, &start, &["--max-iter", "1", "--method", "joint"]);
    let w0 = start.join("W.npy");
    let h0_path = start.join("H.npy");
    let (_, h0) = npy::read_f64(&h0_path).unwrap();
    let h0_scaled = dir.join("h0_scaled.npy");
    npy::write_f64(
        &h0_scaled,
        &[k, p],
        &h0.iter().map(|v| v * f).collect::<Vec<_>>(),
    )
    .unwrap();
    let (a, b) = (dir.join("a"), dir.join("b"));
    let common = ["--init", "custom", "--max-iter", "30", "--tol", "0"];
    let mut args_a = common.to_vec();
    args_a.extend_from_slice(&[
        "--normalize",
        "--w0",
        w0.to_str().unwrap(),
        "--h0",
        h0_path.to_str().unwrap(),
    ]);
    run(&pl, &a, &args_a);
    let mut args_b = common.to_vec();
    args_b.extend_from_slice(&[
        "--units",
        "raw",
        "--w0",
        w0.to_str().unwrap(),
        "--h0",
        h0_scaled.to_str().unwrap(),
    ]);
    run(&scaled, &b, &args_b);
    let (_, wa) = npy::read_f64(&a.join("W.npy")).unwrap();
    let (_, wb) = npy::read_f64(&b.join("W.npy")).unwrap();
    let (_, ha) = npy::read_f64(&a.join("H.npy")).unwrap();
    let (_, hb) = npy::read_f64(&b.join("H.npy")).unwrap();
    let ha_scaled: Vec<f64> = ha.iter().map(|v| v * f).collect();
    assert!(rel_err(&wa, &wb) < 1e-8, "W: {}", rel_err(&wa, &wb));
    assert!(
        rel_err(&ha_scaled, &hb) < 1e-8,
        "H: {}",
        rel_err(&ha_scaled, &hb)
    );
    // Without --normalize the same numbers act on raw counts and give a different fit.
    let c = dir.join("c");
    let mut args_c = common.to_vec();
    args_c.extend_from_slice(&[
        "--units",
        "raw",
        "--w0",
        w0.to_str().unwrap(),
        "--h0",
        h0_path.to_str().unwrap(),
    ]);
    run(&pl, &c, &args_c);
    let (_, wc) = npy::read_f64(&c.join("W.npy")).unwrap();
    assert!(rel_err(&wc, &wa) > 1e-6, "--normalize changed nothing");
    assert_eq!(
        read_json(&a.join("results.json"))["parameters"]["normalize"],
        serde_json::json!(true)
    );
    // Normalised units are the default: the same call without --normalize gives run a.
    let d = dir.join("d");
    let mut args_d = common.to_vec();
    args_d.extend_from_slice(&[
        "--w0",
        w0.to_str().unwrap(),
        "--h0",
        h0_path.to_str().unwrap(),
    ]);
    run(&pl, &d, &args_d);
    let (_, wd) = npy::read_f64(&d.join("W.npy")).unwrap();
    assert_eq!(wd, wa, "the default units are not espm's normalised ones");
    assert_eq!(
        read_json(&d.join("results.json"))["parameters"]["units"],
        serde_json::json!("normalized")
    );
}

#[test]
fn two_stage_finds_the_phases_at_low_counts_and_refuses_what_it_cannot_do() {
    let dir = tempdir("two-stage");
    let sim = dir.join("sim");
    // At 40×40, particles of radius 8 are too few blocks across for any binning to pin their
    // spectra; at 64×64 (radius 12) they are not.
    let (counts, model) = simulate_64(&sim, &[]);
    let run = |extra: &[&str], out: &Path| {
        let mut args = vec!["decompose", counts.to_str().unwrap()];
        args.extend(model.iter().map(|s| s.as_str()));
        args.extend([
            "-k",
            "3",
            "--normalize",
            "--max-iter",
            "600",
            "--tol",
            "1e-9",
        ]);
        args.extend_from_slice(extra);
        args.extend(["--out", out.to_str().unwrap()]);
        edxs(&args)
    };
    let out = dir.join("two");
    let o = default_run(&counts, &model, &[], &out);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let res = read_json(&out.join("results.json"));
    assert_eq!(res["parameters"]["two_stage"], true);
    // The spectra stage (several binned fits) and the map stage are all counted.
    assert!(
        res["iterations"].as_u64() > res["last_run_iterations"].as_u64(),
        "{}",
        res["iterations"]
    );
    let o = edxs(&[
        "evaluate",
        out.to_str().unwrap(),
        "--truth",
        sim.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ev = read_json(&out.join("evaluation.json"));
    let mean = ev["mean_angle_deg"].as_f64().unwrap();
    let mse = ev["mean_mse"].as_f64().unwrap();
    let angles = &ev["angles_deg"];
    // The issue's targets at 18 counts/pixel, with decompose's defaults.
    assert!(mean <= 5.0, "default mean angle {mean}° ({angles:?})");
    assert!(mse <= 0.12, "default map MSE {mse}");

    for (extra, want) in [
        (
            vec!["--two-stage", "--compat", "espm"],
            "cannot be combined with --compat espm",
        ),
        (
            vec!["--two-stage", "--simplex-h"],
            "cannot be combined with --simplex-h",
        ),
        (
            vec!["--two-stage", "--init", "custom"],
            "makes its own start",
        ),
        (vec!["--two-stage", "--mu", "0.1,0.2"], "mu has 2 values"),
    ] {
        let bad = dir.join("bad");
        let o = run(&extra, &bad);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {stderr}");
        assert!(
            stderr.contains(want),
            "{extra:?}: expected '{want}' in: {stderr}"
        );
        assert!(!bad.join("W.npy").exists());
    }
    // A list of spectra has no blocks to bin.
    let (pl, _) = write_inputs(&dir);
    let mut args = vec!["decompose", pl.to_str().unwrap()];
    args.extend_from_slice(MODEL);
    let bad = dir.join("bad");
    args.extend(["--two-stage", "--out", bad.to_str().unwrap()]);
    let o = edxs(&args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("needs a 2-D scan shape"), "{stderr}");
}

/// `decompose` with nothing but the model and K, as a new user types it.
fn default_run(counts: &Path, model: &[String], extra: &[&str], out: &Path) -> Output {
    let mut args = vec!["decompose", counts.to_str().unwrap()];
    args.extend(model.iter().map(|s| s.as_str()));
    args.extend(["-k", "3"]);
    args.extend_from_slice(extra);
    args.extend(["--out", out.to_str().unwrap()]);
    edxs(&args)
}

#[test]
fn the_default_is_the_pipeline_finds_the_phases_whatever_the_seed_despite_model_errors() {
    let dir = tempdir("default");
    let sim = dir.join("sim");
    // The paper's phases with detector peaks 10 % wider and channels 1 % wider than the model
    // below assumes: data that the decomposing G did not generate.
    let phases = dir.join("phases.toml");
    std::fs::write(
        &phases,
        r#"[model]
e0 = 200
offset = 0.3
scale = 0.0101
channels = 1980
width_slope = 0.011
width_intercept = 0.0715
thickness = 1e-5
density = 4.5
toa = 35
elements = ["O", "Ca", "Si", "Fe", "Mg", "Al", "Cu", "Hf", "Ti", "Sm", "Lu", "Nd"]

[[phase]]
name = "Brg"
composition = { Mg = 0.245, Fe = 0.035, Ca = 0.031, Si = 0.219, Al = 0.024, O = 0.436, Cu = 0.05, Hf = 0.01 }
b0 = 0.0003458
b1 = 0.0006268

[[phase]]
name = "Fp"
composition = { Mg = 0.522, Fe = 0.104, O = 0.374, Cu = 0.05 }
b0 = 0.0001629
b1 = 0.0009812
density = 0.8

[[phase]]
name = "CaPv"
composition = { Mg = 0.020, Fe = 0.018, Ca = 0.188, Si = 0.173, Al = 0.010, O = 0.572, Ti = 0.004, Cu = 0.05, Sm = 0.007, Lu = 0.006, Nd = 0.006 }
b0 = 0.0007853
b1 = 0.0003658
density = 1.2
"#,
    )
    .unwrap();
    let (counts, model) = simulate_64(&sim, &["--phases", phases.to_str().unwrap()]);
    let model: Vec<String> = model
        .into_iter()
        .map(|a| match a.as_str() {
            "0.011" => "0.01".to_string(),
            "0.0715" => "0.065".to_string(),
            "0.0101" => "0.01".to_string(),
            _ => a,
        })
        .collect();
    assert!(model.iter().any(|a| a == "0.065"), "{model:?}");
    let mut means = Vec::new();
    for seed in ["0", "1", "7"] {
        let out = dir.join(format!("seed{seed}"));
        let o = default_run(&counts, &model, &["--seed", seed], &out);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{stderr}");
        assert!(stderr.contains("method: two-stage pipeline"), "{stderr}");
        let res = read_json(&out.join("results.json"));
        assert_eq!(res["parameters"]["method"], "two-stage");
        assert_eq!(res["parameters"]["units"], "normalized");
        // The spectra came from the candidate with the highest held-out score, recorded.
        let choice = &res["spectra_choice"];
        assert_eq!(choice["by"], "held-out log-likelihood over blocks");
        let cands = choice["candidates"].as_array().unwrap();
        assert_eq!(cands.len(), 4);
        let best = cands
            .iter()
            .max_by(|a, b| a[1].as_f64().unwrap().total_cmp(&b[1].as_f64().unwrap()))
            .unwrap();
        assert_eq!(choice["chosen_bin"], best[0], "{choice}");
        // 74 000 counts, below a million: the binned fits keep every channel.
        assert!(choice["channel_groups"].is_null(), "{choice}");
        // The maps stage stops on first-order optimality, reported beside the loss.
        let kkt = res["kkt_residual"].as_f64().unwrap();
        assert!(
            kkt.is_finite() && kkt <= 1e-4,
            "seed {seed}: KKT residual {kkt}"
        );
        // Where the time went: every part measured, and the fit's parts within the fit.
        let t = &res["timings"];
        let secs = |key: &str| {
            let v = t[key]
                .as_f64()
                .unwrap_or_else(|| panic!("timings.{key}: {t}"));
            assert!(v.is_finite() && v >= 0.0, "timings.{key}: {t}");
            v
        };
        let parts = secs("binned_fits") + secs("candidate_choice") + secs("maps");
        assert!(
            parts > 0.0 && parts <= secs("fit") && secs("fit") == res["seconds"],
            "{t}"
        );
        assert!(secs("load") > 0.0 && secs("calibration") > 0.0, "{t}");
        let o = edxs(&[
            "evaluate",
            out.to_str().unwrap(),
            "--truth",
            sim.to_str().unwrap(),
            "--match-by",
            "mse",
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let ev = read_json(&out.join("evaluation.json"));
        let mean = ev["mean_angle_deg"].as_f64().unwrap();
        let mse = ev["mean_mse"].as_f64().unwrap();
        // Every phase is found: the calibration refinement puts the model's peaks back on
        // the data's 1 % wider axis with 10 % wider peaks (with the nominal calibration even
        // the true W is ~14° off). A lost phase is 20–90° off; here each seed gave 0.8°, 7.0°
        // and 9.3–9.5° (mean 5.7°). The issue's 5° target is for 128² maps (four times these
        // counts), where `scripts/robustness.py` checks it on every generator; at 64² CI
        // checks it on espm's simulator.
        eprintln!("seed {seed}: mean angle {mean:.2}°, map MSE {mse:.4}");
        assert!(mse <= 0.12, "seed {seed}: map MSE {mse}");
        assert!(mean <= 6.0, "seed {seed}: mean angle {mean}°");
        for c in ev["components"].as_array().unwrap() {
            let a = c["angle_deg"].as_f64().unwrap();
            assert!(a <= 12.0, "seed {seed}: a phase {a}° off (lost)");
        }
        assert_eq!(res["parameters"]["calibration"]["applied"], true);
        assert_eq!(ev["matchings_agree"], true, "seed {seed}");
        means.push(mean);
    }
    let spread = means.iter().cloned().fold(f64::MIN, f64::max)
        - means.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread < 1.0, "the seed moves the answer: {means:?}");
}

#[test]
fn scans_the_pipeline_cannot_bin_fall_back_to_the_joint_fit_and_say_so() {
    let dir = tempdir("fallback");
    let (pl, _) = write_inputs(&dir);
    let model: Vec<String> = MODEL.iter().map(|s| s.to_string()).collect();
    for (extra, why) in [
        (vec![], "no 2-D scan shape"),
        (vec!["--shape", "1x120"], "too small to bin"),
        (vec!["--shape", "6x20"], "too small to bin"),
    ] {
        let out = dir.join("out");
        let o = default_run(&pl, &model, &extra, &out);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{extra:?}: {stderr}");
        assert!(
            stderr.contains("method: joint fit") && stderr.contains(why),
            "{extra:?}: {stderr}"
        );
        let res = read_json(&out.join("results.json"));
        assert_eq!(res["parameters"]["method"], "joint", "{extra:?}");
        let (_, w) = read_npy_f64(&out.join("W.npy"));
        assert!(w.iter().all(|v| v.is_finite() && *v >= 0.0), "{extra:?}");
    }
    // One summed spectrum: a single component, fitted jointly.
    let (shape, x) = npy::read_f64(&pl).unwrap();
    let (p, l) = (shape[0], shape[1]);
    let sum: Vec<f64> = (0..l).map(|c| (0..p).map(|q| x[q * l + c]).sum()).collect();
    let one = dir.join("one.npy");
    npy::write_f64(&one, &[1, l], &sum).unwrap();
    let out = dir.join("one");
    let mut args = vec!["decompose", one.to_str().unwrap()];
    args.extend_from_slice(MODEL);
    args.extend(["-k", "1", "--out", out.to_str().unwrap()]);
    let o = edxs(&args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("method: joint fit"), "{stderr}");
    // K = 3 from one spectrum is refused, naming the limit.
    let mut args = vec!["decompose", one.to_str().unwrap()];
    args.extend_from_slice(MODEL);
    args.extend(["-k", "3", "--out", out.to_str().unwrap()]);
    let o = edxs(&args);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("larger than the data allows"));
}

#[test]
fn small_maps_keep_the_phases_when_the_counts_allow_and_say_so_when_they_do_not() {
    let dir = tempdir("small");
    // The paper's scan shrunk to 16×16 (particles of radius 3 at its centres scaled by 1/8).
    let sim16 = |n: &str, name: &str| {
        let sim = dir.join(name);
        let o = edxs(&[
            "simulate",
            "-N",
            n,
            "--shape",
            "16x16",
            "--radius",
            "3",
            "--centers",
            "12,6;9,10",
            "--seed",
            "0",
            "--out",
            sim.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let meta = read_json(&sim.join("sim.json"));
        let model: Vec<String> = meta["decompose_args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        (sim, model)
    };
    // 293 counts/pixel, 75 000 counts: the pipeline, no note, and every phase found (each
    // component nearer in angle to the phase matched to it than to any other).
    let (sim, model) = sim16("293", "sim293");
    let out = dir.join("out293");
    let o = default_run(&sim.join("counts.npy"), &model, &[], &out);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("method: two-stage pipeline"), "{stderr}");
    assert!(!stderr.contains("note:"), "{stderr}");
    let notes = read_json(&out.join("results.json"))["parameters"]["notes"].clone();
    assert_eq!(notes, serde_json::json!([]));
    let o = edxs(&[
        "evaluate",
        out.to_str().unwrap(),
        "--truth",
        sim.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ev = read_json(&out.join("evaluation.json"));
    let angles: Vec<Vec<f64>> = serde_json::from_value(ev["angles_deg"].clone()).unwrap();
    let matched: Vec<usize> = serde_json::from_value(ev["angle_permutation"].clone()).unwrap();
    for (c, &t) in matched.iter().enumerate() {
        let nearest = (0..angles.len())
            .min_by(|&a, &b| angles[a][c].total_cmp(&angles[b][c]))
            .unwrap();
        assert_eq!(
            nearest, t,
            "component {c} is nearer another phase: {angles:?}"
        );
    }
    let mean = ev["mean_angle_deg"].as_f64().unwrap();
    assert!(mean <= 5.0, "mean angle {mean}° ({angles:?})");
    // 18 counts/pixel, 4 600 counts: a phase may be lost whatever the method, and the run
    // says so in one line beside the method.
    let (sim, model) = sim16("18", "sim18");
    let out = dir.join("out18");
    let o = default_run(&sim.join("counts.npy"), &model, &[], &out);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("edxs: note: ") && stderr.contains("depend on the Poisson draw"),
        "{stderr}"
    );
    let notes = read_json(&out.join("results.json"))["parameters"]["notes"].clone();
    assert!(
        notes[0]
            .as_str()
            .is_some_and(|n| n.contains("depend on the Poisson draw")),
        "{notes}"
    );
    let (_, w) = read_npy_f64(&out.join("W.npy"));
    assert!(w.iter().all(|v| v.is_finite() && *v >= 0.0));
    // One phase cannot be lost to another: no such note (only that 4 600 counts are too few
    // to refine the calibration).
    let out = dir.join("out18k1");
    let counts = sim.join("counts.npy");
    let mut args = vec!["decompose", counts.to_str().unwrap()];
    args.extend(model.iter().map(|s| s.as_str()));
    args.extend(["-k", "1", "--out", out.to_str().unwrap()]);
    let o = edxs(&args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(!stderr.contains("depend on the Poisson draw"), "{stderr}");
    assert!(stderr.contains("calibration not refined"), "{stderr}");
}

#[test]
fn k_auto_decomposes_with_the_rank_it_chose_and_records_the_curve() {
    let dir = tempdir("kauto");
    let (_, yxl) = write_inputs(&dir);
    let out = dir.join("out");
    let mut args = vec!["decompose", yxl.to_str().unwrap()];
    args.extend_from_slice(MODEL);
    args.extend(["-k", "auto", "--out", out.to_str().unwrap()]);
    let o = edxs(&args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("-k auto:"), "{stderr}");
    let res = read_json(&out.join("results.json"));
    let chosen = res["rank"]["chosen"].as_u64().unwrap();
    assert_eq!(res["parameters"]["n_components"].as_u64(), Some(chosen));
    let (shape, _) = read_npy_f64(&out.join("W.npy"));
    assert_eq!(shape[1], chosen);
    assert!(res["rank"]["curve"].as_array().unwrap().len() >= 2);
    assert!(out.join("rank.png").exists());
    // A K that is neither a number nor auto is a command-line error naming it.
    let mut args = vec!["decompose", yxl.to_str().unwrap()];
    args.extend_from_slice(MODEL);
    args.extend(["-k", "three", "--out", out.to_str().unwrap()]);
    let o = edxs(&args);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("'three'"));
}

/// Simulates the paper's phases at 18 counts/pixel on 64×64 pixels (particles of radius 12)
/// into `sim`, with `extra` simulate options; returns the counts and the model options that
/// `simulate` prints for `decompose`.
fn simulate_64(sim: &Path, extra: &[&str]) -> (PathBuf, Vec<String>) {
    let mut args = vec![
        "simulate",
        "-N",
        "18",
        "--shape",
        "64x64",
        "--radius",
        "12",
        "--centers",
        "47,25;34,40",
        "--seed",
        "3",
        "--out",
        sim.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = edxs(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let meta = read_json(&sim.join("sim.json"));
    let model = meta["decompose_args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    (sim.join("counts.npy"), model)
}
