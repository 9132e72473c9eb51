//! Versioned binary encoding of persisted values.
//!
//! Every persisted record is one version byte followed by the postcard encoding of the value.
//! Postcard's format is stable (1.0 wire spec), enum variants are encoded by index, so new
//! variants go at the END of an enum only. Golden tests pin the bytes of each record type.
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The encoding version written today.
pub const VERSION: u8 = 1;

/// Errors decoding persisted bytes.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Empty record.
    #[error("corrupt {what} record: empty")]
    Empty {
        /// Record kind.
        what: &'static str,
    },
    /// Unknown version byte.
    #[error(
        "{what} record has encoding version {found}, this build reads version {VERSION}; upgrade dbtrail"
    )]
    Version {
        /// Record kind.
        what: &'static str,
        /// The version found.
        found: u8,
    },
    /// Bad payload.
    #[error("corrupt {what} record: {source}")]
    Payload {
        /// Record kind.
        what: &'static str,
        /// What postcard said.
        source: postcard::Error,
    },
}

/// Encodes a value with the current version byte.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let out = vec![VERSION];
    // Serialization into a Vec cannot fail for our plain data types.
    match postcard::to_extend(value, out) {
        Ok(v) => v,
        Err(e) => unreachable!("postcard serialization into Vec failed: {e}"),
    }
}

/// Decodes a value written by [`encode`]; `what` names the record kind in errors.
pub fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty { what }),
        Some((&VERSION, rest)) => {
            postcard::from_bytes(rest).map_err(|source| CodecError::Payload { what, source })
        }
        Some((&found, _)) => Err(CodecError::Version { what, found }),
    }
}
