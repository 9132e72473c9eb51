//! dbtrail-replay: reconstruction of tables at a target, and the SQL it writes.
//! No tokio, no MySQL, no RocksDB: it works on [`dbtrail_core`] values only.
//!
//! - [`sql`]: byte-exact SQL literals and INSERT statements for dump files.
pub mod sql;
