//! dbtrail-core: the vocabulary every dbtrail crate shares. No I/O, no tokio, no RocksDB, no MySQL.
//!
//! - [`gtid`]: GTID sets for MySQL (`uuid:1-5:7`, tagged `uuid:tag:1-3`) and MariaDB
//!   (`domain-server-seq`), printed exactly as the servers print them.
//! - [`position`]: where capture stands (GTID set + file:pos + server identity).
//! - [`schema`]: tables, columns and versioned table schemas.
//! - [`value`]: [`value::Value`], every column value without loss.
//! - [`change`]: row changes with full before/after images, and the logged event.
//! - [`history`]: the restore engine's read trait over a source's log ([`history::ChangeLog`]).
//! - [`codec`]: the versioned binary encoding of every persisted record.
//! - [`ddl`]: which tables a logged DDL statement affects, from its text.
//! - [`render`]: values as JSON for people.
//! - [`baseline`]: baseline manifests (the catalog record of a snapshot) and file naming.
//! - [`api`]: the daemon's HTTP API wire types.
//! - [`xa`]: XA transaction identifiers.
//!
//! Hard rules: nothing here does I/O or panics on outside input; every persisted encoding
//! has a golden test.
pub mod api;
pub mod baseline;
pub mod change;
pub mod codec;
pub mod ddl;
pub mod gtid;
pub mod history;
pub mod objects;
pub mod position;
pub mod render;
pub mod schema;
pub mod time;
pub mod value;
pub mod xa;

pub use change::{ChangeEvent, Row, RowChange};
pub use gtid::{Gtid, GtidSet};
pub use position::Position;
pub use schema::{ColumnDef, ColumnType, FkAction, ForeignKey, TableRef, TableSchema};
pub use value::Value;
pub use xa::Xid;
