//! Any bytes as a `.npy` file: both readers (whole and streamed) return Ok or Err, never panic,
//! hang or allocate beyond what the file holds.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("edxs-fuzz-npy-{}.npy", std::process::id()));
    std::fs::write(&path, data).unwrap();
    let _ = edxs::io::npy::read_f64(&path);
    let _ = edxs::io::counts::SpectrumImage::read_npy(&path, None);
    let _ = edxs::io::counts::SpectrumImage::read_npy(&path, Some((2, 3)));
});
