//! Baselines: what a consistent snapshot of a source holds and where its files are.
//!
//! A baseline is a directory in a baseline store (`baselines/<id>/`): one Parquet file per
//! table and a `manifest.json` written LAST. A baseline exists exactly when its manifest does:
//! a backup that dies midway leaves files without a manifest, which are never listed and are
//! removed at the next start. The manifest is also the catalog record (RocksDB) and the API's
//! view of a baseline, so the three never disagree on a field.
//!
//! The position is the exact state the snapshot reflects (docs/correctness.md, C18): every
//! transaction in `position.gtid_set` (or, on servers without GTIDs, every transaction that
//! ends at or before `position.file:pos`) is in the files; replay applies exactly the others.
//! A snapshot taken without any lock ([`SnapshotMethod::None`], or MariaDB's connections at
//! different positions) also has an `upper` position: each table's image is exact at some
//! unknown point between `position` and `upper`, which is enough for tables with a primary
//! key at every target after `upper` (docs/correctness.md, C18).
use crate::position::Position;
use crate::schema::TableRef;
use serde::{Deserialize, Serialize};

/// The manifest format this build writes.
pub const MANIFEST_VERSION: u32 = 1;

/// How a baseline was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineOrigin {
    /// A consistent snapshot taken by dbtraild.
    Snapshot,
    /// An existing mydumper backup directory imported with `dbtrailctl baseline import`.
    MydumperImport,
    /// A table image: a snapshot of some tables only (after a DDL changed them, or of the
    /// live tables for a restore), at its own exact position, under `LOCK TABLES ... READ`.
    /// It is never the starting point of the whole source: retention keeps the images newer
    /// than the oldest full baseline it keeps.
    TableImage,
    /// A full baseline computed from an older full baseline and the log, reading nothing
    /// from the source (`dbtrailctl backup --from-log`): a restore to the newest transaction
    /// boundary the log holds, written as Parquet. Used like a snapshot. Its position is the
    /// log's checkpoint; its `snapshot_us` the last logged transaction's commit time (or the
    /// newest full baseline's `snapshot_us`, when later); no lock is taken.
    FromLog,
}

impl BaselineOrigin {
    /// True for a snapshot of the whole source (a baseline proper).
    pub fn is_full(self) -> bool {
        !matches!(self, BaselineOrigin::TableImage)
    }
}

/// How a snapshot's position was made exact (`baseline_lock` in the config).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotMethod {
    /// `FLUSH TABLES WITH READ LOCK` while the snapshots start: exact for every table.
    #[default]
    Global,
    /// `LOCK TABLES ... READ` on the tables while the snapshots start: exact for them.
    Tables,
    /// MariaDB's `binlog_snapshot_*` status: each connection's snapshot names its exact
    /// position, with no lock at all.
    MariadbSnapshot,
    /// No lock: the executed GTID set before and the binlog position after the snapshots
    /// start bound them (`position` .. `upper`).
    None,
    /// Not a snapshot of the source (an import, or computed from the log).
    NotApplicable,
}

impl SnapshotMethod {
    /// The config spelling (`baseline_lock`).
    pub fn name(self) -> &'static str {
        match self {
            SnapshotMethod::Global => "global",
            SnapshotMethod::Tables => "tables",
            SnapshotMethod::MariadbSnapshot => "mariadb_snapshot",
            SnapshotMethod::None => "none",
            SnapshotMethod::NotApplicable => "-",
        }
    }
}

/// One table of a baseline.
///
/// A large table is split into primary-key ranges, each read on its own connection into its
/// own file: `parts` lists them in key order (so reading the files one after another gives
/// the table in key order), and `file` is the first of them, so a reader that knows only
/// `file` fails loudly on the missing rows' count rather than reading another table. A table
/// in one file has no `parts` (its manifest entry is as before ranges existed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaselineTable {
    /// The table.
    pub table: TableRef,
    /// Path of its (first) Parquet file, relative to the baseline's directory.
    pub file: String,
    /// Rows of the table (all its files).
    pub rows: u64,
    /// Size of its files in bytes.
    pub bytes: u64,
    /// `SHOW CREATE TABLE` at the snapshot.
    pub create_table: String,
    /// Its files in primary-key order when it is split into ranges; empty for one file
    /// (and then left out of the JSON, so such an entry reads as before ranges existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<BaselinePart>,
}

/// One primary-key range of a table split into several files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaselinePart {
    /// Path of its Parquet file, relative to the baseline's directory.
    pub file: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
}

impl BaselineTable {
    /// Every file of the table, in primary-key order.
    pub fn files(&self) -> Vec<&str> {
        if self.parts.is_empty() {
            vec![self.file.as_str()]
        } else {
            self.parts.iter().map(|p| p.file.as_str()).collect()
        }
    }
}

/// `baselines/<id>/manifest.json`, the catalog record and the API view of one baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BaselineManifest {
    /// Manifest format version.
    pub format_version: u32,
    /// Unique id, sortable by time: `YYYYMMDDTHHMMSS.ffffffZ`.
    pub id: String,
    /// The source it was taken from.
    pub source: String,
    /// How it was made.
    pub origin: BaselineOrigin,
    /// The exact position the files reflect.
    pub position: Position,
    /// When the snapshot was taken (µs since the epoch, UTC): the moment of the global lock.
    pub snapshot_us: i64,
    /// When the backup started and finished (µs).
    pub started_us: i64,
    /// See `started_us`.
    pub finished_us: i64,
    /// How long the global read lock was held (µs); 0 for imports.
    pub lock_held_us: i64,
    /// The lock taken, e.g. `FLUSH TABLES WITH READ LOCK`.
    pub lock_mode: String,
    /// How the snapshot was made exact (manifests before methods existed: `global`).
    #[serde(default)]
    pub method: SnapshotMethod,
    /// For a snapshot without a lock: a position after every point the tables' images
    /// reflect (each is exact somewhere in `position` .. `upper`); `None` when every table is
    /// exact at `position`. Targets before `upper` cannot use it for the tables changed in
    /// between, and tables without a primary key changed in between are not in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper: Option<Position>,
    /// The tables, sorted by name.
    pub tables: Vec<BaselineTable>,
    /// Tables listed at the snapshot but dropped or altered before they could be read
    /// (the baseline does not cover them; a restore of them needs another baseline).
    pub skipped: Vec<SkippedTable>,
    /// Each file's checksum when the baseline was finished, by its path relative to the
    /// baseline's directory: `crc32:<8 hex digits>` (IEEE CRC-32 of the whole file). Checked
    /// before a restore reads the file (a corrupt file is refused, naming it). Empty in
    /// manifests written before checksums existed (their files are not checked).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub checksums: std::collections::BTreeMap<String, String>,
}

/// A table a baseline does not hold, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SkippedTable {
    /// The table.
    pub table: TableRef,
    /// Why.
    pub reason: String,
}

impl BaselineManifest {
    /// Total rows.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }

    /// Total bytes of the table files.
    pub fn bytes(&self) -> u64 {
        self.tables.iter().map(|t| t.bytes).sum()
    }

    /// The entry of `table`, if the baseline has it.
    pub fn table(&self, table: &TableRef) -> Option<&BaselineTable> {
        self.tables.iter().find(|t| &t.table == table)
    }
}

/// A baseline id for a snapshot taken at `us` (µs since the epoch).
pub fn baseline_id(us: i64) -> String {
    let t = crate::value::utc_datetime(us);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}.{:06}Z",
        t.date.year, t.date.month, t.date.day, t.hour, t.minute, t.second, t.micros
    )
}

/// The file name of a table inside a baseline: `db/table.parquet`, with every byte outside
/// `[A-Za-z0-9_-]` percent-encoded so any identifier maps to one safe, distinct name.
pub fn table_file_name(table: &TableRef) -> String {
    fn enc(s: &str) -> String {
        let mut out = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }
    format!("{}/{}.parquet", enc(&table.db), enc(&table.table))
}

/// The file of range `index` (from 0) of a table split into ranges:
/// `db/table.part-0003.parquet` beside [`table_file_name`]'s `db/table.parquet`.
pub fn part_file_name(table: &TableRef, index: usize) -> String {
    let whole = table_file_name(table);
    let stem = whole.strip_suffix(".parquet").unwrap_or(&whole);
    format!("{stem}.part-{index:04}.parquet")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_encode_by_name() {
        assert_eq!(
            serde_json::to_string(&BaselineOrigin::FromLog).expect("json"),
            "\"from_log\""
        );
        let o: BaselineOrigin = serde_json::from_str("\"snapshot\"").expect("old name");
        assert_eq!(o, BaselineOrigin::Snapshot);
        assert!(BaselineOrigin::FromLog.is_full());
        assert!(!BaselineOrigin::TableImage.is_full());
    }

    #[test]
    fn ids_sort_by_time_and_names_are_safe() {
        assert_eq!(baseline_id(0), "19700101T000000.000000Z");
        assert_eq!(
            baseline_id(1_795_000_000_123_456),
            "20261118T110640.123456Z"
        );
        assert!(baseline_id(1_795_000_000_123_456) < baseline_id(1_795_000_001_000_000));
        let t = TableRef::new("my db", "t/../x`é");
        assert_eq!(
            table_file_name(&t),
            "my%20db/t%2F%2E%2E%2Fx%60%C3%A9.parquet"
        );
        assert_ne!(
            table_file_name(&TableRef::new("a", "b%2F")),
            table_file_name(&TableRef::new("a", "b/"))
        );
    }

    fn manifest(parts: Vec<BaselinePart>) -> BaselineManifest {
        BaselineManifest {
            format_version: MANIFEST_VERSION,
            id: baseline_id(1_795_000_000_123_456),
            source: "src".into(),
            origin: BaselineOrigin::Snapshot,
            position: Position {
                gtid_set: crate::gtid::GtidSet::empty_mysql(),
                file: "binlog.000002".into(),
                pos: 157,
                server_uuid: "u".into(),
            },
            snapshot_us: 1,
            started_us: 2,
            finished_us: 3,
            lock_held_us: 4,
            lock_mode: "FLUSH TABLES WITH READ LOCK".into(),
            method: SnapshotMethod::Global,
            upper: None,
            tables: vec![
                BaselineTable {
                    table: TableRef::new("d", "a"),
                    file: "d/a.parquet".into(),
                    rows: 5,
                    bytes: 6,
                    create_table: "CREATE TABLE a".into(),
                    parts: Vec::new(),
                },
                BaselineTable {
                    table: TableRef::new("d", "b"),
                    file: parts
                        .first()
                        .map_or("d/b.parquet".into(), |p| p.file.clone()),
                    rows: parts.iter().map(|p| p.rows).sum(),
                    bytes: parts.iter().map(|p| p.bytes).sum(),
                    create_table: "CREATE TABLE b".into(),
                    parts,
                },
            ],
            skipped: Vec::new(),
            checksums: Default::default(),
        }
    }

    fn two_parts() -> Vec<BaselinePart> {
        (0..2)
            .map(|i| BaselinePart {
                file: part_file_name(&TableRef::new("d", "b"), i),
                rows: 10 + i as u64,
                bytes: 100,
            })
            .collect()
    }

    #[test]
    fn parts_are_named_beside_the_table_file_and_listed_in_order() {
        let t = TableRef::new("my db", "t.x");
        assert_eq!(part_file_name(&t, 3), "my%20db/t%2Ex.part-0003.parquet");
        let m = manifest(two_parts());
        assert_eq!(m.tables[0].files(), vec!["d/a.parquet"]);
        assert_eq!(
            m.tables[1].files(),
            vec!["d/b.part-0000.parquet", "d/b.part-0001.parquet"]
        );
        assert_eq!(m.rows(), 5 + 21);
    }

    #[test]
    fn json_leaves_out_empty_parts_and_old_manifests_load() {
        let m = manifest(two_parts());
        let json = serde_json::to_string(&m).expect("json");
        assert_eq!(json.matches("\"parts\"").count(), 1, "{json}");
        assert_eq!(
            serde_json::from_str::<BaselineManifest>(&json).expect("back"),
            m
        );
        // A manifest written before ranges existed.
        let old = manifest(Vec::new());
        let json = serde_json::to_string(&old).expect("json");
        assert!(!json.contains("parts"), "{json}");
        assert_eq!(
            serde_json::from_str::<BaselineManifest>(&json).expect("old"),
            old
        );
    }

    #[test]
    fn checksums_round_trip_and_manifests_without_them_load() {
        let mut m = manifest(Vec::new());
        let json = serde_json::to_string(&m).expect("json");
        assert!(!json.contains("checksums"), "{json}");
        m.checksums
            .insert("d/a.parquet".into(), "crc32:0badf00d".into());
        let json = serde_json::to_string(&m).expect("json");
        assert!(
            json.contains(r#""checksums":{"d/a.parquet":"crc32:0badf00d"}"#),
            "{json}"
        );
        assert_eq!(
            serde_json::from_str::<BaselineManifest>(&json).expect("back"),
            m
        );
    }
}
