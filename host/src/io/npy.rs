//! NumPy `.npy` files (format v1, little-endian, C order) via the npyz crate.

use super::atomic;
use anyhow::{Context, Result};
use npyz::WriterBuilder;
use std::path::Path;

/// Writes a float64 array of the given shape (C order) to `path`, atomically.
pub fn write_f64(path: &Path, shape: &[usize], data: &[f64]) -> Result<()> {
    let expected: usize = shape.iter().product();
    anyhow::ensure!(
        expected == data.len(),
        "internal: shape {shape:?} does not match {} values",
        data.len()
    );
    atomic::write_with(path, |w| {
        let shape: Vec<u64> = shape.iter().map(|&s| s as u64).collect();
        let mut writer = npyz::WriteOptions::<f64>::new()
            .default_dtype()
            .shape(&shape)
            .writer(w)
            .begin_nd()
            .with_context(|| format!("writing {}", path.display()))?;
        writer
            .extend(data.iter().copied())
            .with_context(|| format!("writing {}", path.display()))?;
        writer
            .finish()
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    })
}

/// Opens `path` for reading; refuses what is not a regular file (a device or a pipe could hang
/// the reader or never end).
pub(crate) fn open_regular(path: &Path) -> Result<(std::fs::File, u64)> {
    // Checked before opening: opening a named pipe blocks until someone writes to it.
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        anyhow::bail!("{}: not a regular file", path.display());
    }
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        anyhow::bail!("{}: not a regular file", path.display());
    }
    Ok((file, meta.len()))
}

/// Deepest bracket nesting accepted in a header (numpy's own: 3 for a structured dtype).
const MAX_HEADER_DEPTH: usize = 8;

/// Refuses, before npyz sees it, a header nested deeper than [`MAX_HEADER_DEPTH`] or whose
/// shape's product overflows: npyz multiplies the
/// dimensions unchecked (a panic in debug builds, a wrapped size in release builds).
fn precheck_shape(path: &Path, reader: &mut (impl std::io::Read + std::io::Seek)) -> Result<()> {
    use std::io::{Read, SeekFrom};
    let mut pre = [0u8; 12];
    let n = reader.read(&mut pre)?;
    let text = if n >= 10 && pre.starts_with(b"\x93NUMPY") {
        let (len, start) = if pre[6] == 1 {
            (u16::from_le_bytes([pre[8], pre[9]]) as u64, 10)
        } else {
            (
                u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]]) as u64,
                12,
            )
        };
        let mut h = Vec::new();
        reader.seek(SeekFrom::Start(start))?;
        reader.take(len.min(1 << 20)).read_to_end(&mut h)?;
        String::from_utf8_lossy(&h).into_owned()
    } else {
        String::new()
    };
    reader.seek(SeekFrom::Start(0))?;
    // npyz's header parser backtracks exponentially in the nesting depth of brackets (a
    // 133-byte header with 37 '[' took minutes; found by fuzzing). A .npy header nests at
    // most a few levels (a structured dtype's list of tuples), so deeper ones are refused.
    let mut depth = 0usize;
    for ch in text.chars() {
        match ch {
            '[' | '(' | '{' => {
                depth += 1;
                if depth > MAX_HEADER_DEPTH {
                    anyhow::bail!(
                        "{}: the .npy header nests brackets more than {MAX_HEADER_DEPTH} deep; \
                         not a header numpy writes",
                        path.display()
                    );
                }
            }
            ']' | ')' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    let Some(at) = text.find("'shape'").or_else(|| text.find("\"shape\"")) else {
        return Ok(());
    };
    let rest = &text[at..];
    let (Some(open), Some(close)) = (rest.find('('), rest.find(')')) else {
        return Ok(());
    };
    if close < open {
        return Ok(());
    }
    let mut product = 1u64;
    for part in rest[open + 1..close].split(',') {
        let part = part.trim().trim_end_matches('L');
        if part.is_empty() {
            continue;
        }
        let Ok(d) = part.parse::<u64>() else {
            return Ok(());
        };
        product = product.checked_mul(d).with_context(|| {
            format!(
                "{}: shape {} overflows",
                path.display(),
                &rest[open..=close]
            )
        })?;
    }
    Ok(())
}

/// Checks that the data a header declares is exactly what follows it in a file of `file_len`
/// bytes, before anything is allocated for it; returns the number of values.
fn check_body(
    path: &Path,
    header: &npyz::NpyHeader,
    header_len: u64,
    file_len: u64,
) -> Result<u64> {
    let shape = header.shape();
    let size = match header.dtype() {
        npyz::DType::Plain(t) => t.size_field(),
        npyz::DType::Array(..) | npyz::DType::Record(..) => anyhow::bail!(
            "{}: a structured or sub-array dtype; edxs reads plain integer or float arrays",
            path.display()
        ),
    };
    let n = shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .with_context(|| format!("{}: shape {shape:?} overflows", path.display()))?;
    let need = n
        .checked_mul(size)
        .with_context(|| format!("{}: shape {shape:?} overflows", path.display()))?;
    let have = file_len.saturating_sub(header_len);
    if have < need {
        anyhow::bail!(
            "{}: truncated data: shape {shape:?} needs {need} bytes after the header, the file \
             holds {have}",
            path.display()
        );
    }
    if have > need {
        anyhow::bail!(
            "{}: {} bytes after the data that shape {shape:?} declares; a wrong header?",
            path.display(),
            have - need
        );
    }
    Ok(n)
}

/// Reads a `.npy` file of any integer or float dtype as f64, with its shape.
pub fn read_f64(path: &Path) -> Result<(Vec<usize>, Vec<f64>)> {
    use std::io::{Read, Seek};
    let (file, file_len) = open_regular(path)?;
    let mut reader = std::io::BufReader::new(file);
    precheck_shape(path, &mut reader)?;
    let header = npyz::NpyHeader::from_reader(&mut reader)
        .with_context(|| format!("{}: not a valid .npy file", path.display()))?;
    let header_len = reader.stream_position()?;
    let n = check_body(path, &header, header_len, file_len)?;
    let copies = if header.order() == npyz::Order::Fortran {
        2
    } else {
        1
    };
    crate::limits::need(
        &format!("reading {}", path.display()),
        n.checked_mul(8 * copies)
            .and_then(|b| b.checked_add(file_len)),
    )?;
    reader.rewind()?;
    let mut bytes = Vec::with_capacity(file_len as usize);
    reader
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let npy = npyz::NpyFile::new(&bytes[..])
        .with_context(|| format!("{}: not a valid .npy file", path.display()))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&s| s as usize).collect();
    let fortran = npy.order() == npyz::Order::Fortran;
    let dtype = npy.dtype();
    let descr = match &dtype {
        npyz::DType::Plain(t) => t.to_string(),
        _ => anyhow::bail!("{}: unsupported structured dtype", path.display()),
    };
    let kind = descr.as_bytes().get(1).copied().unwrap_or(b'?');
    let size: usize = descr.get(2..).and_then(|s| s.parse().ok()).unwrap_or(0);
    macro_rules! read_as {
        ($t:ty) => {
            npy.into_vec::<$t>()
                .with_context(|| format!("{}: truncated or corrupt data", path.display()))?
                .into_iter()
                .map(|v| v as f64)
                .collect::<Vec<f64>>()
        };
    }
    let data = match (kind, size) {
        (b'f', 8) => read_as!(f64),
        (b'f', 4) => read_as!(f32),
        (b'i', 8) => read_as!(i64),
        (b'i', 4) => read_as!(i32),
        (b'i', 2) => read_as!(i16),
        (b'i', 1) => read_as!(i8),
        (b'u', 8) => read_as!(u64),
        (b'u', 4) => read_as!(u32),
        (b'u', 2) => read_as!(u16),
        (b'u', 1) => read_as!(u8),
        _ => anyhow::bail!("{}: unsupported dtype '{descr}'", path.display()),
    };
    let n: usize = shape.iter().product();
    anyhow::ensure!(
        data.len() == n,
        "{}: truncated data: {} values for shape {shape:?}",
        path.display(),
        data.len()
    );
    let data = if fortran {
        fortran_to_c(&shape, &data)
    } else {
        data
    };
    Ok((shape, data))
}

/// Values per slab [`stream_rows`] reads at once: 1 M (2 MB of u16, 8 MB decoded as f64),
/// so that memory beyond what the rows are turned into stays bounded whatever the file size.
pub const SLAB: usize = 1 << 20;

/// Reads a C-order `.npy` file of any integer or float dtype one row (last axis) at a time,
/// as f64, without holding the file or the array: `row` gets each row in order. Returns the
/// shape, or `None` (nothing read) for a Fortran-order file, which cannot be streamed by rows.
///
/// Rows are read as raw bytes and decoded in bulk: going through npyz's per-value iterator cost
/// ~140 instructions per value, more than the whole decomposition of a 128² map.
pub fn stream_rows(
    path: &Path,
    check_shape: impl FnOnce(&[usize]) -> Result<()>,
    row: impl FnMut(&[f64]) -> Result<()>,
) -> Result<Option<Vec<usize>>> {
    stream_rows_in_slabs(path, SLAB, check_shape, row)
}

/// [`stream_rows`] reading whole rows in slabs of about `slab` values (at least one row): one
/// read call and one decode per slab.
pub fn stream_rows_in_slabs(
    path: &Path,
    slab: usize,
    check_shape: impl FnOnce(&[usize]) -> Result<()>,
    mut row: impl FnMut(&[f64]) -> Result<()>,
) -> Result<Option<Vec<usize>>> {
    use std::io::{Read, Seek};
    let (file, file_len) = open_regular(path)?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    precheck_shape(path, &mut reader)?;
    let header = npyz::NpyHeader::from_reader(&mut reader)
        .with_context(|| format!("{}: not a valid .npy file", path.display()))?;
    let header_len = reader.stream_position()?;
    check_body(path, &header, header_len, file_len)?;
    if header.order() == npyz::Order::Fortran {
        return Ok(None);
    }
    let shape: Vec<usize> = header.shape().iter().map(|&s| s as usize).collect();
    let ts = match header.dtype() {
        npyz::DType::Plain(t) => t,
        _ => anyhow::bail!("{}: unsupported structured dtype", path.display()),
    };
    let kind = match ts.type_char() {
        npyz::TypeChar::Float => b'f',
        npyz::TypeChar::Int => b'i',
        npyz::TypeChar::Uint => b'u',
        _ => anyhow::bail!("{}: unsupported dtype '{ts}'", path.display()),
    };
    let size = ts.size_field() as usize;
    let big = ts.endianness() == npyz::Endianness::Big;
    // One monomorphised loop per type: a function pointer per value cost more than the read.
    macro_rules! decoder {
        ($t:ty) => {
            |b: &[u8], out: &mut [f64], be: bool| {
                const N: usize = std::mem::size_of::<$t>();
                for (v, c) in out.iter_mut().zip(b.chunks_exact(N)) {
                    let a: [u8; N] = c.try_into().unwrap_or([0; N]);
                    *v = (if be {
                        <$t>::from_be_bytes(a)
                    } else {
                        <$t>::from_le_bytes(a)
                    }) as f64;
                }
            }
        };
    }
    let decode: fn(&[u8], &mut [f64], bool) = match (kind, size) {
        (b'f', 8) => decoder!(f64),
        (b'f', 4) => decoder!(f32),
        (b'i', 8) => decoder!(i64),
        (b'i', 4) => decoder!(i32),
        (b'i', 2) => decoder!(i16),
        (b'i', 1) => decoder!(i8),
        (b'u', 8) => decoder!(u64),
        (b'u', 4) => decoder!(u32),
        (b'u', 2) => decoder!(u16),
        (b'u', 1) => decoder!(u8),
        _ => anyhow::bail!("{}: unsupported dtype '{ts}'", path.display()),
    };
    check_shape(&shape)?;
    let n: usize = shape.iter().product();
    let len = shape.last().copied().unwrap_or(1).max(1);
    let rows = if n == 0 { 0 } else { n / len };
    let per_slab = (slab / len).clamp(1, rows.max(1));
    crate::limits::need(
        &format!("reading {}", path.display()),
        crate::limits::bytes(&[per_slab, len], size + 8),
    )?;
    let mut bytes = vec![0u8; per_slab * len * size];
    let mut vals = vec![0f64; per_slab * len];
    let mut r = 0;
    while r < rows {
        let take = per_slab.min(rows - r);
        reader
            .read_exact(&mut bytes[..take * len * size])
            .with_context(|| {
                format!(
                    "{}: truncated data: fewer than {} of {n} values for shape {shape:?}",
                    path.display(),
                    (r + take) * len
                )
            })?;
        decode(&bytes[..take * len * size], &mut vals[..take * len], big);
        for one in vals[..take * len].chunks_exact(len) {
            row(one)?;
        }
        r += take;
    }
    Ok(Some(shape))
}

/// Reorders a column-major (Fortran) array into row-major order.
fn fortran_to_c(shape: &[usize], data: &[f64]) -> Vec<f64> {
    let n = shape.len();
    let mut f_strides = vec![1usize; n];
    for d in 1..n {
        f_strides[d] = f_strides[d - 1] * shape[d - 1];
    }
    let mut out = Vec::with_capacity(data.len());
    let mut idx = vec![0usize; n];
    for _ in 0..data.len() {
        out.push(
            data[idx
                .iter()
                .zip(&f_strides)
                .map(|(i, s)| i * s)
                .sum::<usize>()],
        );
        for d in (0..n).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}
