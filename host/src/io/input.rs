//! One entry point for spectrum-image files, chosen by extension.

use super::counts::SpectrumImage;
use super::loaded::Loaded;
use super::{hspy, ripple};
use anyhow::{bail, Result};
use std::path::Path;

/// Opens .npy (Y×X×L or P×L with `shape`), .rpl (+.raw beside it) or .hspy/.hdf5 by extension.
pub fn load(path: &Path, shape: Option<(usize, usize)>) -> Result<Loaded> {
    let what = path.display().to_string();
    if !path.exists() {
        bail!("{what}: no such file");
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "npy" => Ok(Loaded::bare(SpectrumImage::read_npy(path, shape)?)),
        "rpl" => ripple::load(path, shape),
        "raw" => {
            // The counts alone mean nothing without their header; take it if it is there.
            let rpl = ["rpl", "RPL"]
                .iter()
                .map(|e| path.with_extension(e))
                .find(|p| p.exists());
            match rpl {
                Some(rpl) => ripple::load(&rpl, shape),
                None => bail!(
                    "{what}: a .raw file needs its Ripple header {} beside it",
                    path.with_extension("rpl").display()
                ),
            }
        }
        "hspy" | "hdf5" | "h5" => hspy::load(path, shape),
        _ => bail!(
            "{what}: unknown extension '{ext}'; expected .npy, .rpl (with its .raw), .hspy or .hdf5"
        ),
    }
}
