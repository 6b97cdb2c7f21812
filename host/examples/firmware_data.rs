//! Writes the dataset and the reference result the firmware examples embed
//! (`firmware/common/data/*.bin`):
//!
//! ```sh
//! cargo run --release -p edxs --example firmware_data [OUT_DIR]
//! ```
//!
//! Three phases with Gaussian-blob abundance maps on a 32×32 scan, spectra from the same G the
//! firmware builds, Poisson counts at 16 counts per pixel; then the firmware's own computation
//! (`firmware/common/src/pipeline.rs`, compiled here as a module) in f32 on the host.
//!
//! Files, all little-endian: `counts.bin` (per non-zero, pixel-major: u16 channel, u16 count),
//! `indptr.bin` (u32 × (P+1) offsets into counts), `w_ref.bin` (f32 M×K), `h_ref.bin`
//! (f32 K×P), `loss_ref.bin` (f64 initial and final loss).

use anyhow::{ensure, Context, Result};
use edxs::sim::poisson::poisson;
use edxs_core::rng::Rng;
use edxs_core::{Counts, EdxsModel};
use std::path::PathBuf;

#[path = "../../firmware/common/src/pipeline.rs"]
mod pipeline;

use pipeline::{CHANNELS as L, COLS, K, M, PIXELS as P, ROWS};

/// Seed of the simulated counts (the solver's start has its own, `pipeline::SEED`).
const SIM_SEED: u64 = 42;
/// Mean counts per pixel: the low-dose regime of the README's benchmark.
const COUNTS_PER_PIXEL: f64 = 16.0;

/// True compositions (columns of W): rows O, Mg, Si, Ca, Fe, b0, b1.
const W_TRUE: [[f64; K]; M] = [
    [0.48, 0.30, 0.41], // O
    [0.24, 0.35, 0.00], // Mg
    [0.28, 0.00, 0.24], // Si
    [0.00, 0.00, 0.35], // Ca
    [0.00, 0.35, 0.00], // Fe
    [0.05, 0.05, 0.05], // b0
    [0.05, 0.05, 0.05], // b1
];

/// Centre (row, column), width and peak abundance of the two particle phases.
const BLOBS: [(f64, f64, f64, f64); 2] = [(9.5, 10.5, 4.0, 0.9), (21.5, 20.5, 5.0, 0.8)];

fn main() -> Result<()> {
    let out = match std::env::args_os().nth(1) {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../firmware/common/data"),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let out = out.canonicalize().unwrap_or(out);

    let elements = pipeline::elements()?;
    let model = EdxsModel::new(pipeline::model_params(&elements))?;
    ensure!(
        model.n_columns() == M,
        "model has {} columns",
        model.n_columns()
    );
    ensure!(
        model.scratch_len() == pipeline::G_SCRATCH_LEN,
        "pipeline::G_SCRATCH_LEN must be {}",
        model.scratch_len()
    );

    // Truth in f64: phase spectra G·w_k normalised to one count, Gaussian-blob maps.
    let mut g = vec![0.0f64; model.g_len()];
    let mut scratch = vec![0.0f64; model.scratch_len()];
    model.build_g(&mut g, &mut scratch)?;
    let mut spectra = vec![0.0f64; K * L];
    for (k, spectrum) in spectra.chunks_exact_mut(L).enumerate() {
        for (s, grow) in spectrum.iter_mut().zip(g.chunks_exact(M)) {
            *s = grow.iter().zip(&W_TRUE).map(|(gv, w)| gv * w[k]).sum();
        }
        let total: f64 = spectrum.iter().sum();
        spectrum.iter_mut().for_each(|s| *s /= total);
    }
    let mut maps = vec![0.0f64; K * P];
    for px in 0..P {
        let (r, c) = ((px / COLS) as f64, (px % COLS) as f64);
        let mut rest = 1.0;
        for (k, &(r0, c0, sigma, peak)) in BLOBS.iter().enumerate() {
            let d2 = (r - r0).powi(2) + (c - c0).powi(2);
            let h = peak * (-d2 / (2.0 * sigma * sigma)).exp();
            maps[(k + 1) * P + px] = h;
            rest -= h;
        }
        maps[px] = rest.max(0.0);
    }

    // Poisson counts, pixel by pixel, stored sparse as the firmware reads them.
    let mut rng = Rng::new(SIM_SEED);
    let (mut counts_bin, mut indptr_bin) = (Vec::new(), Vec::new());
    let (mut indptr, mut indices, mut values) = (vec![0usize], Vec::new(), Vec::new());
    indptr_bin.extend_from_slice(&0u32.to_le_bytes());
    for px in 0..P {
        for l in 0..L {
            let lam: f64 = (0..K).map(|k| maps[k * P + px] * spectra[k * L + l]).sum();
            let y = poisson(&mut rng, COUNTS_PER_PIXEL * lam);
            if y > 0 {
                let y16 = u16::try_from(y).context("a count does not fit in u16")?;
                counts_bin.extend_from_slice(&(l as u16).to_le_bytes());
                counts_bin.extend_from_slice(&y16.to_le_bytes());
                indices.push(l as u32);
                values.push(y as f32);
            }
        }
        indptr.push(indices.len());
        indptr_bin.extend_from_slice(&(indices.len() as u32).to_le_bytes());
    }
    let counts = Counts::Sparse {
        channels: L,
        pixels: P,
        indptr: &indptr,
        indices: &indices,
        values: &values,
    };

    // The reference: the firmware's computation, in f32, on the host.
    let mut g32 = vec![0.0f32; L * M];
    let mut g_scratch = vec![0.0f32; pipeline::G_SCRATCH_LEN];
    let mut w = vec![0.0f32; M * K];
    let mut h = vec![0.0f32; K * P];
    let mut workspace = vec![0.0f32; pipeline::WORKSPACE_LEN];
    let buffers = pipeline::Buffers {
        g: &mut g32,
        g_scratch: &mut g_scratch,
        w: &mut w,
        h: &mut h,
        workspace: &mut workspace,
    };
    let summary = pipeline::solve(&counts, buffers, &mut |_| {})?;
    ensure!(
        summary.iterations == pipeline::ITERATIONS,
        "the solver stopped after {} iterations ({:?})",
        summary.iterations,
        summary.reason
    );

    let f32_bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let mut loss = summary.initial_loss.to_le_bytes().to_vec();
    loss.extend_from_slice(&summary.final_loss.to_le_bytes());
    let files = [
        ("counts.bin", counts_bin),
        ("indptr.bin", indptr_bin),
        ("w_ref.bin", f32_bytes(&w)),
        ("h_ref.bin", f32_bytes(&h)),
        ("loss_ref.bin", loss),
    ];
    let mut total = 0;
    for (name, bytes) in &files {
        let path = out.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        total += bytes.len();
    }
    println!(
        "{ROWS}x{COLS} pixels, {L} channels, {} non-zeros ({:.2} counts/pixel); \
         {} iterations, loss {:.6} -> {:.6}; {total} bytes written to {}",
        indices.len(),
        pipeline::total_counts(&counts) / P as f64,
        summary.iterations,
        summary.initial_loss,
        summary.final_loss,
        out.display()
    );
    println!("W (rows O, Mg, Si, Ca, Fe, b0, b1; columns phases):");
    for row in w.chunks_exact(K) {
        println!("  {row:?}");
    }
    Ok(())
}
