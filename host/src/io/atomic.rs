//! Writes that never leave half a file: write beside the target, then rename over it.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The temporary sibling name used while `path` is being written.
fn temp_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    path.with_file_name(name)
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |w| w.write_all(bytes).map_err(Into::into))
}

/// Writes through `f` into a temporary file, then renames it to `path`.
pub fn write_with(path: &Path, f: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let tmp = temp_name(path);
    let result = (|| -> Result<()> {
        let file = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut w = std::io::BufWriter::new(file);
        f(&mut w)?;
        let file = w
            .into_inner()
            .map_err(|e| anyhow::anyhow!("writing {}: {}", tmp.display(), e.error()))?;
        file.sync_all()
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A temporary sibling of `dir` for building a folder before it replaces `dir`.
pub fn temp_sibling(dir: &Path) -> PathBuf {
    temp_name(dir)
}

/// Moves the finished folder `tmp` to `dir`, replacing what was there.
pub fn replace_dir(tmp: &Path, dir: &Path) -> Result<()> {
    let old = {
        let mut name = dir.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".old-{}", std::process::id()));
        dir.with_file_name(name)
    };
    let had_old = dir.exists();
    if had_old {
        std::fs::rename(dir, &old).with_context(|| format!("cannot replace {}", dir.display()))?;
    }
    if let Err(e) = std::fs::rename(tmp, dir) {
        if had_old {
            let _ = std::fs::rename(&old, dir);
        }
        let _ = std::fs::remove_dir_all(tmp);
        return Err(e).with_context(|| format!("cannot move the results to {}", dir.display()));
    }
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(())
}
