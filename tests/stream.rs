//! Streaming: an acquisition in 20 frames of 1/20 of the dose ends close to the batch solve on
//! the summed counts, and feeding a frame line by line is the same as feeding it whole.

use edxs_core::rng::Rng;
use edxs_core::solver::{Laplacian, NoGUpdate};
use edxs_core::stream::{Frame, Stream};
use edxs_core::{Counts, Solver, SolverParams};
use edxs_suite::{synthetic, synthetic_from, Maps, Synthetic};

/// A frame in the stream's layout, owning its buffers.
struct OwnedFrame {
    pixels: Vec<u32>,
    indptr: Vec<usize>,
    channels: Vec<u32>,
    counts: Vec<f64>,
}

impl OwnedFrame {
    fn view(&self) -> Frame<'_, f64> {
        Frame {
            pixels: &self.pixels,
            indptr: &self.indptr,
            channels: &self.channels,
            counts: &self.counts,
        }
    }

    /// The frame restricted to pixels `[from, to)` of its own list (one scan line).
    fn slice(&self, from: usize, to: usize) -> OwnedFrame {
        let (a, b) = (self.indptr[from], self.indptr[to]);
        OwnedFrame {
            pixels: self.pixels[from..to].to_vec(),
            indptr: self.indptr[from..=to].iter().map(|v| v - a).collect(),
            channels: self.channels[a..b].to_vec(),
            counts: self.counts[a..b].to_vec(),
        }
    }
}

/// Splits every count of the image uniformly at random over `n` frames (each a full pass).
fn split_dose(s: &Synthetic, n: usize, seed: u64) -> Vec<OwnedFrame> {
    let (l, p) = (s.l, s.rows * s.cols);
    let mut rng = Rng::new(seed);
    let mut parts = vec![vec![0.0f64; p * l]; n];
    for (i, &y) in s.dense.iter().enumerate() {
        for _ in 0..y as usize {
            let f = (rng.uniform() * n as f64) as usize;
            parts[f.min(n - 1)][i] += 1.0;
        }
    }
    parts
        .iter()
        .map(|dense| {
            let mut fr = OwnedFrame {
                pixels: vec![],
                indptr: vec![0],
                channels: vec![],
                counts: vec![],
            };
            for px in 0..p {
                fr.pixels.push(px as u32);
                for li in 0..l {
                    let v = dense[px * l + li];
                    if v != 0.0 {
                        fr.channels.push(li as u32);
                        fr.counts.push(v);
                    }
                }
                fr.indptr.push(fr.channels.len());
            }
            fr
        })
        .collect()
}

fn params(s: &Synthetic) -> SolverParams<'_, f64> {
    let mut prm = SolverParams::new(3, &s.simplex_rows);
    prm.laplacian = Laplacian::Grid {
        rows: s.rows,
        cols: s.cols,
    };
    prm.g_update_every = 0;
    prm
}

fn start(s: &Synthetic) -> (Vec<f64>, Vec<f64>) {
    let k = 3;
    let p = s.rows * s.cols;
    // A generic start: each phase a different blend of the true ones.
    let mut w = vec![0.0; s.m * k];
    for j in 0..s.m {
        for c in 0..k {
            let mix: f64 = (0..k)
                .map(|t| s.w_true[j * k + t] * if t == c { 0.6 } else { 0.2 })
                .sum();
            w[j * k + c] = mix.max(1e-3);
        }
    }
    for c in 0..k {
        let sum: f64 = s.simplex_rows.iter().map(|&j| w[j * k + c]).sum();
        for &j in &s.simplex_rows {
            w[j * k + c] /= sum;
        }
    }
    (w, vec![1.0; k * p])
}

#[test]
fn twenty_low_dose_frames_end_near_the_batch_solve() {
    // Each phase has an element of its own and pure regions, so W is identifiable and a 1e-2
    // comparison means something (with mixed-only phases the loss valley is flat in W).
    let comps = [
        vec![0.5, 0.4, 0.0, 0.1, 0.0],
        vec![0.6, 0.0, 0.4, 0.0, 0.0],
        vec![0.5, 0.0, 0.0, 0.2, 0.3],
    ];
    let s = synthetic_from(
        24,
        24,
        293.0,
        11,
        &["O", "Mg", "Si", "Fe", "Ca"],
        &[],
        &comps,
        Maps::Bands,
    );
    let p = s.rows * s.cols;
    // Batch on the summed counts, to convergence.
    let mut prm = params(&s);
    prm.max_iter = 2000;
    prm.tol = 1e-10;
    let solver = Solver::new(prm, s.l, s.m, p).unwrap();
    let (mut wb, mut hb) = start(&s);
    let mut ws = vec![0.0; solver.workspace_len()];
    let mut g = s.g.clone();
    let counts = Counts::Dense {
        channels: s.l,
        pixels: p,
        data: &s.dense,
    };
    let batch = solver
        .run(
            &counts,
            &mut g,
            &mut wb,
            &mut hb,
            &mut ws,
            &mut NoGUpdate,
            &mut |_| {},
        )
        .unwrap();

    // Streaming: 20 passes at 1/20 of the dose, statistics refreshed by every pass (ρ = 0).
    let frames = split_dose(&s, 20, 5);
    let stream = Stream::new(params(&s), s.l, s.m, p, 0.0).unwrap();
    let mut state = vec![0.0; stream.state_len()];
    let mut touched = vec![0u32; stream.touched_len()];
    stream.reset(&mut state, &mut touched).unwrap();
    let (mut w, mut h) = start(&s);
    let mut last = f64::INFINITY;
    for f in &frames {
        stream
            .accumulate(&f.view(), &s.g, &w, &mut h, &mut state, &mut touched)
            .unwrap();
        stream
            .commit(20, &s.g, &mut w, &mut h, &mut state, &mut touched)
            .unwrap();
        last = stream.loss(&s.g, &w, &h, &mut state).unwrap().total();
    }
    assert_eq!(
        stream.counts(&state),
        &s.dense[..],
        "frames add up to the full dose"
    );
    let rel = (last - batch.final_loss) / batch.final_loss.abs();
    eprintln!(
        "stream loss {last}, batch {} ({} its), rel {rel:e}",
        batch.final_loss, batch.iterations
    );
    assert!(rel.abs() < 0.01, "stream ends {rel:e} from the batch loss");
    let dw = w
        .iter()
        .zip(&wb)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    eprintln!("max |W_stream - W_batch| = {dw:e}");
    assert!(dw < 1e-2, "W differs by {dw}");
}

#[test]
fn line_by_line_equals_whole_frames() {
    let s = synthetic(12, 10, 100.0, 3);
    let p = s.rows * s.cols;
    let frames = split_dose(&s, 3, 9);
    let mut results = vec![];
    for by_line in [false, true] {
        let stream = Stream::new(params(&s), s.l, s.m, p, 0.5).unwrap();
        let mut state = vec![0.0; stream.state_len()];
        let mut touched = vec![0u32; stream.touched_len()];
        stream.reset(&mut state, &mut touched).unwrap();
        let (mut w, mut h) = start(&s);
        for f in &frames {
            if by_line {
                for r in 0..s.rows {
                    let line = f.slice(r * s.cols, (r + 1) * s.cols);
                    stream
                        .accumulate(&line.view(), &s.g, &w, &mut h, &mut state, &mut touched)
                        .unwrap();
                }
            } else {
                stream
                    .accumulate(&f.view(), &s.g, &w, &mut h, &mut state, &mut touched)
                    .unwrap();
            }
            stream
                .commit(3, &s.g, &mut w, &mut h, &mut state, &mut touched)
                .unwrap();
        }
        results.push((w, h));
    }
    assert_eq!(results[0], results[1]);
}

#[test]
fn exact_statistics_make_commit_a_batch_step() {
    // One frame touching every pixel, ρ = 0, one round and λ = 0: accumulate + commit is
    // exactly one batch iteration (H then W) on the same counts.
    let s = synthetic(8, 8, 150.0, 1);
    let p = s.rows * s.cols;
    let stream = Stream::new(params(&s), s.l, s.m, p, 0.0).unwrap();
    let mut state = vec![0.0; stream.state_len()];
    let mut touched = vec![0u32; stream.touched_len()];
    stream.reset(&mut state, &mut touched).unwrap();
    let frame = &split_dose(&s, 1, 2)[0];
    let (mut w, mut h) = start(&s);
    stream
        .accumulate(&frame.view(), &s.g, &w, &mut h, &mut state, &mut touched)
        .unwrap();
    stream
        .commit(1, &s.g, &mut w, &mut h, &mut state, &mut touched)
        .unwrap();

    let solver = Solver::new(params(&s), s.l, s.m, p).unwrap();
    let mut ws = vec![0.0; solver.workspace_len()];
    let (mut wb, mut hb) = start(&s);
    let counts = Counts::Dense {
        channels: s.l,
        pixels: p,
        data: &s.dense,
    };
    solver
        .iterate(&counts, &s.g, &mut wb, &mut hb, &mut ws)
        .unwrap();
    assert_eq!(h, hb);
    assert_eq!(w, wb);

    // Bad frames and buffers are errors, not panics.
    let bad = Frame {
        pixels: &[p as u32],
        indptr: &[0, 1],
        channels: &[0],
        counts: &[1.0],
    };
    assert!(stream
        .accumulate(&bad, &s.g, &w, &mut h, &mut state, &mut touched)
        .is_err());
    let neg = Frame {
        pixels: &[0],
        indptr: &[0, 1],
        channels: &[0],
        counts: &[-1.0],
    };
    assert!(stream
        .accumulate(&neg, &s.g, &w, &mut h, &mut state, &mut touched)
        .is_err());
    let off = Frame {
        pixels: &[0],
        indptr: &[0, 1],
        channels: &[s.l as u32],
        counts: &[1.0],
    };
    assert!(stream
        .accumulate(&off, &s.g, &w, &mut h, &mut state, &mut touched)
        .is_err());
    assert!(Stream::new(params(&s), s.l, s.m, p, 1.5).is_err());
    let mut short = vec![0.0; 10];
    assert!(stream
        .commit(1, &s.g, &mut w, &mut h, &mut short, &mut touched)
        .is_err());
    let mut no_bits: [u32; 0] = [];
    assert!(stream
        .commit(1, &s.g, &mut w, &mut h, &mut state, &mut no_bits)
        .is_err());
}
