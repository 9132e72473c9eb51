//! Concurrent writers for the oracle tests: several clients committing interleaved
//! transactions, which the test pauses (no transaction open) to record the source's rows.
use dbtrail_testkit::TestDb;
use mysql_async::prelude::Queryable;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The statements of one transaction of writer `w` (its `n`-th), from its random numbers
/// (`next(m)` is in `0..m`); `BEGIN`/`COMMIT` are added around them.
pub type TxnFn = fn(w: u64, n: u64, next: &mut dyn FnMut(u64) -> u64) -> Vec<String>;

/// Running writers.
pub struct Writers {
    pause: Arc<tokio::sync::RwLock<()>>,
    stop: Arc<AtomicBool>,
    commits: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Writers {
    /// `count` writers on `db`, each committing `txn`'s transactions until stopped; a
    /// deadlock or lock wait timeout rolls the transaction back (not counted).
    pub fn start(db: &TestDb, count: u64, txn: TxnFn) -> Writers {
        let pause = Arc::new(tokio::sync::RwLock::new(()));
        let stop = Arc::new(AtomicBool::new(false));
        let commits = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for w in 0..count {
            let (url, pause, stop, commits) =
                (db.url(), pause.clone(), stop.clone(), commits.clone());
            tasks.push(tokio::spawn(async move {
                let mut conn = mysql_async::Conn::from_url(url).await.expect("writer conn");
                conn.query_drop("SET SESSION innodb_lock_wait_timeout = 2")
                    .await
                    .expect("session");
                let mut next = super::xorshift(w * 7919 + 1);
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let _turn = pause.read().await;
                    let mut sql = vec!["BEGIN".to_string()];
                    sql.extend(txn(w, n, &mut next));
                    sql.push("COMMIT".into());
                    let mut ok = true;
                    for s in &sql {
                        if let Err(e) = conn.query_drop(s).await {
                            match &e {
                                mysql_async::Error::Server(s) if [1213, 1205].contains(&s.code) => {
                                    let _ = conn.query_drop("ROLLBACK").await;
                                    ok = false;
                                    break;
                                }
                                _ => panic!("writer {w}: {s}: {e}"),
                            }
                        }
                    }
                    if ok {
                        commits.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        Writers {
            pause,
            stop,
            commits,
            tasks,
        }
    }

    /// Runs `f` while no writer has a transaction open (they wait for it to return).
    pub async fn paused<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        let _held = self.pause.write().await;
        f.await
    }

    /// Stops the writers; returns how many transactions they committed.
    pub async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.expect("writer");
        }
        self.commits.load(Ordering::Relaxed)
    }
}

/// A moment with no transaction open: its second (UTC text) and the source's rows of the
/// tables, as [`super::hex_rows`] reads them; the writers resume in the next second, so the
/// second names exactly this state.
pub struct Point {
    pub at: String,
    pub us: i64,
    pub rows: Vec<Vec<String>>,
}

/// Records a [`Point`] of `tables` while the writers are paused.
pub async fn point(
    db: &TestDb,
    conn: &mut mysql_async::Conn,
    w: &Writers,
    tables: &[&str],
) -> Point {
    w.paused(async {
        let now = super::server_now_us(conn).await;
        let mut rows = Vec::new();
        for t in tables {
            rows.push(super::hex_rows(conn, db.db_name(), t).await);
        }
        super::next_second(conn, now).await;
        Point {
            at: super::utc_second(now),
            us: now,
            rows,
        }
    })
    .await
}
