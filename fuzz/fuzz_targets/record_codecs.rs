//! Persisted records (the versioned postcard codec): decoding any bytes never panics, and
//! what decodes re-encodes to bytes that decode to the same value.
#![no_main]
use dbtrail_core::baseline::BaselineManifest;
use dbtrail_core::{Position, RowChange, TableSchema, codec};
use libfuzzer_sys::fuzz_target;

fn round_trip<T>(what: &'static str, data: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    if let Ok(v) = codec::decode::<T>(what, data) {
        let again: T = codec::decode(what, &codec::encode(&v)).expect("re-encoded record decodes");
        assert_eq!(again, v);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<RowChange>("change", data);
    round_trip::<TableSchema>("schema", data);
    round_trip::<Position>("position", data);
    round_trip::<BaselineManifest>("baseline", data);
    round_trip::<Vec<dbtrail_core::Value>>("row", data);
});
