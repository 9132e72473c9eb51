//! Faults the network brings, against the real servers, each ending with "capture exact,
//! nothing lost" (docs/correctness.md C15).
//!
//! The daemon's source url points at a loopback proxy the test controls
//! ([`common::proxy`]). Writers commit straight to the server (not through the proxy):
//! - three writers of small transactions on a keyed table `k` and a key-less `bag`;
//! - one writer of large transactions: a LONGBLOB row rewritten with 128 KiB..1.1 MiB
//!   (row events of up to 2.3 MiB with both images) or a 5000-row UPDATE.
//!
//! Every transaction also adds one to its writer's row of `ctr`. The checks at the end:
//! - the log's updates of each `ctr` row are exactly 1, 2, ..., the server's final value: no
//!   transaction missing, none twice, in order;
//! - with GTIDs, each of those transactions has its own GTID, and the captured GTID set
//!   contains the server's `gtid_executed` (read with its own SQL);
//! - a restore to the server's GTID state from the baseline taken before the faults (image
//!   `baseline`, so every change comes from the log), imported with myloader, equals the
//!   source's own `HEX()` of every row of every table.
//!
//! `cuts_*`: the proxy cuts every connection at random offsets of the server->client stream
//! (in the handshake, the startup queries, and inside events) for 30 s or 120 cuts.
//! `hang_*`: the proxy stops forwarding without closing anything; capture must notice (no event or heartbeat for
//! three periods plus 2 s), reconnect once the server answers again, and lose nothing.
mod common;

use common::proxy::{Mode, Proxy};
use common::writers::Writers;
use common::{Daemon, gtid_now, hex_rows, myloader, restore};
use dbtrail_core::api::{PitrRequest, SourceState};
use dbtrail_testkit::{Server, TestDb};
use mysql_async::prelude::Queryable;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Small writers (ids 0..SMALL in `ctr`); the large writer is row SMALL.
const SMALL: u64 = 3;
/// How long the proxy cuts at most, seconds, and the cuts after which it stops sooner.
const CUTTING: u64 = 30;
const ENOUGH_CUTS: u64 = 120;
const TABLES: [&str; 5] = ["ctr", "k", "bag", "big", "u"];

/// One small transaction of writer `w`: 1-3 changes of `k` or `bag`, and its counter.
fn small_txn(w: u64, n: u64, next: &mut dyn FnMut(u64) -> u64) -> Vec<String> {
    let mut sql = Vec::new();
    for _ in 0..1 + next(3) {
        let k = 1 + next(300);
        sql.push(match next(20) {
            0..=7 => format!(
                "INSERT INTO k (id, v, s) VALUES ({k}, {}, 'w{w}-{n}') \
                 ON DUPLICATE KEY UPDATE v = v + 1, s = 'd{w}-{n}'",
                next(1000)
            ),
            8..=13 => format!("UPDATE k SET v = v * 2, s = 'u{w}-{n}' WHERE id = {k}"),
            14..=16 => format!("DELETE FROM k WHERE id = {k}"),
            17 | 18 => format!("INSERT INTO bag VALUES ({}, 'b{w}')", next(5)),
            _ => format!("DELETE FROM bag WHERE x = {} LIMIT 1", next(5)),
        });
    }
    sql.push(format!("UPDATE ctr SET n = n + 1 WHERE w = {w}"));
    sql
}

async fn setup(db: &TestDb) {
    let mut conn = db.conn().await;
    let seed_k: Vec<String> = (1..=300).map(|i| format!("({i}, {i}, 'seed')")).collect();
    let seed_ctr: Vec<String> = (0..=SMALL).map(|w| format!("({w}, 0)")).collect();
    for sql in [
        "CREATE TABLE ctr (w INT PRIMARY KEY, n BIGINT NOT NULL)".to_string(),
        "CREATE TABLE k (id INT PRIMARY KEY, v BIGINT NOT NULL, s VARCHAR(20), KEY (v))".into(),
        "CREATE TABLE bag (x INT, y VARCHAR(10))".into(),
        "CREATE TABLE big (id INT PRIMARY KEY, b LONGBLOB)".into(),
        "CREATE TABLE u (id INT PRIMARY KEY, n BIGINT NOT NULL)".into(),
        format!("INSERT INTO ctr VALUES {}", seed_ctr.join(",")),
        format!("INSERT INTO k VALUES {}", seed_k.join(",")),
        "INSERT INTO bag VALUES (1, 'a'), (1, 'a'), (2, 'b'), (3, NULL)".into(),
        "INSERT INTO big VALUES (1, 'x'), (2, 'y'), (3, NULL), (4, '')".into(),
    ] {
        conn.query_drop(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let ids: Vec<String> = (1..=5000).map(|i| format!("({i}, 0)")).collect();
    conn.query_drop(format!("INSERT INTO u VALUES {}", ids.join(",")))
        .await
        .expect("seed u");
}

/// The large writer: until `stop`, one large transaction every `pause`; returns its commits.
fn large_writer(
    db: &TestDb,
    stop: Arc<AtomicBool>,
    pause: Duration,
) -> tokio::task::JoinHandle<u64> {
    let url = db.url();
    tokio::spawn(async move {
        let mut conn = mysql_async::Conn::from_url(url).await.expect("large conn");
        let mut next = common::xorshift(4242);
        let mut n = 0;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let change = if n % 3 == 0 {
                "UPDATE u SET n = n + 1".to_string()
            } else {
                let len = 128 * 1024 + next(1024 * 1024);
                format!(
                    "UPDATE big SET b = REPEAT(CHAR({}), {len}) WHERE id = {}",
                    65 + next(26),
                    1 + next(4)
                )
            };
            for sql in [
                "BEGIN".to_string(),
                change,
                format!("UPDATE ctr SET n = n + 1 WHERE w = {SMALL}"),
                "COMMIT".into(),
            ] {
                conn.query_drop(&sql)
                    .await
                    .unwrap_or_else(|e| panic!("large writer: {sql}: {e}"));
            }
            tokio::time::sleep(pause).await;
        }
        n
    })
}

/// A daemon on `proxy` with a baseline of the test database taken before any fault.
async fn daemon_with_baseline(db: &TestDb, proxy: &Proxy) -> Daemon {
    let extra = format!("backup_databases = [\"{}\"]\n", db.db_name());
    let daemon = Daemon::start_via(proxy.addr, &extra);
    daemon.wait_streaming().await;
    let b = daemon.backup().await;
    for t in TABLES {
        assert!(
            b.table(&dbtrail_core::TableRef::new(db.db_name(), t))
                .is_some(),
            "{t} in the baseline"
        );
    }
    daemon
}

/// The server's `gtid_executed` now, once the captured set holds it (other tests commit on
/// the same server meanwhile: the set read now, captured a little later).
async fn captured_executed(daemon: &Daemon, db: &TestDb, what: &str) -> String {
    let executed = db.gtid_executed().await;
    let mut conn = db.conn().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = daemon
            .client()
            .status(&daemon.source)
            .await
            .expect("status");
        let missing: String = conn
            .exec_first(
                "SELECT GTID_SUBTRACT(?, ?)",
                (&executed, &st.captured_gtid_set),
            )
            .await
            .expect("gtid_subtract")
            .unwrap_or_default();
        if missing.is_empty() {
            return executed;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: executed on the server, never captured: {missing}\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Capture exact, nothing lost: see the module docs. `what` names the run in messages.
async fn check_exact(daemon: &Daemon, db: &TestDb, what: &str) {
    let server = db.server();
    daemon.wait_caught_up(db).await;
    let mut conn = db.conn().await;
    // 1. Every transaction of every writer exactly once, in order.
    let finals: Vec<(u64, u64)> = conn
        .query("SELECT w, n FROM ctr ORDER BY w")
        .await
        .expect("ctr");
    let ev = daemon.table_events(db, "ctr").await;
    assert!(!ev.truncated, "{what}: too many ctr events for one page");
    let mut seen: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    let mut gtids = std::collections::BTreeSet::new();
    let mut updates = 0u64;
    for e in ev.events.iter().filter(|e| e.kind == "update") {
        let after = e.after.as_ref().expect("after image");
        let w = after[0].as_u64().expect("w");
        seen.entry(w)
            .or_default()
            .push(after[1].as_u64().expect("n"));
        updates += 1;
        if server.has_gtids() {
            gtids.insert(e.gtid.clone().expect("a gtid"));
        }
    }
    for (w, n) in &finals {
        let got = seen.remove(w).unwrap_or_default();
        if got != (1..=*n).collect::<Vec<_>>() {
            let missing: Vec<u64> = (1..=*n).filter(|i| !got.contains(i)).collect();
            let mut dup = got.clone();
            dup.sort_unstable();
            dup.dedup();
            panic!(
                "{what}: writer {w} committed {n} transactions; the log has {} updates of its \
                 counter (missing {missing:?}, {} duplicated, in order: {})\n{}",
                got.len(),
                got.len() - dup.len(),
                got.windows(2).all(|p| p[0] < p[1]),
                daemon.log()
            );
        }
    }
    if server.has_gtids() {
        assert_eq!(
            gtids.len() as u64,
            updates,
            "{what}: one GTID per transaction"
        );
    }
    // The restore's target (step 3): the server's GTID state, read before step 2 waits for
    // capture (other tests keep writing to the shared server).
    let gtid = gtid_now(db).await;
    // 2. The captured GTID set comes to hold everything the server had executed.
    if server == Server::MysqlGtid {
        captured_executed(daemon, db, what).await;
    }
    // 3. A restore to now from the baseline before the faults equals the source.
    // Without GTIDs the target is the second of now (the writers have stopped), once the
    // server's clock has passed it and capture has caught up.
    let time = match gtid {
        Some(_) => None,
        None => {
            let now = common::server_now_us(&mut conn).await;
            common::next_second(&mut conn, now).await;
            daemon.wait_caught_up(db).await;
            Some(common::utc_second(now))
        }
    };
    let req = PitrRequest {
        target_gtid: gtid,
        target_time: time,
        tables: TABLES
            .iter()
            .map(|t| format!("{}.{t}", db.db_name()))
            .collect(),
        image: Some("baseline".into()),
        ..PitrRequest::default()
    };
    let out = tempfile::tempdir().expect("tmp");
    // A time target waits for an idle heartbeat to vouch that capture holds all of it.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match restore(daemon, req.clone(), out.path()).await {
            Ok(()) => break,
            Err(e) if e.contains("not known to be caught up") && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!("{what}: restore failed: {e}\n{}", daemon.log()),
        }
    }
    let into = format!("{}_r", db.db_name());
    tokio::task::block_in_place(|| myloader(db, out.path(), &into));
    for t in TABLES {
        let want = hex_rows(&mut conn, db.db_name(), t).await;
        let got = hex_rows(&mut conn, &into, t).await;
        assert!(
            got == want,
            "{what}: {t} differs: {} rows restored, {} at the source",
            got.len(),
            want.len()
        );
    }
    conn.query_drop(format!("DROP DATABASE `{into}`"))
        .await
        .expect("drop");
    let total: u64 = finals.iter().map(|(_, n)| n).sum();
    eprintln!(
        "{what}: {total} transactions, each in the log exactly once; restore equals the source"
    );
}

async fn cuts(server: Server) {
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    setup(&db).await;
    let proxy = Proxy::of_url(db.server_url());
    let daemon = daemon_with_baseline(&db, &proxy).await;
    let w = Writers::start(&db, SMALL, small_txn);
    let stop = Arc::new(AtomicBool::new(false));
    let large = large_writer(&db, stop.clone(), Duration::from_millis(300));
    proxy.set(Mode::Cut { max_bytes: 4 << 20 });
    let started = Instant::now();
    let (mut reconnecting_seen, mut polls) = (0, 0);
    while started.elapsed() < Duration::from_secs(CUTTING) && proxy.cuts() < ENOUGH_CUTS {
        polls += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Ok(s) = daemon.client().status(&daemon.source).await {
            assert_ne!(
                s.state,
                SourceState::Failed,
                "{server}: capture failed under cuts: {:?}\n{}",
                s.error,
                daemon.log()
            );
            if s.state == SourceState::Reconnecting {
                reconnecting_seen += 1;
            }
        }
    }
    stop.store(true, Ordering::SeqCst);
    let large_commits = large.await.expect("large writer");
    let small_commits = w.stop().await;
    proxy.set(Mode::Pass);
    let cuts = proxy.cuts();
    eprintln!(
        "{server}: {cuts} cuts in {} connections over {:?} (status seen reconnecting \
         {reconnecting_seen} times of {polls}); {small_commits} small and {large_commits} \
         large transactions committed",
        proxy.connections(),
        started.elapsed()
    );
    // 120 in about 30 s for MySQL and 60-80 for MariaDB (which finds its GTID start
    // more slowly) when the test runs alone; a loaded machine does fewer.
    assert!(cuts >= 20, "{server}: only {cuts} cuts\n{}", daemon.log());
    assert!(
        large_commits >= 10,
        "{server}: {large_commits} large transactions"
    );
    check_exact(&daemon, &db, &format!("{server} after {cuts} cuts")).await;
    assert_eq!(
        daemon
            .client()
            .status(&daemon.source)
            .await
            .expect("status")
            .state,
        SourceState::Streaming
    );
}

async fn hang(server: Server) {
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    setup(&db).await;
    let proxy = Proxy::of_url(db.server_url());
    let daemon = daemon_with_baseline(&db, &proxy).await;
    let w = Writers::start(&db, SMALL, small_txn);
    let stop = Arc::new(AtomicBool::new(false));
    let large = large_writer(&db, stop.clone(), Duration::from_millis(500));
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.set(Mode::Hang);
    let hung = Instant::now();
    // heartbeat_seconds = 1: no event or heartbeat for 3 s + 2 s.
    let st = daemon
        .wait_status("capture to notice the hang", Duration::from_secs(15), |s| {
            s.state == SourceState::Reconnecting
        })
        .await;
    let noticed = hung.elapsed();
    let err = st.error.unwrap_or_default();
    assert!(
        err.contains("no event or heartbeat"),
        "{server}: the reason names the silence: {err}"
    );
    assert!(
        noticed >= Duration::from_secs(4),
        "{server}: noticed after {noticed:?}"
    );
    // Still hung: a new connection gets no greeting; then the server answers again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.set(Mode::Pass);
    daemon.wait_streaming().await;
    eprintln!(
        "{server}: hang noticed after {noticed:?}, streaming again {:?} after the hang began",
        hung.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    large.await.expect("large writer");
    w.stop().await;
    check_exact(&daemon, &db, &format!("{server} after a hang")).await;
}

/// The server stops answering after each connection's first bytes: the handshake passes,
/// the startup queries get no answer. Capture must give up on them by itself
/// (`capture::setup_limit`, 15 s at `heartbeat_seconds = 1`), and resume once the server
/// answers again.
async fn hang_in_setup(server: Server) {
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    setup(&db).await;
    let proxy = Proxy::of_url(db.server_url());
    let daemon = daemon_with_baseline(&db, &proxy).await;
    let w = Writers::start(&db, SMALL, small_txn);
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.set(Mode::HangAfter { bytes: 1500 });
    let hung = Instant::now();
    let deadline = hung + Duration::from_secs(40);
    let before = daemon.log().matches("no answer within").count();
    while daemon.log().matches("no answer within").count() == before {
        assert!(
            Instant::now() < deadline,
            "{server}: capture never gave up on a startup exchange the server does not \
             answer\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let gave_up = hung.elapsed();
    let line = daemon
        .log()
        .lines()
        .rfind(|l| l.contains("no answer within"))
        .unwrap_or_default()
        .to_string();
    proxy.set(Mode::Pass);
    daemon.wait_streaming().await;
    eprintln!(
        "{server}: gave up on a hung startup exchange {gave_up:?} after the hang began: \
         {line}"
    );
    w.stop().await;
    check_exact(&daemon, &db, &format!("{server} after a hang in setup")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hang_in_setup_mysql_gtid() {
    hang_in_setup(Server::MysqlGtid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cuts_mysql_gtid() {
    cuts(Server::MysqlGtid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cuts_mysql_nogtid() {
    cuts(Server::MysqlNoGtid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cuts_mariadb() {
    cuts(Server::MariaDb).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hang_mysql_gtid() {
    hang(Server::MysqlGtid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hang_mariadb() {
    hang(Server::MariaDb).await;
}

/// A baseline file damaged after its baseline finished: the restore names the file, the
/// checksum the manifest recorded and the one it has now, and writes nothing; the intact
/// file restores again. (docs/correctness.md C24.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn damaged_baseline_file_is_refused() {
    let server = Server::MysqlGtid;
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    setup(&db).await;
    let extra = format!("backup_databases = [\"{}\"]\n", db.db_name());
    let daemon = Daemon::start(server, &extra);
    daemon.wait_streaming().await;
    let b = daemon.backup().await;
    db.exec("UPDATE k SET v = v + 1 WHERE id <= 10").await;
    daemon.wait_caught_up(&db).await;
    let entry = b
        .table(&dbtrail_core::TableRef::new(db.db_name(), "u"))
        .expect("u in the baseline");
    let file = entry.files()[0].to_string();
    let expected = b.checksums.get(&file).cloned().unwrap_or_else(|| {
        panic!(
            "the manifest records each file's checksum: {:?}",
            b.checksums
        )
    });
    for t in &b.tables {
        for f in t.files() {
            assert!(b.checksums.contains_key(f), "{f} has its checksum");
        }
    }
    let path = daemon
        .dir
        .join("data/baselines/src")
        .join(&b.id)
        .join(&file);
    let intact = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // Flip bytes inside the data pages (not the footer): a reader without the check may
    // decode other values without noticing.
    let mut bad = intact.clone();
    let at = bad.len() / 3;
    for b in &mut bad[at..at + 8] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &bad).expect("damage");
    let req = || PitrRequest {
        target_gtid: None,
        target_time: None,
        tables: vec![format!("{}.u", db.db_name()), format!("{}.k", db.db_name())],
        image: Some("baseline".into()),
        ..PitrRequest::default()
    };
    let now_req = |g: String| PitrRequest {
        target_gtid: Some(g),
        ..req()
    };
    let out = tempfile::tempdir().expect("tmp");
    let target = out.path().join("r1");
    let err = restore(
        &daemon,
        now_req(captured_executed(&daemon, &db, "damaged").await),
        &target,
    )
    .await
    .expect_err("a restore from a damaged file must fail");
    for want in [file.as_str(), &b.id, &expected, "checksum", "--image live"] {
        assert!(err.contains(want), "the error names {want}: {err}");
    }
    let actual = format!("crc32:{:08x}", crc32(&bad));
    assert!(
        err.contains(&actual),
        "the error names the actual checksum {actual}: {err}"
    );
    let written: Vec<_> = std::fs::read_dir(&target)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(
        written
            .iter()
            .all(|p| !p.to_string_lossy().ends_with(".sql")),
        "nothing restored: {written:?}"
    );
    eprintln!("damaged baseline refused: {err}");
    // The intact file restores again.
    std::fs::write(&path, &intact).expect("repair");
    restore(
        &daemon,
        now_req(captured_executed(&daemon, &db, "damaged").await),
        &out.path().join("r2"),
    )
    .await
    .unwrap_or_else(|e| panic!("restore from the intact file: {e}"));
}

/// IEEE CRC-32 (the manifests' checksum), computed here without dbtrail's code.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The store agrees with the catalog: every listed baseline has every file, each with the
/// checksum its manifest recorded, and every directory of the store is a listed baseline
/// (the startup check removes what a killed backup left). Waits up to 20 s for that check.
async fn store_consistent(daemon: &Daemon, what: &str) -> usize {
    let root = daemon.dir.join("data/baselines/src");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = daemon
            .client()
            .backups(&daemon.source)
            .await
            .expect("backups")
            .baselines;
        for b in &listed {
            for t in &b.tables {
                for f in t.files() {
                    let p = root.join(&b.id).join(f);
                    let bytes = std::fs::read(&p).unwrap_or_else(|e| {
                        panic!(
                            "{what}: baseline {} is listed but {f} is missing: {e}",
                            b.id
                        )
                    });
                    let want = b.checksums.get(f).expect("checksum");
                    assert_eq!(
                        &format!("crc32:{:08x}", crc32(&bytes)),
                        want,
                        "{what}: baseline {} is listed but {f} is partial or changed",
                        b.id
                    );
                }
            }
        }
        let dirs: Vec<String> = std::fs::read_dir(&root)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let stray: Vec<&String> = dirs
            .iter()
            .filter(|d| !listed.iter().any(|b| &b.id == *d))
            .collect();
        if stray.is_empty() {
            return listed.len();
        }
        assert!(
            Instant::now() < deadline,
            "{what}: directories in the store that no listed baseline owns: {stray:?}\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// kill -9 of the daemon during backups (with `backup_keep = 1`, so each finished backup
/// also removes the older baseline and prunes the log) and during a restore: after each
/// restart the store and the catalog agree, a killed restore is failed and its output has
/// no `metadata` (myloader refuses it), and the next backup and restore succeed and equal
/// the source. (docs/correctness.md C25.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_during_backup_retention_and_restore() {
    let server = Server::MysqlGtid;
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    setup(&db).await;
    // About 24 MB of rows: a backup takes long enough to be killed in the middle.
    db.exec("CREATE TABLE bulk (id INT PRIMARY KEY, b LONGBLOB)")
        .await;
    for i in 0..6 {
        let rows: Vec<String> = (0..16)
            .map(|j| format!("({}, REPEAT(CHAR(65 + {j}), 262144))", i * 16 + j))
            .collect();
        db.exec(&format!("INSERT INTO bulk VALUES {}", rows.join(",")))
            .await;
    }
    let extra = format!(
        "backup_databases = [\"{}\"]\nbackup_keep = 1\n",
        db.db_name()
    );
    let mut daemon = Daemon::start(server, &extra);
    daemon.wait_streaming().await;
    daemon.backup().await;
    let mut next = common::xorshift(99);
    let mut phases = Vec::new();
    for round in 0..7u64 {
        db.exec(&format!("UPDATE k SET v = v + {round} WHERE id <= 50"))
            .await;
        db.exec(&format!("INSERT INTO bag VALUES ({round}, 'r')"))
            .await;
        let started = daemon
            .client()
            .start_backup(&daemon.source)
            .await
            .expect("start backup");
        // From the snapshot through reading, the manifest and retention.
        tokio::time::sleep(Duration::from_millis(5 + next(80 * (round + 1)))).await;
        let phase = daemon
            .client()
            .backup(&daemon.source, &started.backup_id)
            .await
            .map(|j| format!("{:?} {}", j.status, j.phase))
            .unwrap_or_default();
        daemon.kill9();
        phases.push(phase.clone());
        daemon.spawn();
        daemon.wait_streaming().await;
        let n = store_consistent(&daemon, &format!("after a kill in backup phase {phase}")).await;
        assert!(n >= 1, "a baseline survives");
    }
    eprintln!("backups killed in phases: {phases:?}");
    // Restores killed midway.
    let out = tempfile::tempdir().expect("tmp");
    for (k, delay) in [100u64, 400, 900].into_iter().enumerate() {
        let killed_out = out.path().join(format!("killed{k}"));
        let req = PitrRequest {
            target_gtid: Some(captured_executed(&daemon, &db, "before a restore").await),
            image: Some("baseline".into()),
            output: Some(killed_out.display().to_string()),
            ..PitrRequest::default()
        };
        let started = daemon
            .client()
            .pitr(&daemon.source, &req)
            .await
            .expect("start restore");
        let id = started.pitr_id.expect("job id");
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let phase = daemon
            .client()
            .pitr_job(&daemon.source, &id)
            .await
            .map(|j| j.phase)
            .unwrap_or_default();
        daemon.kill9();
        daemon.spawn();
        daemon.wait_streaming().await;
        let j = daemon
            .client()
            .pitr_job(&daemon.source, &id)
            .await
            .expect("job after restart");
        let has_metadata = killed_out.join("metadata").exists();
        eprintln!(
            "restore killed after {delay} ms in phase {phase:?}: after restart {:?}, \
             metadata written: {has_metadata}",
            j.status
        );
        match j.status {
            dbtrail_core::api::JobStatus::Completed => assert!(has_metadata),
            dbtrail_core::api::JobStatus::Failed => {
                assert!(
                    !has_metadata,
                    "a killed restore's output must not look finished"
                );
                assert!(
                    j.error
                        .as_deref()
                        .unwrap_or_default()
                        .contains("interrupted"),
                    "{:?}",
                    j.error
                );
            }
            s => panic!("a job interrupted by a restart is {s:?}"),
        }
    }
    // The next backup and restore succeed and equal the source.
    daemon.backup().await;
    store_consistent(&daemon, "after the last backup").await;
    db.exec("UPDATE ctr SET n = n + 1 WHERE w = 0").await;
    check_exact(&daemon, &db, "after kill -9 in backups and a restore").await;
}

/// A damaged file of the log (RocksDB SST, whose blocks carry checksums): a restore that
/// reads it fails, naming the file and the checksum mismatch, and its output has no
/// `metadata`; nothing is restored from the damaged block. (docs/correctness.md C24.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn damaged_log_file_is_refused() {
    let server = Server::MysqlGtid;
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    setup(&db).await;
    let extra = format!("backup_databases = [\"{}\"]\n", db.db_name());
    let mut daemon = Daemon::start(server, &extra);
    daemon.wait_streaming().await;
    daemon.backup().await;
    // About 40 MB of row events of `big`, after the baseline.
    for i in 0..20 {
        db.exec(&format!(
            "UPDATE big SET b = REPEAT(CHAR({}), 1048576) WHERE id = {}",
            65 + i % 26,
            1 + i % 4
        ))
        .await;
    }
    let target = captured_executed(&daemon, &db, "before the damage").await;
    // A restart replays the write-ahead log into SST files (RocksDB flushes what it
    // recovers); the damage goes into the largest, the events of `big`.
    assert!(daemon.stop().is_some());
    daemon.spawn();
    daemon.wait_streaming().await;
    assert!(daemon.stop().is_some());
    let log_dir = daemon.dir.join("data/sources/src/log");
    let sst = std::fs::read_dir(&log_dir)
        .expect("log dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sst"))
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("an SST file");
    let mut bytes = std::fs::read(&sst).expect("read sst");
    assert!(bytes.len() > 1 << 20, "the events are in {}", sst.display());
    let at = bytes.len() / 2;
    for b in &mut bytes[at..at + 8] {
        *b ^= 0x5a;
    }
    std::fs::write(&sst, &bytes).expect("damage");
    daemon.spawn();
    daemon.wait_streaming().await;
    let out = tempfile::tempdir().expect("tmp");
    let req = PitrRequest {
        target_gtid: Some(target),
        tables: vec![format!("{}.big", db.db_name())],
        image: Some("baseline".into()),
        ..PitrRequest::default()
    };
    let dir = out.path().join("r");
    let err = restore(&daemon, req, &dir)
        .await
        .expect_err("a restore through a damaged block must fail");
    let name = sst
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        err.contains(&name) && err.to_lowercase().contains("checksum mismatch"),
        "the error names {name} and the checksum mismatch: {err}"
    );
    assert!(
        err.contains("damaged on disk"),
        "the error says what it means: {err}"
    );
    assert!(
        !dir.join("metadata").exists(),
        "the output does not look finished"
    );
    eprintln!("damaged log refused: {err}");
}
