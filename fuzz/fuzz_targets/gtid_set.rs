//! GTID set text: parsing never panics, and what parses prints back to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(set) = text.parse::<dbtrail_core::GtidSet>() {
        let printed = set.to_string();
        let again: dbtrail_core::GtidSet = printed.parse().expect("printed form parses");
        assert_eq!(again, set);
    }
});
