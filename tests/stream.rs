//! Streaming: an acquisition in 20 frames of 1/20 of the dose ends close to the batch solve on
//! the summed counts, and feeding a frame line by line is the same as feeding it whole.

use edxs_core::rng::Rng;
use edxs_core::solver::{GModel, Laplacian};
use edxs_core::stream::{Frame, Stream};
use edxs_core::{Counts, Solver, SolverParams};
use edxs_suite::{synthetic, synthetic_from, Maps, Sample, Synthetic};

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
    prm.g = GModel::Matrix { update_every: 0 };
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
        &Sample {
            elements: &["O", "Mg", "Si", "Fe", "Ca"],
            ignored: &[],
            comps: &comps,
            maps: Maps::Bands,
        },
    );
    let p = s.rows * s.cols;
    // Batch on the summed counts, to convergence.
    let mut prm = params(&s);
    prm.max_iter = 2000;
    prm.tol = 1e-10;
    let solver = Solver::new(prm, s.l, s.m, p).unwrap();
    let (mut wb, mut hb) = start(&s);
    let mut ws = vec![0.0; solver.workspace_len()];
    let g = s.g.clone();
    let counts = s.dense_counts();
    let batch = solver.run(&counts, &g, &mut wb, &mut hb, &mut ws).unwrap();

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
    let counts = s.dense_counts();
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

// The firmware's streaming example (`firmware/common/src/streaming.rs`), compiled here with
// the batch example's configuration it builds on, replayed on the host.
#[path = "../firmware/common/src/host_io.rs"]
mod host_io;
#[path = "../firmware/common/src/pipeline.rs"]
#[allow(dead_code)]
mod pipeline;
#[path = "../firmware/common/src/streaming.rs"]
#[allow(dead_code)]
mod streaming;
use host_io::{HostRing, NoMeter};

const FW_COUNTS: &[u8] = include_bytes!("../firmware/common/data/counts.bin");
const FW_INDPTR: &[u8] = include_bytes!("../firmware/common/data/indptr.bin");

/// The firmware example's run on the host: W, H, the accumulated counts and the summary.
fn replay(split_seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>, streaming::Summary) {
    let (w, h, mut state, sum, _) = replay_all(split_seed);
    state.truncate(streaming::PIXELS * streaming::CHANNELS);
    (w, h, state, sum)
}

/// [`replay`] with the whole state and the final G.
#[allow(clippy::type_complexity)]
fn replay_all(split_seed: u64) -> (Vec<f32>, Vec<f32>, Vec<f32>, streaming::Summary, Vec<f32>) {
    let lens = streaming::LENS;
    let (mut g, mut w, mut h) = (vec![0.0; lens.g], vec![0.0; lens.w], vec![0.0; lens.h]);
    let mut g_scratch = vec![0.0; streaming::G_SCRATCH_LEN];
    let mut state = vec![0.0; lens.state];
    let mut touched = vec![0; lens.touched];
    let mut dwell = vec![0.0; streaming::CHANNELS];
    let (mut fp, mut fi) = (vec![0; lens.frame_pixels], vec![0; lens.frame_indptr]);
    let (mut fc, mut fv) = (vec![0; lens.frame_entries], vec![0.0; lens.frame_entries]);
    let src = streaming::Source {
        counts: FW_COUNTS,
        indptr: FW_INDPTR,
    };
    let buffers = streaming::Buffers {
        g: &mut g,
        g_scratch: &mut g_scratch,
        w: &mut w,
        h: &mut h,
        state: &mut state,
        touched: &mut touched,
        dwell: &mut dwell,
        frame_pixels: &mut fp,
        frame_indptr: &mut fi,
        frame_channels: &mut fc,
        frame_counts: &mut fv,
    };
    let mut ring = HostRing::default();
    let sum = streaming::run(src, split_seed, &mut ring, &mut NoMeter, buffers).unwrap();
    (w, h, state, sum, g)
}

/// Batch fit of the accumulated counts from the stream's start (same G, start and
/// regularisation, G updated every 3 iterations): initial and final loss.
fn batch_fit(y: &[f32], iterations: usize) -> (f64, f64) {
    use edxs_core::init::{physics_w, physics_w_scratch_len, random_start};
    use edxs_core::physics::BremsstrahlungUpdate;
    use edxs_core::view::{MatMut, MatRef};
    use edxs_core::EdxsModel;
    let (l, m, k, p) = (
        streaming::CHANNELS,
        streaming::M,
        streaming::K,
        streaming::PIXELS,
    );
    let elements = pipeline::elements().unwrap();
    let model = EdxsModel::new(streaming::model_params(&elements)).unwrap();
    let mut g = vec![0.0f32; l * m];
    let mut scratch = vec![0.0f32; model.scratch_len()];
    let norm = model.build_g(&mut g, &mut scratch).unwrap();
    let rows: Vec<usize> = model.simplex_rows().collect();
    let mut prm = streaming::solver_params(&rows);
    prm.max_iter = iterations;
    prm.tol = 0.0;
    let solver = Solver::new(prm, l, m, p).unwrap();
    // The stream's start: the dose's mean count, the same seed.
    let total: f64 = y.iter().map(|&v| v as f64).sum();
    let (mut w, mut h) = (vec![0.0f32; m * k], vec![0.0f32; k * p]);
    let mut d = vec![0.0f32; l * k];
    let mut wscratch = vec![0.0f32; physics_w_scratch_len(l, m, k)];
    random_start(
        total / (l * p) as f64,
        &mut Rng::new(pipeline::SEED),
        &mut d,
        &mut h,
        k,
    );
    physics_w(
        MatRef::new("g", &g, l, m).unwrap(),
        MatRef::new("d", &d, l, k).unwrap(),
        &rows,
        prm.log_shift,
        MatMut::new("w", &mut w, m, k).unwrap(),
        &mut wscratch,
    )
    .unwrap();
    let mut ws = vec![0.0f32; solver.workspace_len()];
    let counts = Counts::Dense {
        channels: l,
        pixels: p,
        data: y,
    };
    let mut update = BremsstrahlungUpdate {
        model: &model,
        norm,
        scratch: &mut scratch,
    };
    let run = solver
        .run_with(
            &counts,
            solver.factors(&mut g, &mut w, &mut h).unwrap(),
            &mut ws,
            &mut update,
            &mut |_| {},
        )
        .unwrap();
    (run.initial_loss, run.final_loss)
}

#[test]
fn firmware_event_stream_ends_near_the_batch_fit() {
    // The bound of edxs_core::stream's module docs, on the firmware's event stream: T passes
    // with R rounds per commit end no higher than a batch fit of the accumulated counts from
    // the same start after T·R iterations; a full pass of n more, no higher than the batch
    // fit after T·R + n; run on to 500 in all, within 1% of the batch fit's 500.
    let tr = streaming::PASSES * streaming::ROUNDS;
    let n = streaming::FINAL_ITERATIONS;
    let (_, _, y, _) = replay(streaming::SPLIT_SEED);
    // Every split of the dose accumulates the same counts, so one batch fit serves all.
    let (start, batch_tr) = batch_fit(&y, tr);
    let (_, batch_trn) = batch_fit(&y, tr + n);
    let (_, batch_500) = batch_fit(&y, 500);
    for seed in [streaming::SPLIT_SEED, 1, 2] {
        let (w, h, mut state, sum, g) = replay_all(seed);
        let y_seed = &state[..y.len()];
        assert!(y_seed == &y[..], "seed {seed}: other accumulated counts");
        let total: f64 = y.iter().map(|&v| v as f64).sum();
        assert_eq!(total as u64, sum.counts, "every count arrived once");
        assert_eq!(sum.counts, 16556, "the batch example's dose");
        assert_eq!(sum.frames as usize, streaming::PASSES * streaming::ROWS);
        assert!(w.iter().chain(&h).all(|v| v.is_finite() && *v >= 0.0));
        eprintln!(
            "seed {seed}: start {start:.6}; after the frames {:.6} (batch after {tr}: \
             {batch_tr:.6}); after the full pass {:.6} (batch after {}: {batch_trn:.6})",
            sum.loss_streamed,
            sum.loss_final,
            tr + n
        );
        assert!(
            sum.loss_streamed <= batch_tr,
            "seed {seed}: frames end above the batch"
        );
        assert!(
            sum.loss_final <= batch_trn,
            "seed {seed}: full pass ends above the batch"
        );
        assert!(
            sum.loss_final <= sum.loss_streamed,
            "the full pass raised the loss"
        );
        if seed != streaming::SPLIT_SEED {
            continue;
        }
        let elements = pipeline::elements().unwrap();
        let model = edxs_core::EdxsModel::new(streaming::model_params(&elements)).unwrap();
        let rows: Vec<usize> = model.simplex_rows().collect();
        let (l, m, p) = (streaming::CHANNELS, streaming::M, streaming::PIXELS);
        let stream = Stream::new(streaming::solver_params(&rows), l, m, p, 1.0).unwrap();
        let (mut w, mut h) = (w, h);
        let mut touched = vec![0u32; stream.touched_len()];
        let more = 500 - tr - n;
        stream
            .full_pass(more, &g, &mut w, &mut h, &mut state, &mut touched)
            .unwrap();
        let long = stream.loss(&g, &w, &h, &mut state).unwrap().total();
        let rel = (long - batch_500) / batch_500;
        eprintln!("  {more} more full-pass iterations: {long:.6} (batch after 500: {batch_500:.6}, {rel:+.2e})");
        assert!(
            rel.abs() <= 0.01,
            "the long run ends {rel:e} from the batch fit"
        );
    }
}

#[test]
fn firmware_reference_is_this_cores_result() {
    // The firmware compares its W and H with these files bit for bit; a core change that
    // moves any bit needs `cargo run --release -p edxs --example firmware_stream_data`.
    let (w, h, _, sum) = replay(streaming::SPLIT_SEED);
    let read = |name: &str| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("firmware/common/data")
            .join(name);
        std::fs::read(&path).unwrap()
    };
    let bits = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let regenerate = "regenerate with `cargo run --release -p edxs --example firmware_stream_data`";
    assert!(
        bits(&w) == read("stream_w_ref.bin"),
        "W moved: {regenerate}"
    );
    assert!(
        bits(&h) == read("stream_h_ref.bin"),
        "H moved: {regenerate}"
    );
    let tail = read("stream_loss_ref.bin");
    assert_eq!(
        sum.loss_final.to_le_bytes()[..],
        tail[8..16],
        "loss moved: {regenerate}"
    );
}

#[test]
fn length_functions_match_the_solver() {
    use edxs_core::stream::{state_len, touched_len, StreamLens};
    let rows = [0usize, 1];
    for (l, m, k, p) in [
        (8, 4, 2, 1),
        (128, 7, 3, 256),
        (256, 7, 5, 1000),
        (64, 9, 12, 3),
    ] {
        let prm = SolverParams::<f32>::new(k, &rows);
        let stream = Stream::new(prm, l, m, p, 1.0).unwrap();
        assert_eq!(state_len(l, m, k, p), stream.state_len());
        assert_eq!(touched_len(p), stream.touched_len());
        let lens = StreamLens::new(l, m, k, p, 16);
        assert_eq!((lens.g, lens.w, lens.h), (l * m, m * k, k * p));
        assert_eq!(lens.frame_indptr, 17);
        assert_eq!(lens.frame_entries, 16 * l);
        // A buffer one short is refused, the exact length accepted.
        let mut state = vec![0.0f32; lens.state - 1];
        let mut bits = vec![0u32; lens.touched];
        assert!(stream.reset(&mut state, &mut bits).is_err());
        state.push(0.0);
        assert!(stream.reset(&mut state, &mut bits).is_ok());
    }
}
