//! The memory plan: what a command will allocate, computed with checked arithmetic before it
//! allocates, against what the machine has (or `--max-memory`), so that a huge shape, a lying
//! header or an absurd option is refused in one line instead of aborting the process.

use anyhow::{bail, Result};
use std::path::Path;
use std::sync::OnceLock;

static MAX_MEMORY: OnceLock<u64> = OnceLock::new();

/// Sets the budget given by `--max-memory` (bytes); later calls are ignored.
pub fn set_max_memory(bytes: u64) {
    let _ = MAX_MEMORY.set(bytes);
}

/// Parses `--max-memory` sizes: bytes, or with a K/M/G/T suffix (powers of 1024).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                'B' => 1,
                _ => return Err(format!("'{s}': expected a size such as 512M or 8G")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}': expected a size such as 512M or 8G"))?;
    let bytes = v * mult as f64;
    if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("'{s}': expected a size of at least 1 byte"));
    }
    Ok(bytes as u64)
}

/// Memory this run may use: `--max-memory` if given, else the kernel's MemAvailable.
pub fn available() -> Option<u64> {
    if let Some(m) = MAX_MEMORY.get() {
        return Some(*m);
    }
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// Bytes in human units.
pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.1} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{bytes} bytes")
    }
}

/// `count` values of `size` bytes, or None if that overflows.
pub fn bytes(dims: &[usize], size: usize) -> Option<u64> {
    dims.iter()
        .try_fold(size as u64, |acc, &d| acc.checked_mul(d as u64))
}

/// The sum of several allocations, or None if any part or the total overflows.
pub fn total(parts: &[Option<u64>]) -> Option<u64> {
    parts
        .iter()
        .try_fold(0u64, |acc, p| p.and_then(|p| acc.checked_add(p)))
}

/// Refuses a plan of `need` bytes (None: beyond counting) that does not fit in memory.
pub fn need(what: &str, need: Option<u64>) -> Result<()> {
    let Some(need) = need else {
        bail!("{what} needs more memory than can be counted (sizes overflow 64 bits)");
    };
    // usize may be narrower than u64: such a plan cannot be allocated at all.
    if usize::try_from(need).is_err() || need > isize::MAX as u64 {
        bail!(
            "{what} needs {}, more than this machine can address",
            human(need)
        );
    }
    if let Some(avail) = available() {
        if need > avail {
            bail!(
                "{what} needs {}, {} available (or raise --max-memory)",
                human(need),
                human(avail)
            );
        }
    }
    Ok(())
}

/// Refuses writing `need` bytes into the folder holding `path` if the disk lacks the room.
pub fn disk(what: &str, path: &Path, need: Option<u64>) -> Result<()> {
    let Some(need) = need else {
        bail!("{what} would write more bytes than can be counted (sizes overflow 64 bits)");
    };
    let dir = path
        .ancestors()
        .find(|a| !a.as_os_str().is_empty() && a.is_dir())
        .unwrap_or(Path::new("."));
    if let Some(free) = free_disk(dir) {
        if need > free {
            bail!(
                "{what} needs {} of disk in {}, {} free",
                human(need),
                dir.display(),
                human(free)
            );
        }
    }
    Ok(())
}

fn free_disk(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the zeroed struct we own from a NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    (st.f_bavail as u64).checked_mul(st.f_frsize as u64)
}

/// Caps `--threads` at the cores this process may use (0 stays 0: one per core), with a note:
/// more threads than cores only add overhead, and results do not depend on the count.
pub fn threads(requested: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cap = cores.max(1);
    if requested > cap {
        eprintln!("edxs: note: --threads {requested} capped at {cap}, the cores available");
        cap
    } else {
        requested
    }
}

/// The memory a decomposition of `p` pixels × `l` channels into `k` phases over `m` model
/// columns needs: counts (`nnz` non-zeros), G, W, H and their update workspaces, per thread.
pub fn decompose(what: &str, l: usize, m: usize, k: usize, p: usize, threads: usize) -> Result<()> {
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    let plan = total(&[
        bytes(&[l, m], 8 * 3),
        bytes(&[m, k], 8 * 4),
        // H, its update, its start, the Laplacian term and the written copy.
        bytes(&[k, p], 8 * 6),
        bytes(&[l, k], 8 * 4),
        bytes(&[threads, l, k], 8 * 2),
        bytes(&[threads, m, k], 8 * 2),
    ]);
    need(what, plan)
}
