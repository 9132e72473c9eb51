//! Window undo (flashback) against real servers, checked by an oracle.
//!
//! Three writers change rows 1..=200 of `orders` (an auto-updated TIMESTAMP(6) column too)
//! continuously; during the window they write a third table, `other`, instead, so the window
//! holds, on `orders` and the key-less `bag`, only the wrong statements (an UPDATE of ids
//! 300..399 and a DELETE of 400..449, seeded rows the writers never touch; a DELETE from
//! `bag`) and an INSERT the `kinds` filter leaves out. Points A (before) and B (after) are
//! recorded with the source's own `HEX()` of every row while the writers are paused. The
//! writers go on after B. The undo of [A, B] for `orders,bag`, kinds update,delete, is given
//! without conflicts; after id 420 is inserted again it is refused naming id=420, and with
//! `skip_conflicts` (in batches) it is applied with the `mysql` client: ids 300..449 but 420
//! and `bag` are as at A, everything else (the writers' rows, 420, the insert, `other`) as
//! it was just before the undo was applied.
mod common;

use common::writers::{Writers, point};
use common::{Daemon, hex_rows};
use dbtrail_core::api::{UndoWindowRequest, UndoWindowSummary};
use dbtrail_testkit::{Server, TestDb};
use mysql_async::prelude::Queryable;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

/// Per test (server): the table the writers write, 0 `orders`, 1 `other`.
static PHASE: [AtomicU8; 3] = [AtomicU8::new(0), AtomicU8::new(0), AtomicU8::new(0)];

/// One transaction of the writers: 1-3 row changes of ids 1..=200 of `orders` or `other`.
fn txn<const S: usize>(w: u64, n: u64, next: &mut dyn FnMut(u64) -> u64) -> Vec<String> {
    let other = PHASE[S].load(Ordering::SeqCst) == 1;
    let mut sql = Vec::new();
    for _ in 0..1 + next(3) {
        let k = 1 + next(200);
        sql.push(if other {
            match next(3) {
                0 => {
                    format!("INSERT INTO other VALUES ({k}, {n}) ON DUPLICATE KEY UPDATE v = v + 1")
                }
                1 => format!("UPDATE other SET v = v * 2 WHERE id = {k}"),
                _ => format!("DELETE FROM other WHERE id = {k}"),
            }
        } else {
            match next(10) {
                0..=3 => format!(
                    "INSERT INTO orders (id, amount, note) VALUES ({k}, {}.25, 'w{w}-{n}') \
                     ON DUPLICATE KEY UPDATE amount = amount + 1, note = 'd{w}-{n}'",
                    next(1000)
                ),
                4..=7 => format!(
                    "UPDATE orders SET amount = amount * 2, note = 'u{w}-{n}' WHERE id = {k}"
                ),
                _ => format!("DELETE FROM orders WHERE id = {k}"),
            }
        });
    }
    sql
}

/// The id of a [`hex_rows`] row (its first column, an INT, as `HEX()` prints it).
fn id_of(row: &str) -> i64 {
    let h = row.split('|').next().unwrap_or_default();
    i64::from_str_radix(h, 16).unwrap_or_else(|e| panic!("id of {row}: {e}"))
}

fn by_id(rows: &[String]) -> BTreeMap<i64, String> {
    rows.iter().map(|r| (id_of(r), r.clone())).collect()
}

async fn undo(
    daemon: &Daemon,
    req: &UndoWindowRequest,
) -> Result<(UndoWindowSummary, String), dbtrail_ctl::Error> {
    let mut sql = Vec::new();
    let r = daemon
        .client()
        .undo_window(&daemon.source, req, &mut |d| {
            sql.extend_from_slice(d);
            Ok(())
        })
        .await;
    match r {
        Ok(s) => Ok((s, String::from_utf8(sql).expect("utf8"))),
        Err(e) => match e.downcast::<dbtrail_ctl::Error>() {
            Ok(e) => Err(e),
            Err(e) => panic!("undo: {e:#}"),
        },
    }
}

/// Applies `sql` with the `mysql` client.
fn apply(db: &TestDb, server: Server, sql: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("undo.sql");
    std::fs::write(&path, sql).expect("write");
    let o = std::process::Command::new("mysql")
        .args(common::mysql_client_args(db))
        .stdin(std::fs::File::open(&path).expect("open"))
        .output()
        .expect("the mysql client is required");
    assert!(
        o.status.success(),
        "{server}: applying the undo: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

async fn flashback<const S: usize>(server: Server) {
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    let name = db.db_name().to_string();
    let mut conn = db.conn().await;
    for sql in [
        "CREATE TABLE orders (id INT PRIMARY KEY, amount DECIMAL(12,2) NOT NULL, \
         note VARCHAR(40), at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) \
         ON UPDATE CURRENT_TIMESTAMP(6))",
        "CREATE TABLE bag (x INT, y VARCHAR(10))",
        "CREATE TABLE other (id INT PRIMARY KEY, v BIGINT NOT NULL)",
    ] {
        conn.query_drop(sql).await.expect("create");
    }
    let daemon = Daemon::start(server, "");
    daemon.wait_streaming().await;
    let seed: Vec<String> = (1..=200)
        .chain(300..500)
        .map(|i| format!("({i}, {i}.50, 'seed')"))
        .collect();
    conn.query_drop(format!(
        "INSERT INTO orders (id, amount, note) VALUES {}",
        seed.join(",")
    ))
    .await
    .expect("seed orders");
    conn.query_drop("INSERT INTO bag VALUES (1, 'a'), (1, 'a'), (1, NULL), (2, 'b'), (3, 'c')")
        .await
        .expect("seed bag");
    let tables = ["orders", "bag", "other"];
    let w = Writers::start(&db, 3, txn::<S>);
    tokio::time::sleep(Duration::from_millis(700)).await;
    PHASE[S].store(1, Ordering::SeqCst);
    let a = point(&db, &mut conn, &w, &tables).await;
    for sql in [
        "UPDATE orders SET amount = 0 WHERE id BETWEEN 300 AND 399",
        "DELETE FROM orders WHERE id BETWEEN 400 AND 449",
        "DELETE FROM bag WHERE x = 1",
        "INSERT INTO orders (id, amount, note) VALUES (600, 6, 'kept')",
    ] {
        conn.query_drop(sql).await.expect("wrong statement");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = point(&db, &mut conn, &w, &tables).await;
    PHASE[S].store(0, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let commits = w.stop().await;
    assert!(commits > 30, "{server}: too few commits ({commits})");
    daemon.wait_caught_up(&db).await;
    let req = UndoWindowRequest {
        since: common::utc_second(a.us + 1_000_000),
        until: b.at.clone(),
        tables: vec![format!("{name}.orders"), format!("{name}.bag")],
        kinds: vec!["update".into(), "delete".into()],
        ..UndoWindowRequest::default()
    };
    // No conflict: the writers' changes after the window touch other rows.
    let (s, sql) = undo(&daemon, &req).await.unwrap_or_else(|e| {
        panic!(
            "{server}: undo of [{}, {}]: {e}\n{}",
            a.at,
            b.at,
            daemon.log()
        )
    });
    assert_eq!(s.statements, 153, "{server}: {s:?}");
    assert_eq!(s.conflict_count, 0, "{server}: {s:?}");
    assert_eq!(sql.matches("-- expect 1 row").count(), 153, "{server}");
    // By key, of one table: only those rows' changes.
    let (s, sql) = undo(
        &daemon,
        &UndoWindowRequest {
            tables: vec![format!("{name}.orders")],
            keys: vec!["id=300".into(), "id=401".into(), "id=7".into()],
            kinds: Vec::new(),
            ..req.clone()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{server}: by key: {e}"));
    assert_eq!(s.statements, 2, "{server}: {sql}");
    assert!(
        sql.contains(&format!("UPDATE `{name}`.`orders` SET"))
            && sql.contains("WHERE `id` <=> 300 LIMIT 1; -- expect 1 row")
            && sql.contains(&format!("INSERT INTO `{name}`.`orders`")),
        "{server}: {sql}"
    );
    // Bad requests are 400s naming the problem.
    for (bad, says) in [
        (
            UndoWindowRequest {
                since: b.at.clone(),
                until: a.at.clone(),
                ..req.clone()
            },
            "starts after it ends",
        ),
        (
            UndoWindowRequest {
                kinds: vec!["upsert".into()],
                ..req.clone()
            },
            "unknown change kind",
        ),
        (
            UndoWindowRequest {
                keys: vec!["id=1".into()],
                ..req.clone()
            },
            "exactly one table",
        ),
    ] {
        match undo(&daemon, &bad).await {
            Err(dbtrail_ctl::Error::Api {
                status, message, ..
            }) => assert!(
                status.as_u16() == 400 && message.contains(says),
                "{server}: {status} {message}"
            ),
            other => panic!("{server}: {:?}", other.map(|(s, _)| s)),
        }
    }
    // A change after the window to a row it changed: refused, naming the key.
    conn.query_drop("INSERT INTO orders (id, amount, note) VALUES (420, 4.2, 'again')")
        .await
        .expect("again");
    daemon.wait_caught_up(&db).await;
    match undo(&daemon, &req).await {
        Err(dbtrail_ctl::Error::Api {
            status, message, ..
        }) => {
            assert_eq!(status.as_u16(), 409, "{server}: {message}");
            assert!(
                message.contains(&format!("{name}.orders key (id=420): insert at")),
                "{server}: {message}"
            );
        }
        other => panic!("{server}: {:?}", other.map(|(s, _)| s)),
    }
    // Leave it alone; undo the rest, in batches.
    let skip = UndoWindowRequest {
        skip_conflicts: true,
        batch_rows: Some(40),
        ..req.clone()
    };
    let (s, sql) = undo(&daemon, &skip).await.expect("skip conflicts");
    assert_eq!(
        (s.statements, s.skipped_key_count, s.batches),
        (152, 1, 4),
        "{server}: {s:?}"
    );
    assert!(
        s.skipped_keys == vec![format!("{name}.orders key (id=420)")]
            && sql.contains(&format!("-- left alone: {name}.orders key (id=420)")),
        "{server}: {s:?}"
    );
    let mut before = Vec::new();
    for t in tables {
        before.push(hex_rows(&mut conn, &name, t).await);
    }
    tokio::task::block_in_place(|| apply(&db, server, &sql));
    let (orders_a, orders_now) = (by_id(&a.rows[0]), by_id(&before[0]));
    let mut want: BTreeMap<i64, String> = orders_now
        .iter()
        .filter(|(id, _)| !(300..450).contains(*id) || **id == 420)
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    for (id, row) in &orders_a {
        if (300..450).contains(id) && *id != 420 {
            want.insert(*id, row.clone());
        }
    }
    assert!(want.contains_key(&600) && want.contains_key(&420));
    let got = by_id(&hex_rows(&mut conn, &name, "orders").await);
    let differs: Vec<i64> = want
        .keys()
        .chain(got.keys())
        .filter(|k| want.get(k) != got.get(k))
        .copied()
        .collect();
    assert!(
        differs.is_empty(),
        "{server}: orders rows differ: {differs:?}"
    );
    assert_eq!(
        hex_rows(&mut conn, &name, "bag").await,
        a.rows[1],
        "{server}: bag as at A"
    );
    assert_eq!(
        hex_rows(&mut conn, &name, "other").await,
        before[2],
        "{server}: other untouched"
    );
    assert_ne!(b.rows[0], a.rows[0], "{server}: the window changed orders");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn window_undo_mysql_gtid() {
    flashback::<0>(Server::MysqlGtid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn window_undo_mysql_nogtid() {
    flashback::<1>(Server::MysqlNoGtid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn window_undo_mariadb() {
    flashback::<2>(Server::MariaDb).await;
}
