//! The streaming computation the firmware checks, written once for both sides: a simulated
//! acquisition, the ring buffer between it and the processing loop, scan-line frames and the
//! core's [`Stream`].
//!
//! `host/examples/firmware_stream_data.rs` and `tests/stream.rs` compile this very file (a
//! `#[path]` module next to `pipeline.rs`) to make the reference W and H and to check the
//! final loss against a batch fit, so host reference and firmware cannot drift apart. Like
//! `pipeline.rs` it uses only `core` and `edxs_core` and allocates nothing; the ring buffer and
//! the instruction counter are the caller's (a `heapless` queue and a CPU counter on the
//! targets, a no-op meter on the host), and neither can change a number the check compares.
//!
//! The acquisition: the 32×32×256 counts of the batch example, binned 2×2 in space and 2:1 in
//! energy (16×16 pixels, 128 channels of 0.08 keV, about 64 counts per pixel), acquired in
//! [`PASSES`] passes of the scan, each count landing in one pass drawn uniformly at random. At
//! every pixel dwell the detector emits one event (pixel, channel) per count, then an
//! end-of-dwell marker. The processing loop merges each pixel's events into per-channel counts
//! and hands every scan line (16 pixels) to [`Stream::accumulate`], then commits
//! ([`Stream::commit`], [`ROUNDS`] rounds); after each pass it updates G (bremsstrahlung), and
//! after the last one it runs [`FINAL_ITERATIONS`] batch iterations ([`Stream::full_pass`]).

use crate::pipeline::{self, ELEMENTS};
use edxs_core::init::{physics_w, physics_w_scratch_len, random_start};
use edxs_core::physics::BremsstrahlungUpdate;
use edxs_core::rng::Rng;
use edxs_core::solver::{GUpdate, Laplacian};
use edxs_core::stream::{self, Frame, Stream, StreamLens};
use edxs_core::view::{MatMut, MatRef};
use edxs_core::{Compat, EdxsModel, EnergyAxis, ModelParams, SolverError, SolverParams};

/// Scan rows of the streamed image (the batch image's 32 binned 2:1).
pub const ROWS: usize = pipeline::ROWS / 2;
/// Scan columns; one scan line is one frame.
pub const COLS: usize = pipeline::COLS / 2;
/// Pixels P.
pub const PIXELS: usize = ROWS * COLS;
/// Energy channels L (the batch image's 256 binned 2:1).
pub const CHANNELS: usize = pipeline::CHANNELS / 2;
/// Centre of the first binned channel (keV): the mean of the two channels it sums.
pub const OFFSET: f64 = pipeline::OFFSET + pipeline::SCALE / 2.0;
/// Channel width (keV).
pub const SCALE: f64 = 2.0 * pipeline::SCALE;
/// Phases K.
pub const K: usize = pipeline::K;
/// Columns M of G.
pub const M: usize = pipeline::M;
/// Pixels per frame: one scan line.
pub const FRAME_PIXELS: usize = COLS;
/// Passes of the scan the dose is spread over.
pub const PASSES: usize = 4;
/// H and W rounds of every commit.
pub const ROUNDS: usize = 2;
/// Forgetting factor ρ per commit: 16 commits per pass make 0.9¹⁶ ≈ 0.19 per pass, so the
/// statistics of earlier passes (taken at a worse W) fade.
pub const FORGETTING: f32 = 0.9;
/// Batch iterations over the accumulated counts after the last frame.
pub const FINAL_ITERATIONS: usize = 10;
/// Seed of the pass each count lands in (pixel index added) in the checked run.
pub const SPLIT_SEED: u64 = 1000;
/// Capacity of the event ring buffer (a power of two; heapless's queue holds one less).
pub const RING: usize = 1024;
/// Every buffer's length, from the core.
pub const LENS: StreamLens = StreamLens::new(CHANNELS, M, K, PIXELS, FRAME_PIXELS);
/// Scratch of `EdxsModel::scratch_len()` for this model without absorption.
pub const G_SCRATCH_LEN: usize = 2 * 160 + CHANNELS;
/// The end-of-dwell marker in an event's channel field.
pub const END_OF_DWELL: u32 = 0xffff;

/// A detector event: pixel in the high 16 bits, channel (or [`END_OF_DWELL`]) in the low 16.
pub type Event = u32;

/// The ring buffer between the acquisition (producer) and the processing loop (consumer).
pub trait Ring {
    /// Queues an event; gives it back when the ring is full.
    fn push(&mut self, ev: Event) -> Result<(), Event>;
    /// The oldest event, if any.
    fn pop(&mut self) -> Option<Event>;
}

/// A free-running instruction (or cycle) counter; the host's returns 0.
pub trait Meter {
    /// The counter now.
    fn now(&mut self) -> u64;
}

/// Total instructions and calls of one stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cost {
    /// Counter ticks summed over the calls.
    pub ticks: u64,
    /// Calls measured.
    pub calls: u64,
}

impl Cost {
    fn add(&mut self, from: u64, to: u64) {
        self.ticks += to.wrapping_sub(from);
        self.calls += 1;
    }
}

/// What the run measured and where it ended.
#[derive(Debug, Clone, Copy, Default)]
pub struct Summary {
    /// Counts acquired (events other than end-of-dwell markers).
    pub counts: u64,
    /// Frames accumulated.
    pub frames: u64,
    /// Draining the ring and merging events into frames (ticks over all drains).
    pub events: Cost,
    /// `Stream::accumulate` per frame (adds the counts, GW, H of the frame's pixels).
    pub accumulate: Cost,
    /// `Stream::accumulate` of an empty frame: its fixed part (GW and checks), once per pass.
    pub accumulate_empty: Cost,
    /// `Stream::commit` per frame.
    pub commit: Cost,
    /// The G update (bremsstrahlung columns from W) per pass.
    pub g_update: Cost,
    /// `Stream::full_pass` per batch iteration (calls = iterations).
    pub full_pass: Cost,
    /// `Stream::loss` on all the accumulated counts (f64 sums and logarithms), per call.
    pub loss: Cost,
    /// Loss on all the counts after the last frame, before the full pass.
    pub loss_streamed: f64,
    /// Loss on all the counts at the end.
    pub loss_final: f64,
}

/// The caller's buffers, sized by [`LENS`] and [`G_SCRATCH_LEN`].
pub struct Buffers<'b> {
    /// G, L×M.
    pub g: &'b mut [f32],
    /// The model's scratch.
    pub g_scratch: &'b mut [f32],
    /// W, M×K.
    pub w: &'b mut [f32],
    /// H, K×P.
    pub h: &'b mut [f32],
    /// The stream's state (accumulated counts first, P×L pixel-major).
    pub state: &'b mut [f32],
    /// The touched-pixel bitmap.
    pub touched: &'b mut [u32],
    /// One pixel's counts per channel while its dwell lasts (L).
    pub dwell: &'b mut [f32],
    /// The frame being built: pixels.
    pub frame_pixels: &'b mut [u32],
    /// The frame being built: offsets.
    pub frame_indptr: &'b mut [usize],
    /// The frame being built: channels.
    pub frame_channels: &'b mut [u32],
    /// The frame being built: counts.
    pub frame_counts: &'b mut [f32],
}

/// The batch example's counts as stored in flash (`counts.bin`, `indptr.bin`).
#[derive(Clone, Copy)]
pub struct Source<'d> {
    /// Per non-zero: u16 channel, u16 count (little-endian), pixel-major.
    pub counts: &'d [u8],
    /// u32 × (P + 1) offsets into `counts`.
    pub indptr: &'d [u8],
}

impl Source<'_> {
    fn offset(&self, px: usize) -> usize {
        let b = &self.indptr[4 * px..4 * px + 4];
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize
    }

    fn entry(&self, j: usize) -> (u32, u32) {
        let b = &self.counts[4 * j..4 * j + 4];
        (
            u16::from_le_bytes([b[0], b[1]]) as u32,
            u16::from_le_bytes([b[2], b[3]]) as u32,
        )
    }
}

/// The simulated detector: walks the scan pass by pass and emits the counts of each pass.
pub struct Detector<'d> {
    src: Source<'d>,
    pass: usize,
    px: usize,
    /// Which of the 2×2 source pixels of `px`.
    sub: usize,
    /// Non-zero of the source pixel, its end, units of it left.
    j: usize,
    end: usize,
    left: u32,
    channel: u32,
    seed: u64,
    rng: Rng,
    started: bool,
}

impl<'d> Detector<'d> {
    /// A detector at the start of the first pass; `seed` draws each count's pass.
    pub fn new(src: Source<'d>, seed: u64) -> Self {
        Detector {
            src,
            pass: 0,
            px: 0,
            sub: 0,
            j: 0,
            end: 0,
            left: 0,
            channel: 0,
            seed,
            rng: Rng::new(seed),
            started: false,
        }
    }

    fn source_pixel(&self) -> usize {
        let (r, c) = (self.px / COLS, self.px % COLS);
        (2 * r + self.sub / 2) * pipeline::COLS + 2 * c + self.sub % 2
    }

    fn enter_sub(&mut self) {
        let sp = self.source_pixel();
        self.j = self.src.offset(sp);
        self.end = self.src.offset(sp + 1);
        self.left = 0;
    }

    /// The next event, `None` after the last pass.
    pub fn next_event(&mut self) -> Option<Event> {
        if self.pass == PASSES {
            return None;
        }
        if !self.started {
            // Every pass redraws the same pixel's split from the same seed, so each count
            // lands in exactly one pass.
            self.rng = Rng::new(self.seed.wrapping_add(self.px as u64));
            self.sub = 0;
            self.enter_sub();
            self.started = true;
        }
        loop {
            while self.left > 0 {
                self.left -= 1;
                let pass = (self.rng.uniform() * PASSES as f64) as usize;
                if pass.min(PASSES - 1) == self.pass {
                    return Some(((self.px as u32) << 16) | self.channel);
                }
            }
            if self.j < self.end {
                let (ch, n) = self.src.entry(self.j);
                self.j += 1;
                self.channel = ch / 2;
                self.left = n;
                continue;
            }
            if self.sub < 3 {
                self.sub += 1;
                self.enter_sub();
                continue;
            }
            // End of the dwell: the marker, then the next pixel (or pass).
            let ev = ((self.px as u32) << 16) | END_OF_DWELL;
            self.started = false;
            self.px += 1;
            if self.px == PIXELS {
                self.px = 0;
                self.pass += 1;
            }
            return Some(ev);
        }
    }
}

/// Merges events into the frame of the current scan line; bounded by [`LENS`] whatever the dose.
struct FrameBuilder<'b> {
    dwell: &'b mut [f32],
    pixels: &'b mut [u32],
    indptr: &'b mut [usize],
    channels: &'b mut [u32],
    counts: &'b mut [f32],
    n_pixels: usize,
    n_entries: usize,
}

impl FrameBuilder<'_> {
    /// Adds an event; true when it completes a scan line.
    fn push(&mut self, ev: Event) -> bool {
        let (px, ch) = (ev >> 16, ev & 0xffff);
        if ch != END_OF_DWELL {
            // The detector only emits channels below L (the source has 2·L channels).
            self.dwell[ch as usize] += 1.0;
            return false;
        }
        self.pixels[self.n_pixels] = px;
        for (c, v) in self.dwell.iter_mut().enumerate() {
            if *v != 0.0 {
                self.channels[self.n_entries] = c as u32;
                self.counts[self.n_entries] = *v;
                self.n_entries += 1;
                *v = 0.0;
            }
        }
        self.n_pixels += 1;
        self.indptr[self.n_pixels] = self.n_entries;
        px as usize % COLS == COLS - 1
    }

    fn frame(&self) -> Frame<'_, f32> {
        Frame {
            pixels: &self.pixels[..self.n_pixels],
            indptr: &self.indptr[..self.n_pixels + 1],
            channels: &self.channels[..self.n_entries],
            counts: &self.counts[..self.n_entries],
        }
    }

    fn clear(&mut self) {
        self.n_pixels = 0;
        self.n_entries = 0;
    }
}

/// espm's defaults on the binned 128-channel axis, without absorption.
pub fn model_params(elements: &[edxs_core::Element]) -> ModelParams<'_> {
    ModelParams {
        axis: EnergyAxis {
            offset: OFFSET,
            scale: SCALE,
            channels: CHANNELS,
            compat: Compat::Espm,
        },
        absorption: None,
        ..ModelParams::new(elements)
    }
}

/// The batch example's regularisation on the 16×16 grid; settings for `full_pass`.
pub fn solver_params(simplex_rows: &[usize]) -> SolverParams<'_, f32> {
    let mut p = SolverParams::new(K, simplex_rows);
    p.mu = &[pipeline::MU];
    p.epsilon_reg = pipeline::EPSILON_REG;
    p.lambda_l = pipeline::LAMBDA_L;
    p.laplacian = Laplacian::Grid {
        rows: ROWS,
        cols: COLS,
    };
    p
}

fn check_len(buffer: &'static str, got: usize, expected: usize) -> Result<(), SolverError> {
    if got < expected {
        return Err(SolverError::DimensionMismatch {
            buffer,
            expected,
            got,
        });
    }
    Ok(())
}

/// Runs the acquisition (each count's pass drawn from `split_seed`; the check uses
/// [`SPLIT_SEED`]) through the ring and the stream; W and H end in `b.w`, `b.h`, the
/// accumulated counts in the first P·L values of `b.state`.
pub fn run(
    src: Source<'_>,
    split_seed: u64,
    ring: &mut dyn Ring,
    meter: &mut dyn Meter,
    b: Buffers<'_>,
) -> Result<Summary, SolverError> {
    check_len("dwell", b.dwell.len(), CHANNELS)?;
    check_len("frame pixels", b.frame_pixels.len(), LENS.frame_pixels)?;
    check_len("frame indptr", b.frame_indptr.len(), LENS.frame_indptr)?;
    check_len("frame channels", b.frame_channels.len(), LENS.frame_entries)?;
    check_len("frame counts", b.frame_counts.len(), LENS.frame_entries)?;
    check_len(
        "source indptr",
        src.indptr.len(),
        4 * (pipeline::PIXELS + 1),
    )?;
    let Buffers {
        g,
        g_scratch,
        w,
        h,
        state,
        touched,
        dwell,
        frame_pixels,
        frame_indptr,
        frame_channels,
        frame_counts,
    } = b;

    let elements = pipeline::elements()?;
    let model = EdxsModel::new(model_params(&elements))?;
    if model.n_columns() != M {
        return Err(SolverError::DimensionMismatch {
            buffer: "columns of G",
            expected: M,
            got: model.n_columns(),
        });
    }
    let norm = model.build_g(g, g_scratch)?;
    let mut rows = [0usize; ELEMENTS.len()];
    let mut n_rows = 0;
    for (slot, row) in rows.iter_mut().zip(model.simplex_rows()) {
        *slot = row;
        n_rows += 1;
    }
    let params = solver_params(&rows[..n_rows]);
    let stream = Stream::new(params, CHANNELS, M, PIXELS, FORGETTING)?;

    // The batch example's start, from the mean count of the whole dose (known from the scan
    // settings before the acquisition starts); its temporaries live in the state buffer,
    // which `reset` then clears.
    let mut total = 0u64;
    for j in 0..src.counts.len() / 4 {
        total += src.entry(j).1 as u64;
    }
    let need = CHANNELS * K + physics_w_scratch_len(CHANNELS, M, K);
    check_len("state", state.len(), need.max(stream.state_len()))?;
    let (d, scratch) = state.split_at_mut(CHANNELS * K);
    let mean = total as f64 / (CHANNELS * PIXELS) as f64;
    random_start(mean, &mut Rng::new(pipeline::SEED), d, h, K);
    physics_w(
        MatRef::new("g", g, CHANNELS, M)?,
        MatRef::new("d", d, CHANNELS, K)?,
        &rows[..n_rows],
        params.log_shift,
        MatMut::new("w", w, M, K)?,
        scratch,
    )?;
    stream.reset(state, touched)?;

    let mut update = BremsstrahlungUpdate {
        model: &model,
        norm,
        scratch: g_scratch,
    };
    dwell[..CHANNELS].iter_mut().for_each(|v| *v = 0.0);
    frame_indptr[0] = 0;
    let mut fb = FrameBuilder {
        dwell: &mut dwell[..CHANNELS],
        pixels: frame_pixels,
        indptr: frame_indptr,
        channels: frame_channels,
        counts: frame_counts,
        n_pixels: 0,
        n_entries: 0,
    };
    let mut sum = Summary::default();
    let mut det = Detector::new(src, split_seed);
    let mut pending: Option<Event> = None;
    let mut exhausted = false;
    while !(exhausted && pending.is_none()) {
        // The acquisition side (an interrupt handler on a real detector): fill the ring.
        while !exhausted {
            let Some(ev) = pending.take().or_else(|| det.next_event()) else {
                exhausted = true;
                break;
            };
            if let Err(ev) = ring.push(ev) {
                pending = Some(ev);
                break;
            }
            if ev & 0xffff != END_OF_DWELL {
                sum.counts += 1;
            }
        }
        // The processing side: drain the ring, a scan line at a time.
        loop {
            let t0 = meter.now();
            let mut line_done = false;
            while let Some(ev) = ring.pop() {
                if fb.push(ev) {
                    line_done = true;
                    break;
                }
            }
            sum.events.add(t0, meter.now());
            if !line_done {
                break;
            }
            let line = fb.pixels[0] as usize / COLS;
            if line == 0 {
                // GW and the checks alone, to split accumulate's cost into fixed and per pixel.
                let empty = Frame {
                    pixels: &[],
                    indptr: &[0],
                    channels: &[],
                    counts: &[],
                };
                let t = meter.now();
                stream.accumulate(&empty, g, w, h, state, touched)?;
                sum.accumulate_empty.add(t, meter.now());
            }
            let t = meter.now();
            stream.accumulate(&fb.frame(), g, w, h, state, touched)?;
            sum.accumulate.add(t, meter.now());
            let t = meter.now();
            stream.commit(ROUNDS, g, w, h, state, touched)?;
            sum.commit.add(t, meter.now());
            sum.frames += 1;
            fb.clear();
            if line == ROWS - 1 {
                let t = meter.now();
                update.update(g, w, K)?;
                sum.g_update.add(t, meter.now());
            }
        }
    }
    let t = meter.now();
    sum.loss_streamed = stream.loss(g, w, h, state)?.total();
    sum.loss.add(t, meter.now());
    let t = meter.now();
    stream.full_pass(FINAL_ITERATIONS, g, w, h, state, touched)?;
    sum.full_pass = Cost {
        ticks: meter.now().wrapping_sub(t),
        calls: FINAL_ITERATIONS as u64,
    };
    let t = meter.now();
    sum.loss_final = stream.loss(g, w, h, state)?.total();
    sum.loss.add(t, meter.now());
    Ok(sum)
}

/// Total bytes of the streaming buffers (for the report).
pub const fn buffer_bytes() -> usize {
    LENS.bytes(4, 4) + 4 * (G_SCRATCH_LEN + CHANNELS) + 4 * RING
}

// The core's own lengths size the buffers; this restatement is only for the budget text.
const _: () = assert!(stream::state_len(CHANNELS, M, K, PIXELS) == LENS.state);
