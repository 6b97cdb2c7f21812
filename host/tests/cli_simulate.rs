//! `edxs simulate` and `edxs evaluate`: phase spectra and particle maps against espm fixtures,
//! Poisson statistics of the counts, seeds, map inputs, and simulate → decompose → evaluate.

use edxs::io::npy;
use edxs::sim::{maps, phases, presets};
use edxs_suite::{edxs, err_rel_to_max, tempdir};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/sim"
    ))
    .join(name)
}

fn ok(args: &[&str]) -> String {
    let out = edxs(args);
    assert!(
        out.status.success(),
        "edxs {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn fails(args: &[&str]) -> String {
    let out = edxs(args);
    assert!(!out.status.success(), "edxs {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn read(p: &Path) -> (Vec<usize>, Vec<f64>) {
    npy::read_f64(p).unwrap()
}

fn json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

// ------------------------------------------------------------------ phases and maps vs espm

#[test]
fn paper_phases_match_espm() {
    let cfg = presets::paper();
    let set = phases::generate_phases(&cfg.model, &cfg.phases).unwrap();
    let (shape, want) = read(&fixture("paper_phases.npy"));
    assert_eq!(shape, vec![3, 1980]);
    let e = err_rel_to_max(&set.spectra, &want);
    assert!(
        e < 1e-9,
        "paper phases differ from espm by {e:e} of the maximum"
    );
}

#[test]
fn custom_toml_phases_match_espm() {
    // 300 keV, estimated density, atomic fractions, brems scales, b0 = 0, a zero element.
    let cfg = presets::from_toml_file(&fixture("custom_phases.toml")).unwrap();
    let set = phases::generate_phases(&cfg.model, &cfg.phases).unwrap();
    let (shape, want) = read(&fixture("custom_phases.npy"));
    assert_eq!(shape, vec![3, 800]);
    let e = err_rel_to_max(&set.spectra, &want);
    assert!(
        e < 1e-9,
        "custom phases differ from espm by {e:e} of the maximum"
    );
    // Zr is 0 everywhere: out of the model and of the absorption mixture, as in espm.
    assert!(!set.elements.iter().any(|e| e.symbol() == "Zr"));
    assert_eq!(cfg.phases[2].scale, 2.0);
    assert_eq!(cfg.phases[1].density, 0.7);
}

#[test]
fn sphere_maps_match_espm_add_sphere_and_generate_weights() {
    let spec = json(&fixture("spheres.json"));
    // add_sphere called directly, including a particle that check_add_weights refuses.
    let d = &spec["direct"];
    let (rows, cols, k) = (20, 30, 4);
    assert_eq!(d["k"], 4);
    let mut a = maps::Abundance::new(rows, cols, k);
    let mut refused = 0;
    for call in d["calls"].as_array().unwrap() {
        let c = call["center"].as_array().unwrap();
        let added = a.add_sphere(
            (c[0].as_f64().unwrap(), c[1].as_f64().unwrap()),
            call["radius"].as_f64().unwrap(),
            call["conc_max"].as_f64().unwrap(),
            call["phase"].as_u64().unwrap() as usize,
        );
        refused += usize::from(!added);
    }
    assert_eq!(refused, d["skipped"].as_u64().unwrap() as usize);
    assert_eq!(refused, 1);
    let got = a.into_maps();
    let (_, want) = read(&fixture("spheres_direct.npy")); // rows×cols×K
    let p = rows * cols;
    let want_km: Vec<f64> = (0..k)
        .flat_map(|c| (0..p).map(move |px| (c, px)))
        .map(|(c, px)| want[px * k + c])
        .collect();
    assert!(err_rel_to_max(&got, &want_km) < 1e-15);

    // generate_weights("sphere", …) with the centres espm drew.
    let g = &spec["generated"];
    let centers: Vec<(f64, f64)> = g["centers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c[0].as_f64().unwrap(), c[1].as_f64().unwrap()))
        .collect();
    let (got, skipped) = maps::spheres(24, 18, 3, g["radius"].as_f64().unwrap(), &centers).unwrap();
    assert!(skipped.is_empty());
    let (_, want) = read(&fixture("spheres_generated.npy"));
    let want_km: Vec<f64> = (0..3)
        .flat_map(|c| (0..24 * 18).map(move |px| (c, px)))
        .map(|(c, px)| want[px * 3 + c])
        .collect();
    assert!(err_rel_to_max(&got, &want_km) < 1e-15);
}

// ----------------------------------------------------------------------- counts statistics

/// Per-pixel expected spectra from the truth files: λ[p, l] = Σ_k H[k, p]·GW[k, l].
fn expected(dir: &Path) -> (usize, usize, Vec<f64>) {
    let (ms, h) = read(&dir.join("maps.npy"));
    let (gs, gw) = read(&dir.join("spectra_counts.npy"));
    let (k, p, l) = (ms[0], ms[1], gs[1]);
    let mut lam = vec![0.0; p * l];
    for px in 0..p {
        for c in 0..k {
            for li in 0..l {
                lam[px * l + li] += h[c * p + px] * gw[c * l + li];
            }
        }
    }
    (p, l, lam)
}

#[test]
fn paper_counts_have_the_expected_mean_and_valid_truth() {
    let dir = tempdir("paper");
    let out = dir.join("a");
    let stdout = ok(&[
        "simulate",
        "--preset",
        "paper",
        "--shape",
        "24x24",
        "--centers",
        "8,8;15,16",
        "--radius",
        "7",
        "--seed",
        "5",
        "--out",
        s(&out),
    ]);
    assert!(stdout.contains("decompose with:"), "{stdout}");
    let (cs, y) = read(&out.join("counts.npy"));
    assert_eq!(cs, vec![24, 24, 1980]);
    assert!(y.iter().all(|v| *v >= 0.0 && v.fract() == 0.0));

    // Truth: phases sum to 1 and equal espm's; maps sum to 1 per pixel.
    let (ps, ph) = read(&out.join("phases.npy"));
    assert_eq!(ps, vec![3, 1980]);
    for row in ph.chunks_exact(1980) {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }
    let (_, want) = read(&fixture("paper_phases.npy"));
    assert!(err_rel_to_max(&ph, &want) < 1e-9);
    let (ms, h) = read(&out.join("maps.npy"));
    assert_eq!(ms, vec![3, 576]);
    for px in 0..576 {
        let t: f64 = (0..3).map(|c| h[c * 576 + px]).sum();
        assert!((t - 1.0).abs() < 1e-12, "pixel {px}: {t}");
        assert!((0..3).all(|c| h[c * 576 + px] >= 0.0));
    }
    // Both particles reach their maximum 1/(K−1) = 0.5 at their centres.
    assert!((h[576 + 8 * 24 + 8] - 0.5).abs() < 1e-12);
    assert!((h[2 * 576 + 15 * 24 + 16] - 0.5).abs() < 1e-12);
    let (_, gw) = read(&out.join("spectra_counts.npy"));
    let dens = [1.0, 0.8, 1.2];
    for c in 0..3 {
        let t: f64 = gw[c * 1980..(c + 1) * 1980].iter().sum();
        assert!((t - 293.0 * dens[c]).abs() < 1e-9, "phase {c}: {t}");
    }

    // Mean counts per pixel within 3 standard errors of N·Σ_k density_k·H_kp averaged.
    let (p, l, lam) = expected(&out);
    let e_mean = lam.iter().sum::<f64>() / p as f64;
    let e_direct: f64 = (0..p)
        .map(|px| 293.0 * (0..3).map(|c| dens[c] * h[c * p + px]).sum::<f64>())
        .sum::<f64>()
        / p as f64;
    assert!((e_mean - e_direct).abs() < 1e-9 * e_direct);
    let mean = y.iter().sum::<f64>() / p as f64;
    let se = (e_mean / p as f64).sqrt();
    assert!(
        (mean - e_mean).abs() < 3.0 * se,
        "mean counts {mean} vs expected {e_mean} (se {se})"
    );
    let sim = json(&out.join("sim.json"));
    assert!((sim["mean_counts_per_pixel"].as_f64().unwrap() - mean).abs() < 1e-9);
    assert!((sim["expected_counts_per_pixel"].as_f64().unwrap() - e_mean).abs() < 1e-9);

    // Per-channel means: Pearson χ² of the channel totals against P·λ̄_l over all channels.
    let mut chi2 = 0.0;
    let mut dof = 0;
    for li in 0..l {
        let e: f64 = (0..p).map(|px| lam[px * l + li]).sum();
        if e > 5.0 {
            let o: f64 = (0..p).map(|px| y[px * l + li]).sum();
            chi2 += (o - e).powi(2) / e;
            dof += 1;
        }
    }
    let limit = dof as f64 + 5.0 * (2.0 * dof as f64).sqrt();
    assert!(
        chi2 < limit,
        "channel totals: χ² {chi2} over {dof} channels"
    );

    // Same seed: identical files; another seed: different counts, same truth.
    let again = dir.join("b");
    ok(&[
        "simulate",
        "--shape",
        "24x24",
        "--centers",
        "8,8;15,16",
        "--radius",
        "7",
        "--seed",
        "5",
        "--out",
        s(&again),
    ]);
    for f in [
        "counts.npy",
        "phases.npy",
        "maps.npy",
        "spectra_counts.npy",
        "sim.json",
    ] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(again.join(f)).unwrap(),
            "{f} differs for the same seed"
        );
    }
    let other = dir.join("c");
    ok(&[
        "simulate",
        "--shape",
        "24x24",
        "--centers",
        "8,8;15,16",
        "--radius",
        "7",
        "--seed",
        "6",
        "--out",
        s(&other),
    ]);
    assert_ne!(
        std::fs::read(out.join("counts.npy")).unwrap(),
        std::fs::read(other.join("counts.npy")).unwrap()
    );
    assert_eq!(
        std::fs::read(out.join("maps.npy")).unwrap(),
        std::fs::read(other.join("maps.npy")).unwrap()
    );
}

/// Writes constant abundances as a rows×cols×K .npy (espm's layout).
fn uniform_maps(path: &Path, rows: usize, cols: usize, h: &[f64]) {
    let data: Vec<f64> = (0..rows * cols).flat_map(|_| h.iter().copied()).collect();
    npy::write_f64(path, &[rows, cols, h.len()], &data).unwrap();
}

/// Dispersion index Σ_l sample-variance_l / Σ_l mean_l over the pixels of a uniform image, and
/// the observed and Poisson-expected numbers of zero counts.
fn dispersion(dir: &Path) -> (f64, f64, f64) {
    let (cs, y) = read(&dir.join("counts.npy"));
    let (p, l) = (cs[0] * cs[1], cs[2]);
    let (_, _, lam) = expected(dir);
    let (mut var, mut mean, mut zeros, mut zeros_expected) = (0.0, 0.0, 0.0, 0.0);
    for li in 0..l {
        let m = (0..p).map(|px| y[px * l + li]).sum::<f64>() / p as f64;
        let v = (0..p).map(|px| (y[px * l + li] - m).powi(2)).sum::<f64>() / (p - 1) as f64;
        var += v;
        mean += m;
        zeros += (0..p).filter(|&px| y[px * l + li] == 0.0).count() as f64;
        zeros_expected += (0..p).map(|px| (-lam[px * l + li]).exp()).sum::<f64>();
    }
    (var / mean, zeros, zeros_expected)
}

#[test]
fn counts_are_poisson_on_a_uniform_map() {
    let dir = tempdir("poisson");
    let maps_file = dir.join("uniform.npy");
    uniform_maps(&maps_file, 32, 32, &[0.5, 0.3, 0.2]);
    // Low counts (multiplication branch, λ per channel < 10).
    let low = dir.join("low");
    ok(&[
        "simulate",
        "--maps",
        s(&maps_file),
        "--seed",
        "11",
        "-N",
        "293",
        "--out",
        s(&low),
    ]);
    let (d, zeros, zeros_expected) = dispersion(&low);
    // sd of the index is about 0.004 here; a sampler with the wrong variance is far off.
    assert!((d - 1.0).abs() < 0.03, "dispersion index {d}");
    // P(0) = e^−λ per entry: a sampler with the right mean and variance but the wrong shape
    // (e.g. a rounded Gaussian) fails this.
    let sd = zeros_expected.sqrt();
    assert!(
        (zeros - zeros_expected).abs() < 5.0 * sd,
        "zeros {zeros} vs {zeros_expected}"
    );
    // High counts (PTRS branch, λ up to hundreds per channel).
    let maps_small = dir.join("uniform_small.npy");
    uniform_maps(&maps_small, 16, 16, &[0.5, 0.3, 0.2]);
    let high = dir.join("high");
    ok(&[
        "simulate",
        "--maps",
        s(&maps_small),
        "--seed",
        "12",
        "-N",
        "20000",
        "--dtype",
        "u32",
        "--out",
        s(&high),
    ]);
    let (d, _, _) = dispersion(&high);
    assert!(
        (d - 1.0).abs() < 0.06,
        "dispersion index at high counts {d}"
    );
    let (_, _, lam) = expected(&high);
    assert!(lam.iter().fold(0.0f64, |m, v| m.max(*v)) > 50.0);
}

// --------------------------------------------------------------------- other map inputs

#[test]
fn maps_from_npy_and_png() {
    let dir = tempdir("inputs");
    // K−1 maps (K×rows×cols layout): phase 0 is the rest.
    let (rows, cols) = (6, 5);
    let p = rows * cols;
    let part: Vec<f64> = (0..2 * p).map(|i| 0.3 * ((i % 7) as f64) / 6.0).collect();
    let f = dir.join("two.npy");
    npy::write_f64(&f, &[2, rows, cols], &part).unwrap();
    let out = dir.join("npy");
    ok(&["simulate", "--maps", s(&f), "--noiseless", "--out", s(&out)]);
    let (ms, h) = read(&out.join("maps.npy"));
    assert_eq!(ms, vec![3, p]);
    for px in 0..p {
        assert!((h[p + px] - part[px]).abs() < 1e-15);
        assert!((h[2 * p + px] - part[p + px]).abs() < 1e-15);
        assert!((h[px] + h[p + px] + h[2 * p + px] - 1.0).abs() < 1e-12);
    }
    // Noiseless counts are the expected spectra exactly.
    let (_, y) = read(&out.join("counts.npy"));
    let (_, _, lam) = expected(&out);
    assert!(err_rel_to_max(&y, &lam) < 1e-12);

    // Three 8-bit PNGs, normalised per pixel.
    let mut files = Vec::new();
    for c in 0..3u8 {
        let path = dir.join(format!("m{c}.png"));
        let w = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut enc = png::Encoder::new(w, cols as u32, rows as u32);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        let mut wr = enc.write_header().unwrap();
        let data: Vec<u8> = (0..p).map(|i| 40 + 50 * c + (i % 11) as u8).collect();
        wr.write_image_data(&data).unwrap();
        files.push(path);
    }
    let list = files
        .iter()
        .map(|f| s(f).to_string())
        .collect::<Vec<_>>()
        .join(",");
    let out = dir.join("png");
    ok(&["simulate", "--maps", &list, "--seed", "1", "--out", s(&out)]);
    let (ms, h) = read(&out.join("maps.npy"));
    assert_eq!(ms, vec![3, p]);
    for px in 0..p {
        let g: Vec<f64> = (0..3).map(|c| (40 + 50 * c + (px % 11)) as f64).collect();
        let t: f64 = g.iter().sum();
        for c in 0..3 {
            assert!((h[c * p + px] - g[c] / t).abs() < 1e-12);
        }
    }
    let sim = json(&out.join("sim.json"));
    assert_eq!(sim["shape"], serde_json::json!([rows, cols]));
}

#[test]
fn bad_inputs_are_reported() {
    let dir = tempdir("errors");
    let o = dir.join("o");
    let e = fails(&[
        "simulate",
        "--shape",
        "10x10",
        "--centers",
        "3,3",
        "--out",
        s(&o),
    ]);
    assert!(e.contains("centre") && e.contains("K−1 = 2"), "{e}");
    let e = fails(&["simulate", "--densities", "1,2", "--out", s(&o)]);
    assert!(e.contains("--densities"), "{e}");
    let e = fails(&["simulate", "-N", "0", "--out", s(&o)]);
    assert!(e.contains("--counts-per-pixel"), "{e}");
    let t = dir.join("bad.toml");
    std::fs::write(
        &t,
        "[[phase]]\ncomposition = { Fe = 1.0 }\nb0 = 1e-4\nb1 = 1e-3\nsclae = 2\n",
    )
    .unwrap();
    let e = fails(&["simulate", "--phases", s(&t), "--out", s(&o)]);
    assert!(e.contains("sclae"), "{e}");
    std::fs::write(
        &t,
        "[[phase]]\ncomposition = { Xx = 1.0 }\nb0 = 1e-4\nb1 = 1e-3\n",
    )
    .unwrap();
    let e = fails(&["simulate", "--phases", s(&t), "--out", s(&o)]);
    assert!(e.contains("Xx"), "{e}");
    std::fs::write(
        &t,
        "[[phase]]\ncomposition = { Fe = -1.0 }\nb0 = 1e-4\nb1 = 1e-3\n",
    )
    .unwrap();
    let e = fails(&["simulate", "--phases", s(&t), "--out", s(&o)]);
    assert!(e.contains(">= 0"), "{e}");
    let f = dir.join("over.npy");
    npy::write_f64(&f, &[4, 4, 2], &[0.7; 32]).unwrap();
    let e = fails(&["simulate", "--maps", s(&f), "--out", s(&o)]);
    assert!(e.contains("sum to"), "{e}");
}

// ------------------------------------------------------- simulate → decompose → evaluate

#[test]
fn decompose_and_evaluate_a_simulation() {
    let dir = tempdir("pipeline");
    let sim_dir = dir.join("sim");
    ok(&[
        "simulate",
        "--shape",
        "24x24",
        "--centers",
        "8,8;15,16",
        "--radius",
        "7",
        "--seed",
        "3",
        "--out",
        s(&sim_dir),
    ]);
    let sim = json(&sim_dir.join("sim.json"));
    let model_args: Vec<String> = sim["decompose_args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let res = dir.join("res");
    let counts = sim_dir.join("counts.npy");
    let mut args: Vec<&str> = vec!["decompose", s(&counts)];
    args.extend(model_args.iter().map(String::as_str));
    args.extend([
        "-k",
        "3",
        "--max-iter",
        "300",
        "--seed",
        "1",
        "--out",
        s(&res),
    ]);
    ok(&args);
    let table = ok(&["evaluate", s(&res), "--truth", s(&sim_dir)]);
    assert!(table.contains("matched truth"), "{table}");
    assert!(table.contains("Brg") && table.contains("CaPv"), "{table}");

    let ev = json(&res.join("evaluation.json"));
    assert_eq!(ev["n_components"], 3);
    let comps = ev["components"].as_array().unwrap();
    assert_eq!(comps.len(), 3);
    for c in comps {
        let a = c["angle_deg"].as_f64().unwrap();
        assert!(a.is_finite() && (0.0..=90.0).contains(&a), "angle {a}");
        assert!(c["mse"].as_f64().unwrap().is_finite());
        let at = c["at_percent"].as_object().unwrap();
        assert_eq!(at.len(), 12);
        let total: f64 = at.values().map(|v| v["estimated"].as_f64().unwrap()).sum();
        assert!((total - 100.0).abs() < 1e-6);
    }
    let mut perm: Vec<u64> = ev["permutation"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    perm.sort_unstable();
    assert_eq!(perm, vec![0, 1, 2]);
    assert!(ev["matchings_agree"].is_boolean());
    let angles = ev["angles_deg"].as_array().unwrap();
    assert_eq!(angles.len(), 3);
    // The matched angles are the smallest possible sum over all assignments.
    let m: Vec<Vec<f64>> = angles
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect();
    let matched: f64 = comps.iter().map(|c| c["angle_deg"].as_f64().unwrap()).sum();
    for p in [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ] {
        let t: f64 = (0..3).map(|e| m[p[e]][e]).sum();
        assert!(matched <= t + 1e-9, "{matched} > {t} for {p:?}");
    }
    // The evaluation refuses a truth of another size.
    let other = dir.join("other");
    ok(&[
        "simulate",
        "--shape",
        "20x20",
        "--radius",
        "5",
        "--out",
        s(&other),
    ]);
    let e = fails(&["evaluate", s(&res), "--truth", s(&other)]);
    assert!(e.contains("pixels"), "{e}");
}

#[test]
fn evaluate_recovers_a_permuted_rescaled_truth() {
    // A "decomposition" made of the truth itself: G holds the true spectra, W permutes and
    // scales them, H holds the matching maps divided by the scales. Angles and MSE must be 0
    // and the permutation found.
    let dir = tempdir("eval-truth");
    let sim_dir = dir.join("sim");
    ok(&[
        "simulate",
        "--shape",
        "12x10",
        "--centers",
        "3,3;8,6",
        "--radius",
        "4",
        "--noiseless",
        "--out",
        s(&sim_dir),
    ]);
    let (_, gw) = read(&sim_dir.join("spectra_counts.npy"));
    let (_, maps) = read(&sim_dir.join("maps.npy"));
    let (k, l, p) = (3, 1980, 120);
    let perm = [2usize, 0, 1]; // estimate c is truth perm[c]
    let scale = [0.5, 3.0, 1.7];
    let g: Vec<f64> = (0..l)
        .flat_map(|li| (0..k).map(move |j| (li, j)))
        .map(|(li, j)| gw[j * l + li])
        .collect();
    let mut w = vec![0.0; k * k];
    for c in 0..k {
        w[perm[c] * k + c] = scale[c];
    }
    let h: Vec<f64> = (0..k)
        .flat_map(|c| (0..p).map(move |px| (c, px)))
        .map(|(c, px)| maps[perm[c] * p + px] / scale[c])
        .collect();
    let res = dir.join("res");
    std::fs::create_dir_all(&res).unwrap();
    npy::write_f64(&res.join("G.npy"), &[l, k], &g).unwrap();
    npy::write_f64(&res.join("W.npy"), &[k, k], &w).unwrap();
    npy::write_f64(&res.join("H.npy"), &[k, p], &h).unwrap();
    let summary = serde_json::json!({"columns": ["Mg", "Fe", "Nd"]});
    std::fs::write(res.join("results.json"), summary.to_string()).unwrap();
    for by in ["angle", "mse"] {
        ok(&[
            "evaluate",
            s(&res),
            "--truth",
            s(&sim_dir),
            "--match-by",
            by,
        ]);
        let ev = json(&res.join("evaluation.json"));
        let got: Vec<u64> = ev["permutation"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(got, vec![2, 0, 1], "matching by {by}");
        assert_eq!(ev["matchings_agree"], true);
        for (c, comp) in ev["components"].as_array().unwrap().iter().enumerate() {
            let a = comp["angle_deg"].as_f64().unwrap();
            let m = comp["mse"].as_f64().unwrap();
            assert!(a < 1e-5, "component {c}: angle {a}");
            // espm's |‖x‖² + ‖y‖² − 2x·y| cancels to ~1e-16, not 0.
            assert!(m < 1e-12, "component {c}: mse {m}");
            let r = comp["rescale"].as_f64().unwrap();
            assert!((r - scale[c]).abs() < 1e-9 * scale[c], "rescale {r}");
        }
        // Estimate 0 is all column 2 ("Nd") and matches truth 2 (CaPv: Nd 0.006 of 1.054).
        let nd = &ev["components"][0]["at_percent"]["Nd"];
        assert!((nd["estimated"].as_f64().unwrap() - 100.0).abs() < 1e-9);
        assert!((nd["true"].as_f64().unwrap() - 100.0 * 0.006 / 1.054).abs() < 1e-9);
        let mg = &ev["components"][0]["at_percent"]["Mg"];
        assert_eq!(mg["estimated"].as_f64().unwrap(), 0.0);
    }
}
