//! Prints the RAM a firmware run of the edxs solver needs and the largest number of pixels P
//! that fits a RAM size, from the core's own `Solver::workspace_len` and
//! `EdxsModel::scratch_len` (run on the host: `cargo run -p edxs-fw-budget [KiB]`).
//!
//! The layout is the examples': G, its scratch, W, H and the solver workspace in f32, sparse
//! counts resident in RAM (u32 channel + f32 value per non-zero, one `usize` offset per pixel),
//! plus a fixed reserve for the stack and the runtime.

use edxs_core::{EdxsModel, Element, Solver, SolverParams};

#[path = "../../common/src/pipeline.rs"]
#[allow(dead_code)]
mod pipeline;
#[path = "../../common/src/streaming.rs"]
#[allow(dead_code)]
mod streaming;

/// Stack and runtime statics: the examples use about 3 KiB of stack and a few hundred bytes of
/// other statics (see README.md); 8 KiB leaves room.
const RESERVE: usize = 8 * 1024;
/// Components.
const K: usize = 3;
/// Elements taken in this order: 3 give M = 5, 6 give M = 8 (plus two bremsstrahlung columns).
const ELEMENTS: [u32; 6] = [8, 14, 26, 12, 20, 13];
/// Non-zero counts per pixel considered: about the example's 16 counts/pixel, and a richer map.
const NNZ_PER_PIXEL: [usize; 2] = [16, 64];

/// Bytes for P pixels: the buffers of the examples, counts with `nnz` non-zeros per pixel.
fn ram_bytes(l: usize, n_elements: usize, p: usize, nnz: usize) -> (usize, usize, usize) {
    let elements: Vec<Element> = ELEMENTS[..n_elements]
        .iter()
        .map(|&z| Element::from_z(z).expect("tabulated element"))
        .collect();
    let mut params = pipeline::model_params(&elements);
    params.axis.channels = l;
    params.axis.scale = 10.24 / l as f64;
    let model = EdxsModel::new(params).expect("valid model");
    let m = model.n_columns();
    let rows: Vec<usize> = model.simplex_rows().collect();
    let solver = Solver::<f32>::new(SolverParams::new(K, &rows), l, m, p).expect("valid solver");
    let ws = solver.workspace_len();
    assert_eq!(
        ws,
        pipeline::workspace_len(l, m, K, p),
        "firmware formula drifted"
    );
    let floats = l * m + model.scratch_len() + m * K + K * p + ws;
    // The targets are 32-bit: `usize` offsets take 4 bytes there.
    let counts = p * nnz * (4 + 4) + (p + 1) * 4;
    (4 * floats + counts + RESERVE, model.scratch_len(), m)
}

fn largest_p(l: usize, n_elements: usize, nnz: usize, budget: usize) -> usize {
    let (mut lo, mut hi) = (0usize, 1usize << 20);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if ram_bytes(l, n_elements, mid, nnz).0 <= budget {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// Bytes of a streaming run on a `side`×`side` scan with one scan line per frame: every
/// buffer from the core's `StreamLens` (G, W, H, the stream's state with the dense
/// accumulated counts, the touched bitmap, the frame), the model's scratch and one pixel's
/// dwell histogram (L floats each), the event ring, and the reserve.
fn stream_bytes(l: usize, n_elements: usize, side: usize) -> usize {
    let (_, scratch, m) = ram_bytes(l, n_elements, 1, 0);
    let lens = edxs_core::stream::StreamLens::new(l, m, K, side * side, side);
    lens.bytes(4, 4) + 4 * (scratch + l) + 4 * streaming::RING + RESERVE
}

fn largest_side(l: usize, n_elements: usize, budget: usize) -> usize {
    let mut side = 0;
    while stream_bytes(l, n_elements, side + 1) <= budget {
        side += 1;
    }
    side
}

/// The streaming table: the largest square scan per RAM size.
fn stream_budget() {
    // The example's own figure, from the same formula the firmware sizes its statics with.
    let example = stream_bytes(streaming::CHANNELS, 5, streaming::COLS) - RESERVE;
    assert_eq!(
        example,
        streaming::buffer_bytes(),
        "streaming formula drifted"
    );
    println!();
    println!(
        "streaming (Stream: dense accumulated counts P·L, K = {K}, one scan line per frame, ring of {} events, {RESERVE} B reserve):",
        streaming::RING
    );
    println!(
        "  the example: L = {}, M = {}, {}×{} pixels: {example} B of buffers",
        streaming::CHANNELS,
        streaming::M,
        streaming::ROWS,
        streaming::COLS
    );
    println!("| L | M | bytes/pixel (4L + 4(5K + 4)) | largest scan in 64 KiB | in 128 KiB | in 256 KiB |");
    println!("|---|---|---|---|---|---|");
    for l in [128, 256, 512] {
        for n in [3, 6] {
            let (_, _, m) = ram_bytes(l, n, 1, 0);
            // Per pixel: its L accumulated counts, K values of H and 5K + 4 of workspace.
            let per_pixel = 4 * l + 4 * K + 4 * (4 * K + 4);
            let cells: Vec<String> = [64, 128, 256]
                .iter()
                .map(|&kib| {
                    let side = largest_side(l, n, kib * 1024);
                    format!("{side}×{side} = {}", side * side)
                })
                .collect();
            println!(
                "| {l} | {m} | {per_pixel} + 8L per frame pixel | {} | {} | {} |",
                cells[0], cells[1], cells[2]
            );
        }
    }
}

fn main() {
    let kib: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("RAM size in KiB"))
        .unwrap_or(256);
    let budget = kib * 1024;
    // RAM is affine in P (P ≥ K): two evaluations give its fixed part and slope.
    let fit = |l, n| {
        let (a, _, _) = ram_bytes(l, n, 1000, 0);
        let (b, s, m) = ram_bytes(l, n, 2000, 0);
        (a - (b - a), (b - a) / 1000, s, m)
    };
    // The formula the asserts above check against the core, in words.
    println!("workspace_len = 2LK + M + 4K + 4KP + 5MK + 4·max(P, K)   (f32 values)");
    let (_, scratch, _) = ram_bytes(256, 3, 1, 0);
    println!(
        "scratch_len   = L + {} without absorption (twice the detector curve's knots)",
        scratch - 256
    );
    println!(
        "RAM = 4·(LM + scratch_len + MK + KP + workspace_len) + 8·nnz + 4·(P+1) + {RESERVE} reserve"
    );
    println!();
    println!("largest P in {kib} KiB (K = {K}):");
    println!("| L | M | scratch_len | fixed bytes | bytes/pixel without counts | P at 16 nnz/pixel | P at 64 nnz/pixel |");
    println!("|---|---|---|---|---|---|---|");
    for l in [256, 512] {
        for n in [3, 6] {
            let (fixed, per_pixel, scratch, m) = fit(l, n);
            let ps: Vec<String> = NNZ_PER_PIXEL
                .iter()
                .map(|&nnz| {
                    let p = largest_p(l, n, nnz, budget);
                    let side = (p as f64).sqrt().floor() as usize;
                    format!("{p} (≈{side}×{side})")
                })
                .collect();
            println!(
                "| {l} | {m} | {scratch} | {fixed} | {per_pixel} | {} | {} |",
                ps[0], ps[1]
            );
        }
    }
    stream_budget();
}
