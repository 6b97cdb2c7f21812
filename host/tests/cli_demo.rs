//! `edxs demo` end to end, the report files, and that a failed run never leaves half a result.

use edxs_suite::read_json;
use edxs_suite::{edxs, tempdir};

fn png_size(path: &std::path::Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (w, h)
}

#[test]
fn demo_simulates_decomposes_and_reports() {
    let dir = tempdir("run");
    let out = dir.join("demo");
    let o = edxs(&[
        "demo",
        "--size",
        "16",
        "--max-iter",
        "40",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The composition of every phase is printed beside the truth.
    for name in ["Brg", "Fp", "CaPv"] {
        assert!(stdout.contains(name), "{stdout}");
    }
    assert!(stdout.contains("at.%"), "{stdout}");
    let result = out.join("result");
    for f in [
        "results.json",
        "quant.csv",
        "W.npy",
        "H.npy",
        "D.npy",
        "G.npy",
        "losses.csv",
        "evaluation.json",
    ] {
        assert!(result.join(f).exists(), "missing {f}");
    }
    let (w, h) = png_size(&result.join("maps.png"));
    assert!(w > 3 * 16 && h > 16, "maps.png {w}x{h}");
    let (w, h) = png_size(&result.join("spectra.png"));
    assert!(w >= 800 && h >= 600, "spectra.png {w}x{h}");
    let res = read_json(&result.join("results.json"));
    assert_eq!(res["parameters"]["n_components"], 3);
    assert!(res["iterations"].as_u64().unwrap() >= 1);
    // The history is the last fit's (the maps stage of the pipeline); iterations count all.
    assert_eq!(
        res["loss_history"].as_array().unwrap().len() as u64,
        res["last_run_iterations"].as_u64().unwrap()
    );
    assert!(res["iterations"].as_u64() >= res["last_run_iterations"].as_u64());
    assert_eq!(res["parameters"]["method"], "two-stage");
    let phases = res["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 3);
    for phase in phases {
        let at: f64 = phase
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["at_percent"].as_f64().unwrap())
            .sum();
        let wt: f64 = phase
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["wt_percent"].as_f64().unwrap())
            .sum();
        assert!(
            (at - 100.0).abs() < 1e-6 && (wt - 100.0).abs() < 1e-6,
            "at {at} wt {wt}"
        );
    }
    assert!(res["edxs_version"].is_string() && res["seconds"].is_number());
}

#[test]
fn a_failed_run_leaves_the_previous_result_untouched() {
    let dir = tempdir("atomic");
    let out = dir.join("demo");
    let o = edxs(&[
        "demo",
        "--size",
        "12",
        "--max-iter",
        "5",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let result = out.join("result");
    let before = std::fs::read(result.join("W.npy")).unwrap();
    let counts = out.join("sim").join("counts.npy");
    // Loads the data, then fails on a --fix that names no column: nothing may change.
    let o = edxs(&[
        "decompose",
        counts.to_str().unwrap(),
        "--elements",
        "O,Mg,Si",
        "--offset",
        "0.3",
        "--fix",
        "0:Xx=0",
        "--out",
        result.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read(result.join("W.npy")).unwrap(), before);
    // A run into a path that cannot be a folder fails with one line naming it.
    let blocker = dir.join("file");
    std::fs::write(&blocker, b"x").unwrap();
    let bad_out = blocker.join("out");
    let o = edxs(&[
        "decompose",
        counts.to_str().unwrap(),
        "--elements",
        "O,Mg,Si",
        "--offset",
        "0.3",
        "--max-iter",
        "2",
        "--out",
        bad_out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains(bad_out.to_str().unwrap()), "{stderr}");
    // No temporary folders are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".tmp-") || n.contains(".old-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
