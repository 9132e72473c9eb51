//! Wire types of the daemon's HTTP API (JSON), shared by the daemon and `dbtrailctl`.
use serde::{Deserialize, Serialize};

/// Body of every error response: `{"error":{"code":..,"message":..}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// A machine-readable code and a message for people.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// e.g. `not_found`, `bad_request`.
    pub code: String,
    /// What went wrong and what to do.
    pub message: String,
}

/// What a capture task is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    /// Connecting and checking the server.
    Starting,
    /// Receiving events.
    Streaming,
    /// Lost the connection; retrying with backoff.
    Reconnecting,
    /// Stopped on a definite error (see `error`); needs an operator.
    Failed,
    /// Shut down.
    Stopped,
}

/// A recorded gap: transactions the log does not hold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GapView {
    /// The missing transactions (GTID set) or a description of the missing range.
    pub missing: String,
    /// When the gap was recorded (RFC 3339, UTC).
    pub recorded_at: String,
    /// Why.
    pub reason: String,
}

/// `GET /api/v1/servers/{name}/status` and one entry of `GET /api/v1/servers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceStatus {
    /// The source's configured name.
    pub name: String,
    /// What capture is doing.
    pub state: SourceState,
    /// Captured transactions, printed exactly as the server prints `@@gtid_executed`.
    pub captured_gtid_set: String,
    /// Binlog file of the resume position.
    pub binlog_file: String,
    /// Offset of the resume position.
    pub binlog_pos: u64,
    /// Server identity the position belongs to.
    pub server_uuid: String,
    /// Commit time of the newest durable transaction (RFC 3339, µs, UTC).
    pub last_commit_time: Option<String>,
    /// Seconds between the newest durable commit and now, or 0 when caught up and idle.
    pub lag_seconds: Option<f64>,
    /// The definite error that stopped capture, or the last transient one while retrying.
    pub error: Option<String>,
    /// Warnings from the startup checks and capture (degraded but exact).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Row events captured since the log was created.
    pub events_total: u64,
    /// Transactions captured since the log was created.
    pub transactions_total: u64,
    /// Tables whose coverage is tainted (e.g. statement-format DML seen), with the reason.
    pub tainted_tables: Vec<TaintView>,
    /// Recorded gaps.
    pub gaps: Vec<GapView>,
    /// XA transactions prepared on the source and not yet committed or rolled back: their
    /// rows are in no restore until `XA COMMIT` (docs/correctness.md, C13).
    #[serde(default)]
    pub prepared_xa: Vec<XaView>,
}

/// An XA transaction prepared and not yet resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct XaView {
    /// The xid as the server writes it: `X'<gtrid hex>',X'<bqual hex>',<format id>`.
    pub xid: String,
    /// Commit time of the `XA PREPARE` (RFC 3339, µs, UTC).
    pub prepared_at: String,
    /// The prepare's GTID, when the source has GTIDs.
    pub prepare_gtid: Option<String>,
    /// Tables its rows change (`db.table`).
    pub tables: Vec<String>,
    /// Row events waiting for `XA COMMIT`.
    pub rows: u64,
}

/// A tainted table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaintView {
    /// `db.table`
    pub table: String,
    /// Why.
    pub reason: String,
    /// When (RFC 3339, UTC).
    pub since: String,
}

/// `GET /api/v1/servers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourcesResponse {
    /// One per configured source.
    pub sources: Vec<SourceStatus>,
}

/// One decoded row change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventView {
    /// Position in the source's log.
    pub event_id: u64,
    /// `db.table`
    pub table: String,
    /// `insert`, `update`, `delete`.
    pub kind: String,
    /// The transaction's GTID, if any.
    pub gtid: Option<String>,
    /// Commit time (RFC 3339, µs, UTC).
    pub commit_time: String,
    /// Commit time in µs since the epoch.
    pub commit_us: i64,
    /// Schema version used to decode.
    pub schema_version: u32,
    /// Column names, in table order.
    pub columns: Vec<String>,
    /// Before image (update, delete), rendered per [`crate::render`].
    pub before: Option<Vec<serde_json::Value>>,
    /// After image (insert, update).
    pub after: Option<Vec<serde_json::Value>>,
}

/// `GET /api/v1/servers/{name}/events`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventsResponse {
    /// Matching events in log order.
    pub events: Vec<EventView>,
    /// True when `limit` cut the list.
    pub truncated: bool,
}

/// `GET /api/v1/servers/{name}/transactions/{gtid}/undo`: SQL that undoes one transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UndoResponse {
    /// The transaction.
    pub gtid: String,
    /// Its commit time (RFC 3339, µs, UTC).
    pub commit_time: String,
    /// Tables it changed.
    pub tables: Vec<String>,
    /// Row changes undone (one statement each).
    pub statements: usize,
    /// Later changes to the same rows (the undo would overwrite them); the script is only
    /// returned with conflicts when `force=true` was asked.
    pub conflicts: Vec<String>,
    /// The script.
    pub sql: String,
}

/// `POST /api/v1/servers/{name}/undo` body: the undo of a time window (`dbtrailctl undo
/// --since --until`). The answer is the SQL (text/plain, streamed), its summary in the
/// [`UNDO_SUMMARY_HEADER`] header as [`UndoWindowSummary`] JSON.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UndoWindowRequest {
    /// Start of the window (from the start of this time at its precision).
    pub since: String,
    /// End of the window (through the end of this time at its precision).
    pub until: String,
    /// `db.table` names; empty: every table changed in the window.
    #[serde(default)]
    pub tables: Vec<String>,
    /// `insert`, `update`, `delete`; empty: all three.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Row keys (`id=42`) of the one table in `tables`; empty: every row.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Only these transactions of the window; empty: all.
    #[serde(default)]
    pub gtids: Vec<String>,
    /// Statements per transaction of the script (each batch its own); none: one transaction.
    #[serde(default)]
    pub batch_rows: Option<usize>,
    /// Give the script even when changes not undone conflict (listed as warnings).
    #[serde(default)]
    pub force: bool,
    /// Leave the conflicting keys alone (undo the rest, say which).
    #[serde(default)]
    pub skip_conflicts: bool,
}

/// The response header holding a window undo's [`UndoWindowSummary`] (JSON, ASCII).
pub const UNDO_SUMMARY_HEADER: &str = "x-dbtrail-undo-summary";

/// What a window undo's script does (also written as its header comment).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UndoWindowSummary {
    /// The window's first microsecond (RFC 3339, UTC).
    pub since: String,
    /// Its last microsecond.
    pub until: String,
    /// Statements in the script (one per change undone).
    pub statements: u64,
    /// Transactions of the script (1 unless batched).
    pub batches: u64,
    /// Tables it changes.
    pub tables: Vec<String>,
    /// The first conflicts (changes not undone that the undo would overwrite), when forced
    /// or skipped.
    pub conflicts: Vec<String>,
    /// Conflicts in all.
    pub conflict_count: u64,
    /// With `skip_conflicts`: the first keys left alone.
    pub skipped_keys: Vec<String>,
    /// Keys left alone in all.
    pub skipped_key_count: u64,
    /// Changes of the window not undone because their key was left alone.
    pub skipped_statements: u64,
}

/// What an asynchronous job (backup, restore) is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Still working.
    Running,
    /// Done; the result is available.
    Completed,
    /// Stopped; `error` says why and what to do.
    Failed,
}

/// `POST /api/v1/servers/{name}/backups` body (optional: no body is a snapshot).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    /// Compute the baseline from the newest baseline and the log, reading nothing from the
    /// source (`dbtrailctl backup --from-log`).
    #[serde(default)]
    pub from_log: bool,
}

/// `POST /api/v1/servers/{name}/backups` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupStarted {
    /// The job's id (the baseline's id once it completes).
    pub backup_id: String,
    /// `running`.
    pub status: JobStatus,
}

/// One backup job: `GET /api/v1/servers/{name}/backups/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupJobView {
    /// Job and baseline id.
    pub id: String,
    /// The source.
    pub source: String,
    /// Running, completed or failed.
    pub status: JobStatus,
    /// `connecting`, `snapshot`, `reading`, `manifest`, `retention`, `complete`.
    pub phase: String,
    /// When the job started (RFC 3339, UTC).
    pub started_at: String,
    /// When it ended.
    pub finished_at: Option<String>,
    /// How long it took (ms), once ended.
    pub duration_ms: Option<u64>,
    /// Tables to read.
    pub tables_total: u64,
    /// Tables read and stored.
    pub tables_done: u64,
    /// Rows stored so far.
    pub rows: u64,
    /// Bytes stored so far.
    pub bytes: u64,
    /// How long the global read lock was held (ms).
    pub lock_held_ms: Option<f64>,
    /// Why it failed, with what to do.
    pub error: Option<String>,
    /// The baseline, when completed.
    pub baseline: Option<crate::baseline::BaselineManifest>,
}

/// `GET /api/v1/servers/{name}/backups`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackupsResponse {
    /// The store's URL.
    pub store: String,
    /// Complete baselines, oldest first.
    pub baselines: Vec<crate::baseline::BaselineManifest>,
    /// Jobs of this process, newest first (running and recently ended).
    pub jobs: Vec<BackupJobView>,
}

/// `POST /api/v1/servers/{name}/pitr` body. Exactly one of `target_time`, `target_gtid`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PitrRequest {
    /// `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC) or RFC 3339. A transaction is included when its
    /// commit time, truncated to the target's precision, is at or before the target.
    #[serde(default)]
    pub target_time: Option<String>,
    /// The state right after these transactions (a GTID set).
    #[serde(default)]
    pub target_gtid: Option<String>,
    /// `db.table` names; empty: every table of the baseline.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Restore across recorded gaps in the log (the result may miss their transactions).
    #[serde(default)]
    pub allow_gaps: bool,
    /// A new or empty local directory, or `s3://bucket/prefix`; default under data_dir.
    #[serde(default)]
    pub output: Option<String>,
    /// Validate and return the plan without writing anything.
    #[serde(default)]
    pub dry_run: bool,
    /// Where each table's image comes from: `auto` (default: the one needing the fewest
    /// events replayed), `baseline` (stored baselines and table images, forward or
    /// backward), `live` (the live table now, with the changes since the target undone).
    #[serde(default)]
    pub image: Option<String>,
    /// With `tables`: also write the requested tables' triggers as they were at the target
    /// (a restore of everything writes every view, trigger, routine and event).
    #[serde(default)]
    pub with_triggers: bool,
    /// Load the restored tables straight into this server instead of writing a dump.
    #[serde(default)]
    pub into: Option<IntoTarget>,
}

/// Where `pitr --into` loads the restored tables.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntoTarget {
    /// `mysql://USER@HOST:PORT[/DB]` (no password in the URL).
    pub url: String,
    /// The user's password (sent over the local socket only; never logged or shown).
    #[serde(default)]
    pub password: Option<String>,
    /// Load every table into this database (it must not be a restored table's own database
    /// when the target is the source itself); default: the URL's, else each table's own.
    #[serde(default)]
    pub database: Option<String>,
    /// Replace tables that exist in the target (they are swapped out in the final rename and
    /// dropped); without it an existing table is refused.
    #[serde(default)]
    pub replace: bool,
    /// Connections loading in parallel (1..=32; default 4).
    #[serde(default)]
    pub connections: Option<usize>,
    /// TLS to the target: `disabled` (default) or `required`.
    #[serde(default)]
    pub ssl_mode: Option<String>,
    /// Write the loaded rows to the target's binlog (default: not, `sql_log_bin = 0`, as
    /// `myloader` does).
    #[serde(default)]
    pub binlog: bool,
}

impl std::fmt::Debug for IntoTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntoTarget")
            .field("url", &self.url)
            .field("password", &self.password.as_ref().map(|_| "(set)"))
            .field("database", &self.database)
            .field("replace", &self.replace)
            .field("connections", &self.connections)
            .field("ssl_mode", &self.ssl_mode)
            .field("binlog", &self.binlog)
            .finish()
    }
}

/// What a restore will do (the dry run's answer; also part of every job).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PitrPlan {
    /// The target as asked.
    pub target: String,
    /// The inclusion rule applied, in words.
    pub rule: String,
    /// The baseline it starts from.
    pub baseline_id: String,
    /// The baseline's snapshot time (RFC 3339).
    pub baseline_time: String,
    /// The baseline's position.
    pub baseline_position: String,
    /// Tables restored.
    pub tables: Vec<String>,
    /// Transactions replayed on top of the baseline.
    pub transactions: u64,
    /// Row events replayed (all tables of those transactions).
    pub events: u64,
    /// Approximate bytes of the logged events replayed (encoded size).
    pub event_bytes: u64,
    /// The last transaction included: its GTID, if any.
    pub last_gtid: Option<String>,
    /// Its commit time (RFC 3339); None when no transaction after the baseline is included.
    pub last_commit_time: Option<String>,
    /// Its end position in the binlog (`file:pos`).
    pub last_position: Option<String>,
    /// The GTID set the restored state reflects.
    pub gtid_set_reached: String,
    /// Gaps recorded in the replayed range (only with `allow_gaps`).
    pub gaps: Vec<GapView>,
    /// Tables of the source whose coverage is tainted (none of them may be restored).
    pub tainted_tables: Vec<TaintView>,
    /// Tables the log knows that the baseline does not hold (created after it).
    pub not_in_baseline: Vec<String>,
    /// Foreign-key actions the restore replays: one line per cascading foreign key of a
    /// restored table (and of the parents it needs), saying whose changes are replayed.
    #[serde(default)]
    pub cascades: Vec<String>,
    /// Per restored table: the image it is rebuilt from and the alternatives.
    #[serde(default)]
    pub images: Vec<TableImagePlan>,
    /// The views, triggers, routines and events written (`trigger d.tr`, ...), or why none
    /// are.
    #[serde(default)]
    pub objects: Vec<String>,
}

/// The image one table is rebuilt from, and the others that were considered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableImagePlan {
    /// `db.table`.
    pub table: String,
    /// The choice.
    pub chosen: ImageOption,
    /// The other images considered (usable or not, with the reason).
    pub alternatives: Vec<ImageOption>,
}

/// One way to rebuild a table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageOption {
    /// `baseline <id>`, `table image <id>` or `live`.
    pub image: String,
    /// `forward` (image before the target, later changes replayed) or `backward` (image after
    /// it, the changes since the target undone).
    pub direction: String,
    /// Row events of the table replayed.
    pub events: u64,
    /// Why it cannot be used (None: usable).
    #[serde(default)]
    pub unusable: Option<String>,
}

/// `POST .../pitr` answer: the job (`pitr_id`, running) or, for a dry run, just the plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PitrStarted {
    /// The job id (None for a dry run).
    pub pitr_id: Option<String>,
    /// `running`, or `completed` for a dry run.
    pub status: JobStatus,
    /// The plan.
    pub plan: PitrPlan,
}

/// `GET /api/v1/servers/{name}/pitr/{id}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PitrJobView {
    /// Job id.
    pub pitr_id: String,
    /// Running, completed or failed.
    pub status: JobStatus,
    /// `preparing`, `reconstructing`, `uploading`, `complete`.
    pub phase: String,
    /// 0.0 to 1.0.
    pub progress: f64,
    /// Tables done / total.
    pub tables_done: u64,
    /// See `tables_done`.
    pub tables_total: u64,
    /// Rows written.
    pub rows: u64,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// The output (directory or s3:// URL).
    pub path: String,
    /// Bytes written, once completed.
    pub size_bytes: Option<u64>,
    /// Files written, once completed.
    pub file_count: Option<u64>,
    /// How long it took (ms), once ended.
    pub duration_ms: Option<u64>,
    /// Why it failed and what to do.
    pub error: Option<String>,
    /// The plan.
    pub plan: PitrPlan,
}

/// One baseline in a coverage report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoverageBaseline {
    /// Id.
    pub id: String,
    /// Snapshot time (RFC 3339).
    pub time: String,
    /// Position.
    pub position: String,
}

/// A range of restorable times (inclusive, RFC 3339).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimeRange {
    /// From.
    pub from: String,
    /// To.
    pub to: String,
}

/// `GET /api/v1/servers/{name}/coverage`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoverageView {
    /// Oldest captured commit still in the log.
    pub oldest_commit: Option<String>,
    /// Newest captured commit.
    pub newest_commit: Option<String>,
    /// Baselines, oldest first.
    pub baselines: Vec<CoverageBaseline>,
    /// Recorded gaps.
    pub gaps: Vec<GapView>,
    /// Tainted tables.
    pub tainted_tables: Vec<TaintView>,
    /// Times a restore can target (from a baseline to the newest commit, split at gaps).
    pub restorable: Vec<TimeRange>,
    /// Table images (snapshots of some tables, after DDL or for restores from the live
    /// tables), oldest first.
    #[serde(default)]
    pub table_images: Vec<CoverageBaseline>,
    /// Tables whose latest DDL no image holds yet: restores of them past it are refused until
    /// the daemon images them (it retries) or a baseline is taken.
    #[serde(default)]
    pub holes: Vec<CoverageHole>,
}

/// A table not restorable past a DDL (no image after it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoverageHole {
    /// `db.table`.
    pub table: String,
    /// The DDL's commit time (RFC 3339).
    pub since: String,
    /// The statement.
    pub ddl: String,
}

/// `GET /api/v1/servers/{name}/tables/{db.t}/rows`: a table's rows at a moment (`format=json`;
/// with `format=ndjson` this is the first line, with `rows` empty, then one JSON array per
/// row, then a [`StreamEnd`] line).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RowsResponse {
    /// The table.
    pub table: String,
    /// The target as asked.
    pub target: String,
    /// The inclusion rule applied.
    pub rule: String,
    /// The image the rows were rebuilt from and the direction.
    pub image: String,
    /// The key asked for, if any (`col=value, ...`).
    pub key: Option<String>,
    /// Column names, in table order.
    pub columns: Vec<String>,
    /// The rows (values rendered as the events API renders them).
    pub rows: Vec<Vec<serde_json::Value>>,
    /// True when `limit` cut the rows.
    pub truncated: bool,
    /// What was read to answer (image rows, changes).
    pub read: String,
}

/// The last line of a streamed (`ndjson`) answer: `{"end": {...}}`, or `{"error": {...}}`
/// when the stream failed midway (then the rows before it are not the whole answer).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamEnd {
    /// Rows sent.
    pub rows: u64,
    /// True when `limit` cut the rows.
    pub truncated: bool,
    /// What was read to answer.
    pub read: String,
}

/// One column's change.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnChange {
    /// The column.
    pub column: String,
    /// Its value before.
    pub old: serde_json::Value,
    /// Its value after.
    pub new: serde_json::Value,
}

/// One key's net change between two moments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiffRow {
    /// `inserted`, `deleted` or `changed`.
    pub kind: String,
    /// Its key (`col=value, ...`; every column for a table without a primary key).
    pub key: String,
    /// The row at `from` (absent when inserted).
    pub before: Option<Vec<serde_json::Value>>,
    /// The row at `to` (absent when deleted).
    pub after: Option<Vec<serde_json::Value>>,
    /// For `changed`: the columns that differ.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<ColumnChange>,
    /// For a table without a primary key: copies of the row added or removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copies: Option<u64>,
}

/// `GET /api/v1/servers/{name}/tables/{db.t}/diff`: the net change per key between two moments.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DiffResponse {
    /// The table.
    pub table: String,
    /// The first moment as asked, and the last commit time it includes.
    pub from: String,
    /// The second moment as asked, and the last commit time it includes.
    pub to: String,
    /// Column names, in table order.
    pub columns: Vec<String>,
    /// Keys (or row copies) inserted between the two moments.
    pub inserted: u64,
    /// Keys (or row copies) deleted.
    pub deleted: u64,
    /// Keys whose row changed.
    pub changed: u64,
    /// Row changes in the log between the two moments.
    pub changes: u64,
    /// The rows, by key (the first `limit`).
    pub rows: Vec<DiffRow>,
    /// True when `limit` cut the rows.
    pub truncated: bool,
}

/// One version of a row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionView {
    /// Commit time (RFC 3339, µs, UTC).
    pub commit_time: String,
    /// Its transaction's GTID, when the source has GTIDs.
    pub gtid: Option<String>,
    /// Its position in the log.
    pub event_id: u64,
    /// `insert`, `update` or `delete`.
    pub kind: String,
    /// The row after the change (before it, for a delete).
    pub row: Vec<serde_json::Value>,
    /// For an update: the columns it changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<ColumnChange>,
}

/// `GET /api/v1/servers/{name}/tables/{db.t}/history`: every version of one row.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HistoryResponse {
    /// The table.
    pub table: String,
    /// The key as given.
    pub key: String,
    /// Column names, in the newest schema's order.
    pub columns: Vec<String>,
    /// Its changes, oldest first (the first `limit`).
    pub versions: Vec<VersionView>,
    /// True when `limit` cut the list.
    pub truncated: bool,
    /// Changes of the table scanned.
    pub scanned: u64,
    /// Where the log begins (nothing before it is known).
    pub log_begins: Option<String>,
}

/// `POST /api/v1/servers/{name}/verify` body: the tables to verify (`db.table`); empty: the
/// source's least recently verified tables (`verify_tables` of them).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// `db.table` names.
    #[serde(default)]
    pub tables: Vec<String>,
}

/// How a verification ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyOutcome {
    /// Still working.
    Running,
    /// Every table rebuilt from the history equals the live table.
    Passed,
    /// Some table differs: `tables[].differences` names the rows.
    Mismatch,
    /// It could not compare (`error` says why and what to do).
    Failed,
}

/// One row that differs between the live table and its rebuild.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifyDifference {
    /// `missing` (in the live table, not in the rebuild), `extra` (in the rebuild only) or
    /// `differs` (the key on both sides, other values in `columns`).
    pub kind: String,
    /// The row's primary key (the whole row for a table without one), e.g. `id=42`.
    pub key: String,
    /// Rows with this key (whole row) on one side only (missing / extra).
    pub copies: u64,
    /// The columns that differ (differs).
    pub columns: Vec<VerifyColumn>,
}

/// A column whose value differs between the live table and the rebuild.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifyColumn {
    /// The column.
    pub column: String,
    /// Its value in the live table.
    pub live: serde_json::Value,
    /// Its value in the rebuild.
    pub rebuilt: serde_json::Value,
}

/// One table's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableVerify {
    /// `db.table`.
    pub table: String,
    /// Rows of the live table at the position.
    pub live_rows: u64,
    /// Rows of the rebuild.
    pub rebuilt_rows: u64,
    /// Rows that differ (at least this many when `truncated`).
    pub mismatched_rows: u64,
    /// The first differences, in key order.
    pub differences: Vec<VerifyDifference>,
    /// More rows differ than were examined or listed.
    pub truncated: bool,
}

/// A verification: chosen tables rebuilt from the history at a captured position, compared
/// with the live tables read at that same position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerifyRun {
    /// Its id.
    pub id: String,
    /// The source.
    pub source: String,
    /// Where it stands.
    pub outcome: VerifyOutcome,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended.
    pub finished_at: Option<String>,
    /// The tables.
    pub tables: Vec<String>,
    /// The position both sides are at (the GTID set).
    pub position: Option<String>,
    /// The table image of the live tables taken at that position.
    pub image_id: Option<String>,
    /// The baseline the rebuild started from.
    pub baseline_id: Option<String>,
    /// Changes the rebuild replayed onto its images.
    pub events: u64,
    /// Per table, when compared.
    pub results: Vec<TableVerify>,
    /// Why it failed, and what to do.
    pub error: Option<String>,
}
