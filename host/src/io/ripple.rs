//! Ripple spectrum images: a `.rpl` text header (LISPIX's keys plus HyperSpy's extra ones) and
//! the counts in a headerless `.raw` file beside it.
//!
//! Energies: HyperSpy writes the axis as `depth-origin`/`depth-scale` in `depth-units` (keV for
//! EDS) and also `ev-per-chan` rounded to an integer (so 0 for a 0.01 keV axis); LISPIX only
//! knows `ev-per-chan`. The depth keys therefore win, and `ev-per-chan` is used (in eV) only
//! when `depth-scale` is absent.

use super::atomic;
use super::counts::SpectrumImage;
use super::loaded::{self, Loaded};
use crate::model_options::FileMeta;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The sample type of the `.raw` file (`data-type` × `data-length`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataType {
    /// `signed`, 1 byte.
    I8,
    /// `signed`, 2 bytes.
    I16,
    /// `signed`, 4 bytes.
    I32,
    /// `signed`, 8 bytes.
    I64,
    /// `unsigned`, 1 byte.
    U8,
    /// `unsigned`, 2 bytes.
    U16,
    /// `unsigned`, 4 bytes.
    U32,
    /// `unsigned`, 8 bytes.
    U64,
    /// `float`, 4 bytes.
    F32,
    /// `float`, 8 bytes.
    F64,
}

impl DataType {
    /// All types, for tests and messages.
    pub const ALL: [DataType; 10] = [
        DataType::I8,
        DataType::I16,
        DataType::I32,
        DataType::I64,
        DataType::U8,
        DataType::U16,
        DataType::U32,
        DataType::U64,
        DataType::F32,
        DataType::F64,
    ];

    /// Bytes per sample (`data-length`).
    pub fn size(self) -> usize {
        match self {
            DataType::I8 | DataType::U8 => 1,
            DataType::I16 | DataType::U16 => 2,
            DataType::I32 | DataType::U32 | DataType::F32 => 4,
            DataType::I64 | DataType::U64 | DataType::F64 => 8,
        }
    }

    /// The `data-type` keyword.
    pub fn kind(self) -> &'static str {
        match self {
            DataType::I8 | DataType::I16 | DataType::I32 | DataType::I64 => "signed",
            DataType::U8 | DataType::U16 | DataType::U32 | DataType::U64 => "unsigned",
            DataType::F32 | DataType::F64 => "float",
        }
    }

    /// The type named by `data-type` and `data-length`, if the pair exists.
    pub fn from_keys(kind: &str, length: usize) -> Option<Self> {
        Some(match (kind, length) {
            ("signed", 1) => DataType::I8,
            ("signed", 2) => DataType::I16,
            ("signed", 4) => DataType::I32,
            ("signed", 8) => DataType::I64,
            ("unsigned", 1) => DataType::U8,
            ("unsigned", 2) => DataType::U16,
            ("unsigned", 4) => DataType::U32,
            ("unsigned", 8) => DataType::U64,
            ("float", 4) => DataType::F32,
            ("float", 8) => DataType::F64,
            _ => return None,
        })
    }

    /// Decodes one sample; `big` selects big-endian.
    fn decode(self, b: &[u8], big: bool) -> f64 {
        macro_rules! get {
            ($t:ty, $n:literal) => {{
                let a: [u8; $n] = b[..$n].try_into().expect("sample width");
                (if big {
                    <$t>::from_be_bytes(a)
                } else {
                    <$t>::from_le_bytes(a)
                }) as f64
            }};
        }
        match self {
            DataType::I8 => b[0] as i8 as f64,
            DataType::U8 => b[0] as f64,
            DataType::I16 => get!(i16, 2),
            DataType::U16 => get!(u16, 2),
            DataType::I32 => get!(i32, 4),
            DataType::U32 => get!(u32, 4),
            DataType::I64 => get!(i64, 8),
            DataType::U64 => get!(u64, 8),
            DataType::F32 => get!(f32, 4),
            DataType::F64 => get!(f64, 8),
        }
    }

    /// Encodes one sample, or None when `v` is not exactly representable (integer types only:
    /// a count must not be silently rounded or clamped).
    fn encode(self, v: f64, big: bool, out: &mut Vec<u8>) -> Option<()> {
        macro_rules! put_int {
            ($t:ty) => {{
                if v.fract() != 0.0 || !(v >= <$t>::MIN as f64 && v <= <$t>::MAX as f64) {
                    return None;
                }
                let x = v as $t;
                if x as f64 != v {
                    return None;
                }
                out.extend_from_slice(&if big {
                    x.to_be_bytes()
                } else {
                    x.to_le_bytes()
                });
            }};
        }
        match self {
            DataType::I8 => put_int!(i8),
            DataType::U8 => put_int!(u8),
            DataType::I16 => put_int!(i16),
            DataType::U16 => put_int!(u16),
            DataType::I32 => put_int!(i32),
            DataType::U32 => put_int!(u32),
            DataType::I64 => put_int!(i64),
            DataType::U64 => put_int!(u64),
            DataType::F32 => {
                let x = v as f32;
                out.extend_from_slice(&if big {
                    x.to_be_bytes()
                } else {
                    x.to_le_bytes()
                });
            }
            DataType::F64 => {
                out.extend_from_slice(&if big {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                });
            }
        }
        Some(())
    }
}

/// The `byte-order` keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    /// `little-endian`.
    Little,
    /// `big-endian`.
    Big,
    /// `dont-care`: the machine's own order (all that makes sense for 1-byte samples).
    DontCare,
}

impl ByteOrder {
    /// The keyword.
    pub fn key(self) -> &'static str {
        match self {
            ByteOrder::Little => "little-endian",
            ByteOrder::Big => "big-endian",
            ByteOrder::DontCare => "dont-care",
        }
    }

    fn is_big(self) -> bool {
        match self {
            ByteOrder::Little => false,
            ByteOrder::Big => true,
            ByteOrder::DontCare => cfg!(target_endian = "big"),
        }
    }
}

/// The `record-by` keyword: how the three dimensions are laid out in the `.raw` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordBy {
    /// `vector`: one spectrum after another (height × width × depth, C order).
    Vector,
    /// `image`: one energy plane after another (depth × height × width, C order).
    Image,
    /// `dont-care`: a single image (depth 1), which holds no spectra.
    DontCare,
}

impl RecordBy {
    /// The keyword.
    pub fn key(self) -> &'static str {
        match self {
            RecordBy::Vector => "vector",
            RecordBy::Image => "image",
            RecordBy::DontCare => "dont-care",
        }
    }
}

/// What a `.rpl` header says; energies in keV whatever the file's units.
#[derive(Debug, Clone, PartialEq)]
pub struct RippleHeader {
    /// Pixels per row (`width`).
    pub width: usize,
    /// Rows (`height`).
    pub height: usize,
    /// Channels (`depth`).
    pub depth: usize,
    /// Bytes to skip at the start of the `.raw` file (`offset`).
    pub offset: u64,
    /// Sample type (`data-type`, `data-length`).
    pub data_type: DataType,
    /// Byte order of multi-byte samples.
    pub byte_order: ByteOrder,
    /// Layout of the `.raw` file.
    pub record_by: RecordBy,
    /// Energy of channel 0 in keV (`depth-origin`).
    pub energy_offset_kev: Option<f64>,
    /// Channel width in keV (`depth-scale` in `depth-units`, else `ev-per-chan`); None for an
    /// axis without energy units unless `signal` names an EDS signal (then keV, as in exspy).
    pub energy_scale_kev: Option<f64>,
    /// Beam energy in keV (`beam-energy`).
    pub beam_energy_kev: Option<f64>,
    /// Detector elevation in degrees (`elevation-angle`).
    pub elevation_deg: Option<f64>,
    /// Detector azimuth in degrees (`azimuth-angle`).
    pub azimuth_deg: Option<f64>,
    /// Stage alpha tilt in degrees (`tilt-stage`).
    pub tilt_alpha_deg: Option<f64>,
    /// Mn-Kα FWHM in eV (`detector-peak-width-ev`, or HyperSpy's older `energy-resolution`).
    pub peak_width_ev: Option<f64>,
    /// Live time in s (`live-time`).
    pub live_time_s: Option<f64>,
    /// HyperSpy signal type (`signal`), e.g. `EDS_TEM`.
    pub signal: Option<String>,
    /// Title (`title`).
    pub title: Option<String>,
}

impl RippleHeader {
    /// A header for a `height`×`width`×`depth` image of `data_type`, pixel-major, little-endian,
    /// with no calibration.
    pub fn new(height: usize, width: usize, depth: usize, data_type: DataType) -> Self {
        RippleHeader {
            width,
            height,
            depth,
            offset: 0,
            data_type,
            byte_order: ByteOrder::Little,
            record_by: RecordBy::Vector,
            energy_offset_kev: None,
            energy_scale_kev: None,
            beam_energy_kev: None,
            elevation_deg: None,
            azimuth_deg: None,
            tilt_alpha_deg: None,
            peak_width_ev: None,
            live_time_s: None,
            signal: None,
            title: None,
        }
    }

    /// Bytes of counts the `.raw` file must hold after `offset`, or None on overflow.
    pub fn data_bytes(&self) -> Option<u64> {
        (self.width as u64)
            .checked_mul(self.height as u64)?
            .checked_mul(self.depth as u64)?
            .checked_mul(self.data_type.size() as u64)
    }

    /// The take-off angle in degrees from elevation, azimuth and tilt (exspy's formula; azimuth
    /// and tilt default to 0 as in HyperSpy), if the elevation is known.
    pub fn take_off_angle_deg(&self) -> Option<f64> {
        self.elevation_deg.map(|el| {
            loaded::take_off_angle_deg(
                self.tilt_alpha_deg.unwrap_or(0.0),
                self.azimuth_deg.unwrap_or(0.0),
                el,
                0.0,
            )
        })
    }

    /// Parses the text of a `.rpl` file; `what` names it in messages.
    pub fn parse(what: &str, text: &str) -> Result<Self> {
        let keys = parse_keys(what, text)?;
        let get = |k: &str| keys.iter().rev().find(|(key, _)| key == k).map(|(_, v)| v);
        let int = |k: &str| -> Result<Option<u64>> {
            get(k)
                .map(|v| {
                    v.parse::<u64>().map_err(|_| {
                        anyhow::anyhow!("{what}: {k} '{v}' is not a non-negative integer")
                    })
                })
                .transpose()
        };
        let float = |k: &str| -> Result<Option<f64>> {
            get(k)
                .map(|v| match v.parse::<f64>() {
                    Ok(x) if x.is_finite() => Ok(x),
                    _ => bail!("{what}: {k} '{v}' is not a finite number"),
                })
                .transpose()
        };
        let dim = |k: &str| -> Result<usize> {
            let n = int(k)?.with_context(|| format!("{what}: the header has no '{k}' key"))?;
            if n == 0 {
                bail!("{what}: {k} is 0");
            }
            usize::try_from(n).with_context(|| format!("{what}: {k} {n} is too large"))
        };
        let (width, height, depth) = (dim("width")?, dim("height")?, dim("depth")?);
        let length = int("data-length")?
            .with_context(|| format!("{what}: the header has no 'data-length' key"))?;
        let kind = get("data-type")
            .with_context(|| format!("{what}: the header has no 'data-type' key"))?;
        if !["signed", "unsigned", "float"].contains(&kind.as_str()) {
            bail!("{what}: data-type '{kind}' is not signed, unsigned or float");
        }
        let data_type = DataType::from_keys(kind, length as usize).with_context(|| {
            format!(
                "{what}: data-length {length} is not supported for data-type {kind} (signed and \
                 unsigned: 1, 2, 4, 8; float: 4, 8)"
            )
        })?;
        let byte_order = match get("byte-order").map(String::as_str) {
            Some("little-endian") => ByteOrder::Little,
            Some("big-endian") => ByteOrder::Big,
            Some("dont-care") => ByteOrder::DontCare,
            None if data_type.size() == 1 => ByteOrder::DontCare,
            None => bail!("{what}: the header has no 'byte-order' key"),
            Some(o) => {
                bail!("{what}: byte-order '{o}' is not little-endian, big-endian or dont-care")
            }
        };
        let record_by = match get("record-by").map(String::as_str) {
            Some("vector") => RecordBy::Vector,
            Some("image") => RecordBy::Image,
            Some("dont-care") => RecordBy::DontCare,
            None => bail!("{what}: the header has no 'record-by' key"),
            Some(r) => bail!("{what}: record-by '{r}' is not vector, image or dont-care"),
        };
        let offset = int("offset")?.unwrap_or(0);

        let depth_scale = float("depth-scale")?;
        let ev_per_chan = float("ev-per-chan")?;
        let units = get("depth-units")
            .map(|u| u.trim())
            .filter(|u| !u.is_empty() && !["<undefined>", "_None_", "None"].contains(u));
        let factor = |u: &str| -> Result<f64> {
            match u {
                "keV" | "kev" | "KeV" => Ok(1.0),
                "eV" | "ev" => Ok(1e-3),
                u => bail!("{what}: depth-units '{u}' is not an energy unit (eV or keV)"),
            }
        };
        let unit = units.map(factor).transpose()?;
        // Without units a HyperSpy axis is uncalibrated (scale 1, offset 0) unless the signal is
        // EDS, whose axes exspy takes as keV.
        let is_eds = get("signal").is_some_and(|s| s.to_ascii_uppercase().contains("EDS"));
        let unit = unit.or(is_eds.then_some(1.0));
        let channel_width = |kev: f64, key: &str, raw: f64| -> Result<f64> {
            if kev > 0.0 {
                Ok(kev)
            } else {
                bail!("{what}: {key} {raw} is not a positive channel width")
            }
        };
        // depth-scale is in depth-units; ev-per-chan is always eV, and then an origin without
        // units is taken as eV too.
        let (energy_scale_kev, to_kev) = match (depth_scale, ev_per_chan) {
            (Some(s), _) => {
                channel_width(s, "depth-scale", s)?;
                match unit {
                    Some(f) => (Some(s * f), Some(f)),
                    None => (None, None),
                }
            }
            (None, Some(e)) => (
                Some(channel_width(e * 1e-3, "ev-per-chan", e)?),
                Some(unit.unwrap_or(1e-3)),
            ),
            (None, None) => (None, unit),
        };
        let energy_offset_kev = match (float("depth-origin")?, to_kev) {
            (Some(o), Some(f)) => Some(o * f),
            _ => None,
        };
        let peak_width_ev = match float("detector-peak-width-ev")? {
            Some(w) => Some(w),
            None => float("energy-resolution")?,
        };
        let text_key = |k: &str| get(k).filter(|v| !v.is_empty()).cloned();
        Ok(RippleHeader {
            width,
            height,
            depth,
            offset,
            data_type,
            byte_order,
            record_by,
            energy_offset_kev,
            energy_scale_kev,
            beam_energy_kev: float("beam-energy")?,
            elevation_deg: float("elevation-angle")?,
            azimuth_deg: float("azimuth-angle")?,
            tilt_alpha_deg: float("tilt-stage")?,
            peak_width_ev,
            live_time_s: float("live-time")?,
            signal: text_key("signal"),
            title: text_key("title"),
        })
    }

    /// The header as `.rpl` text, with the keys HyperSpy reads back.
    pub fn to_text(&self) -> String {
        let mut s = String::from(";File written by edxs\nkey\tvalue\n");
        let mut put = |k: &str, v: &dyn std::fmt::Display| s.push_str(&format!("{k}\t{v}\n"));
        put("width", &self.width);
        put("height", &self.height);
        put("depth", &self.depth);
        put("offset", &self.offset);
        put("data-length", &self.data_type.size());
        put("data-type", &self.data_type.kind());
        // HyperSpy rejects a byte order on 1-byte samples.
        let order = if self.data_type.size() == 1 {
            ByteOrder::DontCare
        } else {
            self.byte_order
        };
        put("byte-order", &order.key());
        put("record-by", &self.record_by.key());
        if let Some(o) = self.energy_offset_kev {
            put("depth-origin", &o);
        }
        if let Some(sc) = self.energy_scale_kev {
            put("depth-scale", &sc);
            put("ev-per-chan", &(sc * 1e3));
        }
        if self.energy_offset_kev.is_some() || self.energy_scale_kev.is_some() {
            put("depth-units", &"keV");
            put("depth-name", &"Energy");
        }
        let opt = [
            ("beam-energy", self.beam_energy_kev),
            ("elevation-angle", self.elevation_deg),
            ("azimuth-angle", self.azimuth_deg),
            ("tilt-stage", self.tilt_alpha_deg),
            ("detector-peak-width-ev", self.peak_width_ev),
            ("live-time", self.live_time_s),
        ];
        for (k, v) in opt {
            if let Some(v) = v {
                put(k, &v);
            }
        }
        // A tab, newline or ';' inside a value would end it or start another key.
        let clean = |v: &str| v.replace(|c: char| c.is_control() || c == ';', " ");
        if let Some(sig) = &self.signal {
            put("signal", &clean(sig));
        }
        if let Some(t) = &self.title {
            put("title", &clean(t));
        }
        s
    }
}

/// Splits a header into (lower-case key, value) pairs, accepting HyperSpy's tab-separated form
/// and the INCA `(MLX::key : value)` form.
fn parse_keys(what: &str, text: &str) -> Result<Vec<(String, String)>> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    if lines.first().is_some_and(|l| l.contains('(')) {
        // INCA: the first line is a title; every other line reads `(MLX::key : value)`.
        lines = lines[1..]
            .iter()
            .map(|l| {
                l.replace("(MLX::", "")
                    .replace(" : ", "\t")
                    .replace(" :", "\t")
                    .replace(')', "")
                    .trim()
                    .to_owned()
            })
            .collect();
    }
    let mut keys = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        // Only the line ending goes before splitting: HyperSpy writes empty values as "date\t".
        let line = line
            .split(';')
            .next()
            .unwrap_or("")
            .trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            continue;
        }
        let (k, v) = match line.split_once('\t') {
            Some(kv) => kv,
            None => match line.trim().split_once(char::is_whitespace) {
                Some(kv) => kv,
                None => bail!(
                    "{what}: line {} '{}' is not 'key<TAB>value' (corrupt header?)",
                    n + 1,
                    line.trim()
                ),
            },
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k.chars().any(|c| c.is_control()) || v.chars().any(|c| c.is_control() && c != '\t') {
            bail!(
                "{what}: line {} holds control characters (corrupt or binary header?)",
                n + 1
            );
        }
        let v = if k == "record-by" || k == "data-type" || k == "byte-order" {
            v.to_ascii_lowercase()
        } else {
            v.to_owned()
        };
        keys.push((k, v));
    }
    if keys.is_empty() {
        bail!("{what}: empty header");
    }
    Ok(keys)
}

/// The `.raw` file beside a `.rpl` header (`raw` or `RAW` extension).
pub fn raw_path(rpl: &Path) -> PathBuf {
    let lower = rpl.with_extension("raw");
    if lower.exists() {
        return lower;
    }
    let upper = rpl.with_extension("RAW");
    if upper.exists() {
        upper
    } else {
        lower
    }
}

/// A `.rpl` header and its `.raw` file, opened and checked against each other: the file holds
/// exactly the bytes the header declares.
fn open_raw(rpl: &Path) -> Result<(RippleHeader, std::fs::File, String)> {
    use std::io::Read;
    let what = rpl.display().to_string();
    let (file, _) = super::npy::open_regular(rpl)?;
    // At most one byte past the limit is read, whatever the file claims to be.
    let mut bytes = Vec::new();
    file.take((1 << 20) + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {what}"))?;
    if bytes.len() > 1 << 20 {
        bail!(
            "{what}: {} bytes is far too long for a Ripple header (is this the .raw file?)",
            bytes.len()
        );
    }
    // Latin-1, as HyperSpy reads it, so that any byte decodes.
    let text: String = bytes.iter().map(|&b| b as char).collect();
    let header = RippleHeader::parse(&what, &text)?;
    if header.record_by == RecordBy::DontCare {
        bail!("{what}: record-by dont-care holds a single image, not a spectrum image");
    }
    let raw = raw_path(rpl);
    let raw_what = raw.display().to_string();
    let (raw_file, raw_len) = super::npy::open_regular(&raw).with_context(|| {
        format!("the counts of {what} (a .rpl header needs its .raw file beside it)")
    })?;
    let need = header
        .data_bytes()
        .with_context(|| format!("{what}: width·height·depth·data-length overflows"))?;
    let total = need
        .checked_add(header.offset)
        .with_context(|| format!("{what}: offset too large"))?;
    if raw_len != total {
        let (w, h, d, n) = (
            header.width,
            header.height,
            header.depth,
            header.data_type.size(),
        );
        bail!(
            "{raw_what}: {} bytes, but {what} says offset {} + width {w} · height {h} · depth {d} · \
             data-length {n} = {total} bytes ({})",
            raw_len,
            header.offset,
            if raw_len < total {
                "truncated .raw file"
            } else {
                "the .raw file is longer than the header says; wrong dimensions or data-length?"
            }
        );
    }
    Ok((header, raw_file, raw_what))
}

/// Reads a `.rpl` header and its `.raw` counts as a pixel-major (P×L, row-major pixels) array.
pub fn read(rpl: &Path) -> Result<(RippleHeader, Vec<f64>)> {
    use std::io::Read;
    let (header, raw_file, raw_what) = open_raw(rpl)?;
    let total = header.offset + header.data_bytes().unwrap_or(0);
    crate::limits::need(
        &format!("reading {raw_what}"),
        crate::limits::total(&[
            Some(total),
            crate::limits::bytes(&[header.height, header.width, header.depth], 8),
        ]),
    )?;
    let mut data = Vec::with_capacity(total as usize);
    raw_file
        .take(total)
        .read_to_end(&mut data)
        .with_context(|| format!("cannot read {raw_what}"))?;
    if data.len() as u64 != total {
        bail!("{raw_what}: shorter than its size while being read");
    }
    let body = &data[header.offset as usize..];
    let (size, big) = (header.data_type.size(), header.byte_order.is_big());
    let (h, w, d) = (header.height, header.width, header.depth);
    let mut out = vec![0.0; h * w * d];
    match header.record_by {
        RecordBy::Vector => {
            for (o, b) in out.iter_mut().zip(body.chunks_exact(size)) {
                *o = header.data_type.decode(b, big);
            }
        }
        RecordBy::Image => {
            for (i, b) in body.chunks_exact(size).enumerate() {
                let (l, p) = (i / (h * w), i % (h * w));
                out[p * d + l] = header.data_type.decode(b, big);
            }
        }
        RecordBy::DontCare => unreachable!("rejected above"),
    }
    Ok((header, out))
}

/// Values per slab [`read_counts`] decodes at once: 8 M (64 MB as f64). In the image layout
/// (one energy plane after another) a slab of pixels takes one read per plane, so slabs are
/// large enough that a 1024²×2048 file needs ~500 k reads of 8 kB, not millions of tiny ones.
pub const SLAB: usize = 1 << 23;

/// Reads a `.rpl` header and its `.raw` counts straight into the sparse counts, `slab` values
/// at a time (at least one pixel): a whole dense copy of the file never exists (a 1024²×2048
/// u16 file is 4 GB, 17 GB as f64).
pub fn read_counts(rpl: &Path, slab: usize) -> Result<(RippleHeader, SpectrumImage)> {
    use std::io::Read;
    use std::os::unix::fs::FileExt;
    let what = rpl.display().to_string();
    let (header, raw_file, raw_what) = open_raw(rpl)?;
    let (h, w, d) = (header.height, header.width, header.depth);
    let (size, big) = (header.data_type.size(), header.byte_order.is_big());
    let pixels = h * w;
    let per_slab = (slab / d.max(1)).clamp(1, pixels.max(1));
    crate::limits::need(
        &format!("reading {raw_what}"),
        crate::limits::total(&[
            crate::limits::bytes(&[per_slab, d], size + 8),
            crate::limits::bytes(&[pixels, 1], 8),
        ]),
    )?;
    let mut bytes = vec![0u8; per_slab * d * size];
    let mut vals = vec![0.0; per_slab * d];
    let image = SpectrumImage::from_rows(&what, pixels, d, Some((h, w)), |push| {
        let mut reader = std::io::BufReader::with_capacity(1 << 16, &raw_file);
        if header.record_by == RecordBy::Vector {
            std::io::copy(&mut (&mut reader).take(header.offset), &mut std::io::sink())?;
        }
        let mut p0 = 0;
        while p0 < pixels {
            let n = per_slab.min(pixels - p0);
            let short = || format!("{raw_what}: shorter than its size while being read");
            match header.record_by {
                RecordBy::Vector => {
                    let b = &mut bytes[..n * d * size];
                    reader.read_exact(b).with_context(short)?;
                    for (v, c) in vals.iter_mut().zip(b.chunks_exact(size)) {
                        *v = header.data_type.decode(c, big);
                    }
                }
                _ => {
                    // One energy plane after another: this slab's pixels of each plane.
                    let b = &mut bytes[..n * size];
                    for l in 0..d {
                        let at = header.offset + ((l * pixels + p0) * size) as u64;
                        raw_file.read_exact_at(b, at).with_context(short)?;
                        for (i, c) in b.chunks_exact(size).enumerate() {
                            vals[i * d + l] = header.data_type.decode(c, big);
                        }
                    }
                }
            }
            for row in vals[..n * d].chunks_exact(d) {
                push(row)?;
            }
            p0 += n;
        }
        Ok(())
    })?;
    Ok((header, image))
}

/// Writes `data` (pixel-major, height·width × depth) as `rpl` and the `.raw` beside it, in the
/// header's type, byte order and layout; integer types refuse values they cannot hold exactly.
pub fn write(rpl: &Path, header: &RippleHeader, data: &[f64]) -> Result<()> {
    let what = rpl.display().to_string();
    let (h, w, d) = (header.height, header.width, header.depth);
    if h * w * d != data.len() {
        bail!(
            "{what}: {} values for height {h} x width {w} x depth {d}",
            data.len()
        );
    }
    if header.record_by == RecordBy::DontCare {
        bail!("{what}: record-by dont-care cannot hold a spectrum image; use vector or image");
    }
    let big = header.byte_order.is_big();
    let mut bytes = vec![0u8; header.offset as usize];
    bytes.reserve(data.len() * header.data_type.size());
    let mut put = |p: usize, l: usize| -> Result<()> {
        let v = data[p * d + l];
        header
            .data_type
            .encode(v, big, &mut bytes)
            .with_context(|| {
                format!(
                    "{what}: count {v} at pixel {p}, channel {l} does not fit data-type {} with \
                 data-length {}",
                    header.data_type.kind(),
                    header.data_type.size()
                )
            })
    };
    match header.record_by {
        RecordBy::Vector => {
            for p in 0..h * w {
                for l in 0..d {
                    put(p, l)?;
                }
            }
        }
        RecordBy::Image => {
            for l in 0..d {
                for p in 0..h * w {
                    put(p, l)?;
                }
            }
        }
        RecordBy::DontCare => unreachable!("rejected above"),
    }
    atomic::write_bytes(&rpl.with_extension("raw"), &bytes)?;
    atomic::write_bytes(rpl, header.to_text().as_bytes())
}

/// Opens a `.rpl`/`.raw` pair as a spectrum image with its calibration; `shape`, if given, must
/// match the header's height × width.
pub fn load(rpl: &Path, shape: Option<(usize, usize)>) -> Result<Loaded> {
    let what = rpl.display().to_string();
    let file_shape = {
        let (header, _, _) = open_raw(rpl)?;
        (header.height, header.width)
    };
    if let Some(s) = shape {
        if s != file_shape {
            bail!(
                "{what}: --shape {}x{} does not match the header's height {} x width {}",
                s.0,
                s.1,
                file_shape.0,
                file_shape.1
            );
        }
    }
    // The shape is checked before the counts are read.
    let (header, image) = read_counts(rpl, SLAB)?;
    let loaded = Loaded {
        image,
        meta: FileMeta {
            offset_kev: header.energy_offset_kev,
            scale_kev: header.energy_scale_kev,
            e0_kev: header.beam_energy_kev,
            toa_deg: header.take_off_angle_deg(),
            ..FileMeta::default()
        },
    };
    loaded.check(&what)?;
    Ok(loaded)
}
