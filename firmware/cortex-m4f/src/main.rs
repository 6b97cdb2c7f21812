//! edxs-core on a Cortex-M4F (QEMU `mps2-an386`): the check of `edxs-fw-common`, exit code
//! through semihosting. A panic exits non-zero through `semihosting`'s panic handler, a fault
//! through the HardFault handler below.
#![no_std]
#![no_main]

// Linked for its critical-section implementation (the defmt logger needs one).
use cortex_m as _;
use cortex_m_rt::{entry, exception, ExceptionFrame};
use edxs_fw_common::{run, stack::Bounds, Target};

extern "C" {
    // cortex-m-rt's stack region: from the end of .bss/.uninit up to the initial SP.
    static _stack_end: u32;
    static _stack_start: u32;
}

#[entry]
fn main() -> ! {
    let target = Target {
        name: "Cortex-M4F (QEMU mps2-an386)",
        triple: "thumbv7em-none-eabihf",
        defmt_file: c"target/defmt-cortex-m4f.bin",
        stack: Bounds {
            bottom: core::ptr::addr_of!(_stack_end) as usize,
            top: core::ptr::addr_of!(_stack_start) as usize,
        },
    };
    semihosting::process::exit(run(&target))
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    semihosting::eprintln!("FAIL: HardFault at pc {:#010x}", frame.pc());
    semihosting::process::exit(1)
}
