//! A source of several servers (one replication topology): which one capture reads, and
//! whether it holds everything the log already holds (docs/correctness.md, C16).
//!
//! # Which server is the primary
//! With one server listed, capture reads it whatever its state (a replica with
//! `log_replica_updates` is a valid source). With several, it reads the one primary: the
//! listed server with `read_only=OFF` and `super_read_only=OFF` (MariaDB has no
//! `super_read_only`; `read_only` decides). Every listed server is asked at each (re)connect;
//! when none is writable (the middle of a failover, or every server down), or several are
//! (a replica left writable, or a split brain), there is no primary and capture retries the
//! list ([`BinlogError::NoPrimary`], transient), naming each server's state. Why
//! `read_only`: failover tools (orchestrator, MHA, group replication's single-primary mode)
//! leave exactly the primary writable, and the server that takes writes is where new
//! transactions appear; reading a read-only replica instead would still be exact with GTIDs,
//! but lags and stops when it is fenced. The state is read at connect time only: a primary
//! made read-only while capture streams from it is left only when its connection drops
//! (stopping it, or `KILL` of the replication connection, as a switchover does).
//!
//! # Never behind the log
//! Resuming is by GTID set only: the server is asked for every transaction not in the
//! captured set, so no file:pos is ever carried from one server to another
//! ([`crate::stream::Capture::start`]). A server that does not hold every captured
//! transaction would answer such a request without complaint (MySQL only checks the GTIDs
//! of its own `server_uuid`) and stream a history that skips them: its later row images
//! would not follow from the log's. So before streaming, [`missing_on_server`] compares the
//! captured set with the server's `gtid_executed` (MariaDB: `gtid_binlog_pos`, per domain);
//! anything missing refuses the server ([`BinlogError::Behind`], definite), naming the set.
use crate::BinlogError;
use crate::checks::{Flavor, ServerInfo, var};
use crate::stream::{SourceSpec, connect, executed_set};
use dbtrail_core::GtidSet;
use mysql_async::Conn;

/// Whether a server takes writes: `read_only` and `super_read_only` (absent on MariaDB) OFF.
pub async fn writable(conn: &mut Conn) -> Result<bool, BinlogError> {
    let off = |v: Option<String>| v.is_none_or(|v| v == "0" || v.eq_ignore_ascii_case("OFF"));
    let ro = var(conn, "read_only").await?;
    let sro = var(conn, "super_read_only").await?;
    Ok(off(ro) && off(sro))
}

/// Connects to the server capture reads among `specs` (see the module docs): the only one
/// when one is listed, else the one writable server. Returns its connection and index.
pub async fn connect_primary(specs: &[SourceSpec]) -> Result<(Conn, usize), BinlogError> {
    if let [spec] = specs {
        return Ok((connect(spec).await?, 0));
    }
    let probes = specs.iter().map(|spec| async move {
        let mut conn = connect(spec).await?;
        let w = writable(&mut conn).await?;
        Ok::<_, BinlogError>((conn, w))
    });
    let results = futures_util::future::join_all(probes).await;
    let mut primary = Vec::new();
    let mut states = Vec::new();
    let mut definite = None;
    for (i, r) in results.into_iter().enumerate() {
        let at = format!("{}:{}", specs[i].host, specs[i].port);
        match r {
            Ok((conn, true)) => {
                states.push(format!("{at} writable"));
                primary.push((conn, i));
            }
            Ok((_, false)) => states.push(format!("{at} read-only")),
            Err(e) => {
                states.push(format!("{at} unreachable ({e})"));
                if !e.is_transient() && !matches!(e, BinlogError::Protocol { .. }) {
                    definite.get_or_insert(e);
                }
            }
        }
    }
    match primary.len() {
        1 => Ok(primary.pop().expect("one")),
        0 => Err(definite.unwrap_or_else(|| {
            BinlogError::NoPrimary(format!(
                "no listed server is the primary (read_only=OFF and super_read_only=OFF): {}; \
                 retrying the list",
                states.join(", ")
            ))
        })),
        _ => Err(BinlogError::NoPrimary(format!(
            "several listed servers are writable: {}; capture reads only the one primary: make \
             the others read-only (SET PERSIST super_read_only = ON); retrying the list",
            states.join(", ")
        ))),
    }
}

/// The captured transactions the server does not hold, as text, or None when it holds them
/// all (or has no GTIDs: then the resume is by file:pos on the same server only).
pub fn missing_on_server(
    info: &ServerInfo,
    captured: &GtidSet,
) -> Result<Option<String>, BinlogError> {
    if info.flavor == Flavor::Mysql && !info.gtid_mode {
        return Ok(None);
    }
    let missing = match (captured, executed_set(info)?) {
        (GtidSet::Mysql(c), GtidSet::Mysql(e)) => {
            let m = c.subtract(&e);
            (!m.is_empty()).then(|| m.to_compact_string())
        }
        (GtidSet::Mariadb(c), GtidSet::Mariadb(e)) => {
            let m: Vec<String> = c
                .iter()
                .filter_map(|(domain, _, seq)| {
                    let have = e.domain_seq(domain).unwrap_or(0);
                    (have < seq).then(|| format!("domain {domain}: sequence {}-{seq}", have + 1))
                })
                .collect();
            (!m.is_empty()).then(|| m.join(", "))
        }
        // A log of the other flavour: the source's config points at another kind of server.
        (c, _) if c.is_empty() => None,
        (c, _) => Some(c.to_compact_string()),
    };
    Ok(missing)
}

/// [`missing_on_server`] as the refusal: [`BinlogError::Behind`] naming `spec`'s server.
pub fn refuse_if_behind(
    spec: &SourceSpec,
    info: &ServerInfo,
    captured: &GtidSet,
) -> Result<(), BinlogError> {
    match missing_on_server(info, captured)? {
        None => Ok(()),
        Some(missing) => Err(BinlogError::Behind {
            server: format!("{}:{} ({})", spec.host, spec.port, info.server_uuid),
            missing,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(flavor: Flavor, gtid_mode: bool, executed: &str) -> ServerInfo {
        ServerInfo {
            flavor,
            version: String::new(),
            server_uuid: "u".into(),
            server_id: 1,
            gtid_mode,
            full_metadata: true,
            checksum: "CRC32".into(),
            gtid_executed: executed.into(),
            gtid_purged: String::new(),
            binlog_expire_seconds: None,
            transaction_compression: false,
            fk_cascades_logged: true,
            warnings: Vec::new(),
        }
    }

    const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const B: &str = "4e11fa47-71ca-11e1-9e33-c80aa9429562";

    #[test]
    fn mysql_missing_is_captured_minus_executed() {
        let captured: GtidSet = format!("{A}:1-10,{B}:1-3").parse().expect("set");
        let ahead = info(Flavor::Mysql, true, &format!("{A}:1-12,{B}:1-3"));
        assert_eq!(missing_on_server(&ahead, &captured).expect("ok"), None);
        let behind = info(Flavor::Mysql, true, &format!("{A}:1-7,{B}:1-3"));
        assert_eq!(
            missing_on_server(&behind, &captured).expect("ok"),
            Some(format!("{A}:8-10"))
        );
        let other = info(Flavor::Mysql, true, &format!("{B}:1-5"));
        assert_eq!(
            missing_on_server(&other, &captured).expect("ok"),
            Some(format!("{A}:1-10"))
        );
        // Without GTIDs there is nothing to compare (file:pos stays on one server).
        assert_eq!(
            missing_on_server(&info(Flavor::Mysql, false, ""), &captured).expect("ok"),
            None
        );
    }

    #[test]
    fn mariadb_missing_is_per_domain_sequence() {
        let captured: GtidSet = "0-1-10,1-2-5".parse().expect("set");
        let ok = info(Flavor::Mariadb, true, "0-3-12,1-2-5");
        assert_eq!(missing_on_server(&ok, &captured).expect("ok"), None);
        let behind = info(Flavor::Mariadb, true, "0-3-8");
        assert_eq!(
            missing_on_server(&behind, &captured).expect("ok"),
            Some("domain 0: sequence 9-10, domain 1: sequence 1-5".into())
        );
    }

    #[test]
    fn behind_names_the_server_and_the_set() {
        let captured: GtidSet = format!("{A}:1-10").parse().expect("set");
        let spec = SourceSpec {
            host: "db2".into(),
            port: 3306,
            user: "u".into(),
            password: None,
            replica_server_id: 9,
            heartbeat: std::time::Duration::from_secs(1),
            tls: crate::stream::Tls::Disabled,
        };
        let e = refuse_if_behind(
            &spec,
            &info(Flavor::Mysql, true, &format!("{A}:1-9")),
            &captured,
        )
        .expect_err("behind");
        let msg = e.to_string();
        assert!(
            msg.contains("db2:3306 (u)") && msg.contains(&format!("{A}:10")),
            "{msg}"
        );
        assert!(!e.is_transient());
    }
}
