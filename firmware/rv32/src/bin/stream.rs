//! The streaming example on an RV32IMAC CPU (QEMU `virt`, machine mode): the check of
//! `edxs-fw-common::stream_check`, instructions from `minstret`, which QEMU runs from its
//! instruction counter when started with `-icount shift=0` (run.sh does).
#![no_std]
#![no_main]

use core::arch::asm;
use edxs_fw_common::stream_check::{run, Counter};
use edxs_fw_common::streaming::Meter;
use edxs_fw_common::{stack::Bounds, Target};

extern "C" {
    static __estack: u32;
    static __sstack: u32;
}

/// `minstret`/`minstreth`, read so that a carry between the halves cannot tear the value.
fn instret() -> u64 {
    loop {
        let (hi, lo, hi2): (u32, u32, u32);
        // SAFETY: reading the machine instruction counter has no side effect.
        unsafe {
            asm!("csrr {0}, minstreth", "csrr {1}, minstret", "csrr {2}, minstreth",
                 out(reg) hi, out(reg) lo, out(reg) hi2)
        };
        if hi == hi2 {
            return ((hi as u64) << 32) | lo as u64;
        }
    }
}

struct Instret;

impl Meter for Instret {
    fn now(&mut self) -> u64 {
        instret()
    }
}

/// Counter units for a loop of exactly `2 * n` instructions (`addi`, `bnez`).
fn calibrate(n: u32) -> u64 {
    let t = instret();
    // SAFETY: a register-only countdown loop.
    unsafe { asm!("1: addi {0}, {0}, -1", "bnez {0}, 1b", inout(reg) n => _) };
    instret() - t
}

// The same source also builds for riscv32imafc-unknown-none-elf (run.sh does, to price the
// soft float): the F extension then does the f32 arithmetic.
#[cfg(not(hard_float))]
const NAME: &str = "RV32IMAC (QEMU virt)";
#[cfg(not(hard_float))]
const TRIPLE: &str = "riscv32imac-unknown-none-elf";
#[cfg(not(hard_float))]
const TAG: &str = "rv32";
#[cfg(hard_float)]
const NAME: &str = "RV32IMAFC (QEMU virt), hardware f32";
#[cfg(hard_float)]
const TRIPLE: &str = "riscv32imafc-unknown-none-elf";
#[cfg(hard_float)]
const TAG: &str = "rv32f";

#[riscv_rt::entry]
fn main() -> ! {
    let target = Target {
        name: NAME,
        triple: TRIPLE,
        defmt_file: c"target/defmt-rv32-stream.bin",
        stack: Bounds {
            bottom: core::ptr::addr_of!(__estack) as usize,
            top: core::ptr::addr_of!(__sstack) as usize,
        },
    };
    let units = calibrate(100_000);
    semihosting::println!(
        "  counter check: minstret counts {units} over a loop of 200000 instructions (+2 reads)"
    );
    let counter = Counter {
        name: "minstret (QEMU -icount shift=0: exact)",
        meter: &mut Instret,
    };
    semihosting::process::exit(run(&target, TAG, counter))
}

/// Any exception ends the run as a failure.
#[export_name = "ExceptionHandler"]
fn exception_handler(frame: &riscv_rt::TrapFrame) -> ! {
    semihosting::eprintln!(
        "FAIL: exception, mcause {:#x}, mepc {:#010x}, ra {:#010x}",
        riscv::register::mcause::read().bits(),
        riscv::register::mepc::read(),
        frame.ra
    );
    semihosting::process::exit(1)
}
