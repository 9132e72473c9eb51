//! Looking back without a restore, against the real servers, checked by an oracle.
//!
//! Three writers commit interleaved transactions to a keyed table `k` and a key-less `bag`;
//! the test itself inserts, updates and deletes one row (id 1000) that the writers never
//! touch, noting each version. At four moments the writers are paused and the source's own
//! text of every row is recorded (`SELECT CONCAT_WS(...)`), a baseline is taken midway. Then:
//! - `show --at` of each moment equals the recorded table, whole and for single keys (forward
//!   from the first baseline, backward from the second, as the planner picks);
//! - `diff` between two moments equals the difference of the two recordings, per key (and in
//!   copies for `bag`);
//! - `history` of id 1000 lists exactly its versions.
mod common;

use common::Daemon;
use common::writers::Writers;
use dbtrail_core::api::{DiffResponse, HistoryResponse, RowsResponse};
use dbtrail_testkit::Server;
use mysql_async::prelude::Queryable;
use std::collections::BTreeMap;
use std::time::Duration;

/// One writer transaction: 1-3 rows of `k` (ids 1..=200) and of `bag`.
fn txn(w: u64, n: u64, next: &mut dyn FnMut(u64) -> u64) -> Vec<String> {
    let mut sql = Vec::new();
    for _ in 0..1 + next(3) {
        let k = 1 + next(200);
        sql.push(match next(10) {
            0..=3 => format!(
                "INSERT INTO k (id, v, s, d) VALUES ({k}, {}, 'w{w}-{n}', {}.25) \
                 ON DUPLICATE KEY UPDATE v = v + 1, s = 'd{w}-{n}'",
                next(1000),
                next(100)
            ),
            4..=6 => format!("UPDATE k SET v = v * 2, s = NULL, d = d + 1 WHERE id = {k}"),
            7 => format!("DELETE FROM k WHERE id = {k}"),
            8 => format!("INSERT INTO bag VALUES ({}, 'b{w}')", next(4)),
            _ => format!("DELETE FROM bag WHERE x = {} LIMIT 1", next(4)),
        });
    }
    sql
}

/// `k` and `bag` as the source prints them: `id|v|s|d` and `x|y`, NULL as `NULL`.
async fn record(conn: &mut mysql_async::Conn, db: &str) -> [Vec<String>; 2] {
    let mut out = [Vec::new(), Vec::new()];
    for (i, sql) in [
        format!("SELECT CONCAT_WS('|', id, v, IFNULL(s, 'NULL'), d) FROM `{db}`.k ORDER BY id"),
        format!("SELECT CONCAT_WS('|', x, IFNULL(y, 'NULL')) FROM `{db}`.bag"),
    ]
    .iter()
    .enumerate()
    {
        let mut rows: Vec<String> = conn.query(sql).await.expect("record");
        rows.sort();
        out[i] = rows;
    }
    out
}

/// Our rows as the same text.
fn ours(rows: &[Vec<serde_json::Value>]) -> Vec<String> {
    let mut v: Vec<String> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|v| match v {
                    serde_json::Value::Null => "NULL".to_string(),
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    v.sort();
    v
}

struct Moment {
    at: String,
    rows: [Vec<String>; 2],
}

async fn rows(daemon: &Daemon, table: &str, at: &str, key: Option<&str>) -> RowsResponse {
    let mut path = format!(
        "/api/v1/servers/{}/tables/{}/rows?at={}&limit=100000",
        daemon.source,
        dbtrail_ctl::encode(table),
        dbtrail_ctl::encode(at)
    );
    if let Some(k) = key {
        path.push_str(&format!("&key={}", dbtrail_ctl::encode(k)));
    }
    daemon
        .client()
        .get(&path)
        .await
        .unwrap_or_else(|e| panic!("show {table} at {at} {key:?}: {e:#}\n{}", daemon.log()))
}

async fn look_back(server: Server) {
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    let d = db.db_name().to_string();
    let mut conn = db.conn().await;
    conn.query_drop(
        "CREATE TABLE k (id INT PRIMARY KEY, v INT NOT NULL, s VARCHAR(40), d DECIMAL(10,2) \
         NOT NULL DEFAULT 0)",
    )
    .await
    .expect("create k");
    conn.query_drop("CREATE TABLE bag (x INT, y VARCHAR(10))")
        .await
        .expect("create bag");
    let seed: Vec<String> = (1..=200)
        .map(|i| format!("({i}, {i}, 'seed', {i}.50)"))
        .collect();
    conn.query_drop(format!("INSERT INTO k VALUES {}", seed.join(",")))
        .await
        .expect("seed");
    conn.query_drop("INSERT INTO bag VALUES (1, 'a'), (1, 'a'), (2, NULL)")
        .await
        .expect("seed bag");
    let daemon = Daemon::start(server, &format!("backup_databases = [\"{d}\"]\n"));
    daemon.wait_streaming().await;
    daemon.backup().await;
    let w = Writers::start(&db, 3, txn);
    // The tracked row's versions: (kind, v after, or before for a delete).
    let mut versions: Vec<(&str, i64)> = Vec::new();
    let mut moments: Vec<Moment> = Vec::new();
    let tracked = |step: usize| -> Option<(String, (&'static str, i64))> {
        Some(match step {
            0 => (
                "INSERT INTO k VALUES (1000, 1, 'tracked', 0)".into(),
                ("insert", 1),
            ),
            1 => ("UPDATE k SET v = 2 WHERE id = 1000".into(), ("update", 2)),
            2 => (
                "UPDATE k SET v = 3, s = NULL WHERE id = 1000".into(),
                ("update", 3),
            ),
            3 => ("DELETE FROM k WHERE id = 1000".into(), ("delete", 3)),
            4 => (
                "INSERT INTO k VALUES (1000, 5, 'again', 1)".into(),
                ("insert", 5),
            ),
            _ => return None,
        })
    };
    for m in 0..5 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some((sql, v)) = tracked(m) {
            conn.query_drop(sql).await.expect("tracked");
            versions.push(v);
        }
        if m == 2 {
            // A second baseline midway, taken while the writers commit.
            daemon.backup().await;
        }
        let moment = w
            .paused(async {
                let now = common::server_now_us(&mut conn).await;
                let rows = record(&mut conn, &d).await;
                common::next_second(&mut conn, now).await;
                Moment {
                    at: common::utc_second(now),
                    rows,
                }
            })
            .await;
        moments.push(moment);
    }
    let commits = w.stop().await;
    assert!(commits > 20, "{server}: too few commits ({commits})");
    daemon.wait_caught_up(&db).await;
    for w in moments.windows(2) {
        assert_ne!(w[0].rows, w[1].rows, "{server}: moments must differ");
    }
    let (kt, bt) = (format!("{d}.k"), format!("{d}.bag"));
    for (i, m) in moments.iter().enumerate() {
        for (t, want) in [&kt, &bt].iter().zip(&m.rows) {
            let got = rows(&daemon, t, &m.at, None).await;
            assert!(
                &ours(&got.rows) == want,
                "{server}: moment {i} ({}): {t} differs ({} rows, {} at the source; from {})",
                m.at,
                got.rows.len(),
                want.len(),
                got.image
            );
        }
        // Single keys: ones the writers change, the tracked one, and one never there.
        for id in [3, 77, 150, 199, 1000, 5000] {
            let got = rows(&daemon, &kt, &m.at, Some(&format!("id={id}"))).await;
            let want: Vec<String> = m.rows[0]
                .iter()
                .filter(|r| r.split('|').next() == Some(&id.to_string()))
                .cloned()
                .collect();
            assert_eq!(
                ours(&got.rows),
                want,
                "{server}: moment {i} ({}): key id={id} ({})",
                m.at,
                got.read
            );
            assert!(got.read.contains("by key"), "{server}: {}", got.read);
        }
        let got = rows(&daemon, &bt, &m.at, Some("x=1")).await;
        let want: Vec<String> = m.rows[1]
            .iter()
            .filter(|r| r.starts_with("1|"))
            .cloned()
            .collect();
        assert_eq!(ours(&got.rows), want, "{server}: moment {i}: bag x=1");
    }
    // diff between moments 0 and 3, and 1 and 4.
    for (a, b) in [(0, 3), (1, 4), (2, 2)] {
        let path = format!(
            "/api/v1/servers/{}/tables/{}/diff?from={}&to={}&limit=100000",
            daemon.source,
            dbtrail_ctl::encode(&kt),
            dbtrail_ctl::encode(&moments[a].at),
            dbtrail_ctl::encode(&moments[b].at)
        );
        let got: DiffResponse = daemon.client().get(&path).await.expect("diff");
        let by_key = |rows: &[String]| -> BTreeMap<String, String> {
            rows.iter()
                .map(|r| (r.split('|').next().unwrap_or("").to_string(), r.clone()))
                .collect()
        };
        let (before, after) = (by_key(&moments[a].rows[0]), by_key(&moments[b].rows[0]));
        let mut want: BTreeMap<String, (Option<String>, Option<String>)> = BTreeMap::new();
        for k in before.keys().chain(after.keys()) {
            let (x, y) = (before.get(k).cloned(), after.get(k).cloned());
            if x != y {
                want.insert(k.clone(), (x, y));
            }
        }
        let mut have: BTreeMap<String, (Option<String>, Option<String>)> = BTreeMap::new();
        for r in &got.rows {
            let one = |v: &Option<Vec<serde_json::Value>>| {
                v.as_ref().map(|r| ours(std::slice::from_ref(r)).remove(0))
            };
            have.insert(
                r.key.trim_start_matches("id=").to_string(),
                (one(&r.before), one(&r.after)),
            );
        }
        assert_eq!(have, want, "{server}: diff {a}..{b}");
        let count = |f: fn(&(Option<String>, Option<String>)) -> bool| {
            want.values().filter(|v| f(v)).count() as u64
        };
        assert_eq!(got.inserted, count(|v| v.0.is_none()), "{server}: inserted");
        assert_eq!(got.deleted, count(|v| v.1.is_none()), "{server}: deleted");
        assert_eq!(
            got.changed,
            count(|v| v.0.is_some() && v.1.is_some()),
            "{server}: changed"
        );
        // The key-less table: net copies per row.
        let path = path.replace(&dbtrail_ctl::encode(&kt), &dbtrail_ctl::encode(&bt));
        let got: DiffResponse = daemon.client().get(&path).await.expect("bag diff");
        let mut net: BTreeMap<String, i64> = BTreeMap::new();
        for r in &moments[a].rows[1] {
            *net.entry(r.clone()).or_default() -= 1;
        }
        for r in &moments[b].rows[1] {
            *net.entry(r.clone()).or_default() += 1;
        }
        net.retain(|_, n| *n != 0);
        let have: BTreeMap<String, i64> = got
            .rows
            .iter()
            .map(|r| {
                let row = r.after.clone().or(r.before.clone()).expect("row");
                let n = r.copies.expect("copies") as i64;
                (
                    ours(&[row]).remove(0),
                    if r.kind == "deleted" { -n } else { n },
                )
            })
            .collect();
        assert_eq!(have, net, "{server}: bag diff {a}..{b}");
    }
    // The tracked row's history.
    let path = format!(
        "/api/v1/servers/{}/tables/{}/history?key=id%3D1000",
        daemon.source,
        dbtrail_ctl::encode(&kt)
    );
    let got: HistoryResponse = daemon.client().get(&path).await.expect("history");
    let have: Vec<(&str, i64)> = got
        .versions
        .iter()
        .map(|v| (v.kind.as_str(), v.row[1].as_i64().expect("v")))
        .collect();
    assert_eq!(have, versions, "{server}: history of id=1000");
    assert_eq!(
        got.versions[2]
            .changed
            .iter()
            .map(|c| c.column.as_str())
            .collect::<Vec<_>>(),
        ["v", "s"],
        "{server}: the columns the second update changed"
    );
    // The command line: the whole table streamed as CSV, and a key.
    if let Some(ctl) = common::ctl_binary() {
        let m = &moments[3];
        let out = std::process::Command::new(&ctl)
            .args(["--socket", &daemon.socket.display().to_string()])
            .args(["show", &kt, "--at", &m.at, "--csv"])
            .output()
            .expect("dbtrailctl");
        assert!(
            out.status.success(),
            "{server}: dbtrailctl show: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("id,v,s,d"), "{server}: CSV header");
        let mut got: Vec<String> = lines
            .map(|l| {
                l.split(',')
                    .map(|c| if c.is_empty() { "NULL" } else { c })
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect();
        got.sort();
        assert_eq!(got, m.rows[0], "{server}: dbtrailctl show --csv");
        let out = std::process::Command::new(&ctl)
            .args(["--socket", &daemon.socket.display().to_string()])
            .args(["history", &kt, "--key", "id=1000"])
            .output()
            .expect("dbtrailctl");
        assert!(out.status.success(), "{server}: dbtrailctl history");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("5 version(s)") && text.contains("v: 2 -> 3, s: tracked -> NULL"),
            "{server}: {text}"
        );
    } else if std::env::var_os("CI").is_some() {
        panic!("dbtrailctl was not built next to the tests");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn show_diff_history_mysql_gtid() {
    look_back(Server::MysqlGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn show_diff_history_mysql_nogtid() {
    look_back(Server::MysqlNoGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn show_diff_history_mariadb() {
    look_back(Server::MariaDb).await;
}

/// Bad requests get a 4xx naming the problem and the fix.
#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_name_the_fix() {
    let Some(db) = dbtrail_testkit::require(Server::MysqlGtid).await else {
        return;
    };
    let d = db.db_name().to_string();
    let mut conn = db.conn().await;
    conn.query_drop("CREATE TABLE k (id INT PRIMARY KEY, v INT)")
        .await
        .expect("create");
    conn.query_drop("INSERT INTO k VALUES (1, 1)")
        .await
        .expect("insert");
    let daemon = Daemon::start(
        Server::MysqlGtid,
        &format!("backup_databases = [\"{d}\"]\n"),
    );
    daemon.wait_streaming().await;
    daemon.backup().await;
    let t = common::server_now_us(&mut conn).await;
    let now = common::utc_second(t);
    common::next_second(&mut conn, t).await;
    conn.query_drop("UPDATE k SET v = 2").await.expect("update");
    daemon.wait_caught_up(&db).await;
    let kt = dbtrail_ctl::encode(&format!("{d}.k"));
    let base = format!("/api/v1/servers/{}/tables", daemon.source);
    for (path, want) in [
        (
            format!("{base}/nodot/rows?at=2026-01-01%2000:00:00"),
            "is not db.table",
        ),
        (format!("{base}/{kt}/rows"), "exactly one of at"),
        (format!("{base}/{kt}/rows?at=yesterday"), "invalid time"),
        (
            format!(
                "{base}/{kt}/rows?at={}&key=idx%3D1",
                dbtrail_ctl::encode(&now)
            ),
            "no column \"idx\"",
        ),
        (
            format!("{base}/{kt}/rows?at={}&key=id", dbtrail_ctl::encode(&now)),
            "column=value",
        ),
        (
            format!(
                "{base}/{kt}/rows?at={}&format=xml",
                dbtrail_ctl::encode(&now)
            ),
            "unknown format",
        ),
        (
            format!("{base}/{kt}/rows?at={}&bogus=1", dbtrail_ctl::encode(&now)),
            "bad query string",
        ),
        (
            format!("{base}/{kt}/diff?from=2026-01-02%2000:00:00&to=2026-01-01%2000:00:00"),
            "give the earlier moment first",
        ),
        (
            format!(
                "{base}/{kt}/diff?from=2020-01-01%2000:00:00&to={}",
                dbtrail_ctl::encode(&now)
            ),
            "the log begins at",
        ),
        (
            format!(
                "{base}/{kt}/diff?from={0}&to={0}&limit=0",
                dbtrail_ctl::encode(&now)
            ),
            "limit must be at least 1",
        ),
        (
            format!("{base}/{kt}/history?key=v%3D1"),
            "names its primary key columns",
        ),
        (
            format!("{base}/{kt}/rows?at=2999-01-01%2000:00:00"),
            "in the future",
        ),
    ] {
        let e = daemon
            .client()
            .get::<serde_json::Value>(&path)
            .await
            .expect_err(&path);
        let msg = format!("{e:#}");
        assert!(msg.contains(want), "{path}: {msg}");
    }
}
