//! The streaming example's firmware side: static buffers, the heapless ring between the
//! simulated acquisition and the processing loop, the instruction figures and the bit-for-bit
//! comparison with the host's run of `streaming.rs`.

use crate::data;
use crate::stack;
use crate::streaming::{self, Cost, Event, Meter, Ring, CHANNELS, G_SCRATCH_LEN, LENS, RING};
use crate::Target;
use core::sync::atomic::{AtomicBool, Ordering};
use heapless::spsc::{Consumer, Producer, Queue};
use semihosting::println;

/// Every buffer of the streaming run, sized by the core's `StreamLens`.
struct Statics {
    g: [f32; LENS.g],
    g_scratch: [f32; G_SCRATCH_LEN],
    w: [f32; LENS.w],
    h: [f32; LENS.h],
    state: [f32; LENS.state],
    touched: [u32; LENS.touched],
    dwell: [f32; CHANNELS],
    frame_pixels: [u32; LENS.frame_pixels],
    frame_indptr: [usize; LENS.frame_indptr],
    frame_channels: [u32; LENS.frame_entries],
    frame_counts: [f32; LENS.frame_entries],
    queue: Queue<Event, RING>,
}

static mut STATICS: Statics = Statics {
    g: [0.0; LENS.g],
    g_scratch: [0.0; G_SCRATCH_LEN],
    w: [0.0; LENS.w],
    h: [0.0; LENS.h],
    state: [0.0; LENS.state],
    touched: [0; LENS.touched],
    dwell: [0.0; CHANNELS],
    frame_pixels: [0; LENS.frame_pixels],
    frame_indptr: [0; LENS.frame_indptr],
    frame_channels: [0; LENS.frame_entries],
    frame_counts: [0.0; LENS.frame_entries],
    queue: Queue::new(),
};

static TAKEN: AtomicBool = AtomicBool::new(false);

fn take_statics() -> Option<&'static mut Statics> {
    if TAKEN.swap(true, Ordering::AcqRel) {
        return None;
    }
    // SAFETY: the flag hands out the only reference, once.
    Some(unsafe { &mut *core::ptr::addr_of_mut!(STATICS) })
}

/// Both ends of the queue; on a detector the producer would live in the acquisition interrupt.
struct Halves<'q> {
    producer: Producer<'q, Event, RING>,
    consumer: Consumer<'q, Event, RING>,
}

impl Ring for Halves<'_> {
    fn push(&mut self, ev: Event) -> Result<(), Event> {
        self.producer.enqueue(ev)
    }
    fn pop(&mut self) -> Option<Event> {
        self.consumer.dequeue()
    }
}

/// How the binary counts instructions.
pub struct Counter<'m> {
    /// What the counter is (for the report).
    pub name: &'static str,
    /// The counter, in instructions.
    pub meter: &'m mut dyn Meter,
}

fn per(c: Cost, n: u64) -> u64 {
    c.ticks.checked_div(n).unwrap_or(0)
}

/// Instructions per call of the float operations the core uses, over `N` calls each with
/// values the compiler cannot fold (`black_box`), loop overhead subtracted.
fn op_costs(meter: &mut dyn Meter, tag: &str) {
    use core::hint::black_box;
    const N: u64 = 256;
    let mut time = |f: &mut dyn FnMut(u32)| {
        let t = meter.now();
        for i in 0..N as u32 {
            f(black_box(i));
        }
        meter.now().wrapping_sub(t)
    };
    let x = |i: u32| black_box(1.25f32 + i as f32 * 0.01);
    let base = time(&mut |i| _ = black_box(x(i)));
    let base64 = time(&mut |i| _ = black_box(x(i) as f64));
    let mut ops: [(&str, u64); 8] = [
        (
            "f32 add",
            time(&mut |i| _ = black_box(x(i) + black_box(0.3f32))),
        ),
        (
            "f32 mul",
            time(&mut |i| _ = black_box(x(i) * black_box(0.3f32))),
        ),
        (
            "f32 div",
            time(&mut |i| _ = black_box(black_box(0.3f32) / x(i))),
        ),
        ("f32 exp", time(&mut |i| _ = black_box(libm::expf(x(i))))),
        ("f32 ln", time(&mut |i| _ = black_box(libm::logf(x(i))))),
        (
            "f64 add",
            time(&mut |i| _ = black_box(x(i) as f64 + black_box(0.3f64))),
        ),
        (
            "f64 mul",
            time(&mut |i| _ = black_box(x(i) as f64 * black_box(0.3f64))),
        ),
        (
            "f64 ln",
            time(&mut |i| _ = black_box(libm::log(x(i) as f64))),
        ),
    ];
    semihosting::print!("{tag} float ops: instructions per call:");
    for (name, t) in ops.iter_mut() {
        let b = if name.starts_with("f64") {
            base64
        } else {
            base
        };
        semihosting::print!(" {name} {}", t.saturating_sub(b) / N);
    }
    println!(" (N = {N}, loop and operand set-up subtracted)");
}

/// Runs the streaming example and returns the process exit code (0: bit-identical to the host).
pub fn run(target: &Target, tag: &str, counter: Counter<'_>) -> i32 {
    // SAFETY: called first thing from `main`, interrupts off, with the runtime's stack bounds.
    unsafe { stack::paint(&target.stack) };
    println!(
        "edxs-core streaming on {} ({}), f32, no heap",
        target.name, target.triple
    );
    let Some(s) = take_statics() else {
        println!("FAIL: buffers already taken");
        return 1;
    };
    let (producer, consumer) = s.queue.split();
    let mut ring = Halves { producer, consumer };
    let buffers = streaming::Buffers {
        g: &mut s.g,
        g_scratch: &mut s.g_scratch,
        w: &mut s.w,
        h: &mut s.h,
        state: &mut s.state,
        touched: &mut s.touched,
        dwell: &mut s.dwell,
        frame_pixels: &mut s.frame_pixels,
        frame_indptr: &mut s.frame_indptr,
        frame_channels: &mut s.frame_channels,
        frame_counts: &mut s.frame_counts,
    };
    let sum = match streaming::run(
        data::source(),
        streaming::SPLIT_SEED,
        &mut ring,
        counter.meter,
        buffers,
    ) {
        Ok(sum) => sum,
        Err(e) => {
            println!("FAIL: {e}");
            return 1;
        }
    };
    let (streamed_ref, final_ref, counts_ref, frames_ref) = data::stream_ref();
    println!(
        "  acquisition: {}x{} pixels, {} channels, {} counts in {} passes, {} scan-line frames \
         (host: {}, {}); ring of {} events",
        streaming::ROWS,
        streaming::COLS,
        CHANNELS,
        sum.counts,
        streaming::PASSES,
        sum.frames,
        counts_ref,
        frames_ref,
        RING - 1
    );
    println!(
        "  stream: rho {}, {} rounds per commit, G update per pass, {} full-pass iterations",
        streaming::FORGETTING,
        streaming::ROUNDS,
        streaming::FINAL_ITERATIONS
    );
    println!(
        "  loss {:.6} after the last frame, {:.6} at the end (host: {:.6}, {:.6})",
        sum.loss_streamed, sum.loss_final, streamed_ref, final_ref
    );
    let dw = data::bit_differences(&s.w, data::stream_w_ref());
    let dh = data::bit_differences(&s.h, data::stream_h_ref());
    println!("  W vs host: {dw} of {} entries differ in any bit", LENS.w);
    println!("  H vs host: {dh} of {} entries differ in any bit", LENS.h);
    let pixels = sum.frames * streaming::FRAME_PIXELS as u64;
    let fixed = per(sum.accumulate_empty, sum.accumulate_empty.calls);
    let h_total = sum
        .accumulate
        .ticks
        .saturating_sub(fixed * sum.accumulate.calls);
    let loop_ticks = sum.events.ticks + sum.accumulate.ticks + sum.commit.ticks;
    println!("  instructions from {}:", counter.name);
    println!(
        "{tag} stream: instructions per count: {} (ring, frames, accumulate and commit; {} counts)",
        loop_ticks.checked_div(sum.counts).unwrap_or(0),
        sum.counts
    );
    println!(
        "{tag} events: instructions per count: {} (dequeue and merge into the frame)",
        per(sum.events, sum.counts)
    );
    println!(
        "{tag} accumulate: instructions per frame: {} ({} fixed: checks and GW)",
        per(sum.accumulate, sum.accumulate.calls),
        fixed
    );
    println!(
        "{tag} H update: instructions per touched pixel: {}",
        h_total.checked_div(pixels).unwrap_or(0)
    );
    println!(
        "{tag} commit: instructions per commit: {} ({} rounds over {} pixels)",
        per(sum.commit, sum.commit.calls),
        streaming::ROUNDS,
        streaming::FRAME_PIXELS
    );
    println!(
        "{tag} G update: instructions per update: {}",
        per(sum.g_update, sum.g_update.calls)
    );
    println!(
        "{tag} full pass: instructions per iteration: {}",
        per(sum.full_pass, sum.full_pass.calls)
    );
    println!(
        "{tag} loss: instructions per evaluation: {} (all {} pixels, {} non-zero counts, f64)",
        per(sum.loss, sum.loss.calls),
        streaming::PIXELS,
        s.state[..streaming::PIXELS * CHANNELS]
            .iter()
            .filter(|&&v| v != 0.0)
            .count()
    );
    op_costs(counter.meter, tag);
    println!(
        "  RAM: buffers {} B, stack used {} B of {} B",
        core::mem::size_of::<Statics>(),
        stack::used(&target.stack),
        target.stack.top - target.stack.bottom
    );
    let same = |a: f64, b: f64| a.to_bits() == b.to_bits();
    let pass = dw == 0
        && dh == 0
        && sum.counts == counts_ref
        && sum.frames == frames_ref
        && same(sum.loss_streamed, streamed_ref)
        && same(sum.loss_final, final_ref);
    println!("{}", if pass { "PASS" } else { "FAIL" });
    if pass {
        0
    } else {
        1
    }
}
