//! XA transactions restored exactly (docs/correctness.md, C13): three writers commit ordinary
//! transactions interleaved with XA transactions they prepare and leave (disconnecting, as
//! application servers do); a baseline is taken while they are prepared; another connection
//! then commits some (`XA COMMIT`), rolls back others (`XA ROLLBACK`), while the writers go on
//! and also commit `XA COMMIT ... ONE PHASE`. The server's own `HEX()` of every row is
//! recorded between PREPARE and COMMIT and after COMMIT; restores to those moments, by time
//! and by GTID, imported with myloader, must match column by column. One transaction stays
//! prepared: status lists it, and no table is tainted.
mod common;

use common::{
    Daemon, gtid_now, hex_rows, myloader, next_second, restore, server_now_us, utc_second,
};
use dbtrail_core::api::PitrRequest;
use dbtrail_testkit::{Server, TestDb};
use mysql_async::prelude::Queryable;
use std::collections::BTreeMap;
use std::time::Duration;

const TABLES: [&str; 2] = ["acct", "hist"];

/// Errors a concurrent writer expects and rolls back: deadlock, lock wait.
fn expected(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if [1213, 1205].contains(&s.code))
}

/// A gtrid unique to this test database (tests on other databases share the server).
fn gtrid(db: &TestDb, what: &str) -> String {
    format!("{}-{what}", prefix(db))
}

fn prefix(db: &TestDb) -> String {
    let h = db
        .db_name()
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(131).wrapping_add(u64::from(b)));
    format!("{:x}", h & 0xffff_ffff)
}

/// Rolls back every XA transaction of this test still prepared when it ends, passed or not:
/// a prepared transaction keeps its locks, and other tests' LOCK TABLES would wait on it.
struct XaCleanup {
    url: String,
    prefix: String,
}

impl Drop for XaCleanup {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                let Ok(mut conn) = mysql_async::Conn::from_url(url).await else {
                    return;
                };
                let rows: Vec<(i64, i64, i64, Vec<u8>)> =
                    conn.query("XA RECOVER").await.unwrap_or_default();
                for (fmt, g, b, data) in rows {
                    if !data.starts_with(prefix.as_bytes()) {
                        continue;
                    }
                    let (g, b) = (g as usize, b as usize);
                    let hex = |x: &[u8]| x.iter().map(|c| format!("{c:02x}")).collect::<String>();
                    let sql = format!(
                        "XA ROLLBACK X'{}',X'{}',{fmt}",
                        hex(&data[..g]),
                        hex(&data[g..g + b])
                    );
                    let _ = conn.query_drop(sql).await;
                }
                let _ = conn.disconnect().await;
            });
        })
        .join();
    }
}

async fn writer_conn(url: &str) -> mysql_async::Conn {
    let mut conn = mysql_async::Conn::from_url(url).await.expect("writer conn");
    conn.query_drop("SET SESSION innodb_lock_wait_timeout = 2")
        .await
        .expect("lock wait timeout");
    conn
}

async fn run(conn: &mut mysql_async::Conn, sql: &[String]) -> Result<(), mysql_async::Error> {
    for s in sql {
        if let Err(e) = conn.query_drop(s).await {
            let _ = conn.query_drop("ROLLBACK").await;
            return if expected(&e) { Ok(()) } else { Err(e) };
        }
    }
    Ok(())
}

/// Writer `w` for `ms` milliseconds: ordinary transactions on its rows 1-40, and in round 1
/// two XA transactions it prepares and leaves (rows 41, 42), in round 2 one-phase XA commits
/// (row 45).
async fn writer(url: String, prefix: String, w: u64, round: u64, ms: u64) {
    let mut conn = writer_conn(&url).await;
    let until = std::time::Instant::now() + Duration::from_millis(ms);
    let mut n = 0u64;
    let base = 1000 * (w + 1);
    while std::time::Instant::now() < until {
        n += 1;
        let id = base + 1 + (n * 7 + round) % 40;
        run(
            &mut conn,
            &[
                "BEGIN".into(),
                format!("UPDATE acct SET v = v + 1, note = 'w{w} r{round} n{n}' WHERE id = {id}"),
                format!("INSERT INTO hist (w, n, what) VALUES ({w}, {n}, 'plain {round}')"),
                "COMMIT".into(),
            ],
        )
        .await
        .unwrap_or_else(|e| panic!("writer {w}: {e}"));
        if round == 1 && (n == 3 || n == 9) {
            let k = if n == 3 { 0 } else { 1 };
            let x = format!("'{prefix}-x{w}-{k}'");
            for s in [
                format!("XA START {x}"),
                format!(
                    "UPDATE acct SET v = v + 100, note = 'xa {w}-{k}' WHERE id = {}",
                    base + 41 + k
                ),
                format!("INSERT INTO hist (w, n, what) VALUES ({w}, {n}, 'xa {w}-{k}')"),
                format!("XA END {x}"),
                format!("XA PREPARE {x}"),
            ] {
                conn.query_drop(&s)
                    .await
                    .unwrap_or_else(|e| panic!("writer {w}: {s}: {e}"));
            }
            // Leave the transaction prepared: another connection resolves it.
            conn.disconnect().await.expect("disconnect");
            conn = writer_conn(&url).await;
        }
        if round == 2 && n.is_multiple_of(5) {
            let x = format!("'{prefix}-o{w}-{n}'");
            conn.query_drop(format!("XA START {x}")).await.expect("xa");
            conn.query_drop(format!(
                "UPDATE acct SET v = v + 1000, note = 'one phase {n}' WHERE id = {}",
                base + 45
            ))
            .await
            .expect("xa update");
            conn.query_drop(format!("XA END {x}"))
                .await
                .expect("xa end");
            conn.query_drop(format!("XA COMMIT {x} ONE PHASE"))
                .await
                .expect("one phase");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = conn.disconnect().await;
}

async fn writers(db: &TestDb, round: u64, ms: u64) -> Vec<tokio::task::JoinHandle<()>> {
    (0..3u64)
        .map(|w| tokio::spawn(writer(db.url(), prefix(db), w, round, ms)))
        .collect()
}

async fn all_rows(conn: &mut mysql_async::Conn, db: &str) -> BTreeMap<&'static str, Vec<String>> {
    let mut out = BTreeMap::new();
    for t in TABLES {
        out.insert(t, hex_rows(conn, db, t).await);
    }
    out
}

/// A moment to restore to: its second, GTID set and rows.
struct Moment {
    what: &'static str,
    second: String,
    gtid: Option<String>,
    rows: BTreeMap<&'static str, Vec<String>>,
}

async fn moment(db: &TestDb, conn: &mut mysql_async::Conn, what: &'static str) -> Moment {
    let t = server_now_us(conn).await;
    let m = Moment {
        what,
        second: utc_second(t),
        gtid: gtid_now(db).await,
        rows: all_rows(conn, db.db_name()).await,
    };
    next_second(conn, t).await;
    m
}

async fn xa(server: Server) {
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    let name = db.db_name().to_string();
    let _cleanup = XaCleanup {
        url: db.url(),
        prefix: prefix(&db),
    };
    // Only its own database: other tests' (and benches') tables on the shared server.
    let daemon = Daemon::start(server, &format!("backup_databases = [\"{name}\"]\n"));
    daemon.wait_streaming().await;
    let mut conn = db.conn().await;
    for s in [
        "CREATE TABLE acct (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(40))",
        "CREATE TABLE hist (id INT AUTO_INCREMENT PRIMARY KEY, w INT, n INT, what VARCHAR(40))",
    ] {
        conn.query_drop(s).await.expect("schema");
    }
    let mut seed = Vec::new();
    for w in 0..3 {
        for i in 1..=50 {
            seed.push(format!("({}, 0, 'seed')", 1000 * (w + 1) + i));
        }
    }
    conn.query_drop(format!("INSERT INTO acct VALUES {}", seed.join(", ")))
        .await
        .expect("seed");
    // One XA transaction stays prepared to the end.
    let keep = gtrid(&db, "keep");
    let mut k = writer_conn(&db.url()).await;
    for s in [
        format!("XA START '{keep}'"),
        "UPDATE acct SET v = -1, note = 'keep' WHERE id = 1050".into(),
        "INSERT INTO hist (w, n, what) VALUES (9, 9, 'keep')".into(),
        format!("XA END '{keep}'"),
        format!("XA PREPARE '{keep}'"),
    ] {
        k.query_drop(&s)
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    k.disconnect().await.expect("disconnect");
    let t0 = server_now_us(&mut conn).await;
    next_second(&mut conn, t0).await;

    // Round 1: writers prepare XA transactions between ordinary ones.
    for t in writers(&db, 1, 1500).await {
        t.await.expect("writer");
    }
    daemon.wait_caught_up(&db).await;
    let st = daemon
        .client()
        .status(&daemon.source)
        .await
        .expect("status");
    assert_eq!(
        st.prepared_xa.len(),
        7,
        "{server}: six prepared by the writers and `keep`: {:#?}",
        st.prepared_xa
    );
    // A baseline while they are prepared: it cannot see their rows.
    daemon.backup().await;
    let mut moments = vec![moment(&db, &mut conn, "between PREPARE and COMMIT").await];

    // Round 2: another connection commits k=0 and rolls back k=1, while writers go on.
    let tasks = writers(&db, 2, 1500).await;
    let mut r = writer_conn(&db.url()).await;
    for w in 0..3 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        for (k, verb) in [(0, "COMMIT"), (1, "ROLLBACK")] {
            let s = format!("XA {verb} '{}'", gtrid(&db, &format!("x{w}-{k}")));
            r.query_drop(&s)
                .await
                .unwrap_or_else(|e| panic!("{s}: {e}"));
        }
    }
    for t in tasks {
        t.await.expect("writer");
    }
    moments.push(moment(&db, &mut conn, "after COMMIT").await);
    daemon.wait_caught_up(&db).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let st = daemon.wait_caught_up(&db).await;

    let keep_xid = format!(
        "X'{}',X'',1",
        keep.bytes().map(|b| format!("{b:02x}")).collect::<String>()
    );
    assert_eq!(
        st.prepared_xa.iter().map(|x| &x.xid).collect::<Vec<_>>(),
        [&keep_xid],
        "{server}: only `keep` is still prepared"
    );
    let p = &st.prepared_xa[0];
    assert_eq!(p.rows, 2, "{p:?}");
    assert_eq!(
        p.tables,
        [format!("{name}.acct"), format!("{name}.hist")],
        "{p:?}"
    );
    assert_eq!(p.prepare_gtid.is_some(), server.has_gtids(), "{p:?}");
    let tainted: Vec<_> = st
        .tainted_tables
        .iter()
        .filter(|t| t.table.starts_with(&name) || t.table == "*.*")
        .collect();
    assert!(
        tainted.is_empty(),
        "{server}: XA taints nothing: {tainted:?}"
    );
    assert_ne!(
        moments[0].rows, moments[1].rows,
        "{server}: the workload changed nothing"
    );

    let out = tempfile::tempdir().expect("tmp");
    let mut n = 0;
    for m in &moments {
        let mut reqs = vec![(
            format!("time {}", m.second),
            PitrRequest {
                target_time: Some(m.second.clone()),
                ..Default::default()
            },
        )];
        if let Some(g) = &m.gtid {
            reqs.push((
                format!("GTID {g}"),
                PitrRequest {
                    target_gtid: Some(g.clone()),
                    ..Default::default()
                },
            ));
        }
        for (how, mut req) in reqs {
            n += 1;
            req.tables = TABLES.iter().map(|t| format!("{name}.{t}")).collect();
            let dir = out.path().join(format!("r{n}"));
            restore(&daemon, req, &dir).await.unwrap_or_else(|e| {
                panic!(
                    "{server}: restore {} by {how}: {e}\n{}",
                    m.what,
                    daemon.log()
                )
            });
            let into = format!("{name}_r{n}");
            myloader(&db, &dir, &into);
            for t in TABLES {
                let got = hex_rows(&mut conn, &into, t).await;
                let want = &m.rows[t];
                assert!(
                    &got == want,
                    "{server}: {t} restored {} by {how} differs: {} rows restored, {} at the \
                     source; first differences: {:?}",
                    m.what,
                    got.len(),
                    want.len(),
                    got.iter()
                        .filter(|r| !want.contains(r))
                        .chain(want.iter().filter(|r| !got.contains(r)))
                        .take(6)
                        .collect::<Vec<_>>()
                );
            }
            conn.query_drop(format!("DROP DATABASE `{into}`"))
                .await
                .expect("drop");
        }
    }
    conn.query_drop(format!("XA ROLLBACK '{keep}'"))
        .await
        .expect("rollback keep");
    daemon.wait_caught_up(&db).await;
    let st = daemon
        .wait_status("no prepared XA", Duration::from_secs(30), |s| {
            s.prepared_xa.is_empty()
        })
        .await;
    assert!(st.prepared_xa.is_empty());
    drop(conn);
    db.drop_database().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn xa_mysql_gtid() {
    xa(Server::MysqlGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn xa_mysql_nogtid() {
    xa(Server::MysqlNoGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn xa_mariadb() {
    xa(Server::MariaDb).await;
}
