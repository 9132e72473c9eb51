//! Table images after DDL: every DDL that changes a captured table's layout or rows outside
//! the row events (CREATE, ALTER, RENAME's new name, TRUNCATE; `dbtrail_core::ddl`) is a
//! point where the log alone no longer continues the table's older images, so the table is
//! imaged right after it (`LOCK TABLES ... READ`, [`crate::pitr::take_image`]). Restores to
//! targets after the DDL start from that image (forward, or backward from a later one);
//! targets before it from older images (`dbtrail_replay::plan`). Nothing emulates the DDL.
//!
//! The children of a table's cascading foreign keys are imaged with it (at one position), so
//! their images are never older than their parent's and its derived cascades stay known.
//!
//! The task finds the DDLs still to image from the log itself ([`holes`]): a DDL on table t
//! is covered when some image holding that DDL's transaction contains t. The newest full
//! baseline's skipped tables are holes too, until an image after it holds them. So a restart, a
//! failed image or a DDL captured while the task was away is imaged at the next pass; until
//! then `dbtrailctl coverage` lists the table as a hole and restores past the DDL are
//! refused with the reason.
use crate::backup::Backups;
use crate::source::Source;
use dbtrail_core::TableRef;
use dbtrail_core::baseline::BaselineManifest;
use dbtrail_core::ddl::{Ddl, DdlEffect, classify_recorded};
use dbtrail_storage::Log;
use dbtrail_storage::baselines::held_by;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A table whose latest DDL no image holds yet.
#[derive(Clone, Debug, PartialEq)]
pub struct Hole {
    /// The table (by its name after the DDL).
    pub table: TableRef,
    /// The DDL's commit time (µs).
    pub since_us: i64,
    /// The statement.
    pub ddl: String,
}

/// The tables a DDL leaves needing an image (by their names after it), and those it drops
/// or renames away (which need none any more).
fn effects(text: &str) -> (Vec<TableRef>, Vec<TableRef>) {
    let (mut need, mut gone) = (Vec::new(), Vec::new());
    if let Ddl::Tables(effects) = classify_recorded(text) {
        for e in effects {
            match e {
                DdlEffect::Create { table, .. }
                | DdlEffect::Alter(table)
                | DdlEffect::Truncate(table) => need.push(table),
                DdlEffect::Rename { from, to } => {
                    gone.push(from);
                    need.push(to);
                }
                DdlEffect::Drop(table) => gone.push(table),
                DdlEffect::DropDatabase(db) => gone.push(TableRef::new(db, "*")),
            }
        }
    }
    (need, gone)
}

/// Tables whose newest DDL (since the oldest full baseline) no image holds, kept up to date
/// incrementally ([`Holes::update`] scans only the transactions logged since the last call).
#[derive(Default)]
pub struct Holes {
    /// The next transaction sequence to scan (None: start at the oldest full baseline).
    cursor: Option<u64>,
    open: BTreeMap<TableRef, (Hole, dbtrail_storage::TxnRecord)>,
    /// Tables dropped or renamed away by a scanned DDL (and not created again since).
    gone: std::collections::BTreeSet<TableRef>,
}

impl Holes {
    /// Scans the new transactions and drops the holes an image now covers; returns them.
    pub fn update(&mut self, log: &Log) -> anyhow::Result<Vec<Hole>> {
        let images = log.baselines()?;
        let covered = |table: &TableRef, t: &dbtrail_storage::TxnRecord| {
            images
                .iter()
                .any(|b| b.table(table).is_some() && held_by(&b.position, t))
        };
        let from = match self.cursor {
            Some(c) => c,
            None => {
                let Some(oldest) = images.iter().find(|b| b.origin.is_full()) else {
                    return Ok(Vec::new());
                };
                match log.first_txn_after(&oldest.position)? {
                    Some((seq, _)) => seq,
                    None => return Ok(Vec::new()),
                }
            }
        };
        let mut next = from;
        let open = &mut self.open;
        let dropped = &mut self.gone;
        log.scan_txns(from, |seq, t| {
            next = seq + 1;
            let Some(text) = &t.ddl else {
                return true;
            };
            let (need, gone) = effects(text);
            for g in gone {
                if g.table == "*" {
                    open.retain(|t, _| t.db != g.db);
                } else {
                    open.remove(&g);
                }
                dropped.insert(g);
            }
            for table in &need {
                dropped.remove(table);
            }
            for table in need {
                let hole = Hole {
                    table: table.clone(),
                    since_us: t.commit_us,
                    ddl: text.clone(),
                };
                open.insert(table, (hole, t.clone()));
            }
            true
        })?;
        self.cursor = Some(next);
        open.retain(|table, (_, t)| !covered(table, t));
        let mut out: Vec<Hole> = open.values().map(|(h, _)| h.clone()).collect();
        // The newest full baseline's skipped tables (changed by DDL while it was taken, or
        // key-less and written while a lock-free one started) until an image after it holds
        // them: restores from it need one.
        if let Some(newest) = images.iter().rev().find(|b| b.origin.is_full()) {
            for sk in &newest.skipped {
                let gone = self.gone.contains(&sk.table)
                    || self.gone.contains(&TableRef::new(sk.table.db.clone(), "*"));
                let imaged = images
                    .iter()
                    .any(|b| b.id > newest.id && b.table(&sk.table).is_some());
                if !gone && !imaged && !out.iter().any(|h| h.table == sk.table) {
                    out.push(Hole {
                        table: sk.table.clone(),
                        since_us: newest.snapshot_us,
                        ddl: format!("skipped by baseline {}: {}", newest.id, sk.reason),
                    });
                }
            }
        }
        Ok(out)
    }
}

/// Tables whose newest DDL since the oldest full baseline no image holds (one full scan).
pub fn holes(log: &Log) -> anyhow::Result<Vec<Hole>> {
    Holes::default().update(log)
}

/// Images the tables [`holes`] finds, twice a second while capture streams (the scan is
/// incremental), and again at once after each image (DDL may have come meanwhile), until
/// `cancel`. A table renamed or dropped before its image is taken keeps no image of that
/// name; a restore to a moment in between is refused as "no image", never guessed.
pub async fn run(source: Arc<Source>, backups: Arc<Backups>, cancel: CancellationToken) {
    let name = source.config.name.clone();
    let every = Duration::from_millis(500);
    let mut pause = every;
    let holes = Arc::new(std::sync::Mutex::new(Holes::default()));
    // Tables whose last image failed, and when: retried after 30 s, the others go first.
    let mut failed: std::collections::HashMap<TableRef, std::time::Instant> = Default::default();
    loop {
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = cancel.cancelled() => return,
        }
        pause = every;
        if source.covered_until_us().is_none() {
            continue;
        }
        let (log, h) = (source.log.clone(), holes.clone());
        let found = match tokio::task::spawn_blocking(move || crate::util::lock(&h).update(&log))
            .await
        {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => {
                tracing::warn!(source = %name, error = %format!("{e:#}"), "finding tables to image after DDL");
                continue;
            }
            Err(_) => continue,
        };
        // Only the databases baselines cover (`backup_databases`).
        let found: Vec<Hole> = found
            .into_iter()
            .filter(|h| {
                source
                    .config
                    .backup_databases
                    .as_ref()
                    .is_none_or(|dbs| dbs.contains(&h.table.db))
            })
            .collect();
        if found.is_empty() {
            continue;
        }
        // One image per table that needs one (with its cascading children, below): a table
        // that cannot be locked (dropped meanwhile, held by a long transaction) delays only
        // its own image.
        failed.retain(|_, at| at.elapsed() < Duration::from_secs(30));
        let Some(hole) = found.iter().find(|h| !failed.contains_key(&h.table)) else {
            continue;
        };
        // All together (one lock, one position) while nothing failed; after a failure, one
        // table at a time, the failed ones last.
        let found: &[Hole] = if failed.is_empty() {
            &found
        } else {
            std::slice::from_ref(hole)
        };
        let mut tables: Vec<TableRef> = found.iter().map(|h| h.table.clone()).collect();
        // With them, the tables whose cascading foreign keys reference them (transitively):
        // a child rebuilt from an image older than its parent's cannot be given the parent's
        // derived cascades in between, so they are imaged together, at one position.
        let s2 = source.clone();
        if let Ok(Ok(keys)) =
            tokio::task::spawn_blocking(move || crate::cascades::cascading_keys(&s2)).await
        {
            let mut grew = true;
            while grew {
                grew = false;
                for (child, fk) in &keys {
                    if tables.contains(&fk.parent)
                        && !tables.contains(child)
                        && source
                            .config
                            .backup_databases
                            .as_ref()
                            .is_none_or(|dbs| dbs.contains(&child.db))
                    {
                        tables.push(child.clone());
                        grew = true;
                    }
                }
            }
        }
        let why = format!(
            "after DDL: {}",
            found
                .iter()
                .map(|h| format!(
                    "{} ({})",
                    h.table,
                    h.ddl.chars().take(80).collect::<String>()
                ))
                .collect::<Vec<_>>()
                .join("; ")
        );
        match crate::pitr::take_image(&source, &backups, &cancel, tables.clone(), why).await {
            Ok(m) => {
                log_image(&name, &m);
                pause = Duration::ZERO;
                if !m.skipped.is_empty() {
                    for t in &m.skipped {
                        failed.insert(t.table.clone(), std::time::Instant::now());
                    }
                }
            }
            Err(e) => {
                tracing::warn!(source = %name, tables = ?tables.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
                    error = %format!("{e:#}"), "table image after DDL failed; retrying in 30 s");
                // Together: split up from now on; alone: this one waits.
                for h in found {
                    if found.len() == 1 {
                        failed.insert(h.table.clone(), std::time::Instant::now());
                    }
                }
                if found.len() > 1 {
                    failed.insert(TableRef::new("", ""), std::time::Instant::now());
                }
            }
        }
    }
}

fn log_image(source: &str, m: &BaselineManifest) {
    tracing::info!(source = %source, image = %m.id, tables = m.tables.len(),
        skipped = m.skipped.len(), position = %m.position, "table image after DDL complete");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl_effects() {
        let t = |n: &str| TableRef::new("shop", n);
        assert_eq!(
            effects("USE `shop`; ALTER TABLE orders ADD COLUMN note INT"),
            (vec![t("orders")], vec![])
        );
        assert_eq!(
            effects("USE `shop`; RENAME TABLE a TO b, c TO d"),
            (vec![t("b"), t("d")], vec![t("a"), t("c")])
        );
        assert_eq!(
            effects("USE `shop`; DROP TABLE `x` /* generated by server */"),
            (vec![], vec![t("x")])
        );
        assert_eq!(
            effects("USE `shop`; TRUNCATE TABLE items"),
            (vec![t("items")], vec![])
        );
        assert_eq!(
            effects("USE `shop`; CREATE VIEW v AS SELECT 1"),
            (vec![], vec![])
        );
    }
}
