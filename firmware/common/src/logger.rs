//! The defmt global logger: frames go to a host file over semihosting.
//!
//! `defmt-semihosting` writes frames to the semihosting console, where QEMU mixes them with the
//! text report on one stream; a file keeps the binary frames apart for `defmt-print`. The
//! structure follows `defmt-semihosting` (critical section held from acquire to release).

use core::cell::UnsafeCell;
use core::ffi::CStr;
use core::sync::atomic::{AtomicBool, Ordering};
use semihosting::fs::File;
use semihosting::io::Write as _;

#[defmt::global_logger]
struct Logger;

struct Sink {
    taken: AtomicBool,
    cs_restore: UnsafeCell<critical_section::RestoreState>,
    encoder: UnsafeCell<defmt::Encoder>,
    file: UnsafeCell<Option<File>>,
}

// SAFETY: every access to the cells happens inside the critical section held by `taken`.
unsafe impl Sync for Sink {}

static SINK: Sink = Sink {
    taken: AtomicBool::new(false),
    cs_restore: UnsafeCell::new(critical_section::RestoreState::invalid()),
    encoder: UnsafeCell::new(defmt::Encoder::new()),
    file: UnsafeCell::new(None),
};

/// Opens (truncates) the host file the frames go to; until then, and if this fails, frames
/// are dropped. Returns whether the file is open.
pub fn open(path: &CStr) -> bool {
    critical_section::with(|_| {
        if SINK.taken.load(Ordering::Relaxed) {
            return false;
        }
        // SAFETY: inside a critical section and the logger is not acquired.
        let file = unsafe { &mut *SINK.file.get() };
        *file = File::create(path).ok();
        file.is_some()
    })
}

fn emit(file: &mut Option<File>, bytes: &[u8]) {
    if let Some(f) = file {
        // A lost frame must not stop the computation being logged.
        let _ = f.write_all(bytes);
    }
}

// SAFETY: acquire/release bracket a critical section, and `taken` rejects re-entry.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        // SAFETY: paired with the release in `release`.
        let restore = unsafe { critical_section::acquire() };
        if SINK.taken.load(Ordering::Relaxed) {
            panic!("defmt logger taken reentrantly");
        }
        SINK.taken.store(true, Ordering::Relaxed);
        // SAFETY: inside the critical section, exclusive through `taken`.
        unsafe {
            SINK.cs_restore.get().write(restore);
            let file = &mut *SINK.file.get();
            (*SINK.encoder.get()).start_frame(|b| emit(file, b));
        }
    }

    unsafe fn flush() {
        // Semihosting writes are synchronous: nothing is buffered on the target.
    }

    unsafe fn release() {
        // SAFETY: called by defmt after `acquire`, still inside the critical section.
        unsafe {
            let file = &mut *SINK.file.get();
            (*SINK.encoder.get()).end_frame(|b| emit(file, b));
            let restore = SINK.cs_restore.get().read();
            SINK.taken.store(false, Ordering::Relaxed);
            critical_section::release(restore);
        }
    }

    unsafe fn write(bytes: &[u8]) {
        // SAFETY: called by defmt between `acquire` and `release`.
        unsafe {
            let file = &mut *SINK.file.get();
            (*SINK.encoder.get()).write(bytes, |b| emit(file, b));
        }
    }
}
