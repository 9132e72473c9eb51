//! Foreign keys under concurrent writers, restored exactly: customers -> orders (ON DELETE
//! SET NULL, ON UPDATE CASCADE) -> items (CASCADE both, the key part of the child's primary
//! key) -> shipments (composite key; ON DELETE CASCADE, ON UPDATE SET NULL), and a
//! self-referencing categories tree (ON DELETE CASCADE). Three writers commit interleaved
//! transactions (inserts, deletes and re-keys of parents, child updates); after each phase
//! the server's own `HEX()` of every row is recorded. Each phase is then restored (all
//! tables, and children alone, which needs their ancestors' changes), imported with
//! myloader and compared.
//!
//! On MySQL 9 with SQL-layer foreign keys the binlog holds the cascaded child rows; on MySQL
//! with `innodb_native_foreign_keys=ON` and on MariaDB it does not, and the restore derives
//! them (`dbtrail_replay::cascade`, docs/correctness.md C11). Undo of a transaction whose
//! delete cascaded is refused there with the reason, and works where the server logged it.
mod common;

use common::{
    Daemon, hex_rows, myloader, next_second, restore, server_now_us, utc_second, wait_table_image,
};
use dbtrail_core::api::PitrRequest;
use dbtrail_testkit::{Server, TestDb};
use mysql_async::prelude::Queryable;
use std::collections::BTreeMap;
use std::time::Duration;

const TABLES: [&str; 5] = ["customers", "orders", "items", "shipments", "categories"];

fn schema(server: Server) -> Vec<String> {
    let json = if server.is_mariadb() {
        "LONGTEXT"
    } else {
        "JSON"
    };
    vec![
        "CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, \
         email VARCHAR(80) NOT NULL UNIQUE, \
         created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), \
         updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6))"
            .into(),
        format!(
            "CREATE TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, customer_id INT NULL, \
             status VARCHAR(10) NOT NULL DEFAULT 'new', amount DECIMAL(10,2) NOT NULL, \
             meta {json}, created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), \
             KEY (customer_id), CONSTRAINT fk_order_customer FOREIGN KEY (customer_id) \
             REFERENCES customers (id) ON DELETE SET NULL ON UPDATE CASCADE)"
        ),
        "CREATE TABLE items (order_id INT NOT NULL, line INT NOT NULL, sku VARCHAR(20), \
         qty INT NOT NULL, PRIMARY KEY (order_id, line), CONSTRAINT fk_item_order FOREIGN KEY \
         (order_id) REFERENCES orders (id) ON DELETE CASCADE ON UPDATE CASCADE)"
            .into(),
        "CREATE TABLE shipments (id INT AUTO_INCREMENT PRIMARY KEY, order_id INT NULL, \
         line INT NULL, carrier VARCHAR(20), KEY (order_id, line), CONSTRAINT fk_ship_item \
         FOREIGN KEY (order_id, line) REFERENCES items (order_id, line) ON DELETE CASCADE \
         ON UPDATE SET NULL)"
            .into(),
        "CREATE TABLE categories (id INT PRIMARY KEY, parent_id INT NULL, name VARCHAR(40), \
         KEY (parent_id), CONSTRAINT fk_cat_parent FOREIGN KEY (parent_id) REFERENCES \
         categories (id) ON DELETE CASCADE)"
            .into(),
    ]
}

/// A small deterministic generator per writer.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Errors a concurrent writer expects and rolls back: deadlock, lock wait, a parent deleted
/// by another writer, a key taken by another writer, a cascade deeper than the server allows.
fn expected(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if [1213, 1205, 1452, 1062, 1451, 6575, 3008].contains(&s.code))
}

async fn pick(conn: &mut mysql_async::Conn, sql: &str) -> Option<i64> {
    conn.query_first::<Option<i64>, _>(sql)
        .await
        .ok()
        .flatten()
        .flatten()
}

/// One transaction of writer `w`.
async fn txn(
    conn: &mut mysql_async::Conn,
    w: u64,
    n: u64,
    rng: &mut Rng,
) -> Result<(), mysql_async::Error> {
    let any_customer = "SELECT id FROM customers ORDER BY RAND() LIMIT 1";
    let any_order = "SELECT id FROM orders ORDER BY RAND() LIMIT 1";
    let mut sql: Vec<String> = Vec::new();
    match rng.below(100) {
        0..=19 => sql.push(format!(
            "INSERT INTO customers (email) VALUES ('w{w}-{n}@example.com')"
        )),
        20..=44 => {
            let c = pick(conn, any_customer)
                .await
                .map_or("NULL".into(), |c| c.to_string());
            let id = 10_000_000 * (w + 1) + n;
            sql.push(format!(
                "INSERT INTO orders (id, customer_id, amount, meta) VALUES \
                 ({id}, {c}, {}.{:02}, '{{\"w\": {w}, \"n\": {n}}}')",
                rng.below(1000),
                rng.below(100)
            ));
            for line in 1..=1 + rng.below(3) {
                sql.push(format!(
                    "INSERT INTO items VALUES ({id}, {line}, 'sku-{}', {})",
                    rng.below(50),
                    1 + rng.below(5)
                ));
            }
            sql.push(format!(
                "INSERT INTO shipments (order_id, line, carrier) VALUES ({id}, 1, 'c{}')",
                rng.below(3)
            ));
        }
        45..=52 => {
            if let Some(c) = pick(conn, any_customer).await {
                sql.push(format!("DELETE FROM customers WHERE id = {c}"));
            }
        }
        53..=62 => {
            if let Some(o) = pick(conn, any_order).await {
                sql.push(format!("DELETE FROM orders WHERE id = {o}"));
            }
        }
        63..=68 => {
            if let Some(o) = pick(conn, any_order).await {
                sql.push(format!(
                    "UPDATE orders SET id = {} WHERE id = {o}",
                    500_000_000 + 10_000_000 * w + n
                ));
            }
        }
        69..=73 => {
            if let Some(c) = pick(conn, any_customer).await {
                sql.push(format!(
                    "UPDATE customers SET id = {} WHERE id = {c}",
                    500_000_000 + 10_000_000 * w + n
                ));
            }
        }
        74..=83 => {
            if let Some(o) = pick(conn, any_order).await {
                sql.push(format!(
                    "UPDATE items SET qty = qty + 1 WHERE order_id = {o}"
                ));
                sql.push(format!(
                    "UPDATE orders SET status = 'paid', amount = amount + 1 WHERE id = {o}"
                ));
            }
        }
        84..=91 => {
            let parent = pick(conn, "SELECT id FROM categories ORDER BY RAND() LIMIT 1").await;
            let parent = match (parent, rng.below(4)) {
                (Some(p), 1..) => p.to_string(),
                _ => "NULL".into(),
            };
            sql.push(format!(
                "INSERT INTO categories VALUES ({}, {parent}, 'cat {w}-{n}')",
                10_000_000 * (w + 1) + n
            ));
        }
        _ => {
            if let Some(c) = pick(conn, "SELECT id FROM categories ORDER BY RAND() LIMIT 1").await {
                sql.push(format!("DELETE FROM categories WHERE id = {c}"));
            }
        }
    }
    conn.query_drop("BEGIN").await?;
    for s in &sql {
        if let Err(e) = conn.query_drop(s).await {
            let _ = conn.query_drop("ROLLBACK").await;
            return if expected(&e) { Ok(()) } else { Err(e) };
        }
    }
    match conn.query_drop("COMMIT").await {
        Err(e) if !expected(&e) => Err(e),
        _ => Ok(()),
    }
}

/// Three writers for `ms` milliseconds, interleaved.
async fn phase(db: &TestDb, round: u64, ms: u64) {
    let mut tasks = Vec::new();
    for w in 0..3u64 {
        let url = db.url();
        tasks.push(tokio::spawn(async move {
            let mut conn = mysql_async::Conn::from_url(url).await.expect("writer conn");
            // A writer waiting on another's lock gives up soon (1205, rolled back) instead of
            // holding its own locks for the server's 50 s default (other tests' backups wait).
            conn.query_drop("SET SESSION innodb_lock_wait_timeout = 2")
                .await
                .expect("lock wait timeout");
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (w * 7919 + round * 104_729 + 1));
            let until = std::time::Instant::now() + Duration::from_millis(ms);
            let mut n = round * 100_000;
            while std::time::Instant::now() < until {
                n += 1;
                txn(&mut conn, w, n, &mut rng)
                    .await
                    .unwrap_or_else(|e| panic!("writer {w}: {e}"));
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer");
    }
}

async fn all_rows(conn: &mut mysql_async::Conn, db: &str) -> BTreeMap<&'static str, Vec<String>> {
    let mut out = BTreeMap::new();
    for t in TABLES {
        out.insert(t, hex_rows(conn, db, t).await);
    }
    out
}

async fn cascades(server: Server) {
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    let name = db.db_name().to_string();
    let daemon = Daemon::start(server, &format!("backup_databases = [\"{name}\"]\n"));
    daemon.wait_streaming().await;
    let mut conn = db.conn().await;
    for s in schema(server) {
        conn.query_drop(&s)
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    // A start that every kind of change can act on.
    for i in 1..=20 {
        conn.query_drop(format!(
            "INSERT INTO customers (email) VALUES ('seed{i}@example.com')"
        ))
        .await
        .expect("seed");
        conn.query_drop(format!(
            "INSERT INTO orders (id, customer_id, amount) VALUES ({i}, {i}, 10.00)"
        ))
        .await
        .expect("seed");
        conn.query_drop(format!(
            "INSERT INTO items VALUES ({i}, 1, 'a', 1), ({i}, 2, 'b', 2)"
        ))
        .await
        .expect("seed");
        conn.query_drop(format!(
            "INSERT INTO shipments (order_id, line, carrier) VALUES ({i}, 1, 'x'), ({i}, 2, 'y')"
        ))
        .await
        .expect("seed");
        let parent = if i > 3 {
            format!("{}", i / 3)
        } else {
            "NULL".into()
        };
        conn.query_drop(format!(
            "INSERT INTO categories VALUES ({i}, {parent}, 'c{i}')"
        ))
        .await
        .expect("seed");
    }
    daemon.wait_caught_up(&db).await;
    daemon.backup().await;
    // Phases: writers, then the state and its second.
    let mut phases: Vec<(String, BTreeMap<&'static str, Vec<String>>)> = Vec::new();
    let mut ddl_us = 0;
    for round in 1..=3u64 {
        let t0 = server_now_us(&mut conn).await;
        next_second(&mut conn, t0).await;
        phase(&db, round, 1500).await;
        let t = server_now_us(&mut conn).await;
        phases.push((utc_second(t), all_rows(&mut conn, &name).await));
        next_second(&mut conn, t).await;
        if round == 1 {
            // DDL on a parent that is itself a cascading child (orders) and on a grandchild
            // (shipments): later targets start from the table images taken after it, which
            // hold their cascading children too.
            for sql in [
                "ALTER TABLE orders ADD COLUMN note VARCHAR(10) NOT NULL DEFAULT 'o'",
                "ALTER TABLE shipments ADD COLUMN eta INT NULL",
            ] {
                conn.query_drop(sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            ddl_us = server_now_us(&mut conn).await;
        }
    }
    // A cascading delete, alone in its transaction: the undo check below.
    let doomed: i64 = pick(
        &mut conn,
        "SELECT order_id FROM items ORDER BY order_id LIMIT 1",
    )
    .await
    .expect("an order with items");
    conn.query_drop(format!("DELETE FROM orders WHERE id = {doomed}"))
        .await
        .expect("delete");
    daemon.wait_caught_up(&db).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    daemon.wait_caught_up(&db).await;
    for t in ["orders", "items", "shipments"] {
        let img = wait_table_image(&daemon, &db, t, ddl_us - 1_000_000).await;
        eprintln!("{server}: table image of {t} after the DDL: {img}");
    }
    let changed = phases.windows(2).any(|w| w[0].1 != w[1].1);
    assert!(changed, "{server}: the workload changed nothing");

    let out = tempfile::tempdir().expect("tmp");
    for (i, (at, want)) in phases.iter().enumerate() {
        let dir = out.path().join(format!("all{i}"));
        restore(
            &daemon,
            PitrRequest {
                target_time: Some(at.clone()),
                tables: TABLES.iter().map(|t| format!("{name}.{t}")).collect(),
                ..Default::default()
            },
            &dir,
        )
        .await
        .unwrap_or_else(|e| panic!("{server}: restore to {at}: {e}\n{}", daemon.log()));
        let into = format!("{name}_a{i}");
        myloader(&db, &dir, &into);
        for t in TABLES {
            let got = hex_rows(&mut conn, &into, t).await;
            assert!(
                &got == want.get(t).expect("table"),
                "{server}: {t} restored to {at} differs: {} rows restored, {} at the source; \
                 first differences: {:?}",
                got.len(),
                want[t].len(),
                got.iter()
                    .filter(|r| !want[t].contains(r))
                    .chain(want[t].iter().filter(|r| !got.contains(r)))
                    .take(6)
                    .collect::<Vec<_>>()
            );
        }
        conn.query_drop(format!("DROP DATABASE `{into}`"))
            .await
            .expect("drop");
    }
    // Children alone: their ancestors' changes are replayed (and listed by the dry run).
    let (at, want) = phases.last().expect("phases");
    for t in ["shipments", "items", "orders", "categories"] {
        let req = PitrRequest {
            target_time: Some(at.clone()),
            tables: vec![format!("{name}.{t}")],
            ..Default::default()
        };
        let dry = daemon
            .client()
            .pitr(
                &daemon.source,
                &PitrRequest {
                    dry_run: true,
                    ..req.clone()
                },
            )
            .await
            .expect("dry run");
        assert!(
            dry.plan
                .cascades
                .iter()
                .any(|c| c.starts_with(&format!("{name}.{t} <- "))),
            "{server}: the dry run names {t}'s cascading key: {:?}",
            dry.plan.cascades
        );
        let dir = out.path().join(format!("one-{t}"));
        restore(&daemon, req, &dir)
            .await
            .unwrap_or_else(|e| panic!("{server}: restore of {t} alone: {e}\n{}", daemon.log()));
        let into = format!("{name}_o");
        myloader(&db, &dir, &into);
        assert_eq!(
            &hex_rows(&mut conn, &into, t).await,
            want.get(t).expect("table"),
            "{server}: {t} restored alone to {at}"
        );
        conn.query_drop(format!("DROP DATABASE `{into}`"))
            .await
            .expect("drop");
    }
    // From the live tables (backward: every change since the last phase undone, the
    // cascading delete among them): exact when the server logged its cascades; refused
    // otherwise, since the rows a cascade deleted are in no log (only an older image has
    // them).
    let (at, want) = phases.last().expect("phases");
    let req = PitrRequest {
        target_time: Some(at.clone()),
        tables: TABLES.iter().map(|t| format!("{name}.{t}")).collect(),
        image: Some("live".into()),
        ..Default::default()
    };
    let dir = out.path().join("live");
    if server.logs_fk_cascades() {
        restore(&daemon, req, &dir).await.unwrap_or_else(|e| {
            panic!(
                "{server}: restore from the live tables: {e}\n{}",
                daemon.log()
            )
        });
        let into = format!("{name}_l");
        myloader(&db, &dir, &into);
        for t in TABLES {
            assert_eq!(
                &hex_rows(&mut conn, &into, t).await,
                want.get(t).expect("table"),
                "{server}: {t} from the live table, back to {at}"
            );
        }
        conn.query_drop(format!("DROP DATABASE `{into}`"))
            .await
            .expect("drop");
    } else {
        let err = format!(
            "{:#}",
            daemon
                .client()
                .pitr(
                    &daemon.source,
                    &PitrRequest {
                        dry_run: true,
                        ..req
                    }
                )
                .await
                .expect_err("refused")
        );
        assert!(
            err.contains("cannot un-derive") && err.contains("no usable image"),
            "{server}: {err}"
        );
    }
    // Undo of the cascading delete.
    if server.has_gtids() {
        let gtid = {
            let ev = daemon.table_events(&db, "orders").await;
            ev.events
                .iter()
                .rev()
                .find(|e| e.kind == "delete")
                .and_then(|e| e.gtid.clone())
                .expect("the delete's gtid")
        };
        let undo = daemon.client().undo(&daemon.source, &gtid, false).await;
        if server.logs_fk_cascades() {
            let undo = undo.unwrap_or_else(|e| panic!("{server}: undo: {e:#}"));
            assert!(
                undo.tables.iter().any(|t| t.ends_with(".items")),
                "{}",
                undo.sql
            );
        } else {
            let err = format!("{:#}", undo.expect_err("refused"));
            assert!(
                err.contains("cannot be undone row by row") && err.contains("fk_item_order"),
                "{server}: {err}"
            );
        }
    }
    drop(conn);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cascades_mysql_sql_layer_foreign_keys() {
    cascades(Server::MysqlGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cascades_mysql_native_foreign_keys() {
    cascades(Server::MysqlNativeFk).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cascades_mariadb() {
    cascades(Server::MariaDb).await;
}
