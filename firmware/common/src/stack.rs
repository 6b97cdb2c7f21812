//! Stack high-water mark: paint the unused stack with a pattern, look for the deepest overwrite.
//!
//! The RAM figure of the budget needs the stack the run really used, which no section header
//! shows.

const PATTERN: u32 = 0x5A5A_A5A5;
/// Bytes left unpainted below the painter's own frame, for the painting loop itself.
const MARGIN: usize = 256;

/// The stack region: `bottom` is its lowest address, `top` where the stack pointer starts.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Lowest address of the stack region (end of .bss/.uninit).
    pub bottom: usize,
    /// Initial stack pointer.
    pub top: usize,
}

/// Paints the stack between `bounds.bottom` and a little below the current frame.
///
/// # Safety
/// `bounds` must describe this core's stack region, and nothing may live below the caller's
/// frame (true at the start of `main`, with interrupts off).
#[inline(never)]
pub unsafe fn paint(bounds: &Bounds) {
    let marker = 0u32;
    let here = core::hint::black_box(&marker) as *const u32 as usize;
    let end = here.saturating_sub(MARGIN) & !3;
    let mut p = (bounds.bottom + 3) & !3;
    while p < end {
        // SAFETY: [bottom, end) is stack memory no frame uses yet (caller's contract).
        unsafe { core::ptr::write_volatile(p as *mut u32, PATTERN) };
        p += 4;
    }
}

/// Bytes of stack used since [`paint`] (a lower bound if the run never reached the margin).
pub fn used(bounds: &Bounds) -> usize {
    let mut p = (bounds.bottom + 3) & !3;
    // SAFETY: reads words of the stack region only.
    while p < bounds.top && unsafe { core::ptr::read_volatile(p as *const u32) } == PATTERN {
        p += 4;
    }
    bounds.top - p
}
