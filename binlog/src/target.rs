//! A MySQL server that restored tables are loaded into (`pitr --into`): its connection
//! options from a `mysql://USER@HOST:PORT[/DB]` URL, a bounded pool of connections that run
//! under the dump's session (binary names, UTC, a sql_mode admitting zero dates and id 0,
//! foreign-key and unique checks off), and the few questions the loader asks.
use dbtrail_core::TableRef;
use mysql_async::prelude::Queryable;

/// The session every loading connection runs under: the dump's data-file header, plus
/// foreign-key and unique checks off for the load.
const SESSION: [&str; 5] = [
    "SET NAMES binary",
    "SET SESSION foreign_key_checks = 0",
    "SET SESSION unique_checks = 0",
    "SET SESSION time_zone = '+00:00'",
    "SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'",
];

/// A load target: its address, the URL's database and a pool of at most `connections`.
pub struct Target {
    /// `host:port`, for messages.
    pub addr: String,
    /// Loads are written to the target's binlog.
    pub binlog: bool,
    /// The URL's database, if it names one.
    pub url_db: Option<String>,
    pool: mysql_async::Pool,
}

/// One connection of the pool.
pub struct TargetConn(mysql_async::Conn);

impl Target {
    /// Validates the URL, connection count (1..=32) and TLS mode (`disabled`, `required`);
    /// connects lazily. Without `binlog` the sessions `SET sql_log_bin = 0` (as `myloader`
    /// does by default). `Err` names the problem and the fix.
    pub fn new(
        url: &str,
        password: Option<String>,
        connections: usize,
        ssl_mode: Option<&str>,
        binlog: bool,
    ) -> Result<Target, String> {
        let bad = |e: String| format!("into url {url:?} is not mysql://USER@HOST:PORT[/DB]{e}");
        if !url.starts_with("mysql://") {
            return Err(bad(String::new()));
        }
        let parsed = mysql_async::Opts::from_url(url).map_err(|e| bad(format!(": {e}")))?;
        if parsed.pass().is_some() {
            return Err(
                "the into url must not hold a password: give it with --into-password-file or \
                 $DBTRAIL_INTO_PASSWORD"
                    .into(),
            );
        }
        if !(1..=32).contains(&connections) {
            return Err(format!(
                "into connections must be 1..=32, not {connections}"
            ));
        }
        let constraints = mysql_async::PoolConstraints::new(1, connections)
            .ok_or_else(|| format!("into connections {connections} is not usable"))?;
        let mut setup = SESSION.to_vec();
        if !binlog {
            setup.push("SET SESSION sql_log_bin = 0");
        }
        let mut b = mysql_async::OptsBuilder::from_opts(parsed.clone())
            .pass(password)
            .db_name(None::<String>)
            .setup(setup)
            .pool_opts(mysql_async::PoolOpts::default().with_constraints(constraints));
        match ssl_mode {
            None | Some("disabled") => {}
            Some("required") => {
                b = b.ssl_opts(
                    mysql_async::SslOpts::default()
                        .with_danger_accept_invalid_certs(true)
                        .with_danger_skip_domain_validation(true),
                );
            }
            Some(other) => {
                return Err(format!(
                    "into ssl_mode {other:?} is not one of disabled, required"
                ));
            }
        }
        let opts: mysql_async::Opts = b.into();
        Ok(Target {
            binlog,
            addr: format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port()),
            url_db: parsed
                .db_name()
                .map(str::to_string)
                .filter(|d| !d.is_empty()),
            pool: mysql_async::Pool::new(opts),
        })
    }

    /// A connection (waits while all are in use).
    pub async fn conn(&self) -> Result<TargetConn, String> {
        self.pool.get_conn().await.map(TargetConn).map_err(|e| {
            let hint = if !self.binlog && e.to_string().contains("sql_log_bin") {
                "; the user may not turn the binlog off for its session (SET sql_log_bin needs \
                 SYSTEM_VARIABLES_ADMIN or SUPER): grant it, or load with the binlog on \
                 (--into-binlog)"
            } else {
                "; check the into url (user, host, port), the password and that the server is \
                 reachable from the daemon's host"
            };
            format!("cannot connect to the target {}: {e}{hint}", self.addr)
        })
    }

    /// Closes every connection.
    pub async fn close(self) {
        let _ = self.pool.disconnect().await;
    }
}

impl TargetConn {
    /// Runs one statement (any bytes: values may be binary).
    pub async fn exec(&mut self, sql: &[u8]) -> Result<(), String> {
        self.0.query_drop(sql).await.map_err(|e| e.to_string())
    }

    /// `@@server_uuid` (None on servers without one).
    pub async fn server_uuid(&mut self) -> Result<Option<String>, String> {
        self.0
            .query_first("SELECT @@server_uuid")
            .await
            .map_err(|e| format!("reading the target's @@server_uuid: {e}"))
    }

    /// `information_schema.TABLES.TABLE_TYPE` of `t`, None when nothing has that name.
    pub async fn table_type(&mut self, t: &TableRef) -> Result<Option<String>, String> {
        self.0
            .exec_first(
                "SELECT TABLE_TYPE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND \
                 TABLE_NAME = ?",
                (t.db.clone(), t.table.clone()),
            )
            .await
            .map_err(|e| format!("checking {t} on the target: {e}"))
    }

    /// `SELECT COUNT(*)` of `t`.
    pub async fn count(&mut self, t: &TableRef) -> Result<u64, String> {
        self.0
            .query_first::<u64, _>(format!("SELECT COUNT(*) FROM {}", t.quoted()))
            .await
            .map_err(|e| format!("counting the rows of {t} on the target: {e}"))?
            .ok_or_else(|| format!("counting the rows of {t} on the target: no answer"))
    }
}
