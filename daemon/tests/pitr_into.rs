//! `pitr --into`: restored tables loaded straight into a real second server.
//!
//! The source is the MySQL test server with GTIDs, the target the one without (another
//! server). The type matrix table and a child with a cascading foreign key are restored to a
//! moment between two rounds of changes; the target's own `HEX()` of every column equals what
//! the source printed at that moment, the foreign key names the restored parent, and no
//! staging database is left. Then the refusals (an existing table, the source itself, an
//! unreachable target, a password in the URL), `replace`, and a daemon killed while loading:
//! the destination never shows a half-loaded table.
mod common;

use common::{Daemon, hex_rows};
use dbtrail_core::api::{IntoTarget, JobStatus, PitrRequest};
use dbtrail_testkit::{Server, TestDb};
use mysql_async::prelude::Queryable;
use std::time::Duration;

fn into(target: &TestDb, database: Option<&str>, replace: bool) -> IntoTarget {
    IntoTarget {
        url: target.server_url().to_string(),
        password: None,
        database: database.map(str::to_string),
        replace,
        connections: Some(3),
        ssl_mode: None,
        binlog: false,
    }
}

fn req(gtid: &str, tables: &[String], into: IntoTarget) -> PitrRequest {
    PitrRequest {
        target_gtid: Some(gtid.to_string()),
        tables: tables.to_vec(),
        into: Some(into),
        ..PitrRequest::default()
    }
}

async fn run(daemon: &Daemon, req: &PitrRequest) -> Result<dbtrail_core::api::PitrJobView, String> {
    let client = daemon.client();
    let started = client
        .pitr(&daemon.source, req)
        .await
        .map_err(|e| format!("{e:#}"))?;
    let id = started.pitr_id.expect("a job id");
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let j = client.pitr_job(&daemon.source, &id).await.expect("job");
        match j.status {
            JobStatus::Running => {}
            JobStatus::Completed => return Ok(j),
            JobStatus::Failed => return Err(j.error.unwrap_or_default()),
        }
        assert!(std::time::Instant::now() < deadline, "restore too slow");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn stages(conn: &mut mysql_async::Conn) -> Vec<String> {
    conn.query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'dbtrail\\_stage\\_%'")
        .await
        .expect("schemata")
}

#[tokio::test(flavor = "multi_thread")]
async fn into_a_second_server() {
    let Some(db) = dbtrail_testkit::require(Server::MysqlGtid).await else {
        return;
    };
    let Some(target) = dbtrail_testkit::require(Server::MysqlNoGtid).await else {
        return;
    };
    let d = db.db_name().to_string();
    common::create_matrix(&db, &common::matrix_rows()).await;
    let mut conn = db.conn().await;
    conn.query_drop(
        "CREATE TABLE kid (id INT PRIMARY KEY, tm_id INT, note VARCHAR(20), KEY (tm_id), \
         CONSTRAINT kid_tm FOREIGN KEY (tm_id) REFERENCES tm (id) ON DELETE CASCADE)",
    )
    .await
    .expect("kid");
    conn.query_drop("INSERT INTO kid SELECT id, id, CONCAT('k', id) FROM tm")
        .await
        .expect("kid rows");
    let daemon = Daemon::start(
        Server::MysqlGtid,
        &format!("backup_databases = [\"{d}\"]\n"),
    );
    daemon.wait_streaming().await;
    daemon.backup().await;
    // Changes after the baseline (replayed), the moment, then changes after it (not).
    conn.query_drop("UPDATE tm SET ti = -1, vc = 'changed', j = '{\"k\": \"v\"}' WHERE id = 1")
        .await
        .expect("update");
    conn.query_drop("DELETE FROM tm WHERE id = 2")
        .await
        .expect("delete");
    let want_tm = hex_rows(&mut conn, &d, "tm").await;
    let want_kid = hex_rows(&mut conn, &d, "kid").await;
    let gtid = common::gtid_now(&db).await.expect("gtid");
    conn.query_drop("UPDATE tm SET vc = 'after' WHERE id = 1")
        .await
        .expect("after");
    conn.query_drop("DELETE FROM kid").await.expect("after");
    daemon.wait_caught_up(&db).await;
    let tables = vec![format!("{d}.tm"), format!("{d}.kid")];
    let dest = target.db_name().to_string();

    let job = run(
        &daemon,
        &req(&gtid, &tables, into(&target, Some(&dest), false)),
    )
    .await
    .unwrap_or_else(|e| panic!("restore into: {e}\n{}", daemon.log()));
    assert!(job.path.starts_with("mysql://"), "{}", job.path);
    let mut tconn = target.conn().await;
    assert_eq!(hex_rows(&mut tconn, &dest, "tm").await, want_tm);
    assert_eq!(hex_rows(&mut tconn, &dest, "kid").await, want_kid);
    let create: Option<(String, String)> = tconn
        .query_first(format!("SHOW CREATE TABLE `{dest}`.kid"))
        .await
        .expect("show create");
    let create = create.expect("kid exists").1;
    assert!(
        create.contains("CONSTRAINT `kid_tm` FOREIGN KEY (`tm_id`) REFERENCES `tm` (`id`)"),
        "{create}"
    );
    assert!(stages(&mut tconn).await.is_empty());

    // Refusals, each naming the fix.
    let client = daemon.client();
    let refused = |r: Result<dbtrail_core::api::PitrStarted, anyhow::Error>| {
        format!("{:#}", r.expect_err("refused"))
    };
    let e = refused(
        client
            .pitr(
                &daemon.source,
                &req(&gtid, &tables, into(&target, Some(&dest), false)),
            )
            .await,
    );
    assert!(
        e.contains("exists on the target") && e.contains("--replace"),
        "{e}"
    );
    let e = refused(
        client
            .pitr(&daemon.source, &req(&gtid, &tables, into(&db, None, false)))
            .await,
    );
    assert!(
        e.contains("is the source itself") && e.contains("--into-database"),
        "{e}"
    );
    let mut t = into(&target, Some(&dest), false);
    t.url = "mysql://root@127.0.0.1:1".into();
    let e = refused(client.pitr(&daemon.source, &req(&gtid, &tables, t)).await);
    assert!(
        e.contains("cannot connect to the target 127.0.0.1:1"),
        "{e}"
    );
    let mut t = into(&target, Some(&dest), false);
    t.url = "mysql://root:secret@127.0.0.1:1".into();
    let e = refused(client.pitr(&daemon.source, &req(&gtid, &tables, t)).await);
    assert!(e.contains("must not hold a password"), "{e}");

    // The source itself, into another database; and replace.
    let side = format!("{d}_restored");
    conn.query_drop(format!("DROP DATABASE IF EXISTS `{side}`"))
        .await
        .expect("drop side");
    run(&daemon, &req(&gtid, &tables, into(&db, Some(&side), false)))
        .await
        .unwrap_or_else(|e| panic!("restore next to the source: {e}"));
    assert_eq!(hex_rows(&mut conn, &side, "tm").await, want_tm);
    conn.query_drop(format!("UPDATE `{side}`.tm SET vc = 'scribbled'"))
        .await
        .expect("scribble");
    run(&daemon, &req(&gtid, &tables, into(&db, Some(&side), true)))
        .await
        .unwrap_or_else(|e| panic!("replace: {e}"));
    assert_eq!(hex_rows(&mut conn, &side, "tm").await, want_tm);
    assert_eq!(hex_rows(&mut conn, &side, "kid").await, want_kid);
    assert!(stages(&mut conn).await.is_empty());
    conn.query_drop(format!("DROP DATABASE `{side}`"))
        .await
        .expect("drop side");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_load_leaves_no_table_in_place() {
    let Some(db) = dbtrail_testkit::require(Server::MysqlGtid).await else {
        return;
    };
    let Some(target) = dbtrail_testkit::require(Server::MysqlNoGtid).await else {
        return;
    };
    let d = db.db_name().to_string();
    db.exec("CREATE TABLE big (id INT PRIMARY KEY, pad CHAR(200) NOT NULL)")
        .await;
    db.exec(
        "SET SESSION cte_max_recursion_depth = 1000000; INSERT INTO big WITH RECURSIVE \
         s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 300000) \
         SELECT n, REPEAT('x', 200) FROM s",
    )
    .await;
    let mut daemon = Daemon::start(
        Server::MysqlGtid,
        &format!("backup_databases = [\"{d}\"]\n"),
    );
    daemon.wait_streaming().await;
    daemon.backup().await;
    let gtid = common::gtid_now(&db).await.expect("gtid");
    daemon.wait_caught_up(&db).await;
    let dest = target.db_name().to_string();
    let client = daemon.client();
    let started = client
        .pitr(
            &daemon.source,
            &req(
                &gtid,
                &[format!("{d}.big")],
                into(&target, Some(&dest), false),
            ),
        )
        .await
        .expect("start");
    let id = started.pitr_id.expect("id");
    let mut tconn = target.conn().await;
    // Kill it once the staging database is being filled.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mine = |s: &String| {
        s.contains(
            &id.chars()
                .filter(char::is_ascii_alphanumeric)
                .collect::<String>()
                .to_lowercase(),
        )
    };
    loop {
        let j = client.pitr_job(&daemon.source, &id).await.expect("job");
        assert_eq!(
            j.status,
            JobStatus::Running,
            "finished before the kill: {j:?}"
        );
        if j.phase.starts_with("loading into") && stages(&mut tconn).await.iter().any(mine) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no load seen");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    daemon.kill9();
    let there: Option<String> = tconn
        .exec_first(
            "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'big'",
            (dest.clone(),),
        )
        .await
        .expect("tables");
    assert_eq!(there, None, "a half-loaded table is in place");
    // After a restart the job is failed, not complete; the staging database is named as such.
    daemon.spawn();
    daemon.wait_streaming().await;
    let j = daemon
        .client()
        .pitr_job(&daemon.source, &id)
        .await
        .expect("job after restart");
    assert_eq!(j.status, JobStatus::Failed, "{j:?}");
    for s in stages(&mut tconn).await.into_iter().filter(mine) {
        tconn
            .query_drop(format!("DROP DATABASE `{s}`"))
            .await
            .expect("drop stage");
    }
}
