//! The daemon's TOML configuration. Unknown keys are rejected with the key named.
use anyhow::{Context, bail};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where logs (RocksDB), baselines and job records live.
    pub data_dir: PathBuf,
    /// The control API's unix socket.
    #[serde(default = "default_socket")]
    pub socket: PathBuf,
    /// Prometheus `/metrics` over loopback TCP; empty string disables.
    #[serde(default = "default_metrics")]
    pub metrics_addr: String,
    /// Sources to capture.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
}

/// One source server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Name used in API paths and `--source`.
    pub name: String,
    /// `mysql://user@host:port` (a password in the URL is refused: use password_file or env).
    /// Exactly one of `url` and `urls`.
    pub url: Option<String>,
    /// The servers of one replication topology, each as `url` is written: capture reads the
    /// one primary among them (`read_only` and `super_read_only` OFF) and resumes there by
    /// GTID set after a failover (dbtrail_binlog::failover). Needs GTIDs. Exactly one of
    /// `url` and `urls`; the same user and password on every server.
    pub urls: Option<Vec<String>>,
    /// File holding the password (first line); must not be readable by others.
    pub password_file: Option<PathBuf>,
    /// server_id this replica registers with; unique among the source's replicas.
    pub replica_server_id: u32,
    /// Refuse to start when transactions we need were purged, instead of recording a gap.
    #[serde(default)]
    pub no_gap_fill: bool,
    /// Heartbeat period asked of the server, seconds.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_seconds: u64,
    /// Flush at most this long after a commit (milliseconds).
    #[serde(default = "default_flush_ms")]
    pub flush_interval_ms: u64,
    /// Where baselines go: `file:///path` or `s3://bucket/prefix`. Default:
    /// `file://<data_dir>/baselines`. Objects are named `<source>/<baseline id>/...`.
    pub baseline_store: Option<String>,
    /// S3 endpoint for S3-compatible stores (e.g. `http://127.0.0.1:9000`); default AWS.
    pub s3_endpoint: Option<String>,
    /// S3 region; default `AWS_REGION` / `AWS_DEFAULT_REGION`, else us-east-1.
    pub s3_region: Option<String>,
    /// S3 access key id; default `AWS_ACCESS_KEY_ID`.
    pub s3_access_key_id: Option<String>,
    /// File holding the S3 secret access key (mode checked); default `AWS_SECRET_ACCESS_KEY`.
    pub s3_secret_access_key_file: Option<PathBuf>,
    /// Take a baseline this often (humantime, e.g. `"6h"`); unset: only on request.
    pub backup_interval: Option<String>,
    /// Compute a baseline from the newest baseline and the log this often (humantime, e.g.
    /// `"1h"`), reading nothing from the source; unset: only on request
    /// (`dbtrailctl backup --from-log`).
    pub backup_from_log_interval: Option<String>,
    /// Keep at most this many baselines (the newest); unset: keep all.
    pub backup_keep: Option<usize>,
    /// Remove baselines older than this (humantime, e.g. `"14d"`); the newest is always kept.
    pub backup_max_age: Option<String>,
    /// TLS to the source: `disabled` (default), `required` (encrypted, certificate not
    /// checked), `verify_identity` (certificate chains to `ssl_ca`, or the system roots
    /// without it, and names the url's host).
    pub ssl_mode: Option<String>,
    /// PEM file of the CA that signed the source's certificate.
    pub ssl_ca: Option<PathBuf>,
    /// Databases a backup snapshots; unset: every database except the server's own.
    pub backup_databases: Option<Vec<String>>,
    /// Keys a restore holds in memory per table and pass; a table whose changes touch more
    /// is replayed in several passes over hash partitions of its keys.
    #[serde(default = "default_restore_keys")]
    pub restore_keys_in_memory: u64,
    /// Connections (tables read in parallel) per backup.
    #[serde(default = "default_backup_connections")]
    pub backup_connections: usize,
    /// How a baseline's snapshot is made exact: `auto` (default: `global` if the server
    /// allows it, else MariaDB's snapshot position, else `tables`, else `none`), `global`
    /// (FLUSH TABLES WITH READ LOCK), `tables` (LOCK TABLES ... READ on the baseline's
    /// tables), `none` (no lock; MySQL needs GTIDs). See README "Least privilege".
    pub baseline_lock: Option<String>,
    /// A table with more (estimated) rows is read in primary-key ranges of about this many
    /// rows, on several connections at once; 0: never split.
    #[serde(default = "default_backup_split_rows")]
    pub backup_split_rows: u64,
    /// Verify this often (humantime, e.g. `"24h"`): the least recently verified tables are
    /// imaged, rebuilt from the history at that position and compared (`dbtrailctl verify`);
    /// unset: only on request.
    pub verify_interval: Option<String>,
    /// Tables each scheduled verification takes (the least recently verified first).
    #[serde(default = "default_verify_tables")]
    pub verify_tables: usize,
}

fn default_socket() -> PathBuf {
    PathBuf::from("/run/dbtrail/dbtrail.sock")
}
fn default_metrics() -> String {
    "127.0.0.1:9477".into()
}
fn default_heartbeat() -> u64 {
    5
}
fn default_flush_ms() -> u64 {
    1000
}
fn default_restore_keys() -> u64 {
    1_000_000
}
fn default_backup_connections() -> usize {
    4
}
fn default_verify_tables() -> usize {
    4
}
fn default_backup_split_rows() -> u64 {
    1_000_000
}
/// The smallest `backup_split_rows` but 0: below it, a range's file and query cost more
/// than reading its rows.
const MIN_SPLIT_ROWS: u64 = 1000;

fn duration(source: &str, key: &str, v: &Option<String>) -> anyhow::Result<Option<Duration>> {
    v.as_deref()
        .map(|t| {
            humantime::parse_duration(t).with_context(|| {
                format!(
                    "source {source}: {key} {t:?} is not a duration (e.g. \"6h\", \"30m\", \"14d\")"
                )
            })
        })
        .transpose()
}

impl Config {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("invalid config file {}", path.display()))
    }

    /// Parses and validates config text.
    pub fn parse(text: &str) -> anyhow::Result<Config> {
        let cfg: Config = toml::from_str(text)?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> anyhow::Result<()> {
        if !self.metrics_addr.is_empty() {
            let addr: SocketAddr = self.metrics_addr.parse().with_context(|| {
                format!(
                    "metrics_addr {:?} is not host:port (e.g. \"127.0.0.1:9477\")",
                    self.metrics_addr
                )
            })?;
            if !addr.ip().is_loopback() {
                bail!(
                    "metrics_addr {} is not a loopback address; metrics are served on loopback \
                     only (use 127.0.0.1 or [::1])",
                    self.metrics_addr
                );
            }
        }
        let mut names = std::collections::HashSet::new();
        for s in &self.sources {
            if s.name.is_empty()
                || !s
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                bail!(
                    "source name {:?} must be non-empty and use only letters, digits, '-' and '_'",
                    s.name
                );
            }
            if !names.insert(s.name.clone()) {
                bail!("source name {:?} is used twice", s.name);
            }
            if s.replica_server_id == 0 {
                bail!("source {}: replica_server_id must be non-zero", s.name);
            }
            s.parsed_urls()?;
            if let Some(i) = s.backup_interval()?
                && i < Duration::from_secs(1)
            {
                bail!("source {}: backup_interval must be at least 1s", s.name);
            }
            if let Some(i) = s.backup_from_log_interval()?
                && i < Duration::from_secs(1)
            {
                bail!(
                    "source {}: backup_from_log_interval must be at least 1s",
                    s.name
                );
            }
            if let Some(i) = s.verify_interval()?
                && i < Duration::from_secs(1)
            {
                bail!("source {}: verify_interval must be at least 1s", s.name);
            }
            if s.verify_tables == 0 {
                bail!(
                    "source {}: verify_tables must be at least 1 (tables per scheduled verification)",
                    s.name
                );
            }
            s.backup_max_age()?;
            if s.backup_keep == Some(0) {
                bail!(
                    "source {}: backup_keep must be at least 1 (the newest baseline is always kept)",
                    s.name
                );
            }
            s.tls()?;
            if s.restore_keys_in_memory == 0 {
                bail!(
                    "source {}: restore_keys_in_memory must be at least 1",
                    s.name
                );
            }
            if !(1..=64).contains(&s.backup_connections) {
                bail!(
                    "source {}: backup_connections must be between 1 and 64",
                    s.name
                );
            }
            s.baseline_lock()?;
            if s.backup_split_rows != 0 && s.backup_split_rows < MIN_SPLIT_ROWS {
                bail!(
                    "source {}: backup_split_rows must be 0 (never split a table) or at least \
                     {MIN_SPLIT_ROWS} (rows per key range), not {}",
                    s.name,
                    s.backup_split_rows
                );
            }
            if let Some(url) = &s.baseline_store
                && !(url.starts_with("file:///") || url.starts_with("s3://"))
            {
                bail!(
                    "source {}: baseline_store {url:?} must be file:///absolute/path or s3://bucket/prefix",
                    s.name
                );
            }
        }
        Ok(())
    }
}

/// The parts of a source URL.
pub struct SourceUrl {
    /// User name.
    pub user: String,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl SourceConfig {
    /// `baseline_lock`, parsed (default `auto`).
    pub fn baseline_lock(&self) -> anyhow::Result<dbtrail_binlog::start::LockChoice> {
        use dbtrail_binlog::start::LockChoice;
        match self.baseline_lock.as_deref() {
            None => Ok(LockChoice::Auto),
            Some(v) => LockChoice::parse(v).with_context(|| {
                format!(
                    "source {}: baseline_lock = {v:?} is not one of {}",
                    self.name,
                    LockChoice::VALUES
                )
            }),
        }
    }

    /// The configured server URLs with the key they came from: `url`, or `urls` (validated:
    /// exactly one of the two, not empty, no server twice).
    fn url_list(&self) -> anyhow::Result<(&'static str, Vec<&str>)> {
        let (key, list) = match (&self.url, &self.urls) {
            (Some(u), None) => ("url", vec![u.as_str()]),
            (None, Some(l)) => ("urls", l.iter().map(String::as_str).collect()),
            (Some(_), Some(_)) => bail!(
                "source {}: both url and urls are set; use url = \"mysql://USER@HOST:PORT\" \
                 for one server or urls = [\"mysql://USER@HOST1:PORT\", ...] for the servers of \
                 one replication topology, not both",
                self.name
            ),
            (None, None) => bail!(
                "source {}: no server: set url = \"mysql://USER@HOST:PORT\" (or urls = [...] \
                 for the servers of one replication topology)",
                self.name
            ),
        };
        if list.is_empty() {
            bail!(
                "source {}: urls is empty; list at least one server, as urls = \
                 [\"mysql://USER@HOST:PORT\"], or use url",
                self.name
            );
        }
        Ok((key, list))
    }

    /// Parses `url` or every entry of `urls`, in order.
    pub fn parsed_urls(&self) -> anyhow::Result<Vec<SourceUrl>> {
        let (key, list) = self.url_list()?;
        let mut out: Vec<SourceUrl> = Vec::new();
        for u in list {
            let p = self.parse_url(key, u)?;
            if out.iter().any(|o| o.host == p.host && o.port == p.port) {
                bail!(
                    "source {}: {key} lists {}:{} twice; list each server once",
                    self.name,
                    p.host,
                    p.port
                );
            }
            out.push(p);
        }
        Ok(out)
    }

    /// The first configured server's parsed URL.
    pub fn parsed_url(&self) -> anyhow::Result<SourceUrl> {
        let mut all = self.parsed_urls()?;
        Ok(all.remove(0))
    }

    fn parse_url(&self, key: &str, url: &str) -> anyhow::Result<SourceUrl> {
        let rest = url.strip_prefix("mysql://").with_context(|| {
            format!(
                "source {}: {key} entry {url:?} must start with mysql://",
                self.name
            )
        })?;
        let rest = rest.split(['/', '?']).next().unwrap_or("");
        let (userinfo, hostport) = rest.rsplit_once('@').with_context(|| {
            format!(
                "source {}: {key} entry {url:?} must name a user, as mysql://USER@HOST:PORT",
                self.name
            )
        })?;
        if userinfo.contains(':') {
            bail!(
                "source {}: the {key} entry holds a password; put it in password_file or the \
                 environment variable {} instead",
                self.name,
                self.password_env()
            );
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h.to_string(),
                p.parse::<u16>()
                    .with_context(|| format!("source {}: port {p:?} is not a number", self.name))?,
            ),
            None => (hostport.to_string(), 3306),
        };
        if host.is_empty() || userinfo.is_empty() {
            bail!(
                "source {}: {key} entry {url:?} needs mysql://USER@HOST[:PORT]",
                self.name
            );
        }
        Ok(SourceUrl {
            user: userinfo.to_string(),
            host,
            port,
        })
    }

    /// The TLS choice of `ssl_mode` / `ssl_ca`.
    pub fn tls(&self) -> anyhow::Result<dbtrail_binlog::stream::Tls> {
        use dbtrail_binlog::stream::Tls;
        let mode = self.ssl_mode.as_deref().unwrap_or("disabled");
        Ok(match (mode, &self.ssl_ca) {
            ("disabled", None) => Tls::Disabled,
            ("required", None) => Tls::Required,
            ("verify_identity", ca) => Tls::VerifyIdentity(ca.clone()),
            ("disabled" | "required", Some(_)) => bail!(
                "source {}: ssl_ca is only used with ssl_mode = \"verify_identity\"",
                self.name
            ),
            (other, _) => bail!(
                "source {}: ssl_mode {other:?} is not one of disabled, required, verify_identity",
                self.name
            ),
        })
    }

    /// How to connect to each of this source's servers, in the configured order.
    pub fn specs(&self) -> anyhow::Result<Vec<dbtrail_binlog::stream::SourceSpec>> {
        let password = self.password()?;
        let tls = self.tls()?;
        Ok(self
            .parsed_urls()?
            .into_iter()
            .map(|url| dbtrail_binlog::stream::SourceSpec {
                host: url.host,
                port: url.port,
                user: url.user,
                password: password.clone(),
                replica_server_id: self.replica_server_id,
                heartbeat: Duration::from_secs(self.heartbeat_seconds.max(1)),
                tls: tls.clone(),
            })
            .collect())
    }

    /// `backup_interval` parsed.
    pub fn backup_interval(&self) -> anyhow::Result<Option<Duration>> {
        duration(&self.name, "backup_interval", &self.backup_interval)
    }

    /// `verify_interval` parsed.
    pub fn verify_interval(&self) -> anyhow::Result<Option<Duration>> {
        duration(&self.name, "verify_interval", &self.verify_interval)
    }

    /// `backup_from_log_interval` parsed.
    pub fn backup_from_log_interval(&self) -> anyhow::Result<Option<Duration>> {
        duration(
            &self.name,
            "backup_from_log_interval",
            &self.backup_from_log_interval,
        )
    }

    /// `backup_max_age` parsed.
    pub fn backup_max_age(&self) -> anyhow::Result<Option<Duration>> {
        duration(&self.name, "backup_max_age", &self.backup_max_age)
    }

    /// `DBTRAIL_PASSWORD_<NAME>` with the name upper-cased and '-' as '_'.
    pub fn password_env(&self) -> String {
        format!(
            "DBTRAIL_PASSWORD_{}",
            self.name.to_ascii_uppercase().replace('-', "_")
        )
    }

    /// The password from password_file (mode checked) or the environment, if any.
    pub fn password(&self) -> anyhow::Result<Option<String>> {
        if let Some(p) = &self.password_file {
            return read_secret(&self.name, "password_file", p).map(Some);
        }
        Ok(std::env::var(self.password_env()).ok())
    }
}

/// The first line of a secret file, refused when others can read it.
pub fn read_secret(source: &str, key: &str, p: &Path) -> anyhow::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(p)
        .with_context(|| format!("source {source}: reading {key} {}", p.display()))?;
    if meta.permissions().mode() & 0o007 != 0 {
        bail!(
            "source {source}: {key} {} is readable by others; fix: chmod 600 {}",
            p.display(),
            p.display()
        );
    }
    let text = std::fs::read_to_string(p)
        .with_context(|| format!("source {source}: reading {key} {}", p.display()))?;
    Ok(text.lines().next().unwrap_or("").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_unknown_keys_by_name() {
        let err = Config::parse("data_dir = \"/x\"\nbogus = 1\n").unwrap_err();
        assert!(format!("{err:#}").contains("bogus"), "{err:#}");
        let err = Config::parse(
            "data_dir = \"/x\"\n[[sources]]\nname = \"a\"\nurl = \"mysql://u@h:1\"\nreplica_server_id = 5\ncolour = 2\n",
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("colour"), "{err:#}");
    }

    #[test]
    fn rejects_password_in_url_and_public_metrics() {
        let err = Config::parse(
            "data_dir = \"/x\"\n[[sources]]\nname = \"main\"\nurl = \"mysql://u:pw@h:1\"\nreplica_server_id = 5\n",
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("DBTRAIL_PASSWORD_MAIN") && !msg.contains("pw@"),
            "{msg}"
        );
        let err =
            Config::parse("data_dir = \"/x\"\nmetrics_addr = \"0.0.0.0:9477\"\n").unwrap_err();
        assert!(format!("{err:#}").contains("loopback"));
    }

    #[test]
    fn tls_settings_are_checked() {
        let base = "data_dir = \"/x\"\n[[sources]]\nname = \"a\"\nurl = \"mysql://u@h:1\"\nreplica_server_id = 5\n";
        let err = Config::parse(&format!("{base}ssl_mode = \"sometimes\"\n")).unwrap_err();
        assert!(format!("{err:#}").contains("not one of disabled, required, verify_identity"));
        let err = Config::parse(&format!(
            "{base}ssl_mode = \"required\"\nssl_ca = \"/ca.pem\"\n"
        ))
        .unwrap_err();
        assert!(format!("{err:#}").contains("only used with"));
        let c = Config::parse(&format!("{base}ssl_mode = \"verify_identity\"\n")).expect("valid");
        assert_eq!(
            c.sources[0].tls().expect("tls"),
            dbtrail_binlog::stream::Tls::VerifyIdentity(None)
        );
    }

    #[test]
    fn from_log_interval_is_checked() {
        let base = "data_dir = \"/x\"\n[[sources]]\nname = \"a\"\nurl = \"mysql://u@h:1\"\nreplica_server_id = 5\n";
        let c = Config::parse(base).expect("valid");
        assert_eq!(c.sources[0].backup_from_log_interval().expect("ok"), None);
        let c =
            Config::parse(&format!("{base}backup_from_log_interval = \"1h\"\n")).expect("valid");
        assert_eq!(
            c.sources[0].backup_from_log_interval().expect("ok"),
            Some(Duration::from_secs(3600))
        );
        let err =
            Config::parse(&format!("{base}backup_from_log_interval = \"often\"\n")).unwrap_err();
        assert!(
            format!("{err:#}")
                .contains("source a: backup_from_log_interval \"often\" is not a duration"),
            "{err:#}"
        );
        let err =
            Config::parse(&format!("{base}backup_from_log_interval = \"10ms\"\n")).unwrap_err();
        assert!(format!("{err:#}").contains("backup_from_log_interval must be at least 1s"));
    }

    #[test]
    fn backup_split_rows_is_checked() {
        let base = "data_dir = \"/x\"\n[[sources]]\nname = \"a\"\nurl = \"mysql://u@h:1\"\nreplica_server_id = 5\n";
        let c = Config::parse(base).expect("valid");
        assert_eq!(c.sources[0].backup_split_rows, 1_000_000);
        for ok in [0, 1000, 5_000_000] {
            let c = Config::parse(&format!("{base}backup_split_rows = {ok}\n")).expect("valid");
            assert_eq!(c.sources[0].backup_split_rows, ok);
        }
        let err = Config::parse(&format!("{base}backup_split_rows = 10\n")).unwrap_err();
        assert!(
            format!("{err:#}")
                .contains("backup_split_rows must be 0 (never split a table) or at least 1000"),
            "{err:#}"
        );
        let err = Config::parse(&format!("{base}backup_split_rows = -1\n")).unwrap_err();
        assert!(format!("{err:#}").contains("backup_split_rows"), "{err:#}");
    }

    #[test]
    fn url_xor_urls() {
        let base = "data_dir = \"/x\"\n[[sources]]\nname = \"a\"\nreplica_server_id = 5\n";
        let c = Config::parse(&format!(
            "{base}urls = [\"mysql://u@db1:3306\", \"mysql://u@db2\"]\n"
        ))
        .expect("valid");
        let specs = c.sources[0].specs().expect("specs");
        let at: Vec<_> = specs.iter().map(|s| (s.host.as_str(), s.port)).collect();
        assert_eq!(at, [("db1", 3306), ("db2", 3306)]);
        for (extra, wanted) in [
            ("", "source a: no server: set url = "),
            (
                "url = \"mysql://u@h:1\"\nurls = [\"mysql://u@h:2\"]\n",
                "source a: both url and urls are set",
            ),
            ("urls = []\n", "source a: urls is empty"),
            (
                "urls = [\"mysql://u@h:1\", \"mysql://u@h:1\"]\n",
                "source a: urls lists h:1 twice",
            ),
            (
                "urls = [\"mysql://u@h:1\", \"h:2\"]\n",
                "source a: urls entry \"h:2\" must start with mysql://",
            ),
        ] {
            let err = Config::parse(&format!("{base}{extra}")).unwrap_err();
            assert!(format!("{err:#}").contains(wanted), "{err:#}");
        }
        let err = Config::parse(&format!(
            "{base}urls = [\"mysql://u@h:1\", \"mysql://u:pw@h:2\"]\n"
        ))
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("the urls entry holds a password") && !msg.contains("pw@"),
            "{msg}"
        );
    }

    #[test]
    fn parses_a_full_config() {
        let c = Config::parse(
            "data_dir = \"/var/lib/dbtrail\"\nsocket = \"/tmp/s.sock\"\n[[sources]]\nname = \"main\"\nurl = \"mysql://dbtrail@127.0.0.1:3306\"\nreplica_server_id = 4242\n",
        )
        .expect("valid");
        let u = c.sources[0].parsed_url().expect("url");
        assert_eq!(
            (u.user.as_str(), u.host.as_str(), u.port),
            ("dbtrail", "127.0.0.1", 3306)
        );
    }
}
