//! dbtrail-replay: reconstruction of tables at a target, and the SQL it writes.
//! No tokio, no MySQL, no RocksDB: it works on [`dbtrail_core`] values only.
//!
//! - [`baseline`]: baseline tables as Parquet, losslessly (every value type), streamed.
//! - [`cascade`]: foreign-key cascades the binlog does not hold, derived from the parent's
//!   changes while a child table is rebuilt (with the argument why that is exact).
//! - [`dump`]: the mydumper layout a restore writes (schema, chunked data files, metadata).
//! - [`flashback`]: the undo of a time window: reverse SQL of every selected change, newest
//!   first, refused (or forced, or the keys left alone) on conflicting changes not undone,
//!   streamed in bounded memory.
//! - [`fromlog`]: baselines computed from a baseline and the log (a restore of every table
//!   to the log's checkpoint, written as Parquet), with the argument why they are exact.
//! - [`fold`]: a table's ordered changes folded per primary key (or as a multiset of rows
//!   for tables without one) and applied to a baseline.
//! - [`keys`]: row keys given by people (`id=42`), read as their columns' types and matched
//!   exactly.
//! - [`lookback`]: a key's rows at a target, a table's net change between two moments and a
//!   row's versions, without a restore (with the argument why each is exact).
//! - [`mydumper`]: mydumper 0.10 backups read back as exact values (metadata, layout, rows).
//! - [`objects`]: views, triggers, routines and events at a target (a baseline's, with
//!   the object statements logged after it applied).
//! - [`plan`]: a restore target validated against [`dbtrail_core::history::Catalog`] into
//!   the plan `restore` executes (with the argument why the baseline/log split is exact).
//! - [`restore`]: the restore engine's execution over [`dbtrail_core::history::ChangeLog`]:
//!   tables rebuilt in parallel lanes and hash partitions (bounded memory), cascading ones
//!   first, into the mydumper layout or any other [`restore::Output`].
//! - [`reverse`]: statements that undo one transaction.
//! - [`sql`]: byte-exact SQL literals and INSERT statements for dump files.
//! - [`undo`]: one transaction's undo script, refused on later conflicting changes or on an
//!   unlogged cascade.
//! - [`verify`]: a rebuilt table compared with the live one in bounded memory and any row
//!   order (bucketed multiset digests, then the differing buckets' rows), naming each
//!   difference.
pub mod baseline;
pub mod cascade;
pub mod dump;
pub mod flashback;
pub mod fold;
pub mod fromlog;
pub mod keys;
pub mod lookback;
pub mod mydumper;
pub mod objects;
pub mod plan;
pub mod restore;
pub mod reverse;
pub mod sql;
pub mod undo;
pub mod verify;
