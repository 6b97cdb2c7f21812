//! The std side of edxs: command-line interface, file I/O and everything that needs threads.
#![warn(missing_docs)]

pub mod calibrate;
pub mod cli;
pub mod evaluate;
pub mod fast;
pub mod init;
pub mod io;
pub mod limits;
pub mod metrics;
pub mod model_options;
pub mod parallel;
pub mod pipeline;
pub mod quant;
pub mod rank;
pub mod report;
pub mod repro;
pub mod sim;
pub mod small_scan;
pub mod validate;
