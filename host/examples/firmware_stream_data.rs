//! Writes the reference result of the firmware's streaming example
//! (`firmware/common/data/stream_*.bin`):
//!
//! ```sh
//! cargo run --release -p edxs --example firmware_stream_data [OUT_DIR]
//! ```
//!
//! Runs `firmware/common/src/streaming.rs` (compiled here as a module, next to `pipeline.rs`)
//! in f32 on the host over the batch example's `counts.bin`: the same simulated acquisition,
//! ring buffer capacity, scan-line frames and `Stream` calls as the firmware. Files, all
//! little-endian: `stream_w_ref.bin` (f32 M×K), `stream_h_ref.bin` (f32 K×P),
//! `stream_loss_ref.bin` (f64 loss after the last frame and after the final full pass, then
//! u64 counts and frames).

use anyhow::{ensure, Context, Result};
use std::path::PathBuf;

#[path = "../../firmware/common/src/host_io.rs"]
mod host_io;
#[path = "../../firmware/common/src/pipeline.rs"]
#[allow(dead_code)]
mod pipeline;
#[path = "../../firmware/common/src/streaming.rs"]
#[allow(dead_code)]
mod streaming;

use host_io::{HostRing, NoMeter};
use streaming::LENS;

fn main() -> Result<()> {
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../firmware/common/data");
    let out = match std::env::args_os().nth(1) {
        Some(dir) => PathBuf::from(dir),
        None => data.clone(),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let read = |name: &str| {
        let path = data.join(name);
        std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
    };
    let (counts, indptr) = (read("counts.bin")?, read("indptr.bin")?);
    let src = streaming::Source {
        counts: &counts,
        indptr: &indptr,
    };
    let mut g = vec![0.0f32; LENS.g];
    let mut g_scratch = vec![0.0f32; streaming::G_SCRATCH_LEN];
    let mut w = vec![0.0f32; LENS.w];
    let mut h = vec![0.0f32; LENS.h];
    let mut state = vec![0.0f32; LENS.state];
    let mut touched = vec![0u32; LENS.touched];
    let mut dwell = vec![0.0f32; streaming::CHANNELS];
    let mut frame_pixels = vec![0u32; LENS.frame_pixels];
    let mut frame_indptr = vec![0usize; LENS.frame_indptr];
    let mut frame_channels = vec![0u32; LENS.frame_entries];
    let mut frame_counts = vec![0.0f32; LENS.frame_entries];
    let buffers = streaming::Buffers {
        g: &mut g,
        g_scratch: &mut g_scratch,
        w: &mut w,
        h: &mut h,
        state: &mut state,
        touched: &mut touched,
        dwell: &mut dwell,
        frame_pixels: &mut frame_pixels,
        frame_indptr: &mut frame_indptr,
        frame_channels: &mut frame_channels,
        frame_counts: &mut frame_counts,
    };
    let mut ring = HostRing::default();
    let sum = streaming::run(src, streaming::SPLIT_SEED, &mut ring, &mut NoMeter, buffers)?;
    ensure!(
        sum.frames as usize == streaming::PASSES * streaming::ROWS,
        "{} frames",
        sum.frames
    );

    let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let mut tail = sum.loss_streamed.to_le_bytes().to_vec();
    tail.extend_from_slice(&sum.loss_final.to_le_bytes());
    tail.extend_from_slice(&sum.counts.to_le_bytes());
    tail.extend_from_slice(&sum.frames.to_le_bytes());
    for (name, bytes) in [
        ("stream_w_ref.bin", f32_bytes(&w)),
        ("stream_h_ref.bin", f32_bytes(&h)),
        ("stream_loss_ref.bin", tail),
    ] {
        let path = out.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    println!(
        "{}x{} pixels, {} channels, {} counts in {} frames ({} passes); loss {:.6} after the \
         last frame, {:.6} after {} full-pass iterations; written to {}",
        streaming::ROWS,
        streaming::COLS,
        streaming::CHANNELS,
        sum.counts,
        sum.frames,
        streaming::PASSES,
        sum.loss_streamed,
        sum.loss_final,
        streaming::FINAL_ITERATIONS,
        out.display()
    );
    println!("W (rows O, Mg, Si, Ca, Fe, b0, b1; columns phases):");
    for row in w.chunks_exact(streaming::K) {
        println!("  {row:?}");
    }
    Ok(())
}
