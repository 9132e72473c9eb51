//! dbtraild: the dbtrail daemon, as a library. The `dbtraild` executable (src/main.rs) parses
//! its arguments and calls [`run`] or [`check`]; benches and tests drive the same code.
//!
//! This crate is the composition root: the only one that names concrete types (the RocksDB
//! log, the MySQL stream, object stores) and puts them together. Its modules, from the
//! leaves up (each uses only modules above it in this list; there is no import cycle):
//!
//! - [`config`]: the TOML configuration.
//! - [`util`]: a poison-tolerant lock and the wall clock.
//! - [`apierror`]: the API's error answer (status, code, message).
//! - [`metrics`]: the metrics registry and the handles the tasks update.
//! - [`store`]: baseline stores (a local directory or S3).
//! - [`source`]: the shared per-source handle: configuration, log, baseline store, metrics,
//!   and the live capture state the API and restores read.
//! - Tasks, each using the handle and, where named, the tasks above it:
//!   [`capture`] (the replication stream and its log writer thread),
//!   [`inputs`] (a restore plan's image files on local disk, with the cascading parents),
//!   [`fromlog`] (baselines computed from a baseline and the log; uses `inputs`),
//!   [`backup`] (backup jobs and table images, baselines from the log as jobs, the schedule,
//!   retention, the store check at startup),
//!   [`into`] (restored tables loaded straight into a MySQL server: staging database,
//!   parallel INSERTs, one atomic RENAME TABLE),
//!   [`pitr`] (restore planning and restore jobs; uses `backup` to image live tables,
//!   `inputs` and `into`),
//!   [`images`] (table images after DDL; uses `pitr`'s image-and-wait and `cascades`).
//! - [`verify`]: restore verification (tables imaged live, rebuilt from the history at that
//!   position and compared), its records and schedule (uses `pitr` and `inputs`).
//! - [`tasks`]: one source's set of tasks: opens its handle and job queues, spawns them.
//! - [`lookback`]: a table's rows at a moment, diffs and row histories over the API (uses
//!   `pitr`'s planning and `inputs`).
//! - [`api`] (the control API on the unix socket) and [`exporter`] (`/metrics`): the
//!   process-wide tasks.
//! - [`service`]: startup order, systemd notification, signals, shutdown.
//!
//! Hard rules: blocking work (RocksDB, Parquet, replay) runs on dedicated threads or
//! `spawn_blocking`; a task logs an error once, where it handles it; handlers never panic on
//! input.
pub mod api;
pub mod apierror;
pub mod backup;
pub mod capture;
pub mod cascades;
pub mod config;
pub mod exporter;
pub mod fromlog;
pub mod images;
pub mod inputs;
pub mod interval;
pub mod into;
pub mod lookback;
pub mod metrics;
pub mod pitr;
pub mod service;
pub mod source;
pub mod store;
pub mod tasks;
pub mod util;
pub mod verify;

pub use service::{check, run};
