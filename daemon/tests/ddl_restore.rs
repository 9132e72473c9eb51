//! Restores across DDL, from images on either side of the target, checked by an oracle.
//!
//! Three writers commit interleaved transactions on two tables while the table `a` is
//! altered, `b` truncated and then renamed to `b2`; the writers pause briefly at points
//! before, between and after the DDLs, where the source's own `HEX()` of every row is
//! recorded (the oracle, [`common::hex_rows`]) with the second and the GTID set. After the
//! daemon has imaged the tables after each DDL (table images, `daemon/src/images.rs`), each
//! point is restored by time and by GTID with `--image auto`, imported with myloader and
//! compared column by column; the dump's schema is the one valid at the target. Then the
//! same target rebuilt forward from a baseline, backward from the live table and backward
//! from a later image must agree; and bad `--image` requests are refused before any work.
mod common;

use common::{
    Daemon, gtid_now, hex_rows, myloader, next_second, restore, server_now_us, utc_second,
    wait_table_image,
};
use dbtrail_core::api::PitrRequest;
use dbtrail_testkit::{Server, TestDb};
use mysql_async::prelude::Queryable;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

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

/// Errors a concurrent writer expects and rolls back: deadlock, lock wait, a key taken by
/// another writer, a table renamed away under it, a table definition changed under it.
fn expected(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if [1213, 1205, 1062, 1146, 1412].contains(&s.code))
}

/// What the writers do, shared with the test: the DDLs already done, and a pause.
#[derive(Default)]
struct Flags {
    altered: AtomicBool,
    renamed: AtomicBool,
    stop: AtomicBool,
    commits: AtomicU64,
}

/// Concurrent writers: each takes `pause` for reading around every transaction, so the test
/// holding it for writing sees no transaction open.
struct Writers {
    pause: Arc<tokio::sync::RwLock<()>>,
    flags: Arc<Flags>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The statements of one transaction of writer `w` (ids 1..=400 in each table).
fn txn_sql(flags: &Flags, w: u64, n: u64, rng: &mut Rng, two_tables: bool) -> Vec<String> {
    let b = if flags.renamed.load(Ordering::SeqCst) {
        "b2"
    } else {
        "b"
    };
    let mut sql = Vec::new();
    for _ in 0..1 + rng.below(3) {
        let k = 1 + rng.below(400);
        let on_b = two_tables && rng.below(2) == 1;
        let s = match (on_b, rng.below(10)) {
            (false, 0..=3) => format!(
                "INSERT INTO a (id, v, s, at) VALUES ({k}, {}, 'w{w}-{n}', \
                 '2024-01-02 03:04:05.{:06}')",
                rng.below(1_000_000),
                rng.below(1_000_000)
            ),
            (false, 4..=6) if flags.altered.load(Ordering::SeqCst) && rng.below(2) == 0 => {
                format!("UPDATE a SET v = v + 1, note = 'n{w}-{n}' WHERE id = {k}")
            }
            (false, 4..=6) => format!("UPDATE a SET v = v + 1, s = 'u{w}-{n}' WHERE id = {k}"),
            (false, 7) => format!("UPDATE a SET v = v * 2 WHERE id BETWEEN {k} AND {}", k + 5),
            (false, _) => format!("DELETE FROM a WHERE id = {k}"),
            (true, 0..=4) => format!(
                "INSERT INTO {b} (id, k, data) VALUES ({k}, {}, X'{:08X}00FF')",
                rng.below(1 << 40),
                rng.next() as u32
            ),
            (true, 5..=7) => format!("UPDATE {b} SET k = k + 1, data = NULL WHERE id = {k}"),
            (true, _) => format!("DELETE FROM {b} WHERE id = {k}"),
        };
        sql.push(s);
    }
    sql
}

impl Writers {
    /// Starts three writers on `db`'s table `a` (and `b`, or `b2` once renamed).
    fn start(db: &TestDb, two_tables: bool) -> Writers {
        let pause = Arc::new(tokio::sync::RwLock::new(()));
        let flags = Arc::new(Flags::default());
        let mut tasks = Vec::new();
        for w in 0..3u64 {
            let (url, pause, flags) = (db.url(), pause.clone(), flags.clone());
            tasks.push(tokio::spawn(async move {
                let mut conn = mysql_async::Conn::from_url(url).await.expect("writer conn");
                conn.query_drop("SET SESSION innodb_lock_wait_timeout = 2")
                    .await
                    .expect("lock wait timeout");
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (w * 7919 + 1));
                let mut n = 0u64;
                while !flags.stop.load(Ordering::SeqCst) {
                    n += 1;
                    let _turn = pause.read().await;
                    let sql = txn_sql(&flags, w, n, &mut rng, two_tables);
                    if one_txn(&mut conn, &sql)
                        .await
                        .unwrap_or_else(|e| panic!("writer {w}: {e}"))
                    {
                        flags.commits.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        Writers {
            pause,
            flags,
            tasks,
        }
    }

    /// Stops the writers; returns how many transactions they committed.
    async fn stop(self) -> u64 {
        self.flags.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.expect("writer");
        }
        self.flags.commits.load(Ordering::Relaxed)
    }
}

/// Runs `sql` in one transaction; Ok(false) when it rolled back on an expected error.
async fn one_txn(conn: &mut mysql_async::Conn, sql: &[String]) -> Result<bool, String> {
    conn.query_drop("BEGIN").await.map_err(|e| e.to_string())?;
    for s in sql {
        if let Err(e) = conn.query_drop(s).await {
            let _ = conn.query_drop("ROLLBACK").await;
            return if expected(&e) {
                Ok(false)
            } else {
                Err(format!("{s}: {e}"))
            };
        }
    }
    match conn.query_drop("COMMIT").await {
        Ok(()) => Ok(true),
        Err(e) if expected(&e) => Ok(false),
        Err(e) => Err(format!("COMMIT: {e}")),
    }
}

/// A point of the oracle: its second, GTID set (if any) and the tables' rows then.
#[derive(Clone, Debug)]
struct Point {
    name: &'static str,
    at: String,
    gtid: Option<String>,
    rows: BTreeMap<String, Vec<String>>,
}

/// Pauses the writers (no transaction open), records `tables`, the second and the GTID
/// set, waits into the next second (later commits are after the target) and resumes them.
async fn point(
    name: &'static str,
    db: &TestDb,
    conn: &mut mysql_async::Conn,
    w: &Writers,
    tables: &[&str],
) -> Point {
    let held = w.pause.write().await;
    let now = server_now_us(conn).await;
    let gtid = gtid_now(db).await;
    let mut rows = BTreeMap::new();
    for t in tables {
        rows.insert(t.to_string(), hex_rows(conn, db.db_name(), t).await);
    }
    next_second(conn, now).await;
    drop(held);
    Point {
        name,
        at: utc_second(now),
        gtid,
        rows,
    }
}

/// The per-table image choices of a dry run of `req`, as text.
async fn choices(daemon: &Daemon, req: &PitrRequest) -> Vec<dbtrail_core::api::TableImagePlan> {
    let dry = daemon
        .client()
        .pitr(
            &daemon.source,
            &PitrRequest {
                dry_run: true,
                output: None,
                ..req.clone()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("dry run of {req:?}: {e:#}\n{}", daemon.log()));
    dry.plan.images
}

/// Restores `req` into `dir`, imports it into a fresh database of the same server and
/// compares each table of `want` with the oracle; returns what the planner chose.
async fn check(
    daemon: &Daemon,
    db: &TestDb,
    req: PitrRequest,
    want: &BTreeMap<String, Vec<String>>,
    dir: &std::path::Path,
    what: &str,
) -> Vec<dbtrail_core::api::TableImagePlan> {
    let server = db.server();
    let images = choices(daemon, &req).await;
    for i in &images {
        eprintln!(
            "{server}: {what}: image of {}: {} {} ({} events); alternatives: {:?}",
            i.table,
            i.chosen.image,
            i.chosen.direction,
            i.chosen.events,
            i.alternatives
                .iter()
                .map(|a| format!(
                    "{} {} {} {}",
                    a.image,
                    a.direction,
                    a.events,
                    a.unusable.as_deref().unwrap_or("usable")
                ))
                .collect::<Vec<_>>()
        );
    }
    let t0 = std::time::Instant::now();
    restore(daemon, req, dir)
        .await
        .unwrap_or_else(|e| panic!("{server}: {what}: restore failed: {e}\n{}", daemon.log()));
    eprintln!("{server}: {what}: restored in {:?}", t0.elapsed());
    static N: AtomicU64 = AtomicU64::new(0);
    let into = format!("{}_r{}", db.db_name(), N.fetch_add(1, Ordering::Relaxed));
    // Into another server: a MySQL source's dump goes to the other MySQL 9 server of the test
    // bed (the one with native foreign keys); MariaDB's to a fresh database of the same
    // server (the test bed has one MariaDB).
    let other = if server.is_mariadb() {
        None
    } else {
        dbtrail_testkit::require(Server::MysqlNativeFk).await
    };
    let import_into = other.as_ref().unwrap_or(db);
    tokio::task::block_in_place(|| myloader(import_into, dir, &into));
    let mut conn = import_into.conn().await;
    for (t, rows) in want {
        let got = hex_rows(&mut conn, &into, t).await;
        assert!(
            &got == rows,
            "{server}: {what}: {t} differs: {} rows restored, {} at the source; first \
             differences: {:?}",
            got.len(),
            rows.len(),
            got.iter()
                .filter(|r| !rows.contains(r))
                .chain(rows.iter().filter(|r| !got.contains(r)))
                .take(6)
                .collect::<Vec<_>>()
        );
    }
    conn.query_drop(format!("DROP DATABASE `{into}`"))
        .await
        .expect("drop");
    images
}

fn at(point: &Point, tables: &[String]) -> PitrRequest {
    PitrRequest {
        target_time: Some(point.at.clone()),
        tables: tables.to_vec(),
        ..Default::default()
    }
}

async fn seed(db: &TestDb, two_tables: bool) {
    db.exec(
        "CREATE TABLE a (id INT NOT NULL PRIMARY KEY, v BIGINT, s VARCHAR(30), \
         at DATETIME(6)) DEFAULT CHARSET=utf8mb4",
    )
    .await;
    let rows: Vec<String> = (1..=200)
        .map(|i| format!("({i}, {i}, 'seed {i}', '2001-02-03 04:05:06.{i:06}')"))
        .collect();
    db.exec(&format!("INSERT INTO a VALUES {}", rows.join(", ")))
        .await;
    if two_tables {
        db.exec("CREATE TABLE b (id INT NOT NULL PRIMARY KEY, k BIGINT, data VARBINARY(40))")
            .await;
        let rows: Vec<String> = (1..=200)
            .map(|i| format!("({i}, {}, X'{i:04X}')", i * 1000))
            .collect();
        db.exec(&format!("INSERT INTO b VALUES {}", rows.join(", ")))
            .await;
    }
}

async fn across_ddl(server: Server) {
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    let d = db.db_name().to_string();
    seed(&db, true).await;
    let extra = format!("backup_databases = [\"{d}\"]\n");
    let mut daemon = Daemon::start(server, &extra);
    daemon.wait_streaming().await;
    daemon.backup().await;
    let mut conn = db.conn().await;
    let w = Writers::start(&db, true);
    let run = Duration::from_millis(1500);
    tokio::time::sleep(run).await;
    let p0 = point("before ALTER", &db, &mut conn, &w, &["a", "b"]).await;
    tokio::time::sleep(run).await;
    conn.query_drop("ALTER TABLE a ADD COLUMN note VARCHAR(20) DEFAULT 'x'")
        .await
        .expect("alter");
    let alter_us = server_now_us(&mut conn).await;
    w.flags.altered.store(true, Ordering::SeqCst);
    tokio::time::sleep(run).await;
    let p1 = point(
        "between ALTER and TRUNCATE",
        &db,
        &mut conn,
        &w,
        &["a", "b"],
    )
    .await;
    tokio::time::sleep(run).await;
    conn.query_drop("TRUNCATE TABLE b").await.expect("truncate");
    let truncate_us = server_now_us(&mut conn).await;
    tokio::time::sleep(run).await;
    let p2 = point("after TRUNCATE", &db, &mut conn, &w, &["a", "b"]).await;
    tokio::time::sleep(run).await;
    conn.query_drop("RENAME TABLE b TO b2")
        .await
        .expect("rename");
    let rename_us = server_now_us(&mut conn).await;
    w.flags.renamed.store(true, Ordering::SeqCst);
    tokio::time::sleep(run).await;
    let p3 = point("after RENAME", &db, &mut conn, &w, &["a", "b2"]).await;
    tokio::time::sleep(run).await;
    // CREATE (empty, then filled by the test), CREATE ... SELECT, a multi-table RENAME that
    // swaps the two names, and a DROP: a restore of everything has the tables of its moment.
    for sql in [
        "CREATE TABLE c (id INT PRIMARY KEY, v VARCHAR(10))",
        "INSERT INTO c VALUES (1, 'c1'), (2, 'c2')",
        "CREATE TABLE e (id INT PRIMARY KEY, v VARCHAR(10)) SELECT id, 'from a' AS v FROM a \
         WHERE id <= 5",
    ] {
        conn.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let create_us = server_now_us(&mut conn).await;
    tokio::time::sleep(run).await;
    let p4 = point("after CREATE", &db, &mut conn, &w, &["a", "b2", "c", "e"]).await;
    // A restore to p4 needs images of c and e taken before the swap renames them (one
    // renamed before its image keeps none of that name, and p4 would be refused).
    daemon.wait_caught_up(&db).await;
    for t in ["c", "e"] {
        let img = wait_table_image(&daemon, &db, t, create_us - 1_000_000).await;
        eprintln!("{server}: table image of {t}: {img}");
    }
    for sql in [
        "RENAME TABLE c TO c_old, e TO c",
        "DROP TABLE c_old",
        "INSERT INTO c VALUES (100, 'later')",
    ] {
        conn.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let swap_us = server_now_us(&mut conn).await;
    tokio::time::sleep(run).await;
    let p5 = point(
        "after RENAME swap and DROP",
        &db,
        &mut conn,
        &w,
        &["a", "b2", "c"],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let commits = w.stop().await;
    eprintln!("{server}: the writers committed {commits} transactions");
    assert!(commits > 30, "{server}: too few commits ({commits})");
    for pair in [&p0, &p1, &p2, &p3].windows(2) {
        assert_ne!(pair[0].rows["a"], pair[1].rows["a"], "{server}: a changed");
    }
    assert_ne!(p0.rows["b"], p1.rows["b"], "{server}: b changed");
    daemon.wait_caught_up(&db).await;
    // The daemon's images after each DDL.
    let img_a = wait_table_image(&daemon, &db, "a", alter_us - 1_000_000).await;
    let img_b = wait_table_image(&daemon, &db, "b", truncate_us - 1_000_000).await;
    let img_b2 = wait_table_image(&daemon, &db, "b2", rename_us - 1_000_000).await;
    eprintln!("{server}: table images: a {img_a}, b {img_b}, b2 {img_b2}");
    for (t, after) in [("c", swap_us)] {
        let img = wait_table_image(&daemon, &db, t, after - 1_000_000).await;
        eprintln!("{server}: table image of {t}: {img}");
    }

    let out = tempfile::tempdir().expect("tmp");
    let (qa, qb, qb2) = (format!("{d}.a"), format!("{d}.b"), format!("{d}.b2"));
    let plans: Vec<(&Point, Vec<String>)> = vec![
        (&p0, vec![]),
        (&p1, vec![]),
        (&p2, vec![qa.clone(), qb.clone()]),
        (&p3, vec![qa.clone(), qb2.clone()]),
        (&p3, vec![]),
        (&p4, vec![]),
        (&p5, vec![]),
    ];
    let mut n = 0;
    for (p, tables) in plans {
        let mut reqs = vec![("time", at(p, &tables))];
        if let Some(g) = &p.gtid {
            reqs.push((
                "gtid",
                PitrRequest {
                    target_gtid: Some(g.clone()),
                    tables: tables.clone(),
                    ..Default::default()
                },
            ));
        }
        for (how, req) in reqs {
            n += 1;
            let dir = out.path().join(format!("r{n}"));
            let what = format!("{} by {how} ({})", p.name, p.at);
            let whole = req.tables.is_empty();
            check(&daemon, &db, req, &p.rows, &dir, &what).await;
            if whole {
                // Exactly the tables of that moment.
                let mut dumped: Vec<String> = std::fs::read_dir(&dir)
                    .expect("out")
                    .filter_map(|e| {
                        let n = e.ok()?.file_name().to_string_lossy().into_owned();
                        n.strip_suffix("-schema.sql")
                            .and_then(|t| t.strip_prefix(&format!("{d}.")))
                            .map(str::to_string)
                    })
                    .collect();
                dumped.sort();
                let want: Vec<String> = p.rows.keys().cloned().collect();
                assert_eq!(dumped, want, "{server}: {what}: the tables restored");
            }
            let schema = std::fs::read_to_string(dir.join(format!("{d}.a-schema.sql")))
                .expect("a's schema file");
            // The dump's schema is the table's layout at the target.
            assert_eq!(
                schema.contains("`note`"),
                p.name != "before ALTER",
                "{server}: {what}: {schema}"
            );
        }
    }
    drop(conn);
    assert_eq!(daemon.stop(), Some(0));
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restores_across_ddl_under_concurrent_writers_mysql_gtid() {
    across_ddl(Server::MysqlGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restores_across_ddl_under_concurrent_writers_mysql_nogtid() {
    across_ddl(Server::MysqlNoGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restores_across_ddl_under_concurrent_writers_mariadb() {
    across_ddl(Server::MariaDb).await;
}

async fn both_directions(server: Server) {
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    let d = db.db_name().to_string();
    seed(&db, false).await;
    let extra = format!("backup_databases = [\"{d}\"]\n");
    let mut daemon = Daemon::start(server, &extra);
    daemon.wait_streaming().await;
    daemon.backup().await;
    let mut conn = db.conn().await;
    let w = Writers::start(&db, false);
    // Many changes between the baseline and the target, fewer after it.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let t = point("T", &db, &mut conn, &w, &["a"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    daemon.wait_caught_up(&db).await;
    let out = tempfile::tempdir().expect("tmp");
    let req = |image: &str| PitrRequest {
        image: Some(image.into()),
        ..at(&t, &[])
    };
    // Forward from the only stored image, the baseline, while the writers go on.
    let fwd = check(
        &daemon,
        &db,
        req("baseline"),
        &t.rows,
        &out.path().join("fwd"),
        "--image baseline (forward)",
    )
    .await;
    assert_eq!(fwd[0].chosen.direction, "forward", "{server}: {fwd:?}");
    assert!(fwd[0].chosen.image.starts_with("baseline "), "{fwd:?}");
    // The live table, the changes since the target undone, while the writers go on.
    let live = check(
        &daemon,
        &db,
        req("live"),
        &t.rows,
        &out.path().join("live"),
        "--image live (backward)",
    )
    .await;
    assert_eq!(
        (
            live[0].chosen.image.as_str(),
            live[0].chosen.direction.as_str()
        ),
        ("live", "backward"),
        "{server}: {live:?}"
    );
    // A second baseline after the target: stored images only, now backward.
    daemon.backup().await;
    let commits = w.stop().await;
    eprintln!("{server}: the writers committed {commits} transactions");
    daemon.wait_caught_up(&db).await;
    let back = check(
        &daemon,
        &db,
        req("baseline"),
        &t.rows,
        &out.path().join("back"),
        "--image baseline after a later baseline (backward)",
    )
    .await;
    // Backward from the image after the target (the table image the live restore left, or
    // the second baseline) when it needs fewer events than forward from the first baseline:
    // how many the writers committed on either side of T decides, so check the choice.
    let backward = back[0]
        .alternatives
        .iter()
        .chain(std::iter::once(&back[0].chosen))
        .find(|o| o.direction == "backward")
        .expect("a backward option");
    let forward = back[0]
        .alternatives
        .iter()
        .chain(std::iter::once(&back[0].chosen))
        .find(|o| o.direction == "forward")
        .expect("a forward option");
    assert!(
        backward.unusable.is_none() && forward.unusable.is_none(),
        "{server}: {back:?}"
    );
    let want = if backward.events < forward.events {
        "backward"
    } else {
        "forward"
    };
    assert_eq!(back[0].chosen.direction, want, "{server}: {back:?}");
    assert_ne!(
        hex_rows(&mut conn, &d, "a").await,
        t.rows["a"],
        "{server}: the table changed after the target"
    );
    drop(conn);
    assert_eq!(daemon.stop(), Some(0));
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn backward_and_live_images_give_the_same_state_mysql_gtid() {
    both_directions(Server::MysqlGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn backward_and_live_images_give_the_same_state_mysql_nogtid() {
    both_directions(Server::MysqlNoGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn backward_and_live_images_give_the_same_state_mariadb() {
    both_directions(Server::MariaDb).await;
}

async fn bad_requests(server: Server) {
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    let d = db.db_name().to_string();
    seed(&db, false).await;
    let extra = format!("backup_databases = [\"{d}\"]\n");
    let mut daemon = Daemon::start(server, &extra);
    daemon.wait_streaming().await;
    daemon.backup().await;
    let mut conn = db.conn().await;
    conn.query_drop("UPDATE a SET v = 0 WHERE id < 10")
        .await
        .expect("update");
    let t = server_now_us(&mut conn).await;
    next_second(&mut conn, t).await;
    conn.query_drop("ALTER TABLE a ADD COLUMN note VARCHAR(20) DEFAULT 'x'")
        .await
        .expect("alter");
    conn.query_drop("UPDATE a SET note = 'y' WHERE id < 5")
        .await
        .expect("update");
    daemon.wait_caught_up(&db).await;
    let out = tempfile::tempdir().expect("tmp");
    let target = out.path().join("restore");
    let ask = async |image: &str| -> (u16, String) {
        let req = PitrRequest {
            target_time: Some(utc_second(t)),
            image: Some(image.into()),
            output: Some(target.display().to_string()),
            ..Default::default()
        };
        let e = match daemon.client().pitr(&daemon.source, &req).await {
            Ok(s) => panic!("{server}: --image {image} accepted: {s:?}"),
            Err(e) => e,
        };
        let status = e
            .chain()
            .find_map(|c| match c.downcast_ref::<dbtrail_ctl::Error>() {
                Some(dbtrail_ctl::Error::Api { status, .. }) => Some(status.as_u16()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{server}: not an API error: {e:#}"));
        (status, format!("{e:#}"))
    };
    let (status, e) = ask("sideways").await;
    assert!((400..500).contains(&status), "{server}: HTTP {status}: {e}");
    assert!(
        e.contains("sideways")
            && e.contains("auto")
            && e.contains("baseline")
            && e.contains("live"),
        "{server}: {e}"
    );
    let (status, e) = ask("live").await;
    assert!((400..500).contains(&status), "{server}: HTTP {status}: {e}");
    assert!(
        e.contains("layout may have changed") && e.contains("ALTER TABLE a") && e.contains(".a"),
        "{server}: {e}"
    );
    // The same through dbtrailctl: a bad value is a usage error (exit 2, the values listed);
    // the daemon's refusal exits 1 (as `dbtrailctl --help` documents), with its words; and
    // nothing is written.
    if let Some(ctl) = common::ctl_binary() {
        for (image, code, words) in [
            ("sideways", 2, "auto, baseline, live"),
            ("live", 1, "layout may have changed"),
        ] {
            let o = std::process::Command::new(&ctl)
                .arg("--socket")
                .arg(&daemon.socket)
                .args(["pitr", "--at", &utc_second(t), "--image", image, "--output"])
                .arg(&target)
                .output()
                .expect("dbtrailctl");
            let stderr = String::from_utf8_lossy(&o.stderr);
            eprintln!(
                "{server}: dbtrailctl --image {image}: {:?} {stderr}",
                o.status.code()
            );
            assert!(
                o.status.code() == Some(code) && stderr.contains(words),
                "{server}: dbtrailctl --image {image}: {:?} {stderr}",
                o.status.code()
            );
        }
    } else {
        // CI builds the whole workspace: there a missing binary is a failure, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "{server}: dbtrailctl is not built next to the tests"
        );
        eprintln!("{server}: WARNING: dbtrailctl is not built here; its part is SKIPPED");
    }
    assert!(
        !target.exists(),
        "{server}: a refused restore wrote its output"
    );
    drop(conn);
    assert_eq!(daemon.stop(), Some(0));
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_image_requests_are_refused_clearly() {
    for server in [Server::MysqlGtid, Server::MysqlNoGtid, Server::MariaDb] {
        bad_requests(server).await;
    }
}
