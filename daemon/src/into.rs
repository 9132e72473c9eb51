//! `pitr --into mysql://...`: the restored tables loaded straight into a MySQL server (a
//! staging server, or the source itself under another database name) instead of a dump.
//!
//! What the target ends with, and why a half-done load is never taken for a complete one:
//! 1. [`preflight`] (before the job starts, so refusals are the request's answer): the
//!    target is reachable; each table's destination is `database` (the request's, else the
//!    URL's, else the table's own); two tables never land on one name; when the target is the
//!    source itself (same `@@server_uuid`), no table may land in its own database; a
//!    destination that exists is refused unless `replace`.
//! 2. [`load`]: every destination database gets a staging database
//!    (`dbtrail_stage_<restore id>_<n>`); each table is created there from its `SHOW CREATE
//!    TABLE` at the image (so its indexes, foreign keys and options are the source's), then
//!    filled by the restore engine over `connections` connections, one lane each, with
//!    multi-row `INSERT`s whose values are the dump's byte-exact literals, under the dump's
//!    session (binary names, UTC, `NO_AUTO_VALUE_ON_ZERO`), foreign-key and unique checks off.
//! 3. Each staged table's `COUNT(*)` must equal the rows the engine wrote.
//! 4. One `RENAME TABLE` moves every staged table to its destination (and, with `replace`,
//!    the existing ones out to `..._old`, dropped afterwards). MySQL performs a multi-table
//!    `RENAME TABLE` atomically: the destinations hold either the old tables or all the
//!    restored ones, never a part. Until that statement, nothing at a destination changed.
//!
//! A failure before step 4 drops the staging databases; a daemon killed before it leaves a
//! `dbtrail_stage_*` database behind (named as what it is, never a destination) and the job
//! failed. Views, triggers, routines and events are not loaded (write a dump for those).
use crate::source::Source;
use crate::util::lock;
use anyhow::{Context, anyhow, bail};
use dbtrail_binlog::target::{Target, TargetConn};
use dbtrail_core::api::IntoTarget;
use dbtrail_core::schema::quote_ident;
use dbtrail_core::{Row, TableRef, TableSchema};
use dbtrail_replay::restore::{Output, Progress, RestoreError, RowSink, Settings, TableInput};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

/// Bytes per INSERT statement (below the server's default `max_allowed_packet` of 64 MiB).
const STATEMENT_BYTES: usize = 4 << 20;

/// Where each table lands.
#[derive(Clone, Debug)]
pub struct Placement {
    /// Restored table -> destination.
    pub dest: BTreeMap<TableRef, TableRef>,
    /// Destinations that exist (replaced at the end).
    pub existing: BTreeSet<TableRef>,
    /// `host:port` of the target, for messages.
    pub target: String,
}

fn target(t: &IntoTarget) -> Result<Target, String> {
    Target::new(
        &t.url,
        t.password.clone(),
        t.connections.unwrap_or(4),
        t.ssl_mode.as_deref(),
        t.binlog,
    )
}

/// Checks the request's target (URL, connections, TLS mode, database) without connecting.
pub fn check(t: &IntoTarget) -> Result<(), String> {
    target(t).map(|_| ())?;
    if let Some(d) = &t.database {
        check_name("into database", d)?;
    }
    Ok(())
}

fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 || name.contains('\0') || name.ends_with(' ') {
        return Err(format!("{what} {name:?} is not a usable MySQL name"));
    }
    Ok(())
}

/// Step 1 of the module doc; `Err` is the refusal's text (the request's answer).
pub async fn preflight(
    source: &Source,
    t: &IntoTarget,
    tables: &[TableRef],
) -> Result<Placement, String> {
    let tg = target(t)?;
    let addr = tg.addr.clone();
    let database = t.database.clone().or(tg.url_db.clone());
    if let Some(d) = &database {
        check_name("into database", d)?;
    }
    let r = preflight_on(source, t, tables, &tg, database).await;
    tg.close().await;
    r.map(|(dest, existing)| Placement {
        dest,
        existing,
        target: addr,
    })
}

type Dest = (BTreeMap<TableRef, TableRef>, BTreeSet<TableRef>);

async fn preflight_on(
    source: &Source,
    t: &IntoTarget,
    tables: &[TableRef],
    tg: &Target,
    database: Option<String>,
) -> Result<Dest, String> {
    let target = &tg.addr;
    let mut conn = tg.conn().await?;
    let uuid = conn.server_uuid().await?;
    let status = source.status().map_err(|e| format!("{e:#}"))?;
    let same = uuid.is_some() && uuid.as_deref() == Some(status.server_uuid.as_str());
    let mut dest = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for tb in tables {
        let d = TableRef::new(database.as_deref().unwrap_or(&tb.db), &tb.table);
        if same && d.db == tb.db {
            return Err(format!(
                "the target {target} is the source itself, and {tb} would replace the live \
                 table: name another database with --into-database (e.g. {}_restored)",
                tb.db
            ));
        }
        if !seen.insert(d.clone()) {
            return Err(format!(
                "two restored tables would both land on {d}: restore them separately or \
                 without --into-database"
            ));
        }
        dest.insert(tb.clone(), d);
    }
    let mut existing = BTreeSet::new();
    for d in dest.values() {
        match conn.table_type(d).await?.as_deref() {
            None => {}
            Some("BASE TABLE") if t.replace => {
                existing.insert(d.clone());
            }
            Some("BASE TABLE") => {
                return Err(format!(
                    "{d} exists on the target {target}: drop it, choose another database \
                     (--into-database), or pass --replace to swap it out at the end"
                ));
            }
            Some(k) => {
                return Err(format!(
                    "{d} on the target {target} is a {k}, not a table: drop it or choose another \
                     database (--into-database)"
                ));
            }
        }
    }
    Ok((dest, existing))
}

/// The staging database names of restore `id`: one per destination database.
fn stage_names(id: &str, dbs: &BTreeSet<String>) -> BTreeMap<String, String> {
    let short: String = id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect::<String>()
        .to_lowercase();
    dbs.iter()
        .enumerate()
        .map(|(n, d)| (d.clone(), format!("dbtrail_stage_{short}_{n}")))
        .collect()
}

/// Steps 2-4 of the module doc. Returns (rows, tables) loaded.
#[allow(clippy::too_many_arguments)]
pub async fn load(
    source: &Source,
    t: &IntoTarget,
    placement: &Placement,
    id: &str,
    inputs: Vec<TableInput>,
    settings: Settings,
    progress: impl Progress + Send + 'static,
) -> anyhow::Result<(u64, u64)> {
    let tg = std::sync::Arc::new(target(t).map_err(|e| anyhow!(e))?);
    let n = t.connections.unwrap_or(4);
    let dbs: BTreeSet<String> = placement.dest.values().map(|d| d.db.clone()).collect();
    let stages = stage_names(id, &dbs);
    let staged: BTreeMap<TableRef, TableRef> = placement
        .dest
        .iter()
        .map(|(from, to)| (from.clone(), TableRef::new(&stages[&to.db], &to.table)))
        .collect();
    let result = async {
        let mut conn = tg.conn().await.map_err(|e| anyhow!(e))?;
        for s in stages.values() {
            exec(&mut conn, &format!("CREATE DATABASE {}", quote_ident(s)))
                .await
                .with_context(|| format!("creating the staging database {s} on the target"))?;
        }
        for i in inputs.iter().filter(|i| i.requested) {
            let s = &staged[&i.table];
            exec(&mut conn, &format!("USE {}", quote_ident(&s.db))).await?;
            exec(&mut conn, &i.create_table)
                .await
                .with_context(|| format!("creating {} as {s} on the target", i.table))?;
        }
        drop(conn);
        let out = IntoOutput {
            handle: tokio::runtime::Handle::current(),
            target: tg.clone(),
            staged: staged.clone(),
            rows: Mutex::new(BTreeMap::new()),
        };
        let settings = Settings {
            threads: n,
            ..settings
        };
        let log = source.log.clone();
        let rows = tokio::task::spawn_blocking(move || {
            dbtrail_replay::restore::rebuild_to(&*log, inputs, &out, &settings, &progress)
                .map(|()| out.rows.into_inner().unwrap_or_else(|p| p.into_inner()))
        })
        .await
        .context("the restore threads died")??;
        let mut conn = tg.conn().await.map_err(|e| anyhow!(e))?;
        let mut total = 0;
        for (table, s) in &staged {
            let want = rows.get(table).copied().unwrap_or(0);
            let have = conn.count(s).await.map_err(|e| anyhow!(e))?;
            if have != want {
                bail!(
                    "{s} holds {have} rows after the load, but {want} were written: nothing \
                     was renamed into place"
                );
            }
            total += want;
        }
        for d in &dbs {
            exec(
                &mut conn,
                &format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(d)),
            )
            .await
            .with_context(|| format!("creating the database {d} on the target"))?;
        }
        let old = format!(
            "{}_old",
            stages.values().next().cloned().unwrap_or_default()
        );
        let mut renames = Vec::new();
        if !placement.existing.is_empty() {
            exec(&mut conn, &format!("CREATE DATABASE {}", quote_ident(&old))).await?;
            for e in &placement.existing {
                renames.push(format!(
                    "{} TO {}",
                    e.quoted(),
                    TableRef::new(&old, &e.table).quoted()
                ));
            }
        }
        for (table, s) in &staged {
            renames.push(format!(
                "{} TO {}",
                s.quoted(),
                placement.dest[table].quoted()
            ));
        }
        exec(&mut conn, &format!("RENAME TABLE {}", renames.join(", ")))
            .await
            .context("moving the loaded tables into place (RENAME TABLE)")?;
        if !placement.existing.is_empty() {
            exec(&mut conn, &format!("DROP DATABASE {}", quote_ident(&old))).await?;
        }
        anyhow::Ok(total)
    }
    .await;
    // The staging databases are empty after the rename; after a failure they hold what
    // was loaded so far.
    if let Ok(mut conn) = tg.conn().await {
        for s in stages.values() {
            let _ = exec(
                &mut conn,
                &format!("DROP DATABASE IF EXISTS {}", quote_ident(s)),
            )
            .await;
        }
    }
    if let Ok(tg) = std::sync::Arc::try_unwrap(tg) {
        tg.close().await;
    }
    let total = result.with_context(|| format!("loading into {}", placement.target))?;
    Ok((total, staged.len() as u64))
}

async fn exec(conn: &mut TargetConn, sql: &str) -> anyhow::Result<()> {
    conn.exec(sql.as_bytes()).await.map_err(|e| anyhow!(e))
}

/// The restore engine's output: each lane loads over its own connection.
struct IntoOutput {
    handle: tokio::runtime::Handle,
    target: std::sync::Arc<Target>,
    staged: BTreeMap<TableRef, TableRef>,
    rows: Mutex<BTreeMap<TableRef, u64>>,
}

struct IntoSink<'a> {
    out: &'a IntoOutput,
    table: TableRef,
    schema: TableSchema,
    prefix: Vec<u8>,
    conn: TargetConn,
    stmt: Vec<u8>,
    rows: u64,
}

fn load_error(table: &TableRef, e: impl std::fmt::Display) -> RestoreError {
    RestoreError::Table {
        table: table.clone(),
        detail: format!("loading into the target: {e}"),
    }
}

impl Output for IntoOutput {
    fn begin_table(&self, _: &TableInput, _: &TableSchema) -> Result<(), RestoreError> {
        Ok(())
    }

    fn writer(
        &self,
        input: &TableInput,
        schema: &TableSchema,
        _: u32,
        _: u32,
    ) -> Result<Box<dyn RowSink + '_>, RestoreError> {
        let staged = self.staged.get(&input.table).cloned().ok_or_else(|| {
            load_error(
                &input.table,
                "the table has no staging name (internal error)",
            )
        })?;
        let mut schema = schema.clone();
        schema.table = staged;
        let conn = self
            .handle
            .block_on(self.target.conn())
            .map_err(|e| load_error(&input.table, e))?;
        Ok(Box::new(IntoSink {
            out: self,
            table: input.table.clone(),
            prefix: dbtrail_replay::sql::insert_prefix(&schema, true),
            schema,
            conn,
            stmt: Vec::with_capacity(STATEMENT_BYTES + (64 << 10)),
            rows: 0,
        }))
    }

    fn lanes(&self) -> bool {
        true
    }
}

impl IntoSink<'_> {
    fn flush(&mut self) -> Result<(), RestoreError> {
        if self.stmt.is_empty() {
            return Ok(());
        }
        let stmt = std::mem::take(&mut self.stmt);
        let r = self.out.handle.block_on(self.conn.exec(&stmt));
        self.stmt = stmt;
        self.stmt.clear();
        r.map_err(|e| load_error(&self.table, e))
    }
}

impl RowSink for IntoSink<'_> {
    fn push(&mut self, row: &Row) -> Result<(), RestoreError> {
        if self.stmt.is_empty() {
            self.stmt.extend_from_slice(&self.prefix);
        } else {
            self.stmt.push(b',');
        }
        dbtrail_replay::sql::write_row(&mut self.stmt, &self.schema, row);
        self.rows += 1;
        if self.stmt.len() >= STATEMENT_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<(), RestoreError> {
        self.flush()?;
        *lock(&self.out.rows).entry(self.table.clone()).or_default() += self.rows;
        Ok(())
    }
}
