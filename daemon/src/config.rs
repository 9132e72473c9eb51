//! The daemon's TOML configuration. Unknown keys are rejected with the key named.
use anyhow::{Context, bail};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
    pub url: String,
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
            s.parsed_url()?;
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
    /// Parses `url`.
    pub fn parsed_url(&self) -> anyhow::Result<SourceUrl> {
        let rest = self.url.strip_prefix("mysql://").with_context(|| {
            format!(
                "source {}: url {:?} must start with mysql://",
                self.name, self.url
            )
        })?;
        let rest = rest.split(['/', '?']).next().unwrap_or("");
        let (userinfo, hostport) = rest.rsplit_once('@').with_context(|| {
            format!(
                "source {}: url must name a user, as mysql://USER@HOST:PORT",
                self.name
            )
        })?;
        if userinfo.contains(':') {
            bail!(
                "source {}: the url holds a password; put it in password_file or the \
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
            bail!("source {}: url needs mysql://USER@HOST[:PORT]", self.name);
        }
        Ok(SourceUrl {
            user: userinfo.to_string(),
            host,
            port,
        })
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
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(p).with_context(|| {
                format!(
                    "source {}: reading password_file {}",
                    self.name,
                    p.display()
                )
            })?;
            if meta.permissions().mode() & 0o007 != 0 {
                bail!(
                    "source {}: password_file {} is readable by others; fix: chmod 600 {}",
                    self.name,
                    p.display(),
                    p.display()
                );
            }
            let text = std::fs::read_to_string(p).with_context(|| {
                format!(
                    "source {}: reading password_file {}",
                    self.name,
                    p.display()
                )
            })?;
            return Ok(Some(text.lines().next().unwrap_or("").to_string()));
        }
        Ok(std::env::var(self.password_env()).ok())
    }
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
