//! Baselines taken without a lock hold each table exact at some unknown point between their
//! `position` and `upper` (`binlog::start`). For a table with a primary key that is enough
//! (the planner replays every change after `position`, and the last image of each key wins);
//! a table without one is a multiset, where replaying a change the image already holds
//! counts it twice, so it is only exact when no logged change touched it in between. This
//! module finds those tables once capture has reached `upper`; the backup leaves them out
//! (listed as skipped, with the reason) and images them again.
use crate::source::Source;
use anyhow::bail;
use dbtrail_core::history::{Catalog, ChangeLog, cmp_binlog};
use dbtrail_core::{Position, TableRef};
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::time::Duration;

/// Waits (up to two minutes) until the log holds every transaction up to `upper`.
pub async fn wait_for(source: &Source, upper: &Position) -> anyhow::Result<()> {
    let mut waited = Duration::ZERO;
    loop {
        if let Some(c) = source.log.checkpoint()?
            && cmp_binlog((&c.position.file, c.position.pos), (&upper.file, upper.pos))
                != Ordering::Less
        {
            return Ok(());
        }
        if waited >= Duration::from_secs(120) {
            bail!(
                "capture has not reached {upper}, the end of the lock-free snapshot, after 2 \
                 minutes (see `dbtrailctl status`); the baseline cannot be checked and is not \
                 recorded"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += Duration::from_millis(100);
    }
}

/// The tables of `tables` without a primary key that a logged transaction after `position`
/// and ending at or before `upper` changed.
pub fn keyless_changed(
    log: &(impl Catalog + ChangeLog),
    position: &Position,
    upper: &Position,
    tables: &[TableRef],
) -> anyhow::Result<Vec<TableRef>> {
    let mut touched: BTreeSet<u32> = BTreeSet::new();
    log.scan_txns(&mut |t| {
        if cmp_binlog((&t.end_file, t.end_pos), (&upper.file, upper.pos)) == Ordering::Greater {
            return false;
        }
        if !t.held_by(position) {
            touched.extend(t.tables.iter().copied());
        }
        true
    })?;
    let mut out = Vec::new();
    for (id, table) in log.tables()? {
        if !touched.contains(&id) || !tables.contains(&table) {
            continue;
        }
        // The newest schema version is the one the snapshot read (a DDL in between makes
        // the table unusable for other reasons, which the planner reports).
        let mut v = 1;
        let mut newest = None;
        while let Some(s) = log.schema(id, v)? {
            newest = Some(s);
            v += 1;
        }
        if newest.is_some_and(|s| s.primary_key.is_empty()) {
            out.push(table);
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}
