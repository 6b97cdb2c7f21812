//! The embedded dataset and reference result, written by `host/examples/firmware_data.rs`.
//!
//! `include_bytes!` promises no alignment, so everything is decoded with `from_le_bytes`
//! instead of being reinterpreted in place.

use crate::pipeline::{K, M, PIXELS};

const COUNTS: &[u8] = include_bytes!("../data/counts.bin");
const INDPTR: &[u8] = include_bytes!("../data/indptr.bin");
const W_REF: &[u8] = include_bytes!("../data/w_ref.bin");
const H_REF: &[u8] = include_bytes!("../data/h_ref.bin");
const LOSS_REF: &[u8] = include_bytes!("../data/loss_ref.bin");

/// Non-zero counts in the dataset (4 bytes each: u16 channel, u16 count).
pub const NNZ: usize = COUNTS.len() / 4;

// Data made for another configuration fails the build, not the run.
const _: () = assert!(COUNTS.len() % 4 == 0);
const _: () = assert!(INDPTR.len() == 4 * (PIXELS + 1));
const _: () = assert!(W_REF.len() == 4 * M * K);
const _: () = assert!(H_REF.len() == 4 * K * PIXELS);
const _: () = assert!(LOSS_REF.len() == 16);

/// Decodes the counts into the solver's sparse layout (the solver validates the structure).
pub fn decode_counts(indptr: &mut [usize], indices: &mut [u32], values: &mut [f32]) {
    for (dst, b) in indptr.iter_mut().zip(INDPTR.chunks_exact(4)) {
        *dst = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    }
    for ((ix, v), b) in indices
        .iter_mut()
        .zip(values.iter_mut())
        .zip(COUNTS.chunks_exact(4))
    {
        *ix = u16::from_le_bytes([b[0], b[1]]) as u32;
        *v = u16::from_le_bytes([b[2], b[3]]) as f32;
    }
}

fn f32s(bytes: &'static [u8]) -> impl Iterator<Item = f32> + Clone {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The host's W (M×K), entry by entry.
pub fn w_ref() -> impl Iterator<Item = f32> + Clone {
    f32s(W_REF)
}

/// The host's H (K×P), entry by entry.
pub fn h_ref() -> impl Iterator<Item = f32> + Clone {
    f32s(H_REF)
}

/// The host's initial and final loss.
pub fn loss_ref() -> (f64, f64) {
    let f = |b: &[u8]| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    (f(&LOSS_REF[..8]), f(&LOSS_REF[8..]))
}

/// Largest |a − b| over the largest |b|, the check's error measure; infinite when the lengths
/// differ or `a` has a non-finite value (`f64::max` would otherwise skip a NaN).
pub fn relative_max_diff(a: &[f32], b: impl Iterator<Item = f32> + Clone) -> f64 {
    if a.len() != b.clone().count() || a.iter().any(|v| !v.is_finite()) {
        return f64::INFINITY;
    }
    let scale = b.clone().fold(0.0f64, |s, v| s.max((v as f64).abs()));
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f64, |s, (&x, y)| s.max((x as f64 - y as f64).abs()));
    if scale > 0.0 {
        diff / scale
    } else {
        diff
    }
}

/// The counts as stored (per non-zero: u16 channel, u16 count), for the streaming example's
/// simulated detector, which reads them from flash as it scans.
pub fn source() -> crate::streaming::Source<'static> {
    crate::streaming::Source {
        counts: COUNTS,
        indptr: INDPTR,
    }
}

const STREAM_W_REF: &[u8] = include_bytes!("../data/stream_w_ref.bin");
const STREAM_H_REF: &[u8] = include_bytes!("../data/stream_h_ref.bin");
const STREAM_LOSS_REF: &[u8] = include_bytes!("../data/stream_loss_ref.bin");
const _: () = assert!(STREAM_W_REF.len() == 4 * crate::streaming::LENS.w);
const _: () = assert!(STREAM_H_REF.len() == 4 * crate::streaming::LENS.h);
const _: () = assert!(STREAM_LOSS_REF.len() == 32);

/// The host's streaming W (M×K), entry by entry.
pub fn stream_w_ref() -> impl Iterator<Item = f32> + Clone {
    f32s(STREAM_W_REF)
}

/// The host's streaming H (K×P), entry by entry.
pub fn stream_h_ref() -> impl Iterator<Item = f32> + Clone {
    f32s(STREAM_H_REF)
}

/// The host's streaming run: loss after the last frame, final loss, counts, frames.
pub fn stream_ref() -> (f64, f64, u64, u64) {
    let b = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&STREAM_LOSS_REF[8 * i..8 * i + 8]);
        a
    };
    (
        f64::from_le_bytes(b(0)),
        f64::from_le_bytes(b(1)),
        u64::from_le_bytes(b(2)),
        u64::from_le_bytes(b(3)),
    )
}

/// Entries of `a` whose bits differ from `b`'s (or `usize::MAX` when the lengths differ).
pub fn bit_differences(a: &[f32], b: impl Iterator<Item = f32> + Clone) -> usize {
    if a.len() != b.clone().count() {
        return usize::MAX;
    }
    a.iter()
        .zip(b)
        .filter(|(x, y)| x.to_bits() != y.to_bits())
        .count()
}
