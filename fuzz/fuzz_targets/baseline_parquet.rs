//! Baseline files are read back from disk or S3: any bytes as a Parquet file give an error
//! or rows, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = dbtrail_replay::baseline::read(bytes::Bytes::copy_from_slice(data), |_| Ok(()));
});
