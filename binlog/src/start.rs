//! How a baseline's snapshot starts: the four methods of `baseline_lock`, and which one the
//! user's grants allow.
//!
//! Every method starts one `WITH CONSISTENT SNAPSHOT` transaction per reading connection and
//! establishes which logged transactions those snapshots hold:
//! - `global` ([`crate::snapshot::consistent_start`]): `FLUSH TABLES WITH READ LOCK` while
//!   they start; no commit can happen meanwhile, so the position read under the lock is
//!   exact for every table. Needs RELOAD, which managed servers refuse.
//! - `tables` ([`tables_baseline`]): `LOCK TABLES ... READ` on every table of the baseline on
//!   one more connection while they start. The lock waits until every transaction that wrote
//!   one of them has committed and keeps new writers out, so for these tables the position
//!   read under it is exact (the same argument as a table image, `snapshot::tables_start`).
//!   The table list is read again under the lock; a table created or dropped in between
//!   makes it start over. Needs SELECT and LOCK TABLES, which RDS, Aurora and Cloud SQL grant.
//! - MariaDB ([`mariadb_baseline`]): `START TRANSACTION WITH CONSISTENT SNAPSHOT` makes the
//!   snapshot and the binlog consistent, and `Binlog_snapshot_file`/`_position` name the exact
//!   binlog offset of each connection's snapshot, with no lock at all. When all connections
//!   name the same offset the baseline is exact there; under load they may differ (each
//!   started after different commits): after a few tries the baseline records the lowest as
//!   `position` and the highest as `upper`, and is then used like a `none` baseline (each
//!   connection is exact at its own offset, inside the bounds).
//! - `none` ([`lockfree_baseline`], MySQL with GTIDs): the executed GTID set `P0` is read
//!   before the snapshots start and the binlog position `P1` after. Why every snapshot lies
//!   in `[P0, P1]`: MySQL adds a transaction's GTID to `gtid_executed` only after its storage
//!   engine commit, so every transaction of `P0` is visible to a snapshot started later; and
//!   it writes a transaction to the binlog before its engine commit, so every transaction a
//!   snapshot sees ends at or before the binlog position read after the snapshot started.
//!   Without GTIDs no exact lower bound exists (a binlog offset read before the snapshot may
//!   be ahead of a commit still in flight, invisible to it), so `none` needs gtid_mode=ON.
//!
//! What a baseline exact only within `[position, upper]` is good for is the planner's
//! (`replay::plan`): a table with a primary key, from any target after `upper` (replaying
//! every change after `position` with last-image-wins gives each key its last image after
//! `position` whatever the snapshot held of it); a table without one only when no logged
//! change touched it in between, which the backup checks once the log reaches `upper`.
use crate::BinlogError;
use crate::checks::{Flavor, ServerInfo};
use crate::snapshot::{
    SYSTEM_DBS, Snapshot, consistent_start, consistent_start_within, current_position,
    snapshot_session, tables_start,
};
use crate::stream::{binlog_status, executed_set};
use dbtrail_core::baseline::SnapshotMethod;
use dbtrail_core::{Position, TableRef};
use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};

/// `baseline_lock` in the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockChoice {
    /// The best method the grants allow: global, else MariaDB's snapshot position, else
    /// tables, else none.
    Auto,
    /// Exactly this method (a missing grant fails the backup, naming it).
    Only(SnapshotMethod),
}

impl LockChoice {
    /// The allowed config values.
    pub const VALUES: &'static str = "\"auto\", \"global\", \"tables\", \"none\"";

    /// Parses a `baseline_lock` value.
    pub fn parse(s: &str) -> Option<LockChoice> {
        Some(match s {
            "auto" => LockChoice::Auto,
            "global" => LockChoice::Only(SnapshotMethod::Global),
            "tables" => LockChoice::Only(SnapshotMethod::Tables),
            "none" => LockChoice::Only(SnapshotMethod::None),
            _ => return None,
        })
    }
}

/// How long `auto` waits for the global read lock where a lock-free method is exact.
const AUTO_GLOBAL_WAIT_SECS: u32 = 5;

/// How many times a method that races with the server's writers starts over.
const TRIES: usize = 5;

/// Starts the snapshot of a baseline with `choice`. `conns` holds the reading connections
/// plus one spare (the `tables` method's locking connection); on return it holds only the
/// readers, each inside its snapshot transaction. `databases` limits the tables (None: every
/// database but the server's own).
pub async fn baseline_start(
    conns: &mut Vec<Conn>,
    info: &ServerInfo,
    choice: LockChoice,
    databases: Option<&[String]>,
) -> Result<Snapshot, BinlogError> {
    if conns.len() < 2 {
        return Err(BinlogError::Config(
            "a baseline needs at least two connections (readers and a spare)".into(),
        ));
    }
    let wanted = match choice {
        LockChoice::Only(m) => m,
        LockChoice::Auto => {
            // Global first: tried, because RELOAD alone does not tell (RDS grants it and
            // still refuses the lock).
            let mut readers: Vec<Conn> = conns.drain(1..).collect();
            // Where a lock-free method is exact, the global lock is not waited for long: the
            // whole server's writers queue behind a waiting FTWRL.
            let lockfree = info.flavor == Flavor::Mariadb || info.gtid_mode;
            let wait = if lockfree { AUTO_GLOBAL_WAIT_SECS } else { 60 };
            match consistent_start_within(&mut readers, info, wait).await {
                Ok(s) => {
                    *conns = readers;
                    return Ok(s);
                }
                Err(BinlogError::MissingPrivilege { .. }) => {
                    tracing::info!(
                        "FLUSH TABLES WITH READ LOCK is not allowed for this user; the baseline \
                         uses the next method (baseline_lock = \"auto\")"
                    );
                }
                Err(BinlogError::LockWait(why))
                    if lockfree && !has_cascading_keys(&mut conns[0], databases).await? =>
                {
                    tracing::info!(
                        "{why}; this baseline takes no lock instead (baseline_lock = \"auto\")"
                    );
                    *conns = std::iter::once(conns.remove(0)).chain(readers).collect();
                    conns.truncate(conns.len() - 1);
                    return match info.flavor {
                        Flavor::Mariadb => mariadb_baseline(conns, info, databases).await,
                        Flavor::Mysql => lockfree_baseline(conns, info, databases).await,
                    };
                }
                // Tables with cascading foreign keys need an exact position: wait longer.
                Err(BinlogError::LockWait(_)) if lockfree => {
                    let s = consistent_start_within(&mut readers, info, 60).await?;
                    *conns = readers;
                    return Ok(s);
                }
                Err(e) => return Err(e),
            }
            // The readers' failed attempt left no transaction open; start afresh.
            conns.extend(readers);
            match info.flavor {
                Flavor::Mariadb => SnapshotMethod::MariadbSnapshot,
                Flavor::Mysql if may_lock_tables(&mut conns[0], databases).await? => {
                    SnapshotMethod::Tables
                }
                Flavor::Mysql => SnapshotMethod::None,
            }
        }
    };
    match wanted {
        SnapshotMethod::Global => {
            conns.truncate(conns.len() - 1);
            consistent_start(conns, info).await
        }
        SnapshotMethod::Tables if choice == LockChoice::Auto => {
            match tables_baseline(conns, info, databases).await {
                // The grants looked sufficient but were not (a role, a partial grant): no
                // lock at all is still exact, where GTIDs allow it.
                Err(BinlogError::MissingPrivilege { .. }) if info.gtid_mode => {
                    tracing::info!(
                        "LOCK TABLES is not allowed for this user; the baseline takes no lock \
                         (baseline_lock = \"auto\")"
                    );
                    conns.truncate(conns.len() - 1);
                    lockfree_baseline(conns, info, databases).await
                }
                r => r,
            }
        }
        SnapshotMethod::Tables => tables_baseline(conns, info, databases).await,
        SnapshotMethod::MariadbSnapshot | SnapshotMethod::None
            if info.flavor == Flavor::Mariadb =>
        {
            conns.truncate(conns.len() - 1);
            mariadb_baseline(conns, info, databases).await
        }
        SnapshotMethod::None => {
            conns.truncate(conns.len() - 1);
            lockfree_baseline(conns, info, databases).await
        }
        SnapshotMethod::MariadbSnapshot | SnapshotMethod::NotApplicable => Err(
            BinlogError::Config("the MariaDB snapshot position exists only on MariaDB".into()),
        ),
    }
}

/// `'a','b'`: database names as SQL string literals.
fn quoted_list(dbs: &[String]) -> String {
    dbs.iter()
        .map(|d| format!("'{}'", d.replace('\\', "\\\\").replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(",")
}

/// Lists the base tables of `databases` (None: every database but the server's own), sorted.
async fn list_tables(
    conn: &mut Conn,
    databases: Option<&[String]>,
) -> Result<Vec<TableRef>, BinlogError> {
    let filter = match databases {
        Some([]) => return Ok(Vec::new()),
        Some(dbs) => format!("TABLE_SCHEMA IN ({})", quoted_list(dbs)),
        None => format!("TABLE_SCHEMA NOT IN ({SYSTEM_DBS})"),
    };
    let rows: Vec<(Vec<u8>, Vec<u8>)> = conn
        .query(format!(
            "SELECT CAST(TABLE_SCHEMA AS BINARY), CAST(TABLE_NAME AS BINARY) \
             FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' AND {filter} \
             ORDER BY 1, 2"
        ))
        .await
        .map_err(BinlogError::driver("listing the tables to snapshot"))?;
    Ok(rows
        .into_iter()
        .map(|(d, t)| {
            TableRef::new(
                String::from_utf8_lossy(&d).into_owned(),
                String::from_utf8_lossy(&t).into_owned(),
            )
        })
        .collect())
}

/// This user as information_schema's GRANTEE column spells it (`'user'@'host'`): a user
/// with global SELECT sees every user's rows there. Privileges through roles are not seen.
const ME: &str = "CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', \
                  SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')";

/// Whether a table of `databases` has a foreign key with a cascading action (whose changes
/// a lock-free baseline cannot replay: the planner refuses them from one).
async fn has_cascading_keys(
    conn: &mut Conn,
    databases: Option<&[String]>,
) -> Result<bool, BinlogError> {
    let filter = match databases {
        Some([]) => return Ok(false),
        Some(dbs) => format!("CONSTRAINT_SCHEMA IN ({})", quoted_list(dbs)),
        None => format!("CONSTRAINT_SCHEMA NOT IN ({SYSTEM_DBS})"),
    };
    let any: Option<u8> = conn
        .query_first(format!(
            "SELECT 1 FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE {filter} AND \
             (DELETE_RULE <> 'RESTRICT' AND DELETE_RULE <> 'NO ACTION' OR \
              UPDATE_RULE <> 'RESTRICT' AND UPDATE_RULE <> 'NO ACTION') LIMIT 1"
        ))
        .await
        .map_err(BinlogError::driver("reading the foreign keys"))?;
    Ok(any.is_some())
}

/// Whether this user holds LOCK TABLES globally or on every database of the baseline.
async fn may_lock_tables(
    conn: &mut Conn,
    databases: Option<&[String]>,
) -> Result<bool, BinlogError> {
    let global: Option<u8> = conn
        .query_first(format!(
            "SELECT 1 FROM information_schema.USER_PRIVILEGES WHERE PRIVILEGE_TYPE = \
                 'LOCK TABLES' AND GRANTEE = {ME} LIMIT 1"
        ))
        .await
        .map_err(BinlogError::driver("reading the user's privileges"))?;
    if global.is_some() {
        return Ok(true);
    }
    let dbs: Vec<String> = match databases {
        Some(d) => d.to_vec(),
        None => {
            let mut v: Vec<String> = list_tables(conn, None)
                .await?
                .into_iter()
                .map(|t| t.db)
                .collect();
            v.dedup();
            v
        }
    };
    let granted: Vec<String> = conn
        .query(format!(
            "SELECT DISTINCT TABLE_SCHEMA FROM information_schema.SCHEMA_PRIVILEGES \
             WHERE PRIVILEGE_TYPE = 'LOCK TABLES' AND GRANTEE = {ME}"
        ))
        .await
        .map_err(BinlogError::driver("reading the user's privileges"))?;
    // A schema grant may be a LIKE pattern (`shop\_%`); only exact names are trusted.
    let plain: Vec<String> = granted.iter().map(|g| g.replace("\\_", "_")).collect();
    Ok(!dbs.is_empty() && dbs.iter().all(|d| plain.contains(d)))
}

/// The `tables` method: `conns[0]` locks every table of the baseline for reading while the
/// others start their snapshots ([`tables_start`]); the table list read again under the lock
/// must be the one locked, else it starts over. Lock waits are bounded and retried.
async fn tables_baseline(
    conns: &mut Vec<Conn>,
    info: &ServerInfo,
    databases: Option<&[String]>,
) -> Result<Snapshot, BinlogError> {
    let mut last = None;
    for attempt in 0..TRIES {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 * attempt as u64)).await;
        }
        let tables = list_tables(&mut conns[0], databases).await?;
        if tables.is_empty() {
            // Nothing to lock: the position alone (no table can be wrong).
            conns.truncate(conns.len() - 1);
            for c in conns.iter_mut() {
                snapshot_session(c).await?;
            }
            let taken_us = now_us();
            let position = current_position(&mut conns[0], info).await?;
            return Ok(Snapshot {
                position,
                lock_held: Duration::ZERO,
                taken_us,
                tables,
                method: SnapshotMethod::Tables,
                upper: None,
                lock_mode: crate::snapshot::TABLES_LOCK_MODE.into(),
            });
        }
        match tables_start(conns, info, &tables).await {
            Ok(s) => {
                // Listed again (after the lock): a table created or dropped before the lock
                // was taken would be missing or extra; one created after it only costs a try.
                let now = list_tables(&mut conns[1], databases).await?;
                if now == tables {
                    conns.remove(0);
                    return Ok(s);
                }
                for c in conns.iter_mut().skip(1) {
                    let _ = c.query_drop("ROLLBACK").await;
                }
                last = Some(BinlogError::Config(
                    "tables were created or dropped while the baseline's tables were being \
                     locked, five times in a row; retry the backup"
                        .into(),
                ));
            }
            Err(e @ BinlogError::MissingPrivilege { .. }) => return Err(e),
            Err(e) => {
                for c in conns.iter_mut().skip(1) {
                    let _ = c.query_drop("ROLLBACK").await;
                }
                // 1146: a listed table was dropped before the lock.
                if e.server_code() != Some(1146) && !matches!(e, BinlogError::Config(_)) {
                    return Err(e);
                }
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| BinlogError::Config("could not lock the tables".into())))
}

/// Starts a consistent snapshot on every connection at once (so they start close together).
async fn start_all(conns: &mut [Conn]) -> Result<(), BinlogError> {
    for c in conns.iter_mut() {
        snapshot_session(c).await?;
    }
    let starts = conns.iter_mut().map(|c| async move {
        c.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            .await
            .map_err(BinlogError::driver("starting a consistent snapshot"))
    });
    futures_util::future::try_join_all(starts).await?;
    Ok(())
}

/// The MariaDB method: each connection's `Binlog_snapshot_file`/`_position` (and the GTID
/// position there, `BINLOG_GTID_POS`) is its snapshot's exact position. Equal on every
/// connection: exact; after [`TRIES`] tries with different ones, the lowest and highest
/// bound the snapshots.
async fn mariadb_baseline(
    conns: &mut [Conn],
    info: &ServerInfo,
    databases: Option<&[String]>,
) -> Result<Snapshot, BinlogError> {
    let t0 = Instant::now();
    for attempt in 0..TRIES {
        let taken_us = now_us();
        start_all(conns).await?;
        let mut at = Vec::with_capacity(conns.len());
        for c in conns.iter_mut() {
            let rows: Vec<(String, String)> = c
                .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
                .await
                .map_err(BinlogError::driver(
                    "reading the snapshot's binlog position",
                ))?;
            let get = |k: &str| {
                rows.iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(k))
                    .map(|(_, v)| v.clone())
            };
            let (Some(file), Some(pos)) = (
                get("Binlog_snapshot_file"),
                get("Binlog_snapshot_position").and_then(|p| p.parse::<u64>().ok()),
            ) else {
                return Err(BinlogError::Protocol {
                    action: "reading the snapshot's binlog position".into(),
                    detail: "no Binlog_snapshot_file/Binlog_snapshot_position status".into(),
                });
            };
            at.push((file, pos));
        }
        let same = at.windows(2).all(|w| w[0] == w[1]);
        if !same && attempt + 1 < TRIES {
            for c in conns.iter_mut() {
                let _ = c.query_drop("ROLLBACK").await;
            }
            continue;
        }
        let low = at
            .iter()
            .min_by(|a, b| dbtrail_core::history::cmp_binlog((&a.0, a.1), (&b.0, b.1)))
            .cloned()
            .unwrap_or_default();
        let high = at
            .iter()
            .max_by(|a, b| dbtrail_core::history::cmp_binlog((&a.0, a.1), (&b.0, b.1)))
            .cloned()
            .unwrap_or_default();
        let position = mariadb_position(&mut conns[0], info, &low).await?;
        let upper = if same {
            None
        } else {
            Some(mariadb_position(&mut conns[0], info, &high).await?)
        };
        let tables = list_tables(&mut conns[0], databases).await?;
        return Ok(Snapshot {
            position,
            lock_held: Duration::ZERO,
            taken_us,
            tables,
            method: SnapshotMethod::MariadbSnapshot,
            upper,
            lock_mode: format!(
                "none (MariaDB snapshot position{}, {:.0} ms)",
                if same {
                    ""
                } else {
                    ", connections at different positions"
                },
                t0.elapsed().as_secs_f64() * 1000.0
            ),
        });
    }
    unreachable!("the last try returns")
}

/// The position at a MariaDB binlog offset: the GTID state there from `BINLOG_GTID_POS`.
async fn mariadb_position(
    conn: &mut Conn,
    info: &ServerInfo,
    (file, pos): &(String, u64),
) -> Result<Position, BinlogError> {
    let gtid: Option<Option<String>> = conn
        .exec_first("SELECT BINLOG_GTID_POS(?, ?)", (file.as_str(), *pos))
        .await
        .map_err(BinlogError::driver(format!(
            "reading the GTID position at {file}:{pos}"
        )))?;
    let mut at = info.clone();
    at.gtid_executed = gtid.flatten().unwrap_or_default();
    Ok(Position {
        gtid_set: executed_set(&at)?,
        file: file.clone(),
        pos: *pos,
        server_uuid: info.server_uuid.clone(),
    })
}

/// The `none` method on MySQL: `gtid_executed` before the snapshots start, the binlog
/// position (and GTID set) after; see the module docs for why they bound the snapshots.
async fn lockfree_baseline(
    conns: &mut [Conn],
    info: &ServerInfo,
    databases: Option<&[String]>,
) -> Result<Snapshot, BinlogError> {
    let gtid_on: Option<String> = conns[0]
        .query_first("SELECT @@GLOBAL.gtid_mode")
        .await
        .map_err(BinlogError::driver("reading gtid_mode"))?;
    if !gtid_on.is_some_and(|m| m.eq_ignore_ascii_case("ON")) {
        return Err(BinlogError::Config(
            "baseline_lock = \"none\" needs gtid_mode = ON on MySQL: without GTIDs no position \
             read before a lock-free snapshot is known to be held by it; use baseline_lock = \
             \"tables\" (GRANT SELECT, LOCK TABLES) or \"global\" (GRANT RELOAD)"
                .into(),
        ));
    }
    let t0 = Instant::now();
    let taken_us = now_us();
    // P0: every GTID in it is engine-committed, so held by the snapshots started next. Its
    // file:pos is informational (read first, it is at or before the set).
    let (file0, pos0) = binlog_status(&mut conns[0], info).await?;
    let before = current_position(&mut conns[0], info).await?;
    start_all(conns).await?;
    // P1: everything the snapshots see was written to the binlog before this offset.
    let upper = current_position(&mut conns[0], info).await?;
    let tables = list_tables(&mut conns[0], databases).await?;
    Ok(Snapshot {
        position: Position {
            file: file0,
            pos: pos0,
            ..before
        },
        lock_held: Duration::ZERO,
        taken_us,
        tables,
        method: SnapshotMethod::None,
        upper: Some(upper),
        lock_mode: format!(
            "none (GTID set before, binlog position after; {:.0} ms)",
            t0.elapsed().as_secs_f64() * 1000.0
        ),
    })
}

/// A lock-free table image of `tables` (the `none` method on those tables only; on MariaDB
/// its snapshot position): for sources whose user may not lock tables.
pub async fn lockfree_image(
    conns: &mut [Conn],
    info: &ServerInfo,
    tables: &[TableRef],
) -> Result<Snapshot, BinlogError> {
    let mut s = match info.flavor {
        Flavor::Mariadb => mariadb_baseline(conns, info, Some(&[])).await?,
        Flavor::Mysql => lockfree_baseline(conns, info, Some(&[])).await?,
    };
    let mut t = tables.to_vec();
    t.sort();
    t.dedup();
    s.tables = t;
    Ok(s)
}

/// Which method `choice` would use for a baseline of `databases`, judged from the grants
/// alone (nothing is locked), and what a better one needs: for `dbtraild --check`.
pub async fn describe(
    conn: &mut Conn,
    info: &ServerInfo,
    choice: LockChoice,
    databases: Option<&[String]>,
) -> Result<String, BinlogError> {
    let reload: Option<u8> = conn
        .query_first(format!(
            "SELECT 1 FROM information_schema.USER_PRIVILEGES WHERE PRIVILEGE_TYPE IN \
             ('RELOAD', 'SUPER') AND GRANTEE = {ME} LIMIT 1"
        ))
        .await
        .map_err(BinlogError::driver("reading the user's privileges"))?;
    let lock_tables = may_lock_tables(conn, databases).await?;
    let gtid = info.flavor == Flavor::Mariadb || info.gtid_mode;
    let better_global = "GRANT RELOAD ON *.* for \"global\" (exact for every table, a global \
                         lock of milliseconds; managed servers refuse it)";
    let better_tables = "GRANT LOCK TABLES ON each database for \"tables\" (exact, locks the \
                         baseline's tables for milliseconds)";
    Ok(match choice {
        LockChoice::Auto => match (reload.is_some(), info.flavor, lock_tables) {
            (true, Flavor::Mariadb, _) => "auto: global (FLUSH TABLES WITH READ LOCK; if the \
                server refuses it, MariaDB's snapshot position, no lock)"
                .into(),
            (true, _, true) => "auto: global (FLUSH TABLES WITH READ LOCK; if the server \
                refuses it, as managed servers do, tables: LOCK TABLES ... READ)"
                .into(),
            (true, _, false) if gtid => format!(
                "auto: global (FLUSH TABLES WITH READ LOCK; if the server refuses it, as managed \
                 servers do, none: no lock, keyed tables exact after the snapshot, key-less ones \
                 re-imaged when written meanwhile); {better_tables}"
            ),
            (true, _, false) => format!(
                "auto: global (FLUSH TABLES WITH READ LOCK); if the server refuses it backups \
                 fail: {better_tables}"
            ),
            (false, Flavor::Mariadb, _) => {
                format!("auto: MariaDB's snapshot position (no lock); {better_global}")
            }
            (false, _, true) => format!("auto: tables (LOCK TABLES ... READ); {better_global}"),
            (false, _, false) if gtid => format!(
                "auto: none (no lock: keyed tables exact after the snapshot, key-less ones \
                 re-imaged when written meanwhile); {better_tables}, or {better_global}"
            ),
            (false, _, false) => format!(
                "auto: NO METHOD: backups will fail (no RELOAD, no LOCK TABLES, and \"none\" \
                 needs gtid_mode = ON); {better_tables}, or {better_global}"
            ),
        },
        LockChoice::Only(SnapshotMethod::Global) if reload.is_none() => {
            format!("global: MISSING GRANT, backups will fail: {better_global}")
        }
        LockChoice::Only(SnapshotMethod::Tables) if !lock_tables => {
            format!("tables: MISSING GRANT, backups will fail: {better_tables}")
        }
        LockChoice::Only(SnapshotMethod::None) if info.flavor == Flavor::Mariadb => {
            "none: MariaDB's snapshot position (no lock, exact)".into()
        }
        LockChoice::Only(SnapshotMethod::None) if !gtid => {
            "none: NOT POSSIBLE, backups will fail: it needs gtid_mode = ON on MySQL".into()
        }
        LockChoice::Only(m) => format!("{}: allowed by the grants", m.name()),
    })
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
