//! The streaming example's ring and counter on the host (std), shared by the host's reference
//! generator (`host/examples/firmware_stream_data.rs`) and its replay test (`tests/stream.rs`),
//! which both compile `streaming.rs` as `crate::streaming`. Not part of the firmware build.

use crate::streaming::{Event, Meter, Ring, RING};
use std::collections::VecDeque;

/// The firmware's ring: a bounded FIFO holding `RING - 1` events as heapless's queue does.
#[derive(Default)]
pub struct HostRing(pub VecDeque<Event>);

impl Ring for HostRing {
    fn push(&mut self, ev: Event) -> Result<(), Event> {
        if self.0.len() == RING - 1 {
            return Err(ev);
        }
        self.0.push_back(ev);
        Ok(())
    }
    fn pop(&mut self) -> Option<Event> {
        self.0.pop_front()
    }
}

/// No instruction counter on the host.
pub struct NoMeter;

impl Meter for NoMeter {
    fn now(&mut self) -> u64 {
        0
    }
}
