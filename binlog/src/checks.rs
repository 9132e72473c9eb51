//! Startup checks: is this server able to give us every row change exactly?
//!
//! Refuses (definite [`BinlogError::InvalidSetting`]) unless
//! [`log_bin`](https://dev.mysql.com/doc/refman/8.4/en/replication-options-binary-log.html#sysvar_log_bin)
//! is on, `binlog_format=ROW`, `binlog_row_image=FULL` and `binlog_row_value_options` is not
//! `PARTIAL_JSON` (docs/correctness.md, C4), and unless the user holds REPLICATION SLAVE and
//! REPLICATION CLIENT. Warns when `binlog_row_metadata` is not FULL (column names, signedness
//! and ENUM/SET members then come from information_schema). Runs again after every reconnect.
use crate::BinlogError;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

/// MySQL or MariaDB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Oracle MySQL (and Percona, RDS, Aurora MySQL).
    Mysql,
    /// MariaDB.
    Mariadb,
}

/// What the checks learned about the server.
#[derive(Clone, Debug)]
pub struct ServerInfo {
    /// MySQL or MariaDB.
    pub flavor: Flavor,
    /// `@@version`
    pub version: String,
    /// `@@server_uuid` on MySQL, `@@server_id` as text on MariaDB.
    pub server_uuid: String,
    /// `@@server_id`
    pub server_id: u32,
    /// GTIDs in use (MySQL `gtid_mode=ON`; MariaDB always has GTIDs).
    pub gtid_mode: bool,
    /// `@@binlog_row_metadata` is FULL.
    pub full_metadata: bool,
    /// `@@binlog_checksum` (NONE or CRC32).
    pub checksum: String,
    /// `@@gtid_executed` (MySQL) / `@@gtid_binlog_pos` (MariaDB).
    pub gtid_executed: String,
    /// `@@gtid_purged` (MySQL) / the GTID_LIST of the oldest binlog (MariaDB: not known here).
    pub gtid_purged: String,
    /// Binlog retention in seconds, when the server says.
    pub binlog_expire_seconds: Option<u64>,
    /// `@@binlog_transaction_compression` (MySQL 8.0.20+).
    pub transaction_compression: bool,
    /// The server logs the child rows that foreign-key actions change (see
    /// [`fk_cascades_logged`]).
    pub fk_cascades_logged: bool,
    /// Warnings for the operator (settings we tolerate but that degrade something).
    pub warnings: Vec<String>,
}

pub(crate) async fn var(conn: &mut Conn, name: &str) -> Result<Option<String>, BinlogError> {
    // A variable the server does not know yields ER_UNKNOWN_SYSTEM_VARIABLE: report None.
    match conn
        .query_first::<Option<String>, _>(format!("SELECT @@GLOBAL.{name}"))
        .await
    {
        Ok(v) => Ok(v.flatten()),
        Err(mysql_async::Error::Server(e)) if e.code == 1193 => Ok(None),
        Err(e) => Err(BinlogError::driver(format!("reading @@{name}"))(e)),
    }
}

fn need(
    setting: &'static str,
    expected: &'static str,
    actual: Option<&str>,
    ok: impl Fn(&str) -> bool,
    fix: String,
) -> Result<(), BinlogError> {
    let a = actual.unwrap_or("(not set)");
    if ok(&a.to_ascii_uppercase()) {
        Ok(())
    } else {
        Err(BinlogError::InvalidSetting {
            setting,
            expected,
            actual: a.to_string(),
            fix,
        })
    }
}

/// Checks the server behind `conn` and describes it.
pub async fn check_server(conn: &mut Conn) -> Result<ServerInfo, BinlogError> {
    let version = var(conn, "version").await?.unwrap_or_default();
    let flavor = if version.to_ascii_lowercase().contains("mariadb") {
        Flavor::Mariadb
    } else {
        Flavor::Mysql
    };
    let cnf = match flavor {
        Flavor::Mysql => "my.cnf [mysqld]",
        Flavor::Mariadb => "my.cnf [mariadb]",
    };
    let log_bin = var(conn, "log_bin").await?;
    need(
        "log_bin",
        "ON",
        log_bin.as_deref(),
        |v| v == "1" || v == "ON",
        format!("start the server with log_bin (add `log_bin=binlog` to {cnf} and restart)"),
    )?;
    let format = var(conn, "binlog_format").await?;
    need(
        "binlog_format",
        "ROW",
        format.as_deref(),
        |v| v == "ROW",
        format!(
            "SET PERSIST binlog_format='ROW' (or binlog_format=ROW in {cnf}); sessions already \
             open keep their old format until they reconnect"
        ),
    )?;
    let image = var(conn, "binlog_row_image").await?;
    need(
        "binlog_row_image",
        "FULL",
        image.as_deref(),
        |v| v == "FULL",
        format!(
            "SET GLOBAL binlog_row_image='FULL' and binlog_row_image=FULL in {cnf}; with \
             MINIMAL or NOBLOB the binlog lacks the column values a restore needs"
        ),
    )?;
    let value_opts = var(conn, "binlog_row_value_options").await?;
    need(
        "binlog_row_value_options",
        "'' (empty)",
        Some(value_opts.as_deref().unwrap_or("")),
        |v| !v.contains("PARTIAL_JSON"),
        "SET PERSIST binlog_row_value_options=''; PARTIAL_JSON logs JSON diffs instead of \
         full values"
            .to_string(),
    )?;
    let mut warnings = Vec::new();
    let metadata = var(conn, "binlog_row_metadata").await?;
    let full_metadata = metadata
        .as_deref()
        .is_some_and(|m| m.eq_ignore_ascii_case("FULL"));
    if !full_metadata {
        warnings.push(format!(
            "binlog_row_metadata is {}, not FULL: column names, signedness and ENUM/SET members \
             are read from information_schema at capture time; fix: SET PERSIST \
             binlog_row_metadata='FULL'",
            metadata.as_deref().unwrap_or("unset")
        ));
    }
    if flavor == Flavor::Mariadb {
        let compress = var(conn, "log_bin_compress").await?;
        if compress
            .as_deref()
            .is_some_and(|c| c == "1" || c.eq_ignore_ascii_case("ON"))
        {
            warnings.push(
                "log_bin_compress is ON: compressed MariaDB row events are decoded; a \
                 compressed event that cannot be decoded stops capture"
                    .into(),
            );
        }
    }
    check_privileges(conn).await?;
    let server_id: u32 = var(conn, "server_id")
        .await?
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let checksum = var(conn, "binlog_checksum")
        .await?
        .unwrap_or_else(|| "NONE".into());
    let expire = var(conn, "binlog_expire_logs_seconds")
        .await?
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0);
    let (server_uuid, gtid_mode, gtid_executed, gtid_purged, compression) = match flavor {
        Flavor::Mysql => {
            let uuid = var(conn, "server_uuid").await?.unwrap_or_default();
            let mode = var(conn, "gtid_mode").await?.unwrap_or_default();
            let executed = var(conn, "gtid_executed").await?.unwrap_or_default();
            let purged = var(conn, "gtid_purged").await?.unwrap_or_default();
            let comp = var(conn, "binlog_transaction_compression").await?;
            (
                uuid,
                mode.eq_ignore_ascii_case("ON"),
                executed,
                purged,
                comp.is_some_and(|c| c == "1" || c.eq_ignore_ascii_case("ON")),
            )
        }
        Flavor::Mariadb => (
            server_id.to_string(),
            true,
            var(conn, "gtid_binlog_pos").await?.unwrap_or_default(),
            String::new(),
            false,
        ),
    };
    if flavor == Flavor::Mysql && !gtid_mode {
        warnings.push(
            "gtid_mode is OFF: capture resumes by binlog file:pos, which does not survive a \
             failover to another server; fix: enable GTIDs (gtid_mode=ON, \
             enforce_gtid_consistency=ON)"
                .into(),
        );
    }
    let native_fk = match flavor {
        Flavor::Mysql => var(conn, "innodb_native_foreign_keys").await?,
        Flavor::Mariadb => None,
    };
    let fk_cascades_logged = fk_cascades_logged(flavor, native_fk.as_deref());
    Ok(ServerInfo {
        fk_cascades_logged,
        flavor,
        version,
        server_uuid,
        server_id,
        gtid_mode,
        full_metadata,
        checksum,
        gtid_executed,
        gtid_purged,
        binlog_expire_seconds: expire,
        transaction_compression: compression,
        warnings,
    })
}

/// Whether the server writes to the binlog the child rows that foreign-key actions (ON
/// DELETE/UPDATE CASCADE, SET NULL) change. InnoDB applies those actions inside the engine
/// and logs only the parent's row (MySQL 8.0/8.4, MariaDB); MySQL 9.x enforces foreign keys
/// in the SQL layer instead, unless started with `innodb_native_foreign_keys=ON`, and then
/// logs every child row as its own row event. `native_fk` is `@@innodb_native_foreign_keys`
/// (None where the server has no such variable: the engine does the cascades).
/// <https://dev.mysql.com/doc/refman/9.4/en/create-table-foreign-keys.html>
pub fn fk_cascades_logged(flavor: Flavor, native_fk: Option<&str>) -> bool {
    match (flavor, native_fk) {
        (Flavor::Mariadb, _) | (Flavor::Mysql, None) => false,
        (Flavor::Mysql, Some(v)) => v == "0" || v.eq_ignore_ascii_case("OFF"),
    }
}

async fn check_privileges(conn: &mut Conn) -> Result<(), BinlogError> {
    let grants: Vec<String> = conn
        .query("SHOW GRANTS")
        .await
        .map_err(BinlogError::driver("reading SHOW GRANTS"))?;
    let user: Option<String> = conn
        .query_first("SELECT CURRENT_USER()")
        .await
        .map_err(BinlogError::driver("reading CURRENT_USER()"))?;
    let user = user.unwrap_or_else(|| "'dbtrail'@'%'".into());
    let quoted_user = match user.rsplit_once('@') {
        Some((u, h)) => format!("'{u}'@'{h}'"),
        None => user.clone(),
    };
    let global: Vec<String> = grants
        .iter()
        .filter(|g| g.contains(" ON *.* "))
        .map(|g| g.to_ascii_uppercase())
        .collect();
    let has = |p: &str| {
        global
            .iter()
            .any(|g| g.contains("ALL PRIVILEGES") || g.contains(p))
    };
    for (privilege, alt) in [
        ("REPLICATION SLAVE", "REPLICATION REPLICA"),
        ("REPLICATION CLIENT", "BINLOG MONITOR"),
    ] {
        if !has(privilege) && !has(alt) {
            return Err(BinlogError::MissingPrivilege {
                privilege,
                fix: format!("GRANT {privilege} ON *.* TO {quoted_user}"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cascades_are_logged_only_by_sql_layer_foreign_keys() {
        assert!(fk_cascades_logged(Flavor::Mysql, Some("OFF")));
        assert!(fk_cascades_logged(Flavor::Mysql, Some("0")));
        assert!(!fk_cascades_logged(Flavor::Mysql, Some("ON")));
        assert!(!fk_cascades_logged(Flavor::Mysql, Some("1")));
        assert!(!fk_cascades_logged(Flavor::Mysql, None));
        assert!(!fk_cascades_logged(Flavor::Mariadb, None));
    }
}
