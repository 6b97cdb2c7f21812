//! Writes that never leave half a file: write beside the target, then rename over it.

use super::output;
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

/// Writes through `f` into a temporary file, then renames it to `path`; a signal meanwhile
/// removes the temporary file.
pub fn write_with(path: &Path, f: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    replace(path, temp_name(path), |tmp| {
        let file = std::fs::File::create(tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut w = std::io::BufWriter::new(file);
        f(&mut w)?;
        let file = w
            .into_inner()
            .map_err(|e| anyhow::anyhow!("writing {}: {}", tmp.display(), e.error()))?;
        file.sync_all()
            .with_context(|| format!("writing {}", tmp.display()))
    })
}

/// Lets `f` write a whole file at a path it is given (a library that opens the file itself,
/// as the figure backends do), then renames that file to `path`; a failure or a signal
/// meanwhile removes it and leaves `path` as it was.
pub fn write_at(path: &Path, f: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    // The extension stays last: the figure backends choose the format by it.
    let tmp = match (path.file_stem(), path.extension()) {
        (Some(stem), Some(ext)) => {
            let mut name = stem.to_os_string();
            name.push(format!(".tmp-{}.", std::process::id()));
            name.push(ext);
            path.with_file_name(name)
        }
        _ => temp_name(path),
    };
    replace(path, tmp, |tmp| {
        f(tmp)?;
        std::fs::File::open(tmp)
            .and_then(|file| file.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))
    })
}

/// Has `write` produce the whole file at `tmp` (flushed to disk), then renames it to `path`;
/// on failure or a signal `tmp` is removed and `path` is left as it was.
fn replace(path: &Path, tmp: PathBuf, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    output::register(&tmp);
    let result = write(&tmp).and_then(|()| {
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    output::unregister(&tmp);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use edxs_suite::tempdir;

    #[test]
    fn write_at_keeps_the_extension_and_leaves_the_old_file_on_failure() {
        let dir = tempdir("atomic-write-at");
        let png = dir.join("fig.png");
        std::fs::write(&png, b"old").unwrap();
        write_at(&png, |tmp| {
            assert_eq!(tmp.extension().and_then(|e| e.to_str()), Some("png"));
            assert_ne!(tmp, png.as_path());
            std::fs::write(tmp, b"new").map_err(Into::into)
        })
        .unwrap();
        assert_eq!(std::fs::read(&png).unwrap(), b"new");
        let e = write_at(&png, |tmp| {
            std::fs::write(tmp, b"half")?;
            anyhow::bail!("drawing failed")
        });
        assert!(e.is_err());
        assert_eq!(std::fs::read(&png).unwrap(), b"new");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("fig.png")]);
    }
}
