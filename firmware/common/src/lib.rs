//! The target-independent part of the edxs firmware examples: decode the embedded counts, run
//! the unmodified `edxs-core` solver in f32 from a fixed start, compare W and H with the host's
//! reference and report over semihosting. The per-target binaries only start the CPU and exit.
#![no_std]
#![warn(missing_docs)]

pub mod data;
pub mod logger;
pub mod pipeline;
pub mod stack;
pub mod stream_check;
pub mod streaming;

use core::ffi::CStr;
use core::sync::atomic::{AtomicBool, Ordering};
use edxs_core::Counts;
use pipeline::{CHANNELS, G_SCRATCH_LEN, ITERATIONS, K, M, PIXELS, WORKSPACE_LEN};
use semihosting::println;

/// Largest accepted difference to the host, relative to each matrix's largest entry.
pub const TOLERANCE: f64 = 1e-4;

/// What a binary tells the check about its target.
pub struct Target {
    /// Human-readable CPU and machine.
    pub name: &'static str,
    /// Rust target triple.
    pub triple: &'static str,
    /// Host file (relative to QEMU's working directory) that receives the defmt frames.
    pub defmt_file: &'static CStr,
    /// The stack region, from the runtime's linker symbols.
    pub stack: stack::Bounds,
}

/// Every buffer of the run, in one static so that its size shows up in .bss.
struct Statics {
    g: [f32; CHANNELS * M],
    g_scratch: [f32; G_SCRATCH_LEN],
    w: [f32; M * K],
    h: [f32; K * PIXELS],
    workspace: [f32; WORKSPACE_LEN],
    indptr: [usize; PIXELS + 1],
    indices: [u32; data::NNZ],
    values: [f32; data::NNZ],
}

static mut STATICS: Statics = Statics {
    g: [0.0; CHANNELS * M],
    g_scratch: [0.0; G_SCRATCH_LEN],
    w: [0.0; M * K],
    h: [0.0; K * PIXELS],
    workspace: [0.0; WORKSPACE_LEN],
    indptr: [0; PIXELS + 1],
    indices: [0; data::NNZ],
    values: [0.0; data::NNZ],
};

static TAKEN: AtomicBool = AtomicBool::new(false);

fn take_statics() -> Option<&'static mut Statics> {
    if TAKEN.swap(true, Ordering::AcqRel) {
        return None;
    }
    // SAFETY: the flag hands out the only reference, once.
    Some(unsafe { &mut *core::ptr::addr_of_mut!(STATICS) })
}

/// Runs the check and returns the process exit code (0: W and H match the host).
pub fn run(target: &Target) -> i32 {
    // SAFETY: called first thing from `main`, interrupts off, with the runtime's stack bounds.
    unsafe { stack::paint(&target.stack) };
    println!(
        "edxs-core on {} ({}), f32, no heap",
        target.name, target.triple
    );
    if !logger::open(target.defmt_file) {
        println!(
            "  (defmt frames dropped: cannot open {:?})",
            target.defmt_file
        );
    }
    let Some(s) = take_statics() else {
        println!("FAIL: buffers already taken");
        return 1;
    };
    data::decode_counts(&mut s.indptr, &mut s.indices, &mut s.values);
    let counts = Counts::Sparse {
        channels: CHANNELS,
        pixels: PIXELS,
        indptr: &s.indptr,
        indices: &s.indices,
        values: &s.values,
    };
    println!(
        "  data: {}x{} pixels, {} channels, {} non-zeros, {:.2} counts/pixel",
        pipeline::ROWS,
        pipeline::COLS,
        CHANNELS,
        data::NNZ,
        pipeline::total_counts(&counts) / PIXELS as f64
    );
    println!(
        "  model: Z = {:?} + 2 bremsstrahlung columns, no absorption; K = {}, {} iterations, \
         mu {}, lambda {}, eps_reg {}",
        pipeline::ELEMENTS,
        K,
        ITERATIONS,
        pipeline::MU,
        pipeline::LAMBDA_L,
        pipeline::EPSILON_REG
    );
    let buffers = pipeline::Buffers {
        g: &mut s.g,
        g_scratch: &mut s.g_scratch,
        w: &mut s.w,
        h: &mut s.h,
        workspace: &mut s.workspace,
    };
    let summary = match pipeline::solve(&counts, buffers, &mut |_| {}) {
        Ok(summary) => summary,
        Err(e) => {
            defmt::error!("solver: {}", e);
            println!("FAIL: {e}");
            return 1;
        }
    };
    defmt::info!("{}", summary);
    let (initial_ref, final_ref) = data::loss_ref();
    println!(
        "  loss {:.6} -> {:.6} after {} iterations (host: {:.6} -> {:.6})",
        summary.initial_loss, summary.final_loss, summary.iterations, initial_ref, final_ref
    );
    let dw = data::relative_max_diff(&s.w, data::w_ref());
    let dh = data::relative_max_diff(&s.h, data::h_ref());
    println!("  W vs host: max |diff| / max |W| = {dw:.2e} (limit {TOLERANCE:.0e})");
    println!("  H vs host: max |diff| / max |H| = {dh:.2e} (limit {TOLERANCE:.0e})");
    println!(
        "  RAM: buffers {} B, stack used {} B of {} B",
        core::mem::size_of::<Statics>(),
        stack::used(&target.stack),
        target.stack.top - target.stack.bottom
    );
    let pass = summary.iterations == ITERATIONS && dw <= TOLERANCE && dh <= TOLERANCE;
    println!("{}", if pass { "PASS" } else { "FAIL" });
    if pass {
        0
    } else {
        1
    }
}
