//! Command-line options of the benchmark examples, without a parser dependency.

/// The value after `name` in `args`, parsed, or `default` when absent or unparsable.
pub fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The options every paper-data benchmark takes: (`--size`, `--doses`, `--seed`,
/// `--threads`), defaults the paper's 128², 293 and 18 counts/pixel, seed 42, one thread per
/// core.
pub fn paper_data(args: &[String]) -> (usize, String, u64, usize) {
    (
        arg(args, "--size", 128),
        arg(args, "--doses", "293,18".to_string()),
        arg(args, "--seed", 42),
        arg(args, "--threads", 0),
    )
}
