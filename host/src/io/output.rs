//! The one output path of every subcommand: what `--out` may name, and how a result replaces it.
//!
//! A user's files are sacred, so `--out` may only name a new path, an empty folder or a folder
//! an earlier edxs run wrote (it holds the marker file [`MARKER`]); never a symbolic link, a file,
//! a device, the current folder or a folder holding one of the run's inputs.
//!
//! A result is built in a hidden sibling `.NAME.edxs-tmp-PID` (marker first), every file and
//! folder in it is fsynced, then it takes the place of `NAME`:
//! - no `NAME` yet: one `rename`;
//! - on Linux: one `renameat2(RENAME_EXCHANGE)` swaps the two folders atomically, and the old
//!   result, now under the temporary name, is removed;
//! - where the exchange is not supported (or `EDXS_TEST_SWAP=two-step`): `NAME` is renamed to
//!   `.NAME.edxs-old-PID`, the new folder to `NAME`, and the old one removed. A crash between
//!   the two renames leaves no `NAME`: the next run on the same target (its private `recover` step) renames
//!   the `.edxs-old-` folder back, so the previous result comes back whole.
//!
//! The parent folder is locked (`flock`) while a result is written and swapped, so two runs on
//! one target do not interleave; SIGINT, SIGTERM and SIGHUP remove the temporary folder (after
//! a swap in progress has finished) before the process exits with 128 + the signal number.
//!
//! Test hooks (hidden): `EDXS_TEST_PAUSE_AT=write|before-swap|between-renames` sleeps
//! `EDXS_TEST_PAUSE_SECS` (default 5) seconds at that point, so that tests can send signals there.

use anyhow::{bail, Context, Result};
use std::ffi::OsString;
use std::fs::File;
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, Once};

/// The file that marks a folder as an edxs output, which a later run may replace.
pub const MARKER: &str = ".edxs-output";

/// Paths to remove if a signal stops the run; the lock is held while a swap is in progress.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static HANDLER: Once = Once::new();

/// Removes a file or a folder tree, retrying while a writer still adds entries to it.
fn remove_path(p: &Path) {
    for _ in 0..50 {
        let r = match std::fs::symlink_metadata(p) {
            Err(_) => return,
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(p),
            Ok(_) => std::fs::remove_file(p),
        };
        if r.is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Installs the SIGINT/SIGTERM/SIGHUP clean-up once; before any output exists, signals keep
/// their default action (nothing to clean up).
fn install_handler() {
    HANDLER.call_once(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
            return;
        };
        std::thread::spawn(move || {
            if let Some(sig) = signals.forever().next() {
                // Waits for a swap in progress; the lock stays held until the process ends.
                let pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
                for p in pending.iter() {
                    remove_path(p);
                }
                eprintln!(
                    "edxs: interrupted by signal {sig}; the previous output is left as it was"
                );
                std::process::exit(128 + sig);
            }
        });
    });
}

/// Registers `p` for removal on a signal.
pub(crate) fn register(p: &Path) {
    install_handler();
    PENDING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(p.to_path_buf());
}

/// Forgets `p` (it was renamed into place or removed).
pub(crate) fn unregister(p: &Path) {
    PENDING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|q| q != p);
}

/// Sleeps at a named point when the tests ask for it.
pub(crate) fn test_pause(point: &str) {
    if std::env::var("EDXS_TEST_PAUSE_AT").is_ok_and(|p| p == point) {
        let secs: f64 = std::env::var("EDXS_TEST_PAUSE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5.0);
        eprintln!("edxs: test pause at {point}");
        std::thread::sleep(std::time::Duration::from_secs_f64(secs));
    }
}

/// `path` with `..`/`.` resolved against the real folders that exist (the rest kept as written).
fn resolve(path: &Path) -> Result<PathBuf> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .context("cannot read the current folder")?
            .join(path)
    };
    if let Ok(c) = abs.canonicalize() {
        return Ok(c);
    }
    // Not there yet: resolve the longest existing ancestor, then append the rest.
    let mut tail = Vec::new();
    let mut head = abs.as_path();
    loop {
        if let Ok(c) = head.canonicalize() {
            let mut out = c;
            for part in tail.iter().rev() {
                out.push(part);
            }
            return Ok(out);
        }
        match (head.parent(), head.file_name()) {
            (Some(parent), Some(name)) => {
                tail.push(name.to_os_string());
                head = parent;
            }
            _ => return Ok(abs),
        }
    }
}

/// What is at `path` now, in words, if it is not something edxs may replace.
fn refusal(path: &Path) -> Option<String> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let ft = meta.file_type();
    if ft.is_symlink() {
        return Some("is a symbolic link; edxs does not write through links".into());
    }
    if !ft.is_dir() {
        use std::os::unix::fs::FileTypeExt;
        let kind = if ft.is_block_device() || ft.is_char_device() {
            "a device"
        } else if ft.is_fifo() {
            "a named pipe"
        } else if ft.is_socket() {
            "a socket"
        } else {
            "a file"
        };
        return Some(format!(
            "is {kind}, not an edxs output folder; name a new folder"
        ));
    }
    if is_output(path) {
        return None;
    }
    match std::fs::read_dir(path).map(|mut e| e.next().is_none()) {
        Ok(true) => None,
        Ok(false) => Some(format!(
            "is a folder edxs did not write (no {MARKER} in it); edxs only replaces its own \
             outputs: name a new folder"
        )),
        Err(e) => Some(format!("cannot be read: {e}")),
    }
}

/// Whether `dir` is a folder an edxs run wrote.
pub fn is_output(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir.join(MARKER)).is_ok_and(|m| m.is_file())
}

/// Checks that `out` may receive the output folder of a run that reads `inputs`, after putting
/// right what an interrupted run left beside it; the message names `flag` and the path.
pub fn check_dir(flag: &str, out: &Path, inputs: &[&Path]) -> Result<()> {
    if let (Some(parent), Some(name)) = (out.parent(), out.file_name()) {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if parent.is_dir() {
            let _lock = Lock::take(parent)?;
            recover(parent, &name.to_os_string(), out)?;
        }
    }
    check_unlocked(flag, out, inputs)
}

fn check_unlocked(flag: &str, out: &Path, inputs: &[&Path]) -> Result<()> {
    let shown = out.display();
    if out.as_os_str().is_empty() {
        bail!("{flag}: empty path");
    }
    if out.components().next_back().is_some_and(|c| {
        matches!(
            c,
            Component::CurDir | Component::ParentDir | Component::RootDir
        )
    }) {
        bail!("{flag} {shown}: name a folder of its own, not '.', '..' or '/'");
    }
    if let Some(a) = out
        .ancestors()
        .skip(1)
        .find(|a| !a.as_os_str().is_empty() && std::fs::symlink_metadata(a).is_ok())
    {
        if !a.is_dir() {
            bail!("{flag} {shown}: {} is not a folder", a.display());
        }
    }
    let target = resolve(out)?;
    if let Ok(cwd) = std::env::current_dir().and_then(|c| c.canonicalize()) {
        if cwd.starts_with(&target) {
            bail!("{flag} {shown} is the current folder or holds it; name another folder");
        }
    }
    for input in inputs {
        let inp = resolve(input)?;
        if inp.starts_with(&target) {
            bail!(
                "{flag} {shown} holds the input {}; edxs never replaces its own input: name \
                 another folder",
                input.display()
            );
        }
    }
    if let Some(why) = refusal(out) {
        bail!("{flag} {shown} {why}");
    }
    Ok(())
}

/// Checks a single-file output (`edxs model --out G.npy`): a new path, or a regular file that
/// `previous` recognises as an earlier edxs output; never a link, a folder or a device.
pub fn check_file(
    flag: &str,
    out: &Path,
    inputs: &[&Path],
    previous: impl Fn(&Path) -> bool,
) -> Result<()> {
    let shown = out.display();
    if out.as_os_str().is_empty() || out.file_name().is_none() {
        bail!("{flag} {shown}: name a file");
    }
    if let Ok(meta) = std::fs::symlink_metadata(out) {
        let ft = meta.file_type();
        if ft.is_symlink() {
            bail!("{flag} {shown} is a symbolic link; edxs does not write through links");
        }
        if !ft.is_file() {
            let what = if ft.is_dir() {
                "a folder"
            } else {
                "not a regular file (a device?)"
            };
            bail!("{flag} {shown} is {what}; name a file");
        }
        if !previous(out) {
            bail!("{flag} {shown} exists and is not an earlier edxs output; name a new file");
        }
    }
    let target = resolve(out)?;
    for input in inputs {
        if resolve(input)? == target {
            bail!(
                "{flag} {shown} is the input {}; name another file",
                input.display()
            );
        }
    }
    Ok(())
}

/// An exclusive `flock` on the folder that holds the target, released when dropped.
struct Lock {
    _file: File,
}

impl Lock {
    fn take(parent: &Path) -> Result<Lock> {
        use std::os::fd::AsRawFd;
        let f = File::open(parent).with_context(|| format!("cannot open {}", parent.display()))?;
        let fd = f.as_raw_fd();
        // SAFETY: flock on a descriptor we own; no memory is passed.
        if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            eprintln!(
                "edxs: note: another edxs run is writing in {}; waiting for it",
                parent.display()
            );
            // SAFETY: as above.
            if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
                bail!(
                    "cannot lock {}: {}",
                    parent.display(),
                    std::io::Error::last_os_error()
                );
            }
        }
        Ok(Lock { _file: f })
    }
}

/// The folder that holds `out` (created if missing) and `out`'s file name.
fn parent_and_name(out: &Path) -> Result<(PathBuf, OsString)> {
    let name = out
        .file_name()
        .with_context(|| format!("{}: name a folder", out.display()))?
        .to_os_string();
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| {
        format!(
            "{}: cannot create the folder {}",
            out.display(),
            parent.display()
        )
    })?;
    Ok((parent, name))
}

/// `.NAME.edxs-KIND-`: the prefix of this target's temporary siblings.
fn sibling_prefix(name: &OsString, kind: &str) -> OsString {
    let mut s = OsString::from(".");
    s.push(name);
    s.push(format!(".edxs-{kind}-"));
    s
}

fn sibling(parent: &Path, name: &OsString, kind: &str) -> PathBuf {
    let mut s = sibling_prefix(name, kind);
    s.push(std::process::id().to_string());
    parent.join(s)
}

/// Puts right what a killed run left beside `out` (caller holds the lock): an `.edxs-old-`
/// folder with no `out` is the previous result and goes back; other leftovers are removed.
/// Only folders carrying the marker are touched.
fn recover(parent: &Path, name: &OsString, out: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Ok(());
    };
    let (tmp, old) = (sibling_prefix(name, "tmp"), sibling_prefix(name, "old"));
    let starts =
        |e: &OsString, p: &OsString| e.as_encoded_bytes().starts_with(p.as_encoded_bytes());
    let mut olds = Vec::new();
    let mut tmps = Vec::new();
    for e in entries.flatten() {
        let n = e.file_name();
        if starts(&n, &old) {
            olds.push(e.path());
        } else if starts(&n, &tmp) {
            tmps.push(e.path());
        }
    }
    for o in olds {
        if !is_output(&o) {
            continue;
        }
        if std::fs::symlink_metadata(out).is_err() {
            std::fs::rename(&o, out).with_context(|| {
                format!("cannot restore {} from {}", out.display(), o.display())
            })?;
            eprintln!(
                "edxs: note: {} restored from an interrupted run's {}",
                out.display(),
                o.display()
            );
        } else {
            remove_path(&o);
        }
    }
    for t in tmps {
        if is_output(&t) || t.is_file() {
            remove_path(&t);
        }
    }
    Ok(())
}

/// Flushes every file and folder under `dir` to the disk.
fn sync_tree(dir: &Path) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let e = e?;
        let p = e.path();
        if e.file_type()?.is_dir() {
            sync_tree(&p)?;
        } else {
            File::open(&p)
                .and_then(|f| f.sync_all())
                .with_context(|| format!("cannot flush {}", p.display()))?;
        }
    }
    File::open(dir)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot flush {}", dir.display()))
}

/// Swaps `a` and `b` atomically (Linux `renameat2(RENAME_EXCHANGE)`); false where unsupported.
fn exchange(a: &Path, b: &Path) -> Result<bool> {
    if std::env::var("EDXS_TEST_SWAP").is_ok_and(|v| v == "two-step") {
        return Ok(false);
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let ca = std::ffi::CString::new(a.as_os_str().as_bytes())?;
        let cb = std::ffi::CString::new(b.as_os_str().as_bytes())?;
        // SAFETY: two NUL-terminated paths that live across the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                ca.as_ptr(),
                libc::AT_FDCWD,
                cb.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if r == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => Ok(false),
            _ => Err(e).with_context(|| format!("cannot swap {} and {}", a.display(), b.display())),
        }
    }
    #[cfg(not(target_os = "linux"))]
    Ok(false)
}

/// Writes the output folder `out` of a run reading `inputs`: `fill` writes the files into the
/// folder it is given; `out` changes only if `fill` succeeds, and then in one step.
pub fn write_dir(
    flag: &str,
    out: &Path,
    inputs: &[&Path],
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let (parent, name) = parent_and_name(out)?;
    let _lock = Lock::take(&parent)?;
    recover(&parent, &name, out)?;
    check_unlocked(flag, out, inputs)?;
    let tmp = sibling(&parent, &name, "tmp");
    remove_path(&tmp);
    register(&tmp);
    let built = (|| -> Result<()> {
        std::fs::create_dir(&tmp)
            .with_context(|| format!("cannot create the folder {}", tmp.display()))?;
        std::fs::write(
            tmp.join(MARKER),
            "This folder was written by edxs; a later edxs run may replace it.\n",
        )
        .with_context(|| format!("cannot write in {}", tmp.display()))?;
        test_pause("write");
        fill(&tmp)?;
        sync_tree(&tmp)?;
        test_pause("before-swap");
        swap(&parent, &name, &tmp, out)
    })();
    if built.is_err() {
        remove_path(&tmp);
        unregister(&tmp);
    }
    built
}

/// Puts the finished folder `tmp` in the place of `out`.
fn swap(parent: &Path, name: &OsString, tmp: &Path, out: &Path) -> Result<()> {
    // A signal now waits until the swap is over, then removes what is registered.
    let mut pending = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    let sync_parent = || File::open(parent).and_then(|f| f.sync_all());
    if std::fs::symlink_metadata(out).is_err() {
        std::fs::rename(tmp, out)
            .with_context(|| format!("cannot move the result to {}", out.display()))?;
        pending.retain(|p| p != tmp);
        let _ = sync_parent();
        return Ok(());
    }
    if exchange(tmp, out)? {
        // `tmp` now holds the previous result.
        let _ = sync_parent();
        drop(pending);
        remove_path(tmp);
        unregister(tmp);
        return Ok(());
    }
    let old = sibling(parent, name, "old");
    std::fs::rename(out, &old).with_context(|| format!("cannot move {} aside", out.display()))?;
    test_pause("between-renames");
    if let Err(e) = std::fs::rename(tmp, out) {
        let _ = std::fs::rename(&old, out);
        return Err(e).with_context(|| format!("cannot move the result to {}", out.display()));
    }
    pending.retain(|p| p != tmp);
    pending.push(old.clone());
    let _ = sync_parent();
    drop(pending);
    remove_path(&old);
    unregister(&old);
    Ok(())
}

/// Runs `write` (atomic file writes next to `out`) under the lock of `out`'s folder, so that
/// two runs writing the same files do not interleave.
pub fn write_file(out: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        bail!(
            "{}: the folder {} does not exist",
            out.display(),
            parent.display()
        );
    }
    let _lock = Lock::take(parent)?;
    write(out)
}
