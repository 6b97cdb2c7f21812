//! The files `edxs simulate` writes: counts.npy (rows × cols × channels, streamed one pixel at
//! a time so that memory stays at one spectrum), the truth (phases.npy, maps.npy,
//! spectra_counts.npy) and sim.json, into one folder that replaces `--out` in one step.

use crate::io::{atomic, npy};
use anyhow::{bail, Context, Result};
use npyz::WriterBuilder;
use std::path::Path;

/// Element type of counts.npy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountsDtype {
    /// float64.
    F64,
    /// int64 (espm's dtype).
    I64,
    /// uint32 (an error if a count does not fit).
    U32,
    /// uint16 (an error if a count exceeds 65535).
    U16,
}

impl CountsDtype {
    /// Bytes per stored count.
    pub fn size(self) -> usize {
        match self {
            CountsDtype::F64 | CountsDtype::I64 => 8,
            CountsDtype::U32 => 4,
            CountsDtype::U16 => 2,
        }
    }
}

/// Totals gathered while the counts are drawn and written.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountStats {
    /// Sum of the written counts.
    pub total: f64,
    /// Sum of the expected counts.
    pub expected: f64,
    /// Largest written count.
    pub max: f64,
}

/// The truth of a simulation, as written beside its counts.
pub struct Truth<'a> {
    /// One spectrum per phase (K×L, rows sum to one).
    pub phases: &'a [f64],
    /// Abundance maps (K×P).
    pub maps: &'a [f64],
    /// Expected counts of each pure phase (K×L).
    pub spectra_counts: &'a [f64],
    /// Number of phases K.
    pub k: usize,
    /// Channels L.
    pub channels: usize,
    /// Scan shape (rows, cols).
    pub shape: (usize, usize),
}

/// Writes the simulation folder `out` (`--out`; `inputs` are the files the run read):
/// `draw(px, spectrum, stats)` fills pixel `px`'s counts in the order they are written, then
/// `json(stats)` gives sim.json. The folder replaces any earlier one only once every file is
/// written; returns the totals and the sim.json document.
pub fn write(
    out: &Path,
    inputs: &[&Path],
    truth: &Truth<'_>,
    dtype: CountsDtype,
    mut draw: impl FnMut(usize, &mut [f64], &mut CountStats) -> Result<()>,
    json: impl FnOnce(&CountStats) -> serde_json::Value,
) -> Result<(CountStats, serde_json::Value)> {
    let (k, l) = (truth.k, truth.channels);
    let p = truth.shape.0 * truth.shape.1;
    let mut done = None;
    let mut json = Some(json);
    crate::io::output::write_dir("--out", out, inputs, |dir| {
        let path = |f: &str| dir.join(f);
        npy::write_f64(&path("phases.npy"), &[k, l], truth.phases)?;
        npy::write_f64(&path("maps.npy"), &[k, p], truth.maps)?;
        npy::write_f64(&path("spectra_counts.npy"), &[k, l], truth.spectra_counts)?;
        let stats = write_counts(&path("counts.npy"), truth, dtype, &mut draw)?;
        let doc = json.take().context("internal: sim.json built twice")?(&stats);
        let text = serde_json::to_string_pretty(&doc).context("serialising sim.json")?;
        atomic::write_bytes(&path("sim.json"), text.as_bytes())?;
        done = Some((stats, doc));
        Ok(())
    })?;
    done.context("internal: simulation not written")
}

/// Streams counts.npy: each pixel is drawn and written before the next.
fn write_counts(
    path: &Path,
    truth: &Truth<'_>,
    dtype: CountsDtype,
    draw: &mut impl FnMut(usize, &mut [f64], &mut CountStats) -> Result<()>,
) -> Result<CountStats> {
    let ((rows, cols), l) = (truth.shape, truth.channels);
    let p = rows * cols;
    let mut stats = CountStats::default();
    let mut lam = vec![0.0; l];
    let shape = [rows as u64, cols as u64, l as u64];
    macro_rules! stream {
        ($t:ty, $conv:expr) => {
            atomic::write_with(path, |w| {
                let mut writer = npyz::WriteOptions::<$t>::new()
                    .default_dtype()
                    .shape(&shape)
                    .writer(w)
                    .begin_nd()
                    .with_context(|| format!("writing {}", path.display()))?;
                for px in 0..p {
                    draw(px, &mut lam, &mut stats)?;
                    for &v in &lam {
                        let conv: fn(f64) -> Result<$t> = $conv;
                        writer
                            .push(&conv(v)?)
                            .with_context(|| format!("writing {}", path.display()))?;
                    }
                }
                writer
                    .finish()
                    .with_context(|| format!("writing {}", path.display()))?;
                Ok(())
            })?
        };
    }
    match dtype {
        CountsDtype::F64 => stream!(f64, |v| Ok(v)),
        CountsDtype::I64 => stream!(i64, |v| Ok(v as i64)),
        CountsDtype::U32 => stream!(u32, |v| {
            if v > u32::MAX as f64 {
                bail!("a count of {v} does not fit --dtype u32");
            }
            Ok(v as u32)
        }),
        CountsDtype::U16 => stream!(u16, |v| {
            if v > u16::MAX as f64 {
                bail!("a count of {v} does not fit --dtype u16; use u32");
            }
            Ok(v as u16)
        }),
    }
    Ok(stats)
}
