//! Persisted records: decoding any bytes never panics, and what decodes re-encodes to bytes
//! that decode to the same value. Changes, schemas, positions and rows use the versioned
//! postcard codec; baseline manifests are JSON (in the catalog and in `manifest.json`).
#![no_main]
use dbtrail_core::baseline::BaselineManifest;
use dbtrail_core::{Position, RowChange, TableSchema, codec};
use libfuzzer_sys::fuzz_target;

fn round_trip<T>(what: &'static str, data: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    if let Ok(v) = codec::decode::<T>(what, data) {
        let bytes = codec::encode(&v);
        let again: T = codec::decode(what, &bytes).expect("re-encoded record decodes");
        // Compared as bytes: a NaN DOUBLE is the same record though NaN != NaN.
        assert_eq!(codec::encode(&again), bytes);
    }
}

fn json_round_trip<T>(data: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    if let Ok(v) = serde_json::from_slice::<T>(data) {
        let bytes = serde_json::to_vec(&v).expect("encodes");
        let again: T = serde_json::from_slice(&bytes).expect("re-encoded record decodes");
        assert_eq!(serde_json::to_vec(&again).expect("encodes"), bytes);
    }
}

fuzz_target!(|data: &[u8]| {
    round_trip::<RowChange>("change", data);
    round_trip::<TableSchema>("schema", data);
    round_trip::<Position>("position", data);
    json_round_trip::<BaselineManifest>(data);
    round_trip::<Vec<dbtrail_core::Value>>("row", data);
});
