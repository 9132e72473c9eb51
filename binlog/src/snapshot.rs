//! Consistent snapshots: the starting image of a baseline.
//!
//! [`consistent_start`] takes a brief global read lock (`FLUSH TABLES WITH READ LOCK`), starts
//! `WITH CONSISTENT SNAPSHOT` transactions on every connection, reads the executed GTID set
//! and binlog position, and releases the lock: every connection then sees exactly the
//! transactions in that position, so a baseline plus the log's changes after it reproduce the
//! source (docs/correctness.md, C18). [`read_table`] streams a table in primary-key order
//! through the binary protocol, converting each value to the same [`Value`] the binlog decoder
//! produces for it (ENUM/SET are read as their index/bitmask with `CAST(.. AS UNSIGNED)`,
//! strings as raw bytes with `character_set_results=binary`, TIMESTAMP in UTC).
use crate::BinlogError;
use crate::checks::{Flavor, ServerInfo};
use crate::infoschema::members;
use crate::stream::{binlog_status, executed_set};
use dbtrail_core::baseline::SnapshotMethod;
use dbtrail_core::schema::quote_ident;
use dbtrail_core::value::{Date, DateTime, days_from_civil};
use dbtrail_core::{ColumnDef, ColumnType, Position, Row, TableRef, TableSchema, Value};
use futures_util::StreamExt;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Value as MyValue};
use std::time::{Duration, Instant};

mod ranges;
pub use ranges::{KeyRange, estimated_rows, even_boundaries, key_ranges, ranges_of, split_column};

/// Session settings for snapshot reads: raw bytes, UTC, no zero-date surprises.
const SESSION: &str = "SET SESSION character_set_results = binary, time_zone = '+00:00'";

/// The lock [`consistent_start`] takes, as reported in baselines.
pub const LOCK_MODE: &str = "FLUSH TABLES WITH READ LOCK";

/// What [`consistent_start`] established.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The exact position every connection's transaction reflects.
    pub position: Position,
    /// How long the global read lock was held.
    pub lock_held: Duration,
    /// When the lock was taken (µs since the epoch): the snapshot's time.
    pub taken_us: i64,
    /// The base tables of user databases at the snapshot (listed under the lock), sorted.
    pub tables: Vec<TableRef>,
    /// How the position was made exact.
    pub method: SnapshotMethod,
    /// For a snapshot without a lock, a position after every point the connections'
    /// snapshots reflect (see [`dbtrail_core::baseline::BaselineManifest::upper`]).
    pub upper: Option<Position>,
    /// The lock taken, as reported in the manifest.
    pub lock_mode: String,
}

/// Raw bytes, UTC and REPEATABLE READ for a snapshot connection.
pub(crate) async fn snapshot_session(c: &mut Conn) -> Result<(), BinlogError> {
    c.query_drop(SESSION)
        .await
        .map_err(BinlogError::driver("setting up a snapshot session"))?;
    c.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        .await
        .map_err(BinlogError::driver("setting up a snapshot session"))
}

/// The server's binlog position and executed GTID set now (read while commits, or the
/// snapshot's tables, are locked).
pub(crate) async fn current_position(
    conn: &mut Conn,
    info: &ServerInfo,
) -> Result<Position, BinlogError> {
    let (file, pos) = binlog_status(conn, info).await?;
    let executed: Option<String> = conn
        .query_first(match info.flavor {
            Flavor::Mysql => "SELECT @@GLOBAL.gtid_executed",
            Flavor::Mariadb => "SELECT @@GLOBAL.gtid_binlog_pos",
        })
        .await
        .map_err(BinlogError::driver("reading the executed GTID set"))?;
    let mut at = info.clone();
    at.gtid_executed = executed.unwrap_or_default();
    Ok(Position {
        gtid_set: executed_set(&at)?,
        file,
        pos,
        server_uuid: info.server_uuid.clone(),
    })
}

/// Databases that are the server's own, never snapshotted.
pub(crate) const SYSTEM_DBS: &str = "'mysql','sys','information_schema','performance_schema'";

/// Starts consistent snapshot transactions on every connection and returns the position they
/// all reflect, the tables that existed, and how long the global lock was held.
pub async fn consistent_start(
    conns: &mut [Conn],
    info: &ServerInfo,
) -> Result<Snapshot, BinlogError> {
    consistent_start_within(conns, info, GLOBAL_LOCK_WAIT_SECS).await
}

/// [`consistent_start`], waiting at most `wait_secs` for the global read lock.
pub async fn consistent_start_within(
    conns: &mut [Conn],
    info: &ServerInfo,
    wait_secs: u32,
) -> Result<Snapshot, BinlogError> {
    let Some((first, rest)) = conns.split_first_mut() else {
        return Err(BinlogError::Config(
            "a snapshot needs at least one connection".into(),
        ));
    };
    for c in std::iter::once(&mut *first).chain(rest.iter_mut()) {
        snapshot_session(c).await?;
    }
    // Never queue the whole server behind a long query for long: while FTWRL waits, every
    // writer waits behind it.
    first
        .query_drop(format!("SET SESSION lock_wait_timeout = {wait_secs}"))
        .await
        .map_err(BinlogError::driver("setting up a snapshot session"))?;
    first
        .query_drop("FLUSH TABLES WITH READ LOCK")
        .await
        .map_err(|e| match e {
            mysql_async::Error::Server(s) if s.code == 1227 || s.code == 1045 => {
                BinlogError::MissingPrivilege {
                    privilege: "RELOAD",
                    fix: "GRANT RELOAD ON *.* TO the dbtrail user (needed for the brief global \
                          read lock of baseline_lock = \"global\"; managed servers such as RDS \
                          refuse it even with RELOAD: use baseline_lock = \"auto\", \"tables\" \
                          or \"none\")"
                        .into(),
                }
            }
            mysql_async::Error::Server(s) if s.code == 1205 => BinlogError::LockWait(format!(
                "could not take FLUSH TABLES WITH READ LOCK within {wait_secs} s: a long query \
                 or transaction holds a table (see SHOW PROCESSLIST, and XA RECOVER for prepared \
                 XA transactions); retry the backup later, or use baseline_lock = \"none\", \
                 which takes no lock"
            )),
            e => BinlogError::driver("taking the global read lock")(e),
        })?;
    // Held from here: acquiring the lock may first wait for running statements to finish.
    let locked = Instant::now();
    let taken_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    let result = async {
        for c in std::iter::once(&mut *first).chain(rest.iter_mut()) {
            c.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                .await
                .map_err(BinlogError::driver("starting a consistent snapshot"))?;
        }
        let position = current_position(first, info).await?;
        let tables: Vec<(String, String)> = first
            .query(format!(
                "SELECT CAST(TABLE_SCHEMA AS BINARY), CAST(TABLE_NAME AS BINARY) \
                 FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' \
                 AND TABLE_SCHEMA NOT IN ({SYSTEM_DBS}) ORDER BY 1, 2"
            ))
            .await
            .map_err(BinlogError::driver("listing the tables to snapshot"))?;
        Ok::<_, BinlogError>((
            position,
            tables
                .into_iter()
                .map(|(d, t)| TableRef::new(d, t))
                .collect(),
        ))
    }
    .await;
    let unlock = first.query_drop("UNLOCK TABLES").await;
    let lock_held = locked.elapsed();
    let (position, tables) = result?;
    unlock.map_err(BinlogError::driver("releasing the global read lock"))?;
    Ok(Snapshot {
        position,
        lock_held,
        taken_us,
        tables,
        method: SnapshotMethod::Global,
        upper: None,
        lock_mode: LOCK_MODE.into(),
    })
}

/// How long [`consistent_start`] waits for the global read lock (`baseline_lock = global`).
/// While FTWRL waits, every writer of the server waits behind it.
const GLOBAL_LOCK_WAIT_SECS: u32 = 60;

/// How long [`tables_start`] waits for its table locks. While `LOCK TABLES ... READ` waits
/// (behind a long or a prepared XA transaction on the table), new writers of the table queue
/// behind it, so the wait is kept short and the image retried later instead.
pub(crate) const LOCK_WAIT_SECS: u32 = 2;

/// The lock [`tables_start`] takes, as reported in table images.
pub const TABLES_LOCK_MODE: &str = "LOCK TABLES ... READ";

/// A snapshot of some tables only, without a global lock (a table image): `conns[0]` takes
/// `LOCK TABLES t READ, ...`, which waits until every transaction that wrote those tables
/// has committed (they hold metadata locks until then) and keeps new writers out; while it is
/// held, the other connections start their consistent-snapshot transactions and the
/// position is read. Writers of the locked tables are all before the position and none after
/// it, and the snapshots see exactly those writes, so for these tables the position is exact
/// (transactions on other tables may commit meanwhile; an image is only ever used for its own
/// tables). Needs `LOCK TABLES` and `SELECT` on the tables; `conns[1..]` read them.
pub async fn tables_start(
    conns: &mut [Conn],
    info: &ServerInfo,
    tables: &[TableRef],
) -> Result<Snapshot, BinlogError> {
    let Some((first, rest)) = conns.split_first_mut() else {
        return Err(BinlogError::Config(
            "a table image needs at least two connections".into(),
        ));
    };
    if rest.is_empty() || tables.is_empty() {
        return Err(BinlogError::Config(
            "a table image needs at least two connections and one table".into(),
        ));
    }
    for c in std::iter::once(&mut *first).chain(rest.iter_mut()) {
        snapshot_session(c).await?;
    }
    // Never wait forever: a prepared XA transaction, or a long one, holds its tables' locks.
    first
        .query_drop(format!("SET SESSION lock_wait_timeout = {LOCK_WAIT_SECS}"))
        .await
        .map_err(BinlogError::driver("setting up a table image"))?;
    let list: Vec<String> = tables
        .iter()
        .map(|t| format!("{} READ", t.quoted()))
        .collect();
    first
        .query_drop(format!("LOCK TABLES {}", list.join(", ")))
        .await
        .map_err(|e| match e {
            mysql_async::Error::Server(s) if matches!(s.code, 1044 | 1142 | 1227) => {
                BinlogError::MissingPrivilege {
                    privilege: "LOCK TABLES",
                    fix: "GRANT SELECT, LOCK TABLES ON the tables' databases TO the dbtrail user \
                          (a table image locks them for reading for a moment)"
                        .into(),
                }
            }
            mysql_async::Error::Server(s) if s.code == 1205 => BinlogError::Config(format!(
                "could not lock {} for reading within {LOCK_WAIT_SECS} s: a transaction holds \
                 them (a long one, or a prepared XA transaction: see XA RECOVER); the image is \
                 retried",
                list.join(", ")
            )),
            e => BinlogError::driver(format!("locking {} for reading", list.join(", ")))(e),
        })?;
    let locked = Instant::now();
    let taken_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0);
    let result = async {
        for c in rest.iter_mut() {
            c.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                .await
                .map_err(BinlogError::driver("starting a consistent snapshot"))?;
        }
        let position = current_position(first, info).await?;
        Ok::<_, BinlogError>(position)
    }
    .await;
    let unlock = first.query_drop("UNLOCK TABLES").await;
    let lock_held = locked.elapsed();
    let position = result?;
    unlock.map_err(BinlogError::driver("releasing the table locks"))?;
    let mut tables = tables.to_vec();
    tables.sort();
    tables.dedup();
    Ok(Snapshot {
        position,
        lock_held,
        taken_us,
        tables,
        method: SnapshotMethod::Tables,
        upper: None,
        lock_mode: TABLES_LOCK_MODE.into(),
    })
}

/// Checks that this connection's user may take a table image of `tables` ([`tables_start`]):
/// read them, and lock them for reading (a lock that must wait for running writers is taken
/// as proof of the right and given up after a second). Nothing is left locked.
pub async fn check_image_rights(conn: &mut Conn, tables: &[TableRef]) -> Result<(), BinlogError> {
    conn.query_drop("SET SESSION lock_wait_timeout = 1")
        .await
        .map_err(BinlogError::driver("setting up the check of a table image"))?;
    for t in tables {
        let q = t.quoted();
        if let Err(e) = conn.query_drop(format!("SELECT 1 FROM {q} LIMIT 0")).await {
            return Err(match e {
                mysql_async::Error::Server(s) if matches!(s.code, 1142 | 1044 | 1146) => {
                    BinlogError::Config(format!(
                        "the dbtrail user cannot read {t} ({}): GRANT SELECT ON {q} TO it, or \
                         restore {t} from a baseline (--image baseline)",
                        s.message
                    ))
                }
                e => BinlogError::driver(format!("reading {t}"))(e),
            });
        }
        let locked = conn.query_drop(format!("LOCK TABLES {q} READ")).await;
        let _ = conn.query_drop("UNLOCK TABLES").await;
        match locked {
            Ok(()) => {}
            Err(mysql_async::Error::Server(s)) if s.code == 1205 => {}
            Err(mysql_async::Error::Server(s)) if matches!(s.code, 1044 | 1142 | 1227) => {
                return Err(BinlogError::Config(format!(
                    "the dbtrail user cannot lock {t} for reading ({}), which a live image \
                     needs for a moment: GRANT LOCK TABLES ON {}.* TO it, or restore {t} from \
                     a baseline (--image baseline)",
                    s.message,
                    quote_ident(&t.db)
                )));
            }
            Err(e) => return Err(BinlogError::driver(format!("locking {t} for reading"))(e)),
        }
    }
    Ok(())
}

/// `SHOW CREATE TABLE` of `table`, as the server prints it.
pub async fn show_create_table(conn: &mut Conn, table: &TableRef) -> Result<String, BinlogError> {
    let row: Option<(Vec<u8>, Vec<u8>)> = conn
        .query_first(format!("SHOW CREATE TABLE {}", table.quoted()))
        .await
        .map_err(BinlogError::driver(format!(
            "reading the definition of {table}"
        )))?;
    let (_, create) = row.ok_or_else(|| {
        BinlogError::Config(format!("table {table} disappeared during the snapshot"))
    })?;
    String::from_utf8(create).map_err(|_| BinlogError::Decode {
        what: format!("SHOW CREATE TABLE {table}"),
        file: String::new(),
        pos: 0,
        detail: "the definition is not UTF-8".into(),
    })
}

/// An object's database, name and (triggers) table, as bytes.
type NameRow = (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>);

/// Every view, trigger, stored procedure and function, and event of the databases `dbs`,
/// with the exact text `SHOW CREATE ...` gives (views with their column names; triggers in
/// the order they fire, per table). Names come from `information_schema`, which the server
/// reads as it is now, not as of a snapshot: read right after the snapshot starts, an object
/// changed in between is already in its new form, and the log's statements after the
/// snapshot's position, each of which sets an object's whole definition or drops it, give the
/// same result applied again.
///
/// The server hides triggers and events from a user without the `TRIGGER` and `EVENT`
/// privileges, and routines' text from one without global `SELECT` (or `SHOW_ROUTINE`): the
/// inner Err says which is missing, since a partial list would silently leave objects out.
pub async fn read_objects(
    conn: &mut Conn,
    dbs: &[String],
) -> Result<Result<Vec<dbtrail_core::objects::SchemaObject>, String>, BinlogError> {
    use dbtrail_core::objects::{ObjectKind, SchemaObject};
    let mut out = Vec::new();
    if dbs.is_empty() {
        return Ok(Ok(out));
    }
    conn.query_drop(
        "SET @dbtrail_grantee = CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), \
         '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')",
    )
    .await
    .map_err(BinlogError::driver("reading the current user"))?;
    for db in dbs {
        let missing: Vec<String> = conn
            .exec(
                "SELECT p FROM (SELECT 'TRIGGER' AS p UNION ALL SELECT 'EVENT') w WHERE p NOT IN \
                 (SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = \
                 @dbtrail_grantee UNION ALL SELECT PRIVILEGE_TYPE FROM \
                 information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = @dbtrail_grantee AND \
                 ? LIKE TABLE_SCHEMA)",
                (db.as_str(),),
            )
            .await
            .map_err(BinlogError::driver(
                "checking the privileges to read triggers and events",
            ))?;
        if !missing.is_empty() {
            return Ok(Err(format!(
                "the daemon's user lacks the {} privilege on {db}, without which the server \
                 hides its triggers and events; grant it to record them",
                missing.join(" and ")
            )));
        }
    }
    let list = dbs
        .iter()
        .map(|d| format!("'{}'", d.replace('\\', "\\\\").replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ");
    let text = |v: Option<Vec<u8>>| String::from_utf8_lossy(&v.unwrap_or_default()).into_owned();
    let queries = [
        (
            ObjectKind::View,
            format!(
                "SELECT TABLE_SCHEMA, TABLE_NAME, NULL FROM information_schema.VIEWS \
                 WHERE TABLE_SCHEMA IN ({list}) ORDER BY TABLE_SCHEMA, TABLE_NAME"
            ),
        ),
        (
            ObjectKind::Trigger,
            format!(
                "SELECT TRIGGER_SCHEMA, TRIGGER_NAME, EVENT_OBJECT_TABLE FROM \
                 information_schema.TRIGGERS WHERE TRIGGER_SCHEMA IN ({list}) ORDER BY \
                 TRIGGER_SCHEMA, EVENT_OBJECT_TABLE, EVENT_MANIPULATION, ACTION_TIMING, ACTION_ORDER"
            ),
        ),
        (
            ObjectKind::Procedure,
            format!(
                "SELECT ROUTINE_SCHEMA, ROUTINE_NAME, NULL FROM information_schema.ROUTINES \
                 WHERE ROUTINE_SCHEMA IN ({list}) AND ROUTINE_TYPE = 'PROCEDURE' ORDER BY 1, 2"
            ),
        ),
        (
            ObjectKind::Function,
            format!(
                "SELECT ROUTINE_SCHEMA, ROUTINE_NAME, NULL FROM information_schema.ROUTINES \
                 WHERE ROUTINE_SCHEMA IN ({list}) AND ROUTINE_TYPE = 'FUNCTION' ORDER BY 1, 2"
            ),
        ),
        (
            ObjectKind::Event,
            format!(
                "SELECT EVENT_SCHEMA, EVENT_NAME, NULL FROM information_schema.EVENTS \
                 WHERE EVENT_SCHEMA IN ({list}) ORDER BY 1, 2"
            ),
        ),
    ];
    let mut current: Option<String> = None;
    for (kind, sql) in queries {
        let rows: Vec<NameRow> = conn.query(&sql).await.map_err(BinlogError::driver(
            "listing views, triggers, routines and events",
        ))?;
        for (db, name, table) in rows {
            let (db, name) = (text(db), text(name));
            let table = table.map(|t| text(Some(t)));
            let what = format!("SHOW CREATE {} {}.{}", kind.keyword(), db, name);
            // From inside the database, names in it are not qualified (as mydumper reads them),
            // so the definitions can be created in another database.
            if current.as_deref() != Some(db.as_str()) {
                conn.query_drop(format!("USE {}", quote_ident(&db)))
                    .await
                    .map_err(BinlogError::driver(format!("USE {db}")))?;
                current = Some(db.clone());
            }
            let row: Option<mysql_async::Row> = conn
                .query_first(format!(
                    "SHOW CREATE {} {}.{}",
                    kind.keyword(),
                    quote_ident(&db),
                    quote_ident(&name)
                ))
                .await
                .map_err(BinlogError::driver(what.clone()))?;
            let Some(row) = row else {
                // Dropped since it was listed: the log's DROP follows the snapshot.
                continue;
            };
            let cols: Vec<String> = row
                .columns_ref()
                .iter()
                .map(|c| c.name_str().to_ascii_lowercase())
                .collect();
            let col = |name: &str| -> Option<String> {
                let i = cols.iter().position(|c| c == name)?;
                row.get::<Option<Vec<u8>>, _>(i)
                    .flatten()
                    .map(|v| String::from_utf8_lossy(&v).into_owned())
            };
            let create = match kind {
                ObjectKind::View => col("create view"),
                ObjectKind::Trigger => col("sql original statement"),
                ObjectKind::Procedure => col("create procedure"),
                ObjectKind::Function => col("create function"),
                ObjectKind::Event => col("create event"),
            };
            let Some(create) = create.filter(|c| !c.is_empty()) else {
                return Ok(Err(format!(
                    "{what} gave no definition: the daemon's user needs SHOW VIEW, and global \
                     SELECT (or SHOW_ROUTINE) for routines, to record it"
                )));
            };
            let mut columns = Vec::new();
            if kind == ObjectKind::View {
                let c: Vec<Option<Vec<u8>>> = conn
                    .exec(
                        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE \
                         TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
                        (db.as_str(), name.as_str()),
                    )
                    .await
                    .map_err(BinlogError::driver(format!(
                        "reading the columns of view {db}.{name}"
                    )))?;
                columns = c.into_iter().map(text).collect();
            }
            out.push(SchemaObject {
                kind,
                db,
                name,
                table,
                create,
                charset_client: col("character_set_client").unwrap_or_default(),
                collation_connection: col("collation_connection").unwrap_or_default(),
                columns,
            });
        }
    }
    Ok(Ok(out))
}

/// The current definition of a table as a [`TableSchema`] (version 0), in the same terms the
/// binlog decoder uses.
pub async fn table_schema(conn: &mut Conn, table: &TableRef) -> Result<TableSchema, BinlogError> {
    let current = crate::infoschema::table_columns(conn, table).await?;
    let foreign_keys = crate::infoschema::foreign_keys(conn, table).await?;
    if current.is_empty() {
        return Err(BinlogError::Config(format!(
            "table {table} does not exist or the dbtrail user cannot see it (GRANT SELECT)"
        )));
    }
    let mut columns = Vec::new();
    let mut pk = Vec::new();
    for (i, c) in current.into_iter().enumerate() {
        let ct = c.column_type.to_ascii_lowercase();
        let fsp = c.fsp.unwrap_or(0) as u8;
        let width = |def: u8| -> u8 {
            ct.split_once('(')
                .and_then(|(_, r)| r.split(')').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(def)
        };
        let ty = match c.data_type.as_str() {
            "tinyint" | "bool" | "boolean" => ColumnType::TinyInt,
            "smallint" => ColumnType::SmallInt,
            "mediumint" => ColumnType::MediumInt,
            "int" | "integer" => ColumnType::Int,
            "bigint" => ColumnType::BigInt,
            "float" => ColumnType::Float,
            "double" | "real" => ColumnType::Double,
            "decimal" | "numeric" => ColumnType::Decimal {
                precision: c.precision.unwrap_or(10) as u8,
                scale: c.scale.unwrap_or(0) as u8,
            },
            "year" => ColumnType::Year,
            "date" => ColumnType::Date,
            "time" => ColumnType::Time { fsp },
            "datetime" => ColumnType::DateTime { fsp },
            "timestamp" => ColumnType::Timestamp { fsp },
            "char" | "binary" | "uuid" | "inet6" | "inet4" => ColumnType::Char,
            "varchar" | "varbinary" => ColumnType::VarChar,
            "enum" => ColumnType::Enum,
            "set" => ColumnType::Set,
            "bit" => ColumnType::Bit { bits: width(1) },
            "json" => ColumnType::Json,
            "vector" => ColumnType::Vector,
            t if t.ends_with("text") || t.ends_with("blob") => ColumnType::Blob,
            "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
            | "multipolygon" | "geometrycollection" | "geomcollection" => ColumnType::Geometry,
            other => {
                return Err(BinlogError::Config(format!(
                    "{table}.{}: column type {other} is not supported for snapshots",
                    c.name
                )));
            }
        };
        let mut col = ColumnDef::new(c.name, ty.clone());
        col.unsigned = crate::infoschema::is_unsigned(&ct);
        col.nullable = c.nullable;
        col.collation = c.collation;
        if matches!(
            ty,
            ColumnType::Blob | ColumnType::Char | ColumnType::VarChar
        ) && col.collation.is_none()
        {
            col.collation = Some(dbtrail_core::schema::BINARY_COLLATION);
        }
        if matches!(ty, ColumnType::Enum | ColumnType::Set) {
            col.members = members(&c.column_type);
        }
        col.generated = c.generated;
        col.invisible = c.invisible;
        col.sql_type = Some(c.column_type);
        if let Some(p) = c.pk_position {
            pk.push((p, i));
        }
        columns.push(col);
    }
    pk.sort();
    Ok(TableSchema {
        table: table.clone(),
        version: 0,
        columns,
        primary_key: pk.into_iter().map(|(_, i)| i).collect(),
        foreign_keys,
    })
}

/// Streams the rows of `schema`'s table in primary-key order; returns the row count.
pub async fn read_table(
    conn: &mut Conn,
    schema: &TableSchema,
    mut visit: impl FnMut(Row) -> Result<(), BinlogError> + Send,
) -> Result<u64, BinlogError> {
    read_rows(conn, schema, None, Sink::Visit(&mut visit)).await
}

/// Streams the rows of `schema`'s table in primary-key order in batches of up to
/// `batch_rows` into `tx` (back-pressure: memory holds the channel's batches, never the
/// table); returns the row count. Fails when the receiver is gone.
pub async fn read_table_batches(
    conn: &mut Conn,
    schema: &TableSchema,
    batch_rows: usize,
    tx: &tokio::sync::mpsc::Sender<Vec<Row>>,
) -> Result<u64, BinlogError> {
    read_range_batches(conn, schema, None, batch_rows, tx).await
}

/// [`read_table_batches`] of the rows in `range` only (all rows for `None`), in key order.
pub async fn read_range_batches(
    conn: &mut Conn,
    schema: &TableSchema,
    range: Option<&KeyRange>,
    batch_rows: usize,
    tx: &tokio::sync::mpsc::Sender<Vec<Row>>,
) -> Result<u64, BinlogError> {
    read_rows(
        conn,
        schema,
        range,
        Sink::Channel {
            tx,
            batch: Vec::with_capacity(batch_rows),
            batch_rows: batch_rows.max(1),
        },
    )
    .await
}

enum Sink<'a> {
    Visit(&'a mut (dyn FnMut(Row) -> Result<(), BinlogError> + Send)),
    Channel {
        tx: &'a tokio::sync::mpsc::Sender<Vec<Row>>,
        batch: Vec<Row>,
        batch_rows: usize,
    },
}

impl Sink<'_> {
    async fn push(&mut self, row: Row, table: &TableRef) -> Result<(), BinlogError> {
        match self {
            Sink::Visit(f) => f(row),
            Sink::Channel {
                tx,
                batch,
                batch_rows,
            } => {
                batch.push(row);
                if batch.len() >= *batch_rows {
                    let full = std::mem::replace(batch, Vec::with_capacity(*batch_rows));
                    tx.send(full).await.map_err(|_| gone(table))?;
                }
                Ok(())
            }
        }
    }

    async fn finish(self, table: &TableRef) -> Result<(), BinlogError> {
        if let Sink::Channel { tx, batch, .. } = self
            && !batch.is_empty()
        {
            tx.send(batch).await.map_err(|_| gone(table))?;
        }
        Ok(())
    }
}

fn gone(table: &TableRef) -> BinlogError {
    BinlogError::Config(format!("the writer of {table} stopped"))
}

async fn read_rows(
    conn: &mut Conn,
    schema: &TableSchema,
    range: Option<&KeyRange>,
    mut sink: Sink<'_>,
) -> Result<u64, BinlogError> {
    let exprs: Vec<String> = schema
        .columns
        .iter()
        .map(|c| match c.ty {
            ColumnType::Enum | ColumnType::Set => {
                format!("CAST({} AS UNSIGNED)", quote_ident(&c.name))
            }
            _ => quote_ident(&c.name),
        })
        .collect();
    let order = if schema.primary_key.is_empty() {
        String::new()
    } else {
        let keys: Vec<String> = schema
            .primary_key
            .iter()
            .map(|i| quote_ident(&schema.columns[*i].name))
            .collect();
        format!(" ORDER BY {}", keys.join(","))
    };
    let (filter, params) = match range.and_then(KeyRange::condition) {
        Some((c, p)) => (format!(" WHERE {c}"), p),
        None => (String::new(), Vec::new()),
    };
    let sql = format!(
        "SELECT {} FROM {}{filter}{order}",
        exprs.join(","),
        schema.table.quoted()
    );
    let what = format!("reading {}", schema.table);
    let mut result = conn
        .exec_iter(sql, params)
        .await
        .map_err(BinlogError::driver(what.clone()))?;
    let mut stream = result
        .stream::<mysql_async::Row>()
        .await
        .map_err(BinlogError::driver(what.clone()))?
        .ok_or_else(|| BinlogError::Protocol {
            action: what.clone(),
            detail: "no result set".into(),
        })?;
    let mut n = 0u64;
    while let Some(row) = stream.next().await {
        let row = row.map_err(BinlogError::driver(what.clone()))?;
        let values = row.unwrap();
        let mut out = Vec::with_capacity(values.len());
        for (col, v) in schema.columns.iter().zip(values) {
            out.push(convert(col, v).map_err(|detail| BinlogError::Decode {
                what: format!("value of {}.{}", schema.table, col.name),
                file: String::new(),
                pos: 0,
                detail,
            })?);
        }
        sink.push(out, &schema.table).await?;
        n += 1;
    }
    drop(stream);
    drop(result);
    sink.finish(&schema.table).await?;
    Ok(n)
}

/// Converts a binary-protocol value of `col` to the binlog decoder's [`Value`].
pub fn convert(col: &ColumnDef, v: MyValue) -> Result<Value, String> {
    let bad = |v: &MyValue| format!("unexpected {v:?} for {:?}", col.ty);
    if matches!(v, MyValue::NULL) {
        return Ok(Value::Null);
    }
    // Strings and bytes are moved, not copied: most of a wide row's bytes are here.
    let v = match v {
        MyValue::Bytes(b) => match &col.ty {
            ColumnType::Char | ColumnType::VarChar | ColumnType::Blob => {
                return Ok(if col.is_binary() {
                    Value::Bytes(b)
                } else {
                    Value::Str(b)
                });
            }
            ColumnType::Geometry => return Ok(Value::Geometry(b)),
            ColumnType::Vector => return Ok(Value::Bytes(b)),
            _ => MyValue::Bytes(b),
        },
        v => v,
    };
    Ok(match (&col.ty, &v) {
        (t, MyValue::Int(i)) if t.is_integer() => {
            if col.unsigned {
                Value::UInt(u64::try_from(*i).map_err(|_| bad(&v))?)
            } else {
                Value::Int(*i)
            }
        }
        (t, MyValue::UInt(u)) if t.is_integer() => {
            if col.unsigned {
                Value::UInt(*u)
            } else {
                Value::Int(i64::try_from(*u).map_err(|_| bad(&v))?)
            }
        }
        (ColumnType::Float, MyValue::Float(f)) => Value::Float(*f),
        (ColumnType::Double, MyValue::Double(d)) => Value::Double(*d),
        (ColumnType::Decimal { .. }, MyValue::Bytes(b)) => {
            Value::Decimal(String::from_utf8(b.clone()).map_err(|_| bad(&v))?)
        }
        (ColumnType::Year, MyValue::Int(y)) => Value::Year(u16::try_from(*y).map_err(|_| bad(&v))?),
        (ColumnType::Year, MyValue::UInt(y)) => {
            Value::Year(u16::try_from(*y).map_err(|_| bad(&v))?)
        }
        (ColumnType::Date, MyValue::Date(y, m, d, ..)) => Value::Date(Date {
            year: *y,
            month: *m,
            day: *d,
        }),
        (ColumnType::DateTime { .. }, MyValue::Date(y, mo, d, h, mi, s, us)) => {
            Value::DateTime(DateTime {
                date: Date {
                    year: *y,
                    month: *mo,
                    day: *d,
                },
                hour: *h,
                minute: *mi,
                second: *s,
                micros: *us,
            })
        }
        (ColumnType::Timestamp { .. }, MyValue::Date(y, mo, d, h, mi, s, us)) => {
            if *y == 0 && *mo == 0 && *d == 0 {
                Value::Timestamp(0)
            } else {
                let days = days_from_civil(i64::from(*y), *mo, *d);
                let secs =
                    days * 86_400 + i64::from(*h) * 3600 + i64::from(*mi) * 60 + i64::from(*s);
                Value::Timestamp(secs * 1_000_000 + i64::from(*us))
            }
        }
        (ColumnType::Time { .. }, MyValue::Time(neg, days, h, m, s, us)) => {
            let secs = i64::from(*days) * 86_400
                + i64::from(*h) * 3600
                + i64::from(*m) * 60
                + i64::from(*s);
            let total = secs * 1_000_000 + i64::from(*us);
            Value::Time(if *neg { -total } else { total })
        }
        (ColumnType::Bit { .. }, MyValue::Bytes(b)) if b.len() <= 8 => {
            Value::Bit(b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x)))
        }
        (ColumnType::Enum, MyValue::Int(i)) => Value::Enum(u16::try_from(*i).map_err(|_| bad(&v))?),
        (ColumnType::Enum, MyValue::UInt(i)) => {
            Value::Enum(u16::try_from(*i).map_err(|_| bad(&v))?)
        }
        (ColumnType::Set, MyValue::Int(i)) => Value::Set(u64::try_from(*i).map_err(|_| bad(&v))?),
        (ColumnType::Set, MyValue::UInt(i)) => Value::Set(*i),
        (ColumnType::Json, MyValue::Bytes(b)) => {
            Value::Json(String::from_utf8(b.clone()).map_err(|_| bad(&v))?)
        }
        _ => return Err(bad(&v)),
    })
}
