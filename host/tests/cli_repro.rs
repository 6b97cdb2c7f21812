//! `edxs repro-fig1` end to end at a small size, and random low-count starts that must never
//! give NaN (espm's random start does at seed 294).

use edxs::repro::{self, Method, Prepared, RunSettings, Start};
use edxs_suite::read_json;
use edxs_suite::{edxs, tempdir};

#[test]
fn repro_fig1_small_run_reports_every_method() {
    let dir = tempdir("run");
    let out = dir.join("fig1");
    let o = edxs(&[
        "repro-fig1",
        "--size",
        "64",
        "--samplings",
        "1",
        "--max-iter",
        "400",
        "--threads",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for f in ["table.md", "results.csv", "results.json", "fig1.png"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // Every row has the header's 15 fields once quoted labels such as "ESpM(0,0,0)" are read
    // as one field (RFC 4180).
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let fields = |line: &str| {
        let (mut n, mut quoted) = (1, false);
        for c in line.chars() {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => n += 1,
                _ => {}
            }
        }
        n
    };
    assert!(csv.contains("\"ESpM(0,0,0)\""), "{csv}");
    for line in csv.lines() {
        assert_eq!(fields(line), 15, "{line}");
    }
    let png = std::fs::read(out.join("fig1.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
    assert!(w >= 1000, "two panels expected, width {w}");

    let json = read_json(&out.join("results.json"));
    let runs = json["runs"].as_array().unwrap();
    let table = std::fs::read_to_string(out.join("table.md")).unwrap();
    let names: Vec<String> = repro::methods(293.0)
        .iter()
        .map(|m| m.name.clone())
        .collect();
    assert_eq!(names.len(), 7);
    for dose in [293.0, 18.0] {
        for name in &names {
            let run = runs
                .iter()
                .find(|r| r["dose"].as_f64() == Some(dose) && r["method"].as_str() == Some(name))
                .unwrap_or_else(|| panic!("no run of {name} at {dose}"));
            for key in ["angles_deg", "map_mse"] {
                for v in run[key].as_array().unwrap() {
                    let v = v.as_f64().unwrap_or(f64::NAN);
                    assert!(v.is_finite() && v >= 0.0, "{name} at {dose}: {key} has {v}");
                }
            }
            assert!(run["iterations"].as_u64().unwrap() > 0);
            assert!(run["final_loss"].as_f64().unwrap().is_finite());
            assert!(
                table.contains(&format!("| {dose} | 42 | {name} |")),
                "table has no row for {name} at {dose}:\n{table}"
            );
        }
    }
    let at = |dose: f64, name: &str, key: &str| -> f64 {
        let r = runs
            .iter()
            .find(|r| r["dose"].as_f64() == Some(dose) && r["method"].as_str() == Some(name))
            .unwrap();
        r[key].as_f64().unwrap()
    };
    // Independent phases are 20–60° apart, so these bounds fail for a swapped or lost phase.
    // At 64×64 and 400 iterations the paper's single starts are not there yet (17° for
    // ESpM(0.004,1,0.01) at 293 counts), so only edxs's pipeline is held to bounds (the
    // issue's targets at 18 counts; at 32×32 the particles are too few blocks across for the
    // binned spectra at 18 counts).
    for name in names.iter().filter(|n| n.starts_with("edxs")) {
        for (dose, max_angle, max_mse) in [(293.0, 8.0, 0.03), (18.0, 20.0, 0.18)] {
            let angle = at(dose, name, "mean_angle_deg");
            assert!(angle < max_angle, "{name} at {dose} counts: {angle}°");
            let mse = at(dose, name, "mean_map_mse");
            assert!(mse < max_mse, "{name} at {dose} counts: map MSE {mse}");
        }
    }
    // The variants share their spectra stage; only the map regularisation differs.
    assert_eq!(
        at(293.0, "edxs ESpM(0,0,0)", "mean_angle_deg"),
        at(293.0, "edxs ESpM(0.004,1,0.01)", "mean_angle_deg")
    );
    assert!(table.contains("| cap |") || table.contains("| tol |"));
}

#[test]
fn random_starts_at_low_counts_never_give_nan() {
    let spec = repro::paper_model_spec();
    let model = spec.model().unwrap();
    let prep = Prepared::new(&model, repro::K).unwrap();
    let data = repro::paper_dataset(16, 18.0, 42).unwrap();
    let methods = [
        Method::espm("ESpM(0,0,0)", 0.0, 0.0, 1.0, Start::Random),
        Method::espm("ESpM(0.004,1,0.01)", 0.004, 1.0, 0.01, Start::Random),
    ];
    for seed in [0, 1, 294, 12345] {
        let set = RunSettings {
            max_iter: 150,
            tol: 0.0,
            threads: 1,
            seed,
            observe: None,
        };
        for m in &methods {
            let o = repro::run_method(&prep, &data, m, &set, &mut repro::SpectraCache::default())
                .unwrap_or_else(|e| panic!("{} seed {seed}: {e}", m.name));
            assert!(
                o.final_loss.is_finite(),
                "{} seed {seed}: loss {}",
                m.name,
                o.final_loss
            );
            assert!(
                o.angles.iter().chain(&o.mse).all(|v| v.is_finite()),
                "{} seed {seed}: {:?} {:?}",
                m.name,
                o.angles,
                o.mse
            );
            assert_eq!(o.iterations, 150, "{} seed {seed}", m.name);
        }
    }
}
