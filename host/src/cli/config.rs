//! `--config FILE.toml`: options from a file, overridden by the same options on the command line.
//!
//! Every key is an option name (`lambda_l` or `lambda-l`); strings and numbers are its value,
//! arrays are joined with commas, `true` sets a flag and `false` leaves it unset. Example:
//!
//! ```toml
//! elements = ["Fe", "Pt", "O"]
//! n_components = 3
//! mu = 0.004
//! lambda_l = 1.0
//! simplex_h = false
//! ```

use anyhow::{bail, Context, Result};
use std::path::Path;

/// Replaces `--config FILE` in `args` by the options the file gives that are not on the
/// command line already.
pub fn expand(args: Vec<String>) -> Result<Vec<String>> {
    let is_config = |a: &String| a == "--config" || a.starts_with("--config=");
    let Some(pos) = args.iter().position(is_config) else {
        return Ok(args);
    };
    if args[pos + 1..].iter().any(is_config) {
        bail!("--config given twice; give one file (the command line overrides its options)");
    }
    let (path, consumed) = match args[pos].strip_prefix("--config=") {
        Some(p) => (p.to_string(), 1),
        None => (
            args.get(pos + 1)
                .cloned()
                .context("--config needs a file name")?,
            2,
        ),
    };
    let mut rest: Vec<String> = args[..pos].to_vec();
    rest.extend_from_slice(&args[pos + consumed..]);
    // Short spellings of options that a file may also give in long form.
    const SHORT: [(&str, &str); 2] = [("-k", "--n-components"), ("-N", "--counts-per-pixel")];
    let given = |flag: &str| {
        rest.iter().map(String::as_str).any(|a| {
            let short = SHORT.iter().find(|(_, l)| *l == flag).map(|(s, _)| *s);
            a == flag
                || a.starts_with(&format!("{flag}="))
                || short.is_some_and(|s| a == s || (a.starts_with(s) && !a.starts_with("--")))
        })
    };
    let known = known_options(&rest);
    let from_file = options(Path::new(&path), known.as_ref())?;
    let mut out = rest.clone();
    for (flag, value) in from_file {
        if given(&flag) {
            continue;
        }
        // `--flag=value` in one word: a value such as "--help" stays a value.
        match value {
            Some(v) => out.push(format!("{flag}={v}")),
            None => out.push(flag),
        }
    }
    Ok(out)
}

/// The subcommand's long options (name → whether it takes a value), or None if the command
/// line names no subcommand (clap then reports that).
fn known_options(args: &[String]) -> Option<(String, Vec<(String, bool)>)> {
    use clap::CommandFactory;
    let cmd = super::Cli::command();
    let sub = args.iter().skip(1).find_map(|a| cmd.find_subcommand(a))?;
    let opts = sub
        .get_arguments()
        .filter_map(|a| {
            let takes = a.get_action().takes_values();
            a.get_long().map(|l| (l.to_string(), takes))
        })
        .collect();
    Some((sub.get_name().to_string(), opts))
}

/// The file's options as (`--flag`, value) pairs.
fn options(
    path: &Path,
    known: Option<&(String, Vec<(String, bool)>)>,
) -> Result<Vec<(String, Option<String>)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        // toml's message draws the line with a caret; one line is kept: where and what.
        let line = e.span().map_or(0, |s| {
            text[..s.start.min(text.len())].matches('\n').count() + 1
        });
        anyhow::anyhow!(
            "{}: not a valid TOML file (line {line}: {})",
            path.display(),
            e.message().lines().next().unwrap_or("").trim()
        )
    })?;
    let mut out = Vec::new();
    for (key, value) in table {
        let long = key.replace('_', "-");
        let flag = format!("--{long}");
        if long == "config" {
            bail!(
                "{}: a config file cannot name another (key '{key}')",
                path.display()
            );
        }
        if let Some((sub, opts)) = known {
            match opts.iter().find(|(l, _)| *l == long) {
                None => bail!(
                    "{}: unknown key '{key}': not an option of edxs {sub}",
                    path.display()
                ),
                Some((_, false)) if !matches!(value, toml::Value::Boolean(_)) => bail!(
                    "{}: '{key}' is a switch: give true or false, not {value}",
                    path.display()
                ),
                Some((_, true)) if matches!(value, toml::Value::Boolean(true)) => {
                    bail!("{}: '{key}' needs a value, not {value}", path.display())
                }
                _ => {}
            }
        }
        let scalar = |v: &toml::Value| -> Result<String> {
            Ok(match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                other => bail!(
                    "{}: '{key}' has an unsupported value {other}",
                    path.display()
                ),
            })
        };
        match &value {
            toml::Value::Boolean(true) => out.push((flag, None)),
            toml::Value::Boolean(false) => {}
            toml::Value::Array(items) => {
                let parts: Result<Vec<String>> = items.iter().map(scalar).collect();
                out.push((flag, Some(parts?.join(","))));
            }
            v => out.push((flag, Some(scalar(v)?))),
        }
    }
    Ok(out)
}
