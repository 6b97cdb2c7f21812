//! Hostile inputs, table-driven: every case runs the real `edxs` binary in a work folder holding
//! a simulation, a user's data folder, a previous decomposition and a zoo of malformed files,
//! and asserts the exit code, one error line naming the value, and that nothing on disk changed
//! (inputs, the previous output, no `.edxs-tmp`/`.edxs-old`/`.tmp-` left). Signal tests stop
//! runs while they iterate, while they write and between the renames of the swap.

use edxs_suite::{npy_shape, npy_v1, tempdir, TempDir};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edxs"))
}

fn run_in(dir: &Path, args: &[String]) -> Output {
    bin()
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

/// Every entry under `dir` (links not followed, special files not opened): kind, size, bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (String, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let ft = e.file_type().unwrap();
            let rel = p.strip_prefix(dir).unwrap().to_path_buf();
            if ft.is_dir() {
                out.insert(rel, ("dir".into(), Vec::new()));
                stack.push(p);
            } else if ft.is_file() {
                out.insert(rel, ("file".into(), std::fs::read(&p).unwrap()));
            } else if ft.is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.insert(
                    rel,
                    ("link".into(), t.to_string_lossy().as_bytes().to_vec()),
                );
            } else {
                out.insert(rel, ("special".into(), Vec::new()));
            }
        }
    }
    out
}

fn assert_same(
    before: &BTreeMap<PathBuf, (String, Vec<u8>)>,
    after: &BTreeMap<PathBuf, (String, Vec<u8>)>,
    what: &str,
) {
    let added: Vec<_> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    let removed: Vec<_> = before.keys().filter(|k| !after.contains_key(*k)).collect();
    let changed: Vec<_> = before
        .iter()
        .filter(|(k, v)| after.get(*k).is_some_and(|w| w != *v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        added.is_empty() && removed.is_empty() && changed.is_empty(),
        "{what}: disk changed: added {added:?}, removed {removed:?}, changed {changed:?}"
    );
}

/// A .npy v1 file with a hand-written header (any shape or dtype text) and body.
fn npy_raw(descr: &str, shape: &str, body: &[u8]) -> Vec<u8> {
    npy_v1(descr, false, shape, body)
}

fn npy_f64(shape: &[usize], data: &[f64]) -> Vec<u8> {
    let body: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    npy_raw("'<f8'", &npy_shape(shape), &body)
}

fn read_npy(path: &Path) -> (Vec<usize>, Vec<f64>) {
    edxs::io::npy::read_f64(path).unwrap()
}

/// The work folder shared by the table: built once per test function, removed when it drops.
struct Work {
    dir: TempDir,
    model: Vec<String>,
}

fn work(name: &str) -> Work {
    let dir = tempdir(&format!("hostile-{name}"));
    let o = run_in(&dir, &words("simulate --shape 8x8 --seed 3 --out sim"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sim: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sim/sim.json")).unwrap()).unwrap();
    let model: Vec<String> = sim["decompose_args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::copy(dir.join("sim/counts.npy"), dir.join("data/counts.npy")).unwrap();
    std::fs::write(dir.join("data/notes.txt"), "the user's notes\n").unwrap();
    let mut args = words("decompose data/counts.npy -k 2 --max-iter 3 --out prev");
    args.extend(model.clone());
    let o = run_in(&dir, &args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    Work { dir, model }
}

/// The malformed files and odd targets of the table.
fn zoo(w: &Work) {
    let d = &w.dir;
    let bad = d.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let (shape, counts) = read_npy(&d.join("data/counts.npy"));
    let put = |name: &str, bytes: Vec<u8>| std::fs::write(bad.join(name), bytes).unwrap();
    let scaled = |f: f64| counts.iter().map(|v| v * f).collect::<Vec<_>>();
    put("zeros.npy", npy_f64(&shape, &scaled(0.0)));
    put("e20.npy", npy_f64(&shape, &scaled(1e-20)));
    put("e50.npy", npy_f64(&shape, &scaled(1e-50)));
    let mut one = vec![0.0; counts.len()];
    one[5] = 1.0;
    put("one.npy", npy_f64(&shape, &one));
    let mut nan = counts.clone();
    nan[7] = f64::NAN;
    put("nan.npy", npy_f64(&shape, &nan));
    let mut neg = counts.clone();
    neg[9] = -2.0;
    put("neg.npy", npy_f64(&shape, &neg));
    put(
        "huge.npy",
        npy_raw("'<f8'", "(100000, 100000, 1980)", &[0u8; 64]),
    );
    put(
        "wrap.npy",
        npy_raw("'<f8'", "(4294967296, 4294967296, 2)", &[0u8; 64]),
    );
    let mut extra = npy_f64(&shape, &counts);
    extra.extend_from_slice(&[1u8; 24]);
    put("extra.npy", extra);
    let full = npy_f64(&shape, &counts);
    put("truncated.npy", full[..full.len() - 100].to_vec());
    put(
        "record.npy",
        npy_raw("[('a', '<f8'), ('b', '<i4')]", "(2,)", &[0u8; 24]),
    );
    put("badmagic.npy", b"\x93NUMPX\x01\x00garbage".to_vec());
    // npyz backtracks exponentially on deeply nested brackets (found by fuzzing: minutes).
    put(
        "nested.npy",
        npy_raw(
            &format!("{}'<f8'{}", "[".repeat(40), "]".repeat(40)),
            "(2,)",
            &[0u8; 16],
        ),
    );
    put("empty.npy", Vec::new());
    put("text.npy", b"hello, world\n".to_vec());
    put("bool.npy", npy_raw("'|b1'", "(2, 2)", &[0u8; 4]));
    put("complex.npy", npy_raw("'<c16'", "(1, 2)", &[0u8; 32]));
    put("zero_ch.npy", npy_raw("'<f8'", "(4, 0)", &[]));
    put("zero_px.npy", npy_raw("'<f8'", "(0, 5)", &[]));
    put("onedim.npy", npy_f64(&[6], &[1.0; 6]));
    put("notes.txt", b"not counts".to_vec());
    std::os::unix::fs::symlink("/dev/zero", bad.join("zero.npy")).unwrap();
    let fifo = std::ffi::CString::new(bad.join("fifo.npy").to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    // Ripple: a header lying about its size, a /dev/zero .raw, an oversized header, no .raw.
    let rpl = |w: u64, h: u64, d: u64| {
        format!(
            "key\tvalue\nwidth\t{w}\nheight\t{h}\ndepth\t{d}\noffset\t0\ndata-length\t2\n\
             data-type\tunsigned\nbyte-order\tlittle-endian\nrecord-by\tvector\n"
        )
    };
    put("liar.rpl", rpl(100000, 100000, 2048).into_bytes());
    put("liar.raw", vec![0u8; 1000]);
    put("devzero.rpl", rpl(2, 2, 3).into_bytes());
    std::os::unix::fs::symlink("/dev/zero", bad.join("devzero.raw")).unwrap();
    put("noraw.rpl", rpl(2, 2, 3).into_bytes());
    // Ripple files whose acquisition metadata no model can use: 4x4 pixels of 700 channels
    // (0.2..7.2 keV, enough for Fe and O), one count each.
    let meta_rpl = |name: &str, key: &str, value: &str| {
        let text = format!("{}{key}\t{value}\n", rpl(4, 4, 700));
        put(&format!("{name}.rpl"), text.into_bytes());
        put(&format!("{name}.raw"), [1u8, 0].repeat(4 * 4 * 700));
    };
    meta_rpl("e150", "beam-energy", "150");
    meta_rpl("elev", "elevation-angle", "-10");
    // Counts so large that Σ y·ln y overflows f64 although their total does not.
    let mut big = vec![0.0; counts.len()];
    let l = shape[shape.len() - 1];
    for i in 0..10 {
        big[(i * 5) * l + 100 + 7 * i] = 1e306;
    }
    put("overflow.npy", npy_f64(&shape, &big));
    put("long.rpl", vec![b'a'; (1 << 20) + 10]);
    std::os::unix::fs::symlink("/dev/zero", bad.join("zerohdr.rpl")).unwrap();
    // Output targets.
    std::os::unix::fs::symlink("prev", d.join("lnk")).unwrap();
    std::os::unix::fs::symlink("nowhere", d.join("dangling")).unwrap();
    std::os::unix::fs::symlink("prev/G.json-none", d.join("lnk.npy")).unwrap();
    let fifo = std::ffi::CString::new(d.join("pipe").to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    // Configs.
    let cfg = |name: &str, text: &str| std::fs::write(bad.join(name), text).unwrap();
    cfg("unknown.toml", "n_components = 2\nbogus_key = 3\n");
    cfg("nested.toml", "config = \"other.toml\"\n");
    cfg("inject.toml", "init = \"--help\"\n");
    cfg("switch.toml", "simplex_h = \"yes\"\n");
    cfg("valueless.toml", "seed = true\n");
    cfg("table.toml", "[mu]\nx = 1\n");
    cfg("broken.toml", "n_components = = 2\n");
    cfg("ok.toml", "n_components = 2\nmax_iter = 2\n");
    // Decompositions to evaluate, each with one defect.
    let variant = |name: &str, file: &str, shape: &[usize], data: Vec<f64>| {
        let e = d.join("evals").join(name);
        std::fs::create_dir_all(&e).unwrap();
        for f in std::fs::read_dir(d.join("prev")).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), e.join(f.file_name())).unwrap();
        }
        if !file.is_empty() {
            std::fs::write(e.join(file), npy_f64(shape, &data)).unwrap();
        }
    };
    let (hs, h) = read_npy(&d.join("prev/H.npy"));
    let (ws, wv) = read_npy(&d.join("prev/W.npy"));
    let (gs, g) = read_npy(&d.join("prev/G.npy"));
    for (name, v) in [
        ("h_nan", f64::NAN),
        ("h_inf", f64::INFINITY),
        ("h_ninf", f64::NEG_INFINITY),
    ] {
        let mut x = h.clone();
        x[3] = v;
        variant(name, "H.npy", &hs, x);
    }
    let mut x = wv.clone();
    x[1] = f64::NAN;
    variant("w_nan", "W.npy", &ws, x);
    let mut x = g.clone();
    x[10] = f64::INFINITY;
    variant("g_inf", "G.npy", &gs, x);
    variant("w_empty", "W.npy", &[0, ws[1]], vec![]);
    variant("w_zero", "W.npy", &ws, vec![0.0; wv.len()]);
    variant("h_nopix", "H.npy", &[hs[0], 0], vec![]);
    variant("g_nochan", "G.npy", &[0, gs[1]], vec![]);
    variant(
        "h_2d_wrong",
        "H.npy",
        &[hs[0] + 1, hs[1]],
        vec![0.5; (hs[0] + 1) * hs[1]],
    );
    variant("no_json", "", &[], vec![]);
    std::fs::remove_file(d.join("evals/no_json/results.json")).unwrap();
    // Truths with one defect each.
    let truth = |name: &str, file: &str, shape: &[usize], data: Vec<f64>| {
        let t = d.join("truths").join(name);
        std::fs::create_dir_all(&t).unwrap();
        for f in std::fs::read_dir(d.join("sim")).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), t.join(f.file_name())).unwrap();
        }
        std::fs::write(t.join(file), npy_f64(shape, &data)).unwrap();
    };
    let (ms, m) = read_npy(&d.join("sim/maps.npy"));
    let mut x = m.clone();
    x[0] = f64::NAN;
    truth("maps_nan", "maps.npy", &ms, x);
    truth("maps_nopix", "maps.npy", &[ms[0], 0], vec![]);
    let (ss, _) = read_npy(&d.join("sim/spectra_counts.npy"));
    truth("spectra_nochan", "spectra_counts.npy", &[ss[0], 0], vec![]);
    // A user folder that is not empty and carries no marker, and an empty one.
    std::fs::create_dir_all(d.join("userdir")).unwrap();
    std::fs::write(d.join("userdir/thesis.tex"), "chapter 1").unwrap();
    std::fs::create_dir_all(d.join("emptydir")).unwrap();
}

/// One row: command line (model options appended where `{M}` stands), exit code, and strings
/// the error must contain (the value it names).
struct Case {
    args: &'static str,
    code: i32,
    needles: &'static [&'static str],
}

const fn c(args: &'static str, code: i32, needles: &'static [&'static str]) -> Case {
    Case {
        args,
        code,
        needles,
    }
}

/// The table. `{M}` = the simulation's model options.
const CASES: &[Case] = &[
    // --- 7. metadata a file carries that no model can use: the file and the field named ---
    c(
        "decompose bad/e150.rpl --elements Fe,O -k 2 --out r1",
        1,
        &["bad/e150.rpl", "beam energy 150 keV", "--e0"],
    ),
    c(
        "decompose bad/elev.rpl --elements Fe,O -k 2 --out r1",
        1,
        &["bad/elev.rpl", "take-off angle -10", "--toa"],
    ),
    c(
        "model --elements Fe,O --e0 150 --out m.npy",
        1,
        &["--e0 150", "100, 200, 300"],
    ),
    c(
        "decompose bad/elev.rpl --elements Fe,O -k 2 --toa 95 --out r1",
        1,
        &["--toa 95", "(0, 90]"],
    ),
    // A loss that overflows must be an error naming the stage, never `null` in results.json.
    c(
        "decompose bad/overflow.npy {M} -k 2 --out r1",
        1,
        &[
            "the loss of the fit with W entries held",
            "is NaN at the start",
            "1e306",
        ],
    ),
    c(
        "decompose data/counts.npy --elements Fe,O -k 2 --e0 250 --out r1",
        1,
        &["--e0 250"],
    ),
    // --- 7. options that used to pass silently ---
    c(
        "decompose data/counts.npy {M} -k 2 --fix 0:Fe=0.1 --fix 0:Fe=0.2 --out r",
        1,
        &["--fix 0:Fe=0.2", "already fixed at 0.1"],
    ),
    c(
        "decompose data/counts.npy --elements Fe,O -k 2 --density 1e300 --out r",
        1,
        &["--density 1e300", "outside (0, 30]"],
    ),
    // --- 1. never lose data: what --out may name ---
    c(
        "decompose data/counts.npy {M} -k 2 --out data",
        1,
        &["--out data", "holds the input data/counts.npy"],
    ),
    c(
        "decompose data/counts.npy {M} -k 2 --out data/",
        1,
        &["holds the input"],
    ),
    c(
        "decompose data/counts.npy {M} -k 2 --out ./data",
        1,
        &["holds the input"],
    ),
    c(
        "decompose data/../data/counts.npy {M} -k 2 --out data",
        1,
        &["holds the input"],
    ),
    c(
        "decompose sim/counts.npy {M} -k 2 --out sim",
        1,
        &["--out sim", "holds the input sim/counts.npy"],
    ),
    c(
        "decompose data/counts.npy {M} -k 2 --out .",
        1,
        &["--out .", "not '.'"],
    ),
    c(
        "decompose data/counts.npy {M} -k 2 --out ..",
        1,
        &["--out ..", "not '.'"],
    ),
    c(
        "decompose data/counts.npy {M} -k 2 --out /",
        1,
        &["--out /"],
    ),
    c(
        "decompose data/counts.npy {M} -k 2 --out data/notes.txt",
        1,
        &["--out data/notes.txt", "is a file"],
    ),
    c(
        "decompose data/counts.npy {M} -k 2 --out data/notes.txt/sub",
        1,
        &["data/notes.txt is not a folder"],
    ),
    c(
        "decompose data/counts.npy {M} -k 2 --out /dev/null",
        1,
        &["--out /dev/null", "is a device"],
    ),
    c(
        "decompose data/counts.npy {M} -k 2 --out pipe",
        1,
        &["--out pipe", "named pipe"],
    ),
    c(
        "decompose data/counts.npy {M} -k 2 --out lnk",
        1,
        &["--out lnk", "symbolic link"],
    ),
    c(
        "decompose data/counts.npy {M} -k 2 --out dangling",
        1,
        &["--out dangling", "symbolic link"],
    ),
    c(
        "decompose data/counts.npy {M} -k 2 --out userdir",
        1,
        &["--out userdir", "did not write"],
    ),
    c(
        "model --elements Fe,O --out data/notes.txt",
        1,
        &["--out data/notes.txt", "not an earlier edxs output"],
    ),
    c(
        "model --elements Fe,O --out /dev/null",
        1,
        &["--out /dev/null", "not a regular file"],
    ),
    c(
        "model --elements Fe,O --out prev",
        1,
        &["--out prev", "a folder"],
    ),
    c(
        "model --elements Fe,O --out lnk.npy",
        1,
        &["--out lnk.npy", "symbolic link"],
    ),
    c(
        "model --elements Fe,O --out g.json",
        1,
        &["--out g.json", "name the .npy"],
    ),
    c(
        "model --elements Fe,O --out data/counts.npy",
        1,
        &["--out data/counts.npy", "not an earlier edxs output"],
    ),
    c(
        "simulate --shape 8x8 --out data",
        1,
        &["--out data", "did not write"],
    ),
    c(
        "simulate --shape 8x8 --out userdir",
        1,
        &["--out userdir", "did not write"],
    ),
    c(
        "simulate --shape 8x8 --out /dev/null",
        1,
        &["--out /dev/null", "is a device"],
    ),
    c(
        "simulate --shape 8x8 --out data/notes.txt",
        1,
        &["--out data/notes.txt", "is a file"],
    ),
    c(
        "simulate --shape 8x8 --out lnk",
        1,
        &["--out lnk", "symbolic link"],
    ),
    c(
        "simulate --maps sim/maps.npy --out sim",
        1,
        &["--out sim", "holds the input sim/maps.npy"],
    ),
    c("demo --out data", 1, &["--out data", "did not write"]),
    c(
        "demo --out /dev/null",
        1,
        &["--out /dev/null", "is a device"],
    ),
    c("demo --out .", 1, &["--out .", "not '.'"]),
    c("repro-fig1 --out data", 1, &["--out data", "did not write"]),
    c("repro-fig1 --out lnk", 1, &["--out lnk", "symbolic link"]),
    // --- 2. evaluate never hangs or panics ---
    c(
        "evaluate evals/h_nan --truth sim",
        1,
        &["evals/h_nan/H.npy", "NaN"],
    ),
    c(
        "evaluate evals/h_inf --truth sim",
        1,
        &["evals/h_inf/H.npy", "inf"],
    ),
    c(
        "evaluate evals/h_ninf --truth sim",
        1,
        &["evals/h_ninf/H.npy", "-inf"],
    ),
    c(
        "evaluate evals/w_nan --truth sim",
        1,
        &["evals/w_nan/W.npy", "NaN"],
    ),
    c(
        "evaluate evals/g_inf --truth sim",
        1,
        &["evals/g_inf/G.npy", "inf"],
    ),
    c(
        "evaluate evals/w_empty --truth sim",
        1,
        &["evals/w_empty", "W [0, 2]"],
    ),
    c(
        "evaluate evals/w_zero --truth sim",
        1,
        &["evals/w_zero/W.npy", "no element fraction"],
    ),
    c("evaluate evals/h_nopix --truth sim", 1, &["pixels"]),
    c("evaluate evals/g_nochan --truth sim", 1, &["channels"]),
    c(
        "evaluate evals/h_2d_wrong --truth sim",
        1,
        &["inconsistent shapes"],
    ),
    c(
        "evaluate evals/no_json --truth sim",
        1,
        &["evals/no_json/results.json"],
    ),
    c(
        "evaluate prev --truth truths/maps_nan",
        1,
        &["truths/maps_nan/maps.npy", "NaN"],
    ),
    c("evaluate prev --truth truths/maps_nopix", 1, &["pixels"]),
    c(
        "evaluate prev --truth truths/spectra_nochan",
        1,
        &["channels"],
    ),
    c("evaluate prev --truth nowhere", 1, &["nowhere/sim.json"]),
    c("evaluate data --truth sim", 1, &["data/results.json"]),
    // --- 3. memory plan and lying sizes ---
    c(
        "simulate --shape 100000x100000 --out s2",
        1,
        &["100000x100000", "needs", "available"],
    ),
    c(
        "simulate --shape 1x100000000 --out s2",
        1,
        &["1x100000000", "needs", "disk"],
    ),
    c(
        "simulate --shape 4294967296x4294967297 --out s2",
        1,
        &["--shape", "4294967296x4294967297", "overflow"],
    ),
    c(
        "simulate --shape 18446744073709551615x2 --out s2",
        1,
        &["--shape", "overflow"],
    ),
    c(
        "demo --size 100000 --out dd",
        1,
        &["demo --size 100000", "needs", "available"],
    ),
    c(
        "model --elements Fe --channels 1000000000000 --scale 0.00000000001",
        1,
        &["1000000000000 channels", "needs"],
    ),
    c(
        "model --elements Fe --channels 100000000 --scale 0.0000001 --max-memory 1G",
        1,
        &["100000000 channels", "needs", "--max-memory"],
    ),
    c(
        "decompose data/counts.npy {M} -k 2 --max-memory 1K --out r1",
        1,
        &["data/counts.npy", "needs", "--max-memory"],
    ),
    c(
        "decompose bad/huge.npy {M} -k 2 --out r1",
        1,
        &["bad/huge.npy", "truncated", "[100000, 100000, 1980]"],
    ),
    c(
        "decompose bad/wrap.npy {M} -k 2 --out r1",
        1,
        &["bad/wrap.npy", "overflow"],
    ),
    c(
        "decompose bad/extra.npy {M} -k 2 --out r1",
        1,
        &["bad/extra.npy", "24 bytes after the data"],
    ),
    c(
        "decompose bad/truncated.npy {M} -k 2 --out r1",
        1,
        &["bad/truncated.npy", "truncated"],
    ),
    c(
        "decompose bad/record.npy {M} -k 2 --out r1",
        1,
        &["bad/record.npy", "structured"],
    ),
    c(
        "decompose bad/nested.npy {M} -k 2 --out r1",
        1,
        &["bad/nested.npy", "nests brackets more than 8 deep"],
    ),
    c(
        "decompose bad/badmagic.npy {M} -k 2 --out r1",
        1,
        &["bad/badmagic.npy", "not a valid .npy"],
    ),
    c(
        "decompose bad/empty.npy {M} -k 2 --out r1",
        1,
        &["bad/empty.npy", "not a valid .npy"],
    ),
    c(
        "decompose bad/text.npy {M} -k 2 --out r1",
        1,
        &["bad/text.npy", "not a valid .npy"],
    ),
    c(
        "decompose bad/bool.npy {M} -k 2 --out r1",
        1,
        &["bad/bool.npy", "dtype"],
    ),
    c(
        "decompose bad/complex.npy {M} -k 2 --out r1",
        1,
        &["bad/complex.npy", "dtype"],
    ),
    c(
        "decompose bad/zero_ch.npy {M} -k 2 --out r1",
        1,
        &["bad/zero_ch.npy", "no data"],
    ),
    c(
        "decompose bad/zero_px.npy {M} -k 2 --out r1",
        1,
        &["bad/zero_px.npy", "no data"],
    ),
    c(
        "decompose bad/onedim.npy {M} -k 2 --out r1",
        1,
        &["bad/onedim.npy", "[6]"],
    ),
    c(
        "decompose bad/zero.npy {M} -k 2 --out r1",
        1,
        &["bad/zero.npy", "not a regular file"],
    ),
    c(
        "decompose bad/fifo.npy {M} -k 2 --out r1",
        1,
        &["bad/fifo.npy", "not a regular file"],
    ),
    c(
        "decompose bad/liar.rpl {M} -k 2 --out r1",
        1,
        &["bad/liar.raw", "1000 bytes", "truncated"],
    ),
    c(
        "decompose bad/devzero.rpl {M} -k 2 --out r1",
        1,
        &["bad/devzero.raw", "not a regular file"],
    ),
    c(
        "decompose bad/noraw.rpl {M} -k 2 --out r1",
        1,
        &["bad/noraw.raw"],
    ),
    c(
        "decompose bad/long.rpl {M} -k 2 --out r1",
        1,
        &["bad/long.rpl", "too long"],
    ),
    c(
        "decompose bad/zerohdr.rpl {M} -k 2 --out r1",
        1,
        &["bad/zerohdr.rpl", "not a regular file"],
    ),
    c(
        "decompose bad/notes.txt {M} -k 2 --out r1",
        1,
        &["bad/notes.txt", "unknown extension"],
    ),
    c(
        "decompose bad/missing.npy {M} -k 2 --out r1",
        1,
        &["bad/missing.npy", "no such file"],
    ),
    c(
        "decompose data/counts.npy {M} -k 2 --shape 3x3 --out r1",
        1,
        &["--shape 3x3"],
    ),
    c(
        "decompose data/counts.npy {M} -k 2 --shape 0x3 --out r1",
        1,
        &["--shape", "0x3"],
    ),
    c(
        "decompose data/counts.npy {M} -k 2 --shape 3by3 --out r1",
        1,
        &["--shape", "3by3"],
    ),
    // --- 4. degenerate counts: an error, never a confident composition ---
    c(
        "decompose bad/zeros.npy {M} -k 2 --out r1",
        1,
        &["bad/zeros.npy", "0e0 counts"],
    ),
    c(
        "decompose bad/e20.npy {M} -k 2 --out r1",
        1,
        &["bad/e20.npy", "rescaled"],
    ),
    c(
        "decompose bad/e50.npy {M} -k 2 --out r1",
        1,
        &["bad/e50.npy", "rescaled"],
    ),
    c(
        "decompose bad/one.npy {M} -k 2 --out r1",
        1,
        &["bad/one.npy", "only 1 pixels"],
    ),
    c(
        "decompose bad/one.npy {M} -k 2 --two-stage --out r1",
        1,
        &["bad/one.npy", "only 1 pixels"],
    ),
    c(
        "decompose bad/nan.npy {M} -k 2 --out r1",
        1,
        &["bad/nan.npy", "NaN"],
    ),
    c(
        "decompose bad/neg.npy {M} -k 2 --out r1",
        1,
        &["bad/neg.npy", "-2"],
    ),
    c(
        "decompose data/counts.npy {M} -k 0 --out r1",
        1,
        &["-k", "at least 1"],
    ),
    c(
        "decompose data/counts.npy {M} -k 100000 --out r1",
        1,
        &["-k 100000"],
    ),
    c(
        "simulate --shape 8x8 --densities nan,1,1 --out s2",
        1,
        &["--densities", "NaN"],
    ),
    c(
        "simulate --shape 8x8 --densities=-1,1,1 --out s2",
        1,
        &["--densities", "-1"],
    ),
    c(
        "simulate --shape 8x8 --densities 0,0,0 --out s2",
        1,
        &["density", "is 0"],
    ),
    c(
        "simulate --shape 8x8 --densities 1,1 --out s2",
        1,
        &["--densities", "2 values"],
    ),
    c(
        "simulate --shape 8x8 --radius -1 --out s2",
        1,
        &["--radius", "-1"],
    ),
    c(
        "simulate --shape 8x8 --radius nan --out s2",
        1,
        &["--radius", "NaN"],
    ),
    c(
        "simulate --shape 8x8 -N 0 --out s2",
        1,
        &["--counts-per-pixel", "0"],
    ),
    c(
        "simulate --shape 8x8 -N inf --out s2",
        1,
        &["--counts-per-pixel", "inf"],
    ),
    c(
        "simulate --shape 8x8 -N nan --out s2",
        1,
        &["--counts-per-pixel", "NaN"],
    ),
    c("simulate --shape 0x8 --out s2", 1, &["--shape", "0x8"]),
    c(
        "simulate --maps bad/missing.npy --out s2",
        1,
        &["bad/missing.npy"],
    ),
    c("simulate --maps bad/nan.npy --out s2", 1, &["bad/nan.npy"]),
    c("demo --size 4 --out dd", 1, &["--size", "4"]),
    c(
        "demo --counts-per-pixel=-1 --out dd",
        1,
        &["--counts-per-pixel", "-1"],
    ),
    c("demo -N nan --out dd", 1, &["--counts-per-pixel", "NaN"]),
    c("repro-fig1 --doses 0 --out f1", 1, &["--doses", "0"]),
    c("repro-fig1 --samplings 0 --out f1", 1, &["--samplings"]),
    // --- 6. config files ---
    c(
        "decompose data/counts.npy {M} --config bad/unknown.toml --out r1",
        1,
        &["bad/unknown.toml", "bogus_key"],
    ),
    c(
        "decompose data/counts.npy {M} --config bad/ok.toml --config bad/ok.toml --out r1",
        1,
        &["--config given twice"],
    ),
    c(
        "decompose data/counts.npy {M} --config bad/nested.toml --out r1",
        1,
        &["bad/nested.toml", "config"],
    ),
    c(
        "decompose data/counts.npy {M} --config bad/switch.toml --out r1",
        1,
        &["bad/switch.toml", "simplex_h", "switch"],
    ),
    c(
        "decompose data/counts.npy {M} --config bad/valueless.toml --out r1",
        1,
        &["bad/valueless.toml", "seed", "needs a value"],
    ),
    c(
        "decompose data/counts.npy {M} --config bad/table.toml --out r1",
        1,
        &["bad/table.toml", "mu"],
    ),
    c(
        "decompose data/counts.npy {M} --config bad/broken.toml --out r1",
        1,
        &["bad/broken.toml", "TOML", "line 1"],
    ),
    c(
        "decompose data/counts.npy {M} --config bad/missing.toml --out r1",
        1,
        &["bad/missing.toml"],
    ),
    c(
        "decompose data/counts.npy {M} --config",
        1,
        &["--config needs a file"],
    ),
    // --- 7. options ---
    c(
        "decompose data/counts.npy {M} -k 2 --fix 0:Xx=0 --out r1",
        1,
        &["--fix 0:Xx=0", "Xx"],
    ),
    c(
        "decompose data/counts.npy {M} -k 2 --fix 5:Fe=0.1 --out r1",
        1,
        &["--fix 5:Fe=0.1", "component 5"],
    ),
    c(
        "decompose data/counts.npy {M} -k 2 --fix 0:Fe=-1 --out r1",
        1,
        &["--fix 0:Fe=-1"],
    ),
    c(
        "decompose data/counts.npy {M} -k 2 --fix garbage --out r1",
        1,
        &["--fix", "garbage"],
    ),
];

fn expand(args: &str, w: &Work) -> Vec<String> {
    let mut out = Vec::new();
    for a in words(args) {
        if a == "{M}" {
            out.extend(w.model.clone());
        } else {
            out.push(a);
        }
    }
    out
}

#[test]
fn every_hostile_case_fails_in_one_line_and_changes_nothing() {
    let w = work("table");
    zoo(&w);
    assert!(CASES.len() >= 100, "{} cases", CASES.len());
    let mut failures = Vec::new();
    for case in CASES {
        let before = snapshot(&w.dir);
        let args = expand(case.args, &w);
        let o = run_in(&w.dir, &args);
        let stderr = String::from_utf8_lossy(&o.stderr).to_string();
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("edxs: note:"))
            .collect();
        let mut why = Vec::new();
        if o.status.code() != Some(case.code) {
            why.push(format!("exit {:?}, want {}", o.status.code(), case.code));
        }
        if lines.len() != 1 || !lines[0].starts_with("edxs: error: ") {
            why.push(format!("want one error line, got {lines:?}"));
        }
        for n in case.needles {
            if !stderr.contains(n) {
                why.push(format!("message lacks '{n}'"));
            }
        }
        let after = snapshot(&w.dir);
        if after != before {
            let r = std::panic::catch_unwind(|| assert_same(&before, &after, case.args));
            if let Err(e) = r {
                why.push(
                    e.downcast_ref::<String>()
                        .cloned()
                        .unwrap_or_else(|| "disk changed".into()),
                );
            }
        }
        if !why.is_empty() {
            failures.push(format!(
                "{}\n    {}\n    stderr: {stderr}",
                case.args,
                why.join("; ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

/// A config value that looks like a flag stays a value: `init = "--help"` is an invalid
/// --init, not a request for help (clap's own error, exit 2), and nothing is written.
#[test]
fn config_values_cannot_inject_flags() {
    let w = work("inject");
    zoo(&w);
    let before = snapshot(&w.dir);
    let mut args = words("decompose data/counts.npy --config bad/inject.toml --out r1");
    args.extend(w.model.clone());
    let o = run_in(&w.dir, &args);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("'--help'") && stderr.contains("--init"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("Usage"));
    assert_same(&before, &snapshot(&w.dir), "inject");
}

fn decompose_args(w: &Work, out: &str, extra: &str) -> Vec<String> {
    let mut a = words(&format!(
        "decompose data/counts.npy -k 2 --out {out} {extra}"
    ));
    a.extend(w.model.clone());
    a
}

/// The names of the files of an output folder.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

/// Leftovers of the output path in `dir`.
fn debris(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.contains(".edxs-tmp-") || n.contains(".edxs-old-") || n.contains(".tmp-"))
        .collect()
}

#[test]
fn previous_outputs_are_replaced_whole_and_empty_folders_are_used() {
    let w = work("replace");
    let d = &w.dir;
    let before = names(&d.join("prev"));
    assert!(before.contains(&".edxs-output".to_string()), "{before:?}");
    let o = run_in(d, &decompose_args(&w, "prev", "--max-iter 4 --seed 9"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(names(&d.join("prev")), before);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("prev/results.json")).unwrap())
            .unwrap();
    assert_eq!(r["parameters"]["seed"], 9);
    assert!(debris(d).is_empty(), "{:?}", debris(d));
    // The two-step swap (where renameat2 cannot exchange) gives the same result.
    let o = bin()
        .args(decompose_args(&w, "prev", "--max-iter 4 --seed 11"))
        .current_dir(d)
        .env("EDXS_TEST_SWAP", "two-step")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("prev/results.json")).unwrap())
            .unwrap();
    assert_eq!(r["parameters"]["seed"], 11);
    assert!(debris(d).is_empty(), "{:?}", debris(d));
    // An empty folder the user made is a fine target; `model --out` may replace its own files.
    std::fs::create_dir_all(d.join("emptydir")).unwrap();
    let o = run_in(d, &decompose_args(&w, "emptydir", "--max-iter 2"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(d.join("emptydir/.edxs-output").is_file());
    std::fs::create_dir_all(d.join("g")).unwrap();
    for _ in 0..2 {
        let o = run_in(d, &words("model --elements Fe,O --out g/G.npy"));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(names(&d.join("g")), ["G.json", "G.npy"]);
    // --threads far beyond the cores is capped with a note, and the run still succeeds.
    let o = run_in(d, &decompose_args(&w, "t", "--max-iter 2 --threads 10000"));
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--threads 10000 capped"));
}

/// Waits until `path` (a run's stderr) contains `what`.
fn wait_for(path: &Path, what: &str, secs: f64) -> bool {
    let t = Instant::now();
    while t.elapsed().as_secs_f64() < secs {
        if std::fs::read_to_string(path).is_ok_and(|s| s.contains(what)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Starts a decomposition into `prev` with test hooks, stderr into `log`.
fn spawn(w: &Work, extra: &str, env: &[(&str, &str)], log: &Path) -> std::process::Child {
    spawn_args(w, decompose_args(w, "prev", extra), env, log)
}

/// Starts edxs with `args` in the work folder, test hooks in `env`, stderr into `log`.
fn spawn_args(
    w: &Work,
    args: Vec<String>,
    env: &[(&str, &str)],
    log: &Path,
) -> std::process::Child {
    let mut cmd = bin();
    cmd.args(args)
        .current_dir(&w.dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    default_signals(&mut cmd);
    cmd.spawn().unwrap()
}

/// Gives the child the default actions of SIGINT and SIGTERM whatever this test inherited: a
/// test run started in the background of a non-interactive shell (`cmd &`, nohup) ignores
/// SIGINT, and its children would too, so a run signalled while it iterates (before edxs
/// installs its own handler) would finish instead of ending.
fn default_signals(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: signal(2) is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            Ok(())
        });
    }
}

fn signal(child: &std::process::Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

#[test]
fn signals_leave_the_previous_output_intact() {
    use std::os::unix::process::ExitStatusExt;
    let w = work("signals");
    let d = &w.dir;
    // The runs' stderr goes beside the work folder, whose snapshots it would change.
    let logs = tempdir("hostile-signals-log");
    let log = logs.join("stderr");
    // A 48x48 map for the runs signalled while they iterate: on the 8x8 one a fit with no
    // tolerance still ends (loss change exactly 0) after about 2 s, too near the 1.5 s mark
    // on a loaded machine; this one takes ~36 times as long per iteration.
    let o = run_in(d, &words("simulate --shape 48x48 --seed 3 --out big"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let snap = || snapshot(d);
    let before = snap();

    // While it iterates: no output exists yet, the default action ends the run.
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let mut args = words("decompose big/counts.npy -k 2 --max-iter 1000000 --tol 0 --out prev");
        args.extend(w.model.clone());
        let mut ch = spawn_args(&w, args, &[], &log);
        std::thread::sleep(Duration::from_millis(1500));
        assert!(
            ch.try_wait().unwrap().is_none(),
            "the run ended before the signal"
        );
        signal(&ch, sig);
        let st = ch.wait().unwrap();
        assert!(!st.success());
        assert_same(&before, &snap(), "signal while iterating");
    }

    // While it writes (temporary folder half filled) and just before the swap.
    for (point, sig, code) in [
        ("write", libc::SIGTERM, 128 + libc::SIGTERM),
        ("write", libc::SIGINT, 128 + libc::SIGINT),
        ("before-swap", libc::SIGHUP, 128 + libc::SIGHUP),
    ] {
        let mut ch = spawn(
            &w,
            "--max-iter 2",
            &[
                ("EDXS_TEST_PAUSE_AT", point),
                ("EDXS_TEST_PAUSE_SECS", "30"),
            ],
            &log,
        );
        assert!(wait_for(&log, &format!("test pause at {point}"), 60.0));
        signal(&ch, sig);
        let st = ch.wait().unwrap();
        assert_eq!(st.code(), Some(code), "{point}: {st:?}");
        assert_same(&before, &snap(), point);
    }

    // SIGTERM between the two renames of the two-step swap: the swap finishes first, then the
    // run exits; the output is the new one, whole, and nothing is left beside it.
    let mut ch = spawn(
        &w,
        "--max-iter 2 --seed 5",
        &[
            ("EDXS_TEST_PAUSE_AT", "between-renames"),
            // Long enough that a loaded machine still signals inside the pause (2 s was not
            // under a load of 14: the run finished first and exited 0).
            ("EDXS_TEST_PAUSE_SECS", "10"),
            ("EDXS_TEST_SWAP", "two-step"),
        ],
        &log,
    );
    assert!(wait_for(&log, "test pause at between-renames", 60.0));
    signal(&ch, libc::SIGTERM);
    let st = ch.wait().unwrap();
    assert_eq!(st.code(), Some(128 + libc::SIGTERM));
    assert!(debris(d).is_empty(), "{:?}", debris(d));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("prev/results.json")).unwrap())
            .unwrap();
    assert_eq!(r["parameters"]["seed"], 5);
    let before = snap();

    // SIGKILL between the renames: nothing can clean up, so the next run on the target puts the
    // previous output back (even a run that then fails on its own options).
    let mut ch = spawn(
        &w,
        "--max-iter 2 --seed 6",
        &[
            ("EDXS_TEST_PAUSE_AT", "between-renames"),
            ("EDXS_TEST_PAUSE_SECS", "30"),
            ("EDXS_TEST_SWAP", "two-step"),
        ],
        &log,
    );
    assert!(wait_for(&log, "test pause at between-renames", 60.0));
    signal(&ch, libc::SIGKILL);
    assert_eq!(ch.wait().unwrap().signal(), Some(libc::SIGKILL));
    assert!(
        !d.join("prev").exists(),
        "the kill came between the renames"
    );
    assert_eq!(debris(d).len(), 2, "{:?}", debris(d));
    let o = run_in(d, &decompose_args(&w, "prev", "--fix garbage"));
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("restored"));
    assert_same(&before, &snap(), "SIGKILL between renames, then a new run");

    // SIGKILL just before the exchange: the next run removes the temporary folder.
    let mut ch = spawn(
        &w,
        "--max-iter 2",
        &[
            ("EDXS_TEST_PAUSE_AT", "before-swap"),
            ("EDXS_TEST_PAUSE_SECS", "30"),
        ],
        &log,
    );
    assert!(wait_for(&log, "test pause at before-swap", 60.0));
    signal(&ch, libc::SIGKILL);
    ch.wait().unwrap();
    assert_eq!(debris(d).len(), 1);
    let o = run_in(d, &decompose_args(&w, "prev", "--fix garbage"));
    assert_eq!(o.status.code(), Some(1));
    assert_same(&before, &snap(), "SIGKILL before the swap, then a new run");
}

/// Two runs on one --out at the same time: both finish, the result is one of them, whole.
#[test]
fn concurrent_runs_do_not_interleave() {
    let w = work("concurrent");
    let d = &w.dir;
    let logs = tempdir("hostile-concurrent-log");
    let log1 = logs.join("c1");
    let log2 = logs.join("c2");
    let mut a = spawn(
        &w,
        "--max-iter 2 --seed 21",
        &[
            ("EDXS_TEST_PAUSE_AT", "write"),
            ("EDXS_TEST_PAUSE_SECS", "1"),
        ],
        &log1,
    );
    let mut b = spawn(&w, "--max-iter 2 --seed 22", &[], &log2);
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
    assert!(debris(d).is_empty(), "{:?}", debris(d));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("prev/results.json")).unwrap())
            .unwrap();
    let seed = r["parameters"]["seed"].as_u64().unwrap();
    assert!(seed == 21 || seed == 22);
    // Every file of the folder comes from the same run as results.json.
    let h = read_npy(&d.join("prev/H.npy")).1;
    let again = run_in(
        d,
        &decompose_args(&w, "check", &format!("--max-iter 2 --seed {seed}")),
    );
    assert!(again.status.success());
    assert_eq!(read_npy(&d.join("check/H.npy")).1, h);
}
