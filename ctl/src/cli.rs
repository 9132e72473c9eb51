//! The command line: global options and one subcommand per command; each command's own
//! arguments live in its module under `commands`.
use crate::commands::{backups, coverage, events, generate, lookback, pitr, status, undo, verify};
use clap::{Parser, Subcommand};
use dbtrail_ctl::DEFAULT_SOCKET;
use std::path::PathBuf;

/// Control and inspect a running dbtraild.
#[derive(Parser)]
#[command(version, after_help = crate::exit::EXIT_STATUS_HELP)]
pub struct Cli {
    /// The daemon's API socket.
    #[arg(long, global = true, env = "DBTRAIL_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Capture status of every source.
    Status(status::Args),
    /// Decoded row changes from the log.
    Events(events::Args),
    /// Take a baseline (consistent snapshot of every table) now.
    Backup(backups::BackupArgs),
    /// Baselines from elsewhere.
    Baseline {
        #[command(subcommand)]
        cmd: backups::BaselineCmd,
    },
    /// Rebuild tables as they were at a past moment, as a mydumper dump.
    ///
    /// A transaction is included when its commit time, truncated to the target's precision,
    /// is at or before the target: `--at "2026-11-24 14:30:00"` includes everything committed
    /// during that second; `--at "2026-11-24 14:30:00.250000"` cuts inside it. Times without
    /// an offset are UTC.
    Pitr(pitr::Args),
    /// Status of a restore job.
    PitrStatus(pitr::StatusArgs),
    /// What can be restored: captured range, baselines, gaps, tainted tables.
    Coverage(coverage::Args),
    /// List baselines and backup jobs.
    Backups(backups::ListArgs),
    /// Print SQL that undoes one transaction (--gtid) or a time window (--since/--until);
    /// apply it with `mysql`.
    Undo(undo::Args),
    /// A table's rows as they were at a past moment, without a restore (one key: read by key).
    Show(lookback::ShowArgs),
    /// The net change of a table between two moments, per key, from the log.
    Diff(lookback::DiffArgs),
    /// Every version of one row: commit time, GTID, kind, the columns changed.
    History(lookback::HistoryArgs),
    /// Would a restore work today? Image tables from the live server, rebuild them from the
    /// history at that position and compare row for row (exit 1 when they differ).
    Verify(verify::Args),
    /// Packaging: write the man pages or the bash, zsh and fish completions into DIR.
    #[command(hide = true)]
    Generate(generate::Args),
}
