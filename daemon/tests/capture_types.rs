//! Type matrix (docs/correctness.md, C2, C3, C6, C7, C8, C10): every column type at its edge
//! values is inserted, updated and deleted on each real test server; the events API must
//! return exactly what the server holds (read back over the text protocol in UTC).
mod common;

use common::Daemon;
use dbtrail_core::api::EventView;
use dbtrail_testkit::{Server, TestDb};
use mysql_async::prelude::Queryable;
use serde_json::Value as Json;

fn columns(server: Server) -> Vec<(&'static str, &'static str)> {
    common::matrix_columns(server)
}

/// The server's text for each column of row `id` (time_zone UTC; BIT as a number).
async fn server_row(db: &TestDb, cols: &[(&str, &str)], id: i64) -> Vec<Option<Vec<u8>>> {
    server_row_of(db, "tm", cols, id).await
}

async fn server_row_of(
    db: &TestDb,
    table: &str,
    cols: &[(&str, &str)],
    id: i64,
) -> Vec<Option<Vec<u8>>> {
    let mut conn = db.conn().await;
    conn.query_drop("SET time_zone = '+00:00', character_set_results = binary")
        .await
        .expect("set tz");
    let exprs: Vec<String> = std::iter::once("id".to_string())
        .chain(cols.iter().map(|(c, ty)| {
            if ty.starts_with("BIT") {
                format!("CAST(`{c}` AS UNSIGNED)")
            } else {
                format!("`{c}`")
            }
        }))
        .collect();
    let row: mysql_async::Row = conn
        .query_first(format!(
            "SELECT {} FROM `{table}` WHERE id = {id}",
            exprs.join(", ")
        ))
        .await
        .expect("select")
        .expect("row exists");
    row.unwrap()
        .into_iter()
        .map(|v| match v {
            mysql_async::Value::NULL => None,
            mysql_async::Value::Bytes(b) => Some(b),
            other => Some(format!("{other:?}").into_bytes()),
        })
        .collect()
}

fn same(col: &str, ty: &str, ours: &Json, server: &Option<Vec<u8>>) -> Result<(), String> {
    let text = server
        .as_ref()
        .map(|b| String::from_utf8_lossy(b).into_owned());
    let ok = match (ours, server) {
        (Json::Null, None) => true,
        (Json::Null, Some(_)) | (_, None) => false,
        (Json::Object(o), Some(b)) => o
            .get("hex")
            .and_then(|h| h.as_str())
            .and_then(|h| hex::decode(h).ok())
            .is_some_and(|d| &d == b),
        (Json::Number(n), Some(_)) => {
            let t = text.clone().unwrap_or_default();
            if ty.starts_with("FLOAT") {
                n.as_f64().map(|f| f as f32) == t.parse::<f32>().ok()
            } else if ty.starts_with("DOUBLE") {
                n.as_f64() == t.parse::<f64>().ok()
            } else {
                n.to_string() == t
            }
        }
        (Json::String(s), Some(b)) => {
            if ty == "JSON" {
                // MySQL prints JSON canonically; MariaDB keeps the text as inserted.
                s.as_bytes() == b.as_slice()
                    || serde_json::from_str::<Json>(s).ok()
                        == serde_json::from_slice::<Json>(b).ok()
            } else {
                s.as_bytes() == b.as_slice()
            }
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "column {col} ({ty}): dbtrail {ours} vs server {text:?}"
        ))
    }
}

fn check_image(
    what: &str,
    cols: &[(&str, &str)],
    ev: &EventView,
    image: &[Json],
    server: &[Option<Vec<u8>>],
) {
    assert_eq!(ev.columns.len(), image.len(), "{what}: column count");
    let mut errors = Vec::new();
    // Events list every column in table order: id first, then the matrix (generated too).
    for (i, name) in ev.columns.iter().enumerate() {
        let (ty, srv) = if name == "id" {
            ("INT", &server[0])
        } else {
            match cols.iter().position(|(c, _)| c == name) {
                Some(p) => (cols[p].1, &server[p + 1]),
                None => {
                    errors.push(format!("unexpected column {name}"));
                    continue;
                }
            }
        };
        if let Err(e) = same(name, ty, &image[i], srv) {
            errors.push(e);
        }
    }
    assert!(
        errors.is_empty(),
        "{what}: {} mismatches:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

async fn matrix(server: Server) {
    let Some(db) = dbtrail_testkit::require(server).await else {
        return;
    };
    let daemon = Daemon::start(
        server,
        &format!("backup_databases = [\"{}\"]", db.db_name()),
    );
    daemon.wait_streaming().await;
    let cols = columns(server);
    common::create_matrix(&db, &common::matrix_rows()).await;
    let mut conn = db.conn().await;
    let mut before = Vec::new();
    for id in 1..=3 {
        before.push(server_row(&db, &cols, id).await);
    }
    conn.query_drop("UPDATE tm SET ti = -1, vc = 'changed', ts6 = '2001-02-03 04:05:06.7', j = '{\"k\": \"v\"}' WHERE id = 1")
        .await
        .expect("update");
    let after1 = server_row(&db, &cols, 1).await;
    conn.query_drop("DELETE FROM tm WHERE id = 2")
        .await
        .expect("delete");
    daemon.wait_caught_up(&db).await;
    let table = format!("{}.tm", db.db_name());
    let events = daemon
        .client()
        .events(
            &daemon.source,
            &[("table", table.clone()), ("limit", "100".into())],
        )
        .await
        .expect("events");
    let kinds: Vec<&str> = events.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["insert", "insert", "insert", "update", "delete"],
        "{table}"
    );
    let e = &events.events;
    for (i, server_image) in before.iter().enumerate() {
        check_image(
            &format!("insert {}", i + 1),
            &cols,
            &e[i],
            e[i].after.as_ref().expect("after"),
            server_image,
        );
    }
    check_image(
        "update before",
        &cols,
        &e[3],
        e[3].before.as_ref().expect("before"),
        &before[0],
    );
    check_image(
        "update after",
        &cols,
        &e[3],
        e[3].after.as_ref().expect("after"),
        &after1,
    );
    check_image(
        "delete before",
        &cols,
        &e[4],
        e[4].before.as_ref().expect("before"),
        &before[1],
    );
    // Commit times are monotonic in log order and inside the test's time window.
    for w in e.windows(2) {
        assert!(
            w[0].commit_us <= w[1].commit_us,
            "commit times go back: {w:?}"
        );
    }
    if server.has_gtids() {
        assert!(
            e.iter().all(|ev| ev.gtid.is_some()),
            "every event has its GTID"
        );
    }
    sql_round_trip(daemon, &db, &cols, &before).await;
}

/// The logged images, written as dump SQL by dbtrail-replay and executed on the server,
/// recreate byte-identical rows (what a restore will do); and a consistent snapshot reads
/// exactly the values the binlog decoder produced.
async fn sql_round_trip(
    mut daemon: Daemon,
    db: &TestDb,
    cols: &[(&str, &str)],
    before: &[Vec<Option<Vec<u8>>>],
) {
    let baseline = daemon.backup().await;
    assert_eq!(daemon.stop(), Some(0), "clean SIGTERM exit");
    let log =
        dbtrail_storage::Log::open(&daemon.dir.join("data/sources/src/log")).expect("open log");
    let table = dbtrail_core::TableRef::new(db.db_name(), "tm");
    let events = log
        .table_events(&table, i64::MIN, i64::MAX, 10)
        .expect("events");
    assert_eq!(events.len(), 5);
    let id = log.table_id(&table).expect("id").expect("known");
    snapshot_equals_log(db, &table, &events, &baseline, &daemon.dir).await;
    let mut sql = dbtrail_replay::sql::DATA_FILE_HEADER.as_bytes().to_vec();
    let schema = log
        .schema(id, events[0].schema_version)
        .expect("schema")
        .expect("exists");
    if !db.server().is_mariadb() {
        assert!(
            schema
                .columns
                .iter()
                .any(|c| c.name == "gen" && c.generated),
            "the generated column is known as generated"
        );
    }
    let mut copy = schema.clone();
    copy.table.table = "tm_copy".into();
    for ev in events.iter().take(3) {
        let dbtrail_core::RowChange::Insert { after } = &ev.change else {
            panic!("insert expected");
        };
        sql.extend_from_slice(&dbtrail_replay::sql::insert_prefix(&copy, false));
        dbtrail_replay::sql::write_row(&mut sql, &copy, after);
        sql.extend_from_slice(b";\n");
    }
    let text = String::from_utf8(sql).expect("dump SQL is UTF-8 (non-UTF-8 bytes are hex)");
    let mut conn = db.conn().await;
    conn.query_drop("CREATE TABLE tm_copy LIKE tm")
        .await
        .expect("copy table");
    conn.query_drop(text).await.expect("execute dump SQL");
    for (i, want) in before.iter().enumerate() {
        let got = server_row_of(db, "tm_copy", cols, i as i64 + 1).await;
        assert_eq!(got.len(), want.len());
        let diffs: Vec<String> = got
            .iter()
            .zip(want)
            .enumerate()
            .filter(|(_, (g, w))| g != w)
            .map(|(c, (g, w))| format!("column #{c}: restored {g:?} vs original {w:?}"))
            .collect();
        assert!(diffs.is_empty(), "row {}: {}", i + 1, diffs.join("\n"));
    }
}

/// A consistent snapshot of the table reads exactly the values the binlog decoder produced
/// for the same rows (baseline values == binlog values, per type).
async fn snapshot_equals_log(
    db: &TestDb,
    table: &dbtrail_core::TableRef,
    events: &[dbtrail_core::ChangeEvent],
    baseline: &dbtrail_core::baseline::BaselineManifest,
    dir: &std::path::Path,
) {
    use dbtrail_core::RowChange;
    // The live table through the snapshot reader.
    let mut conn = db.conn().await;
    conn.query_drop("SET SESSION character_set_results = binary, time_zone = '+00:00'")
        .await
        .expect("session");
    let schema = dbtrail_binlog::snapshot::table_schema(&mut conn, table)
        .await
        .expect("schema");
    let mut rows = Vec::new();
    dbtrail_binlog::snapshot::read_table(&mut conn, &schema, |r| {
        rows.push(r);
        Ok(())
    })
    .await
    .expect("read");
    // The daemon's baseline of it: same schema, same values.
    assert!(baseline.lock_held_us < 5_000_000 && !baseline.position.file.is_empty());
    let entry = baseline
        .table(table)
        .expect("the matrix table is in the baseline");
    assert_eq!(entry.rows, 2);
    assert!(entry.parts.is_empty(), "a small table is one file");
    let path = dir
        .join("data/baselines/src")
        .join(&baseline.id)
        .join(&entry.file);
    let mut back = Vec::new();
    let (stored, kv) =
        dbtrail_replay::baseline::read(std::fs::File::open(&path).expect("open"), |r| {
            back.push(r);
            Ok(())
        })
        .expect("read baseline");
    assert_eq!(stored, schema);
    assert!(
        kv.iter().any(|(k, v)| k == "dbtrail.gtid_set"
            && *v == baseline.position.gtid_set.to_compact_string())
    );
    assert_eq!(back, rows, "baseline == the server's values");
    let after = |i: usize| match &events[i].change {
        RowChange::Insert { after } | RowChange::Update { after, .. } => after.clone(),
        RowChange::Delete { .. } => panic!("no after image"),
    };
    // Now: row 1 as updated (event 3), row 3 as inserted (event 2); row 2 was deleted.
    let expected = [after(3), after(2)];
    assert_eq!(back.len(), 2);
    for (got, want) in back.iter().zip(&expected) {
        let diffs: Vec<String> = schema
            .columns
            .iter()
            .zip(got.iter().zip(want))
            .filter(|(_, (g, w))| g != w)
            .map(|(c, (g, w))| format!("{}: baseline {g:?} vs binlog {w:?}", c.name))
            .collect();
        assert!(
            diffs.is_empty(),
            "the baseline differs from the binlog:\n{}",
            diffs.join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn type_matrix_mysql_gtid() {
    matrix(Server::MysqlGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn type_matrix_mysql_nogtid() {
    matrix(Server::MysqlNoGtid).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn type_matrix_mariadb() {
    matrix(Server::MariaDb).await;
}
