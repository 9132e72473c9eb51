//! dbtrail-binlog: the only crate that speaks MySQL.
//!
//! - [`checks`]: refuses servers that cannot give every row change exactly (binlog format,
//!   row image, partial JSON, privileges) with the fix in the message.
//! - [`failover`]: which of a source's servers is the primary, and the refusal of a server
//!   that lacks transactions the log holds.
//! - [`stream`]: registers as a replica (GTID or file:pos, MySQL or MariaDB), reads events
//!   with heartbeats and timeouts, and yields [`stream::CaptureItem`]s per transaction.
//! - [`decode`]: TABLE_MAP metadata to versioned [`dbtrail_core::TableSchema`]s.
//! - [`rows`]: row images to exact [`dbtrail_core::Value`]s; [`jsonb`]: MySQL binary JSON.
//! - [`target`]: a server restored tables are loaded into (`pitr --into`): URL, pool,
//!   session.
//! - [`xa`]: XA transaction ids from XA_PREPARE events and `XA COMMIT`/`XA ROLLBACK` text.
//!
//! Hard rule: nothing is skipped. An event that cannot be decoded exactly ends the stream with
//! a definite error (see [`BinlogError::is_transient`]); the caller stops that source.
pub mod checks;
pub mod decode;
mod error;
pub mod failover;
pub mod infoschema;
pub mod jsonb;
pub mod rows;
pub mod snapshot;
pub mod start;
pub mod stream;
pub mod target;
pub mod xa;

pub use error::BinlogError;
/// A connection to a source (the driver's type).
pub use mysql_async::Conn;
