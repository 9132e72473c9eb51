//! The built `dbtrailctl` binary: exit status and output, against no daemon or a fake one
//! (a thread answering canned JSON on a unix socket).
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ctl(socket: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dbtrailctl"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .env_remove("DBTRAIL_SOCKET")
        .output()
        .expect("run dbtrailctl")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A fresh directory under cargo's scratch space for integration tests.
fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ctl-cli-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Serves `route(method, path) -> (status line, JSON body)` on a socket in `dir`, one request
/// per connection, until the test process ends.
fn fake_daemon(dir: &Path, route: fn(&str, &str) -> (&'static str, String)) -> PathBuf {
    let socket = dir.join("dbtrail.sock");
    let listener = UnixListener::bind(&socket).unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut length = 0;
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            let mut parts = request_line.split_whitespace();
            let method = parts.next().unwrap_or_default();
            let path = parts.next().unwrap_or_default();
            let (status, body) = route(method, path.split('?').next().unwrap_or_default());
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    socket
}

#[test]
fn bad_argument_is_a_usage_error() {
    let out = ctl(Path::new("/nonexistent"), &["status", "--bogus"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("unexpected argument '--bogus'"));
    let out = ctl(Path::new("/nonexistent"), &["pitr"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn help_documents_the_exit_status() {
    let out = ctl(Path::new("/nonexistent"), &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert!(help.contains("Exit status:\n  0  success\n"), "{help}");
    assert!(
        help.contains("\n  3  dbtraild could not be reached"),
        "{help}"
    );
}

#[test]
fn missing_socket_is_unreachable() {
    let socket = scratch("missing").join("no.sock");
    for args in [&["status"][..], &["events", "--source", "a"], &["backups"]] {
        let out = ctl(&socket, args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {out:?}");
        assert_eq!(text(&out.stdout), "");
        assert_eq!(
            text(&out.stderr),
            format!(
                "dbtrailctl: cannot connect to dbtraild at {} (is it running? set --socket or \
                 DBTRAIL_SOCKET): No such file or directory (os error 2)\n",
                socket.display()
            )
        );
    }
}

fn source(name: &str) -> String {
    format!(
        r#"{{"name":"{name}","state":"streaming","captured_gtid_set":"","binlog_file":"binlog.000001",
        "binlog_pos":4,"server_uuid":"u1","last_commit_time":null,"lag_seconds":0.0,"error":null,
        "warnings":[],"events_total":0,"transactions_total":0,"tainted_tables":[],"gaps":[]}}"#
    )
}

fn pitr_job(id: &str, status: &str) -> String {
    format!(
        r#"{{"pitr_id":"{id}","status":"{status}","phase":"reconstructing","progress":0.5,
        "tables_done":1,"tables_total":2,"rows":10,"started_at":"2026-11-24T15:00:00Z",
        "path":"/tmp/out","size_bytes":null,"file_count":null,"duration_ms":null,
        "error":"table changed","plan":{{"target":"t","rule":"r","baseline_id":"B1",
        "baseline_time":"b","baseline_position":"p","tables":[],"transactions":0,"events":0,
        "event_bytes":0,"last_gtid":null,"last_commit_time":null,"last_position":null,
        "gtid_set_reached":"","gaps":[],"tainted_tables":[],"not_in_baseline":[]}}}}"#
    )
}

fn route(method: &str, path: &str) -> (&'static str, String) {
    match (method, path) {
        ("GET", "/api/v1/servers") => ("200 OK", format!(r#"{{"sources":[{}]}}"#, source("demo"))),
        ("GET", "/api/v1/servers/demo/transactions/u1%3A7/undo") => (
            "409 Conflict",
            r#"{"error":{"code":"conflict","message":"later transactions changed the same rows"}}"#
                .into(),
        ),
        ("GET", "/api/v1/servers/demo/pitr/pitr-1") => ("200 OK", pitr_job("pitr-1", "failed")),
        ("GET", "/api/v1/servers/demo/pitr/pitr-2") => ("200 OK", pitr_job("pitr-2", "completed")),
        ("GET", "/api/v1/servers/demo/coverage") => ("500 Internal Server Error", "oops".into()),
        _ => (
            "404 Not Found",
            r#"{"error":{"code":"not_found","message":"no such thing"}}"#.into(),
        ),
    }
}

#[test]
fn against_a_fake_daemon() {
    let socket = fake_daemon(&scratch("fake"), route);

    let out = ctl(&socket, &["status"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "demo: streaming\n  position:     binlog.000001:4 on u1\n  last commit:  (none yet)\n  \
         lag:          0.000s\n  captured:     0 transactions, 0 row events\n"
    );

    // A request the daemon refuses: its message on stderr, exit 1.
    let out = ctl(&socket, &["undo", "--gtid", "u1:7"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        "dbtrailctl: later transactions changed the same rows (conflict)\n"
    );
    let out = ctl(&socket, &["coverage"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        text(&out.stderr),
        "dbtrailctl: dbtraild answered 500 Internal Server Error: oops\n"
    );

    // The status of a failed restore: printed, then exit 1 without a message.
    let out = ctl(&socket, &["pitr-status", "pitr-1"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        text(&out.stdout),
        "restore pitr-1: failed (reconstructing), 50%, 1/2 tables, 10 rows -> /tmp/out\n  \
         error: table changed\n"
    );
    assert_eq!(text(&out.stderr), "");
    let out = ctl(&socket, &["pitr-status", "pitr-2", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        text(&out.stdout)
            .starts_with("{\n  \"pitr_id\": \"pitr-2\",\n  \"status\": \"completed\",")
    );
}

#[test]
fn generate_man_pages_and_completions() {
    let dir = scratch("generate");
    let none = Path::new("/nonexistent");
    let out = ctl(
        none,
        &["generate", "man", dir.join("man").to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    for page in [
        "dbtrailctl.1",
        "dbtrailctl-pitr.1",
        "dbtrailctl-baseline-import.1",
    ] {
        assert!(dir.join("man").join(page).is_file(), "{page}");
    }
    assert!(!dir.join("man/dbtrailctl-generate.1").exists());
    let man = std::fs::read_to_string(dir.join("man/dbtrailctl.1")).unwrap();
    assert!(man.contains("Exit status:"));
    let out = ctl(
        none,
        &[
            "generate",
            "completions",
            dir.join("comp").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    for f in ["dbtrailctl.bash", "_dbtrailctl", "dbtrailctl.fish"] {
        let s = std::fs::read_to_string(dir.join("comp").join(f)).unwrap();
        assert!(s.contains("pitr-status") && !s.contains("generate"), "{f}");
    }
    let out = ctl(none, &["generate", "html", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
