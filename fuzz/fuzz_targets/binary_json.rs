//! MySQL binary JSON from the binlog: decoding never panics, and output is valid JSON.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(r) = dbtrail_binlog::jsonb::to_text(data) {
        assert!(!r.text.is_empty());
    }
});
