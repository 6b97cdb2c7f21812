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
    let Some(pos) = args
        .iter()
        .position(|a| a == "--config" || a.starts_with("--config="))
    else {
        return Ok(args);
    };
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
    let from_file = options(Path::new(&path))?;
    let mut out = rest.clone();
    for (flag, value) in from_file {
        if given(&flag) {
            continue;
        }
        out.push(flag);
        if let Some(v) = value {
            out.push(v);
        }
    }
    Ok(out)
}

/// The file's options as (`--flag`, value) pairs.
fn options(path: &Path) -> Result<Vec<(String, Option<String>)>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("{}: not a valid TOML file", path.display()))?;
    let mut out = Vec::new();
    for (key, value) in table {
        let flag = format!("--{}", key.replace('_', "-"));
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
