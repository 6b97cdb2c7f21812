//! Any text as a `--config` file of each subcommand and as a `simulate --phases` file: an
//! expanded command line or an error, never a panic; a second --config or a `config` key is
//! always an error, and no expanded option is a bare flag the file's value smuggled in.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::env::temp_dir().join(format!("edxs-fuzz-{}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let p = path.display().to_string();
    for sub in ["decompose", "simulate", "model", "demo", "evaluate", "repro-fig1"] {
        let args: Vec<String> = ["edxs", sub, "x.npy", "--config", &p]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if let Ok(out) = edxs::cli::config::expand(args) {
            // Everything the file added is one `--key` or `--key=value` word.
            for a in &out[3..] {
                assert!(a.starts_with("--"), "{a:?} from {text:?}");
                assert!(!a.starts_with("--config"), "{a:?}");
            }
        }
    }
    let _ = edxs::sim::presets::from_toml_str(text, "fuzz.toml");
});
