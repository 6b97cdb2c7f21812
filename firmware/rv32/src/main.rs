//! edxs-core on an RV32IMAC CPU (QEMU `virt`, `-bios none`, machine mode): the check of
//! `edxs-fw-common`, exit code through semihosting. A panic exits non-zero through
//! `semihosting`'s panic handler, a trap through the exception handler below.
#![no_std]
#![no_main]

use edxs_fw_common::{run, stack::Bounds, Target};

extern "C" {
    // riscv-rt's .stack region: from the end of .bss/heap up to the initial SP.
    static __estack: u32;
    static __sstack: u32;
}

#[riscv_rt::entry]
fn main() -> ! {
    let target = Target {
        name: "RV32IMAC (QEMU virt)",
        triple: "riscv32imac-unknown-none-elf",
        defmt_file: c"target/defmt-rv32.bin",
        stack: Bounds {
            bottom: core::ptr::addr_of!(__estack) as usize,
            top: core::ptr::addr_of!(__sstack) as usize,
        },
    };
    semihosting::process::exit(run(&target))
}

/// Any exception (illegal instruction, misaligned or faulting access) ends the run as a failure.
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
