//! The streaming example on a Cortex-M4F (QEMU `mps2-an386`): the check of
//! `edxs-fw-common::stream_check`, instructions from SysTick on the core clock. QEMU 7.2 does
//! not model the DWT cycle counter; with `-icount shift=0` (run.sh) every instruction advances
//! virtual time by 1 ns, so SysTick ticks every 40 instructions at the board's 25 MHz, a
//! factor calibrated below on a loop of known length. Each reading is good to ±1 tick.
#![no_std]
#![no_main]

use core::arch::asm;
use cortex_m::peripheral::{syst::SystClkSource, DWT, SYST};
use cortex_m_rt::{entry, exception, ExceptionFrame};
use edxs_fw_common::stream_check::{run, Counter};
use edxs_fw_common::streaming::Meter;
use edxs_fw_common::{stack::Bounds, Target};

extern "C" {
    static _stack_end: u32;
    static _stack_start: u32;
}

const RELOAD: u32 = 0x00ff_ffff;
/// Instructions of the calibration loop (`subs`, `bne` per turn).
const CAL_INSNS: u64 = 2_000_000;

/// SysTick counting down from 2²⁴ − 1, unwrapped into a 64-bit tick count; read more often
/// than once per wrap (671 M instructions).
struct SysTick {
    last: u32,
    ticks: u64,
    /// Ticks of the calibration loop.
    cal: u64,
}

impl SysTick {
    fn ticks(&mut self) -> u64 {
        let now = SYST::get_current();
        self.ticks += (self.last.wrapping_sub(now) & RELOAD) as u64;
        self.last = now;
        self.ticks
    }
}

impl Meter for SysTick {
    fn now(&mut self) -> u64 {
        // Instructions, at the calibrated rate (rounded to the nearest).
        (self.ticks() * CAL_INSNS + self.cal / 2) / self.cal.max(1)
    }
}

#[entry]
fn main() -> ! {
    let target = Target {
        name: "Cortex-M4F (QEMU mps2-an386)",
        triple: "thumbv7em-none-eabihf",
        defmt_file: c"target/defmt-cortex-m4f-stream.bin",
        stack: Bounds {
            bottom: core::ptr::addr_of!(_stack_end) as usize,
            top: core::ptr::addr_of!(_stack_start) as usize,
        },
    };
    let mut cp = cortex_m::Peripherals::take().unwrap();
    cp.SYST.set_clock_source(SystClkSource::Core);
    cp.SYST.set_reload(RELOAD);
    cp.SYST.clear_current();
    cp.SYST.enable_counter();
    let mut st = SysTick {
        last: SYST::get_current(),
        ticks: 0,
        cal: 1,
    };
    // The DWT cycle counter would be the natural choice; run.sh shows whether QEMU models it.
    cp.DCB.enable_trace();
    cp.DWT.enable_cycle_counter();
    let c0 = DWT::cycle_count();
    let t = st.ticks();
    // SAFETY: a register-only countdown loop.
    unsafe { asm!("1: subs {0}, #1", "bne 1b", inout(reg) (CAL_INSNS / 2) as u32 => _) };
    st.cal = st.ticks() - t;
    let dwt = DWT::cycle_count().wrapping_sub(c0);
    semihosting::println!(
        "  counter check: SysTick counts {} ticks over a loop of {CAL_INSNS} instructions ({} per \
         tick); DWT CYCCNT advanced by {dwt}",
        st.cal,
        CAL_INSNS / st.cal.max(1)
    );
    let counter = Counter {
        name: "SysTick (QEMU -icount shift=0, calibrated; +-1 tick per reading)",
        meter: &mut st,
    };
    semihosting::process::exit(run(&target, "m4f", counter))
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    semihosting::eprintln!("FAIL: HardFault at pc {:#010x}", frame.pc());
    semihosting::process::exit(1)
}
