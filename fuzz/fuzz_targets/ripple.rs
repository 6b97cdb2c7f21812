//! Any bytes as a Ripple pair: the first byte says how much of the rest is the `.rpl` header,
//! the remainder is the `.raw` file. Parse and read return Ok or Err, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let cut = (n as usize * 4).min(rest.len());
    let (header, raw) = rest.split_at(cut);
    let text: String = header.iter().map(|&b| b as char).collect();
    let _ = edxs::io::ripple::RippleHeader::parse("fuzz.rpl", &text);
    let dir = std::env::temp_dir();
    let rpl = dir.join(format!("edxs-fuzz-{}.rpl", std::process::id()));
    std::fs::write(&rpl, header).unwrap();
    std::fs::write(rpl.with_extension("raw"), raw).unwrap();
    let _ = edxs::io::ripple::read(&rpl);
    let _ = edxs::io::input::load(&rpl, None);
});
