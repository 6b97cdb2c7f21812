//! The folder `edxs demo` writes: the abundance maps it simulates from (demo_maps.npy), the
//! simulation (sim/) and the decomposition with its evaluation (result/), replacing `--out`
//! in one step once all of them are written.

use crate::io::npy;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// Where the parts of a demo folder go while it is being written.
pub struct DemoPaths {
    /// The maps the simulation reads (rows × cols × K .npy).
    pub maps: PathBuf,
    /// The simulation's folder.
    pub sim: PathBuf,
    /// The decomposition's folder (with evaluation.json).
    pub result: PathBuf,
}

/// Writes the demo folder `out`: `maps` (`shape`, C order) to demo_maps.npy, then `steps`
/// fills sim/ and result/ (through the subcommands' own report writers).
pub fn write(
    out: &Path,
    shape: &[usize],
    maps: &[f64],
    steps: impl FnOnce(&DemoPaths) -> Result<()>,
) -> Result<()> {
    crate::io::output::write_dir("--out", out, &[], |dir| {
        let paths = DemoPaths {
            maps: dir.join("demo_maps.npy"),
            sim: dir.join("sim"),
            result: dir.join("result"),
        };
        npy::write_f64(&paths.maps, shape, maps)?;
        steps(&paths)
    })
}
