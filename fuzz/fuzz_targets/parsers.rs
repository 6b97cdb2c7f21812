//! The option parsers (--shape, element symbols, --centers, --max-memory) on any text: a value
//! or an error, never a panic; a parsed shape's pixel count never overflows.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((r, c)) = edxs::cli::args::parse_shape(s) {
        assert!(r > 0 && c > 0 && r.checked_mul(c).is_some());
    }
    let _ = edxs_core::Element::parse(s);
    for part in s.split(',') {
        let _ = edxs_core::Element::parse(part);
    }
    let _ = edxs::sim::maps::parse_centers(s);
    if let Ok(b) = edxs::limits::parse_size(s) {
        assert!(b >= 1);
    }
});
