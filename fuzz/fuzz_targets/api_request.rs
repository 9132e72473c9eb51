//! API request bodies and query values: a restore request, times, table names, GTID sets.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = serde_json::from_slice::<dbtrail_core::api::PitrRequest>(data) {
        if let Some(t) = &req.target_time {
            if let Ok(tp) = dbtrail_core::time::parse_time(t) {
                let _ = tp.end_inclusive();
            }
        }
        if let Some(g) = &req.target_gtid {
            let _ = g.parse::<dbtrail_core::GtidSet>();
        }
        for t in &req.tables {
            let _ = t.parse::<dbtrail_core::TableRef>();
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(tp) = dbtrail_core::time::parse_time(text) {
            let _ = tp.end_inclusive();
        }
        let _ = text.parse::<dbtrail_core::TableRef>();
    }
});
