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
}

impl BaselineOrigin {
    /// True for a snapshot of the whole source (a baseline proper).
    pub fn is_full(self) -> bool {
        !matches!(self, BaselineOrigin::TableImage)
    }
}

/// One table of a baseline.
///
/// A large table is split into primary-key ranges, each read on its own connection into its
/// own file: `parts` lists them in key order (so reading the files one after another gives
/// the table in key order), and `file` is the first of them, so a reader that knows only
/// `file` fails loudly on the missing rows' count rather than reading another table. A table
/// in one file has no `parts` (its manifest entry is as before ranges existed).
#[derive(Clone, Debug, PartialEq, Deserialize)]
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
    /// Its files in primary-key order when it is split into ranges; empty for one file.
    #[serde(default)]
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

// By hand for one reason: `manifest.json` (and the API) leave out an empty `parts`, so a
// table in one file is written exactly as before; the catalog's binary encoding (postcard,
// not self-describing) always has the field, since it cannot skip one.
impl Serialize for BaselineTable {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let skip = self.parts.is_empty() && s.is_human_readable();
        let mut st = s.serialize_struct("BaselineTable", if skip { 5 } else { 6 })?;
        st.serialize_field("table", &self.table)?;
        st.serialize_field("file", &self.file)?;
        st.serialize_field("rows", &self.rows)?;
        st.serialize_field("bytes", &self.bytes)?;
        st.serialize_field("create_table", &self.create_table)?;
        if skip {
            st.skip_field("parts")?;
        } else {
            st.serialize_field("parts", &self.parts)?;
        }
        st.end()
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
    /// The tables, sorted by name.
    pub tables: Vec<BaselineTable>,
    /// Tables listed at the snapshot but dropped or altered before they could be read
    /// (the baseline does not cover them; a restore of them needs another baseline).
    pub skipped: Vec<SkippedTable>,
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

/// Catalog records written before tables could be split into ranges: the same layout
/// without `parts`. The catalog's encoding is not self-describing, so these decode only
/// as this type ([`BaselineManifest::from_v1`]).
pub mod v1 {
    use super::*;

    /// A [`super::BaselineTable`] without `parts`.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct BaselineTable {
        /// See [`super::BaselineTable`].
        pub table: TableRef,
        /// See [`super::BaselineTable`].
        pub file: String,
        /// See [`super::BaselineTable`].
        pub rows: u64,
        /// See [`super::BaselineTable`].
        pub bytes: u64,
        /// See [`super::BaselineTable`].
        pub create_table: String,
    }

    /// A [`super::BaselineManifest`] whose tables have no `parts`.
    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct BaselineManifest {
        /// See [`super::BaselineManifest`].
        pub format_version: u32,
        /// See [`super::BaselineManifest`].
        pub id: String,
        /// See [`super::BaselineManifest`].
        pub source: String,
        /// See [`super::BaselineManifest`].
        pub origin: BaselineOrigin,
        /// See [`super::BaselineManifest`].
        pub position: Position,
        /// See [`super::BaselineManifest`].
        pub snapshot_us: i64,
        /// See [`super::BaselineManifest`].
        pub started_us: i64,
        /// See [`super::BaselineManifest`].
        pub finished_us: i64,
        /// See [`super::BaselineManifest`].
        pub lock_held_us: i64,
        /// See [`super::BaselineManifest`].
        pub lock_mode: String,
        /// See [`super::BaselineManifest`].
        pub tables: Vec<BaselineTable>,
        /// See [`super::BaselineManifest`].
        pub skipped: Vec<SkippedTable>,
    }
}

impl BaselineManifest {
    /// A catalog record of the layout before ranges, as today's manifest (no table split).
    pub fn from_v1(m: v1::BaselineManifest) -> BaselineManifest {
        BaselineManifest {
            format_version: m.format_version,
            id: m.id,
            source: m.source,
            origin: m.origin,
            position: m.position,
            snapshot_us: m.snapshot_us,
            started_us: m.started_us,
            finished_us: m.finished_us,
            lock_held_us: m.lock_held_us,
            lock_mode: m.lock_mode,
            tables: m
                .tables
                .into_iter()
                .map(|t| BaselineTable {
                    table: t.table,
                    file: t.file,
                    rows: t.rows,
                    bytes: t.bytes,
                    create_table: t.create_table,
                    parts: Vec::new(),
                })
                .collect(),
            skipped: m.skipped,
        }
    }

    /// Decodes a catalog record ([`crate::codec`]) of this layout or of the one before ranges.
    pub fn decode(bytes: &[u8]) -> Result<BaselineManifest, crate::codec::CodecError> {
        match crate::codec::decode::<BaselineManifest>("baseline", bytes) {
            // Postcard ignores trailing bytes: a record of the other layout that happens to
            // parse would not re-encode to the same bytes.
            Ok(m) if crate::codec::encode(&m) == bytes => Ok(m),
            first => match crate::codec::decode::<v1::BaselineManifest>("baseline", bytes) {
                Ok(old) if crate::codec::encode(&old) == bytes => Ok(Self::from_v1(old)),
                _ => first,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn catalog_records_of_both_layouts_decode() {
        for m in [manifest(two_parts()), manifest(Vec::new())] {
            let bytes = crate::codec::encode(&m);
            assert_eq!(BaselineManifest::decode(&bytes).expect("decode"), m);
        }
        // Golden: a record as builds before ranges wrote it (no `parts` field).
        let old = manifest(Vec::new());
        let v1 = v1::BaselineManifest {
            format_version: old.format_version,
            id: old.id.clone(),
            source: old.source.clone(),
            origin: old.origin,
            position: old.position.clone(),
            snapshot_us: 1,
            started_us: 2,
            finished_us: 3,
            lock_held_us: 4,
            lock_mode: old.lock_mode.clone(),
            tables: old
                .tables
                .iter()
                .map(|t| v1::BaselineTable {
                    table: t.table.clone(),
                    file: t.file.clone(),
                    rows: t.rows,
                    bytes: t.bytes,
                    create_table: t.create_table.clone(),
                })
                .collect(),
            skipped: Vec::new(),
        };
        let bytes = crate::codec::encode(&v1);
        assert_eq!(
            hex::encode(&bytes),
            GOLDEN_V1,
            "the layout before ranges must not change"
        );
        assert_eq!(BaselineManifest::decode(&bytes).expect("v1"), old);
    }

    const GOLDEN_V1: &str = "0101173230323631313138543131303634302e3132333435365a0373726300000d62696e6c6f672e3030303030329d010175020406081b464c555348205441424c455320574954482052454144204c4f434b02016401610b642f612e7061727175657405060e435245415445205441424c452061016401620b642f622e7061727175657400000e435245415445205441424c45206200";
}
