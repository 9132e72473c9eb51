//! The replication stream: registering as a replica, reading events, and turning them into
//! [`CaptureItem`]s at transaction granularity.
//!
//! # Resumption
//! Capture resumes from a [`Position`] that always lies at a transaction boundary (it is
//! taken just after a commit event). With GTIDs (MySQL `gtid_mode=ON`, MariaDB) the server is
//! asked for everything not in the captured set, so a resume can never skip or repeat a
//! transaction, even on another server after failover (docs/correctness.md, C16). Without
//! GTIDs the resume is by file:pos on the same server; the server identity is stored with the
//! position.
//!
//! # Transactions and time
//! A transaction starts at a GTID (or anonymous GTID) event and ends at XID, a `COMMIT` query,
//! or, for DDL, at its single query. Its commit time is the GTID event's
//! `immediate_commit_timestamp` (µs, MySQL 8.0.1+), else the header time of the event that
//! ends it (MariaDB; whole seconds). The header time of row events is the statement START
//! time and is never used (docs/correctness.md, C1).
//!
//! An XA transaction ends at its XA_PREPARE event as [`CaptureItem::XaPrepared`] (its GTID
//! is captured there, as a commit's would be); the later `XA COMMIT`/`XA ROLLBACK`, a
//! transaction of its own, is [`CaptureItem::XaResolved`] (docs/correctness.md, C13).
//!
//! # Never skip
//! Every event type is either handled or rejected: an undecodable event, a CRC mismatch, an
//! INCIDENT, MariaDB compressed events, or a compressed MySQL transaction whose payload does
//! not arrive all end the stream with a definite [`BinlogError::Decode`].
use crate::checks::{Flavor, ServerInfo};
use crate::decode::schema_from_tme;
use crate::rows::{ColumnCodec, RowReader};
use crate::{BinlogError, checks};
use dbtrail_core::gtid::{MariadbGtidSet, MysqlGtidSet, Tag};
use dbtrail_core::{Gtid, GtidSet, Position, RowChange, TableRef, TableSchema, Xid};
use futures_util::StreamExt;
use mysql_async::binlog::events::{Event, TableMapEvent};
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn, GnoInterval, OptsBuilder, Sid};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How to reach a source.
#[derive(Clone)]
pub struct SourceSpec {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// User.
    pub user: String,
    /// Password, if any.
    pub password: Option<String>,
    /// server_id to register with.
    pub replica_server_id: u32,
    /// Heartbeat period asked of the server.
    pub heartbeat: Duration,
    /// TLS to the server.
    pub tls: Tls,
}

/// TLS to the source, as MySQL's `--ssl-mode` names the choices.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Tls {
    /// Plain TCP.
    #[default]
    Disabled,
    /// Encrypted; the server's certificate is not checked (protects against eavesdropping
    /// only).
    Required,
    /// Encrypted; the certificate must chain to this CA (or the system roots when None) and
    /// name the host dbtrail connects to.
    VerifyIdentity(Option<std::path::PathBuf>),
}

impl std::fmt::Debug for SourceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        write!(f, "{}@{}:{}", self.user, self.host, self.port)
    }
}

/// Whether a connection error is about TLS (a certificate or handshake problem that
/// retrying cannot fix).
fn is_tls_failure(e: &mysql_async::Error) -> bool {
    let m = e.to_string().to_ascii_lowercase();
    matches!(e, mysql_async::Error::Io(_))
        && (m.contains("certificate")
            || m.contains("tls")
            || m.contains("ssl")
            || m.contains("handshake"))
}

/// Opens a connection with the options capture needs (1 GiB packets for large events).
pub async fn connect(spec: &SourceSpec) -> Result<Conn, BinlogError> {
    let ssl = match &spec.tls {
        Tls::Disabled => None,
        Tls::Required => Some(
            mysql_async::SslOpts::default()
                .with_danger_accept_invalid_certs(true)
                .with_danger_skip_domain_validation(true),
        ),
        Tls::VerifyIdentity(ca) => Some(match ca {
            Some(ca) => mysql_async::SslOpts::default()
                .with_root_certs(vec![ca.clone().into()])
                .with_disable_built_in_roots(true),
            None => mysql_async::SslOpts::default(),
        }),
    };
    let opts = OptsBuilder::default()
        .ssl_opts(ssl)
        .ip_or_hostname(spec.host.clone())
        .tcp_port(spec.port)
        .user(Some(spec.user.clone()))
        .pass(spec.password.clone())
        .prefer_socket(false)
        .max_allowed_packet(Some(1 << 30))
        .tcp_keepalive(Some(Duration::from_secs(10)))
        .wait_timeout(Some(28_800));
    let what = format!("connecting to {}@{}:{}", spec.user, spec.host, spec.port);
    match tokio::time::timeout(Duration::from_secs(10), Conn::new(opts)).await {
        Err(_) => Err(BinlogError::Protocol {
            action: what,
            detail: "no answer within 10 s (host down, firewall, or wrong port?)".into(),
        }),
        Ok(Err(mysql_async::Error::Server(e))) if e.code == 1045 && spec.password.is_none() => {
            Err(BinlogError::Config(format!(
                "{what}: access denied and no password is configured: set password_file in \
                 the source's config or the environment variable named in the README \
                 (DBTRAIL_PASSWORD_<NAME>)"
            )))
        }
        Ok(Err(mysql_async::Error::Server(e))) if e.code == 1045 => {
            Err(BinlogError::Config(format!(
                "{what}: access denied ({}); check the user and password",
                e.message
            )))
        }
        Ok(Err(e)) if spec.tls != Tls::Disabled && is_tls_failure(&e) => {
            Err(BinlogError::Config(format!(
                "{what}: TLS failed ({e}); with ssl_mode = \"verify_identity\" the server's \
                 certificate must chain to ssl_ca (or a system root) and name the url's host in \
                 its subjectAltName (MySQL's auto-generated certificates name none: install \
                 your own, or use ssl_mode = \"required\", which encrypts without checking)"
            )))
        }
        Ok(r) => r.map_err(BinlogError::driver(what)),
    }
}

/// The server's current position (for a log that starts now).
pub async fn current_position(conn: &mut Conn, info: &ServerInfo) -> Result<Position, BinlogError> {
    let (file, pos) = binlog_status(conn, info).await?;
    let gtid_set = executed_set(info)?;
    Ok(Position {
        gtid_set,
        file,
        pos,
        server_uuid: info.server_uuid.clone(),
    })
}

/// The GTID set the server has executed, in our type.
pub fn executed_set(info: &ServerInfo) -> Result<GtidSet, BinlogError> {
    let bad = |e: dbtrail_core::gtid::GtidError| BinlogError::Protocol {
        action: "parsing the server's executed GTID set".into(),
        detail: e.to_string(),
    };
    Ok(match info.flavor {
        Flavor::Mysql => GtidSet::Mysql(info.gtid_executed.parse::<MysqlGtidSet>().map_err(bad)?),
        Flavor::Mariadb => {
            GtidSet::Mariadb(info.gtid_executed.parse::<MariadbGtidSet>().map_err(bad)?)
        }
    })
}

/// `SHOW BINARY LOG STATUS` (MySQL 8.2+), falling back to `SHOW MASTER STATUS`.
pub async fn binlog_status(
    conn: &mut Conn,
    info: &ServerInfo,
) -> Result<(String, u64), BinlogError> {
    let queries: &[&str] = match info.flavor {
        Flavor::Mariadb => &["SHOW MASTER STATUS"],
        Flavor::Mysql => &["SHOW BINARY LOG STATUS", "SHOW MASTER STATUS"],
    };
    let mut last = None;
    for q in queries {
        match conn.query_first::<mysql_async::Row, _>(*q).await {
            Ok(Some(row)) => {
                let file: Option<String> = row.get(0);
                let pos: Option<u64> = row.get(1);
                if let (Some(f), Some(p)) = (file, pos) {
                    return Ok((f, p));
                }
                last = Some(BinlogError::Protocol {
                    action: format!("reading {q}"),
                    detail: "no File/Position".into(),
                });
            }
            Ok(None) => {
                last = Some(BinlogError::Protocol {
                    action: format!("reading {q}"),
                    detail: "empty result: is log_bin on?".into(),
                })
            }
            Err(mysql_async::Error::Server(e)) if e.code == 1064 => continue,
            Err(e) => return Err(BinlogError::driver(format!("reading {q}"))(e)),
        }
    }
    Err(last.unwrap_or(BinlogError::Protocol {
        action: "reading the binlog position".into(),
        detail: "no statement worked".into(),
    }))
}

/// `SHOW BINARY LOGS`: file names, oldest first.
pub async fn binary_logs(conn: &mut Conn) -> Result<Vec<String>, BinlogError> {
    let rows: Vec<mysql_async::Row> = conn
        .query("SHOW BINARY LOGS")
        .await
        .map_err(BinlogError::driver("reading SHOW BINARY LOGS"))?;
    Ok(rows
        .into_iter()
        .filter_map(|r| r.get::<String, _>(0))
        .collect())
}

/// Transactions the log will never have, found when (re)starting.
#[derive(Clone, Debug, PartialEq)]
pub struct GapFound {
    /// What is missing (GTID set or binlog range).
    pub missing: String,
    /// Why.
    pub reason: String,
}

/// Where to ask the server to start, after comparing the checkpoint with what the server
/// still has (docs/correctness.md, C15). Returns the (possibly advanced) start position and
/// the gap.
pub async fn plan_start(
    conn: &mut Conn,
    info: &ServerInfo,
    from: &Position,
    no_gap_fill: bool,
) -> Result<(Position, Option<GapFound>), BinlogError> {
    let mut start = from.clone();
    match (&from.gtid_set, info.flavor) {
        (GtidSet::Mysql(captured), Flavor::Mysql) if info.gtid_mode => {
            let purged: MysqlGtidSet =
                info.gtid_purged
                    .parse()
                    .map_err(|e| BinlogError::Protocol {
                        action: "parsing @@gtid_purged".into(),
                        detail: format!("{e}"),
                    })?;
            let missing = purged.subtract(captured);
            if missing.is_empty() {
                return Ok((start, None));
            }
            if no_gap_fill {
                return Err(BinlogError::Purged(format!(
                    "the source purged transactions dbtrail has not captured: {}; restore them \
                     from a backup of the binlogs, or set no_gap_fill = false to record a gap \
                     and continue",
                    missing.to_compact_string()
                )));
            }
            start.gtid_set = GtidSet::Mysql(captured.union(&purged));
            Ok((
                start,
                Some(GapFound {
                    missing: missing.to_compact_string(),
                    reason: "binary logs purged on the source before capture read them".into(),
                }),
            ))
        }
        (GtidSet::Mariadb(captured), Flavor::Mariadb) if !captured.is_empty() => {
            let logs = binary_logs(conn).await?;
            let Some(oldest) = logs.first() else {
                return Ok((start, None));
            };
            // The GTID state at the start of the oldest binlog: everything before it is gone.
            let state: Option<String> = conn
                .exec_first("SELECT BINLOG_GTID_POS(?, 4)", (oldest.as_str(),))
                .await
                .map_err(BinlogError::driver(
                    "reading BINLOG_GTID_POS of the oldest binlog",
                ))?;
            let purged: MariadbGtidSet =
                state
                    .unwrap_or_default()
                    .parse()
                    .map_err(|e| BinlogError::Protocol {
                        action: format!("parsing BINLOG_GTID_POS('{oldest}', 4)"),
                        detail: format!("{e}"),
                    })?;
            let mut missing = Vec::new();
            let mut merged = captured.clone();
            for (domain, server, seq) in purged.iter() {
                let have = captured.domain_seq(domain).unwrap_or(0);
                if seq > have {
                    missing.push(format!("domain {domain}: sequence {}-{seq}", have + 1));
                    let _ = merged.insert(&Gtid::Mariadb {
                        domain,
                        server,
                        seq,
                    });
                }
            }
            if missing.is_empty() {
                return Ok((start, None));
            }
            let missing = missing.join(", ");
            if no_gap_fill {
                return Err(BinlogError::Purged(format!(
                    "the source purged transactions dbtrail has not captured ({missing}); \
                     restore them from a backup of the binlogs, or set no_gap_fill = false to \
                     record a gap and continue"
                )));
            }
            start.gtid_set = GtidSet::Mariadb(merged);
            Ok((
                start,
                Some(GapFound {
                    missing,
                    reason: "binary logs purged on the source before capture read them".into(),
                }),
            ))
        }
        _ if uses_file_position(info, from) => {
            let logs = binary_logs(conn).await?;
            if from.file.is_empty() || logs.iter().any(|f| f == &from.file) {
                return Ok((start, None));
            }
            let Some(oldest) = logs.first() else {
                return Err(BinlogError::Protocol {
                    action: "reading SHOW BINARY LOGS".into(),
                    detail: "no binary logs".into(),
                });
            };
            let missing = format!("{}:{} up to {}:4", from.file, from.pos, oldest);
            if no_gap_fill {
                return Err(BinlogError::Purged(format!(
                    "binlog {} was purged on the source before capture read it (missing \
                     {missing}); set no_gap_fill = false to record a gap and continue",
                    from.file
                )));
            }
            start.file = oldest.clone();
            start.pos = 4;
            Ok((
                start,
                Some(GapFound {
                    missing,
                    reason: "binary logs purged on the source before capture read them".into(),
                }),
            ))
        }
        _ => Ok((start, None)),
    }
}

fn uses_file_position(info: &ServerInfo, from: &Position) -> bool {
    match info.flavor {
        Flavor::Mysql => !info.gtid_mode,
        Flavor::Mariadb => from.gtid_set.is_empty(),
    }
}

/// What capture hands to the log writer, in order.
#[derive(Clone, Debug)]
pub enum CaptureItem {
    /// A transaction starts.
    Begin {
        /// Its GTID.
        gtid: Option<Gtid>,
        /// Commit time (µs) as far as known now.
        commit_us: i64,
    },
    /// One row change.
    Row {
        /// Schema the images were decoded with.
        schema: Arc<TableSchema>,
        /// The change.
        change: RowChange,
    },
    /// The transaction committed.
    Commit {
        /// Position just after it.
        position: Position,
        /// Final commit time (µs), when only known at the end.
        commit_us: Option<i64>,
        /// Statement text for DDL.
        ddl: Option<String>,
    },
    /// The open transaction was rolled back or abandoned.
    Rollback,
    /// A table's coverage is no longer exact.
    Taint {
        /// The table.
        table: TableRef,
        /// Why.
        reason: String,
    },
    /// The server is alive at this position (heartbeat); `server_time` in seconds when known.
    Heartbeat {
        /// Seconds since the epoch on the server, if the event carried it.
        server_time: Option<u32>,
    },
    /// The open transaction ended with `XA PREPARE`: its rows count only once `XA COMMIT`
    /// resolves it (docs/correctness.md, C13). Its GTID is in `position`'s set, as for a
    /// commit.
    XaPrepared {
        /// The XA transaction.
        xid: Xid,
        /// Position just after the XA_PREPARE event.
        position: Position,
        /// Final commit time (µs) of the prepare, when only known at the end.
        commit_us: Option<i64>,
    },
    /// The open transaction is an `XA COMMIT` (`commit`) or `XA ROLLBACK` of a transaction
    /// prepared earlier: the prepared rows count at this transaction (its GTID and commit
    /// time), or are dropped.
    XaResolved {
        /// The XA transaction.
        xid: Xid,
        /// COMMIT (true) or ROLLBACK.
        commit: bool,
        /// Position just after the statement.
        position: Position,
        /// Final commit time (µs), when only known at the end.
        commit_us: Option<i64>,
    },
}

struct TableEntry {
    raw: Vec<u8>,
    schema: Arc<TableSchema>,
    codecs: Arc<Vec<ColumnCodec>>,
}

/// A running replication stream.
pub struct Capture {
    stream: BinlogStream,
    flavor: Flavor,
    server_uuid: String,
    file: String,
    gtids: GtidSet,
    tables: HashMap<u64, TableEntry>,
    txn: Option<OpenTxn>,
    heartbeat: Duration,
    /// Inner events of a compressed transaction still to come (None: not inside one).
    in_payload: Option<u64>,
    expect_inner: bool,
    /// A MariaDB GTID event with FL_STANDALONE: the next query is the whole transaction.
    standalone: bool,
    /// A second connection for information_schema lookups (generated/invisible columns,
    /// foreign keys, and names, members and keys when binlog_row_metadata is not FULL).
    meta_conn: Option<Conn>,
}

struct OpenTxn {
    gtid: Option<Gtid>,
    has_rows: bool,
    tables: Vec<TableRef>,
    /// Opened by a `BEGIN` (MySQL) or a MariaDB GTID without FL_STANDALONE: it ends at its
    /// XID or COMMIT, even when a DDL statement is inside it (CREATE TABLE ... SELECT).
    began: bool,
    /// A DDL statement logged inside it (CREATE TABLE ... SELECT), for its commit.
    ddl: Option<String>,
}

impl Capture {
    /// Registers as a replica on `conn` and starts streaming from `from`.
    pub async fn start(
        mut conn: Conn,
        info: &ServerInfo,
        from: &Position,
        spec: &SourceSpec,
    ) -> Result<Capture, BinlogError> {
        let hb_ns = spec.heartbeat.as_nanos().max(1_000_000_000);
        conn.query_drop(format!("SET @master_heartbeat_period = {hb_ns}"))
            .await
            .map_err(BinlogError::driver("setting the heartbeat period"))?;
        let mut req = BinlogStreamRequest::new(spec.replica_server_id);
        let file_bytes = from.file.clone().into_bytes();
        match (&from.gtid_set, info.flavor) {
            (GtidSet::Mysql(set), Flavor::Mysql) if info.gtid_mode => {
                let mut sids: Vec<Sid<'static>> = Vec::new();
                for h in set.to_half_open() {
                    let sid = match &h.tag {
                        None => Sid::new(h.uuid).with_intervals(
                            h.intervals
                                .iter()
                                .map(|(a, b)| GnoInterval::new(*a, *b))
                                .collect(),
                        ),
                        Some(tag) => {
                            // The driver does not export its tag type: go through its parser,
                            // which takes the inclusive text form.
                            let text = h
                                .intervals
                                .iter()
                                .map(|(a, b)| format!("{a}-{}", b - 1))
                                .collect::<Vec<_>>()
                                .join(":");
                            let uuid = uuid::Uuid::from_bytes(h.uuid);
                            format!("{uuid}:{}:{text}", tag.as_str())
                                .parse::<Sid<'static>>()
                                .map_err(|e| BinlogError::Protocol {
                                    action: "building the GTID dump request".into(),
                                    detail: e.to_string(),
                                })?
                        }
                    };
                    sids.push(sid);
                }
                req = req.with_gtid().with_gtid_set(sids);
            }
            (GtidSet::Mariadb(set), Flavor::Mariadb) if !set.is_empty() => {
                conn.query_drop("SET @mariadb_slave_capability = 4")
                    .await
                    .map_err(BinlogError::driver("setting @mariadb_slave_capability"))?;
                conn.query_drop(format!("SET @slave_connect_state = '{set}'"))
                    .await
                    .map_err(BinlogError::driver("setting @slave_connect_state"))?;
                conn.query_drop("SET @slave_gtid_strict_mode = 1")
                    .await
                    .map_err(BinlogError::driver("setting @slave_gtid_strict_mode"))?;
            }
            _ => {
                if info.flavor == Flavor::Mariadb {
                    conn.query_drop("SET @mariadb_slave_capability = 4")
                        .await
                        .map_err(BinlogError::driver("setting @mariadb_slave_capability"))?;
                }
                req = req.with_filename(&file_bytes).with_pos(from.pos.max(4));
            }
        }
        let stream = conn
            .get_binlog_stream(req)
            .await
            .map_err(BinlogError::driver("requesting the binlog stream"))?;
        let meta_conn = Some(connect(spec).await?);
        Ok(Capture {
            stream,
            flavor: info.flavor,
            server_uuid: info.server_uuid.clone(),
            file: from.file.clone(),
            gtids: from.gtid_set.clone(),
            tables: HashMap::new(),
            txn: None,
            heartbeat: spec.heartbeat,
            in_payload: None,
            expect_inner: false,
            standalone: false,
            meta_conn,
        })
    }

    /// The GTID set including every committed transaction seen so far.
    pub fn gtid_set(&self) -> &GtidSet {
        &self.gtids
    }

    /// Reads the next event and appends what it means to `out`. A read that sees nothing
    /// for three heartbeat periods plus 2 s is a (transient) timeout, and so is handling the
    /// event when that takes as long (its metadata queries on the second connection wait for
    /// a server that stopped answering). After an error the capture is dropped, never
    /// resumed: the stream is re-requested from the writer's position.
    pub async fn next(&mut self, out: &mut Vec<CaptureItem>) -> Result<(), BinlogError> {
        let wait = self.heartbeat * 3 + Duration::from_secs(2);
        let ev = match tokio::time::timeout(wait, self.stream.next()).await {
            Err(_) => {
                return Err(BinlogError::Protocol {
                    action: "reading the binlog stream".into(),
                    detail: format!(
                        "no event or heartbeat for {}s; reconnecting",
                        wait.as_secs()
                    ),
                });
            }
            Ok(None) => {
                return Err(BinlogError::Protocol {
                    action: "reading the binlog stream".into(),
                    detail: "the server ended the stream".into(),
                });
            }
            Ok(Some(Err(mysql_async::Error::Server(e))))
                if e.code == 1236 && e.message.contains("same server_uuid/server_id") =>
            {
                return Err(BinlogError::Config(format!(
                    "the source dropped this replica because another replica uses the same \
                     server_id: set a unique replica_server_id ({})",
                    e.message
                )));
            }
            Ok(Some(Err(e))) => return Err(BinlogError::driver("reading the binlog stream")(e)),
            Ok(Some(Ok(ev))) => ev,
        };
        match tokio::time::timeout(wait, self.handle(ev, out)).await {
            Ok(r) => r,
            Err(_) => Err(BinlogError::Protocol {
                action: "reading table metadata for the binlog stream".into(),
                detail: format!(
                    "no answer within {}s (the server or the network hangs); reconnecting",
                    wait.as_secs()
                ),
            }),
        }
    }

    fn decode_err(&self, ev: &Event, what: &str, detail: impl Into<String>) -> BinlogError {
        BinlogError::Decode {
            what: what.to_string(),
            file: self.file.clone(),
            pos: u64::from(ev.header().log_pos())
                .saturating_sub(u64::from(ev.header().event_size())),
            detail: detail.into(),
        }
    }

    fn verify_crc(&self, ev: &Event) -> Result<(), BinlogError> {
        let footer = ev.footer();
        if !footer.get_checksum_enabled() {
            return Ok(());
        }
        if let (Ok(Some(alg)), Some(c)) = (footer.get_checksum_alg(), ev.checksum())
            && ev.calc_checksum(alg) != u32::from_le_bytes(c)
        {
            return Err(self.decode_err(
                ev,
                "event",
                "CRC32 checksum mismatch: the event is corrupt",
            ));
        }
        Ok(())
    }

    fn position_after(&self, ev: &Event) -> Position {
        Position {
            gtid_set: self.gtids.clone(),
            file: self.file.clone(),
            pos: u64::from(ev.header().log_pos()),
            server_uuid: self.server_uuid.clone(),
        }
    }

    async fn handle(&mut self, ev: Event, out: &mut Vec<CaptureItem>) -> Result<(), BinlogError> {
        let t = ev.header().event_type_raw();
        let inner = !ev.footer().get_checksum_enabled() && self.in_payload.is_some();
        if self.expect_inner && !inner {
            return Err(self.decode_err(
                &ev,
                "compressed transaction",
                "the TRANSACTION_PAYLOAD_EVENT's events did not arrive (payload unreadable)",
            ));
        }
        self.expect_inner = false;
        if !inner {
            self.in_payload = None;
            // The fake ROTATE at stream start is parsed before the FDE, so its CRC (if any)
            // is not split off; skip verification for it (type 4 with log_pos 0).
            if !(t == 4 && ev.header().log_pos() == 0) {
                self.verify_crc(&ev)?;
            }
        }
        match t {
            // FORMAT_DESCRIPTION, PREVIOUS_GTIDS, ROWS_QUERY, INTVAR, RAND, USER_VAR: nothing to
            // record (the last three only matter for statement-based replay).
            15 | 35 | 29 | 5 | 13 | 14 | 3 | 28 => Ok(()),
            // ROTATE
            4 => {
                let r = ev
                    .read_event::<mysql_async::binlog::events::RotateEvent<'_>>()
                    .map_err(|e| self.decode_err(&ev, "ROTATE", e.to_string()))?;
                let mut name = r.name_raw().to_vec();
                // MariaDB's fake rotate may carry the 4 CRC bytes at the end of the name.
                if name.len() > 4 && name[name.len() - 4..].iter().any(|b| !b.is_ascii_graphic()) {
                    name.truncate(name.len() - 4);
                }
                self.file = String::from_utf8_lossy(&name).into_owned();
                Ok(())
            }
            // HEARTBEAT, HEARTBEAT_V2
            27 | 41 => {
                out.push(CaptureItem::Heartbeat { server_time: None });
                Ok(())
            }
            // GTID, ANONYMOUS_GTID, GTID_TAGGED
            33 | 34 | 42 => self.on_gtid(ev, out),
            // QUERY
            2 => self.on_query(ev, out),
            // XID
            16 => {
                let commit_us = match self.flavor {
                    Flavor::Mariadb => Some(i64::from(ev.header().timestamp()) * 1_000_000),
                    Flavor::Mysql => None,
                };
                self.commit(&ev, commit_us, None, out)
            }
            // TABLE_MAP
            19 => self.on_table_map(&ev).await,
            // WRITE/UPDATE/DELETE ROWS v1 and v2
            23..=25 | 30..=32 => self.on_rows(&ev, t, out),
            // PARTIAL_UPDATE_ROWS
            39 => Err(self.decode_err(
                &ev,
                "PARTIAL_UPDATE_ROWS_EVENT",
                "partial JSON updates cannot be applied exactly; SET PERSIST \
                 binlog_row_value_options='' on the source",
            )),
            // TRANSACTION_PAYLOAD
            40 => {
                let p = ev
                    .read_event::<mysql_async::binlog::events::TransactionPayloadEvent<'_>>()
                    .map_err(|e| {
                        self.decode_err(&ev, "TRANSACTION_PAYLOAD_EVENT", e.to_string())
                    })?;
                if p.uncompressed_size() == 0 {
                    return Err(self.decode_err(&ev, "TRANSACTION_PAYLOAD_EVENT", "empty payload"));
                }
                // Inner events carry no positions; the transaction ends where the payload does.
                self.in_payload = Some(u64::from(ev.header().log_pos()));
                self.expect_inner = true;
                Ok(())
            }
            // INCIDENT
            26 => Err(self.decode_err(
                &ev,
                "INCIDENT_EVENT",
                "the source recorded an incident: its binlog may lack changes; take a new \
                 baseline after checking the source",
            )),
            // XA_PREPARE: the prepared transaction ends here; its rows count at XA COMMIT.
            38 => self.on_xa_prepare(&ev, out),
            // MariaDB: ANNOTATE_ROWS, BINLOG_CHECKPOINT, GTID_LIST, START_ENCRYPTION
            160 | 161 | 163 | 164 if self.flavor == Flavor::Mariadb => Ok(()),
            // MariaDB GTID
            162 if self.flavor == Flavor::Mariadb => self.on_mariadb_gtid(ev, out),
            165..=171 if self.flavor == Flavor::Mariadb => Err(self.decode_err(
                &ev,
                "MariaDB compressed event",
                "compressed binlog events are not decoded; SET GLOBAL log_bin_compress=OFF on \
                 the source (events already written compressed need a new baseline)",
            )),
            other => Err(self.decode_err(
                &ev,
                &format!("event type {other}"),
                "unknown event type: dbtrail does not skip what it cannot decode",
            )),
        }
    }

    fn begin(&mut self, gtid: Option<Gtid>, commit_us: i64, out: &mut Vec<CaptureItem>) {
        if self.txn.is_some() {
            // A transaction without its commit event (e.g. the stream restarted inside it).
            out.push(CaptureItem::Rollback);
        }
        self.txn = Some(OpenTxn {
            gtid: gtid.clone(),
            has_rows: false,
            tables: Vec::new(),
            began: false,
            ddl: None,
        });
        out.push(CaptureItem::Begin { gtid, commit_us });
    }

    fn on_gtid(&mut self, ev: Event, out: &mut Vec<CaptureItem>) -> Result<(), BinlogError> {
        let t = ev.header().event_type_raw();
        let g = if t == 34 {
            ev.read_event::<mysql_async::binlog::events::AnonymousGtidEvent>()
                .map(|a| a.0)
        } else {
            ev.read_event::<mysql_async::binlog::events::GtidEvent>()
        }
        .map_err(|e| self.decode_err(&ev, "GTID event", e.to_string()))?;
        let gtid = if t == 34 {
            None
        } else {
            let tag = match g.tag() {
                Some(tag) => Some(
                    Tag::new(&tag.to_string())
                        .map_err(|e| self.decode_err(&ev, "GTID tag", e.to_string()))?,
                ),
                None => None,
            };
            Some(Gtid::Mysql {
                uuid: uuid::Uuid::from_bytes(g.sid()),
                tag,
                seq: g.gno(),
            })
        };
        let ts = g.immediate_commit_timestamp();
        let commit_us = if ts > 0 {
            ts as i64
        } else {
            i64::from(ev.header().timestamp()) * 1_000_000
        };
        self.begin(gtid, commit_us, out);
        Ok(())
    }

    fn on_mariadb_gtid(
        &mut self,
        ev: Event,
        out: &mut Vec<CaptureItem>,
    ) -> Result<(), BinlogError> {
        let d = ev.data();
        if d.len() < 13 {
            return Err(self.decode_err(&ev, "MariaDB GTID event", "shorter than 13 bytes"));
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&d[..8]);
        let mut dom = [0u8; 4];
        dom.copy_from_slice(&d[8..12]);
        let flags = d[12];
        let gtid = Gtid::Mariadb {
            domain: u32::from_le_bytes(dom),
            server: ev.header().server_id(),
            seq: u64::from_le_bytes(seq),
        };
        self.standalone = flags & 1 != 0;
        if flags & (64 | 128) != 0 {
            // XA on MariaDB (FL_PREPARED_XA, FL_COMPLETED_XA): the transaction ends at its
            // XA_PREPARE event, or is the `XA COMMIT`/`XA ROLLBACK` query, as on MySQL.
            self.standalone = false;
        }
        self.begin(
            Some(gtid),
            i64::from(ev.header().timestamp()) * 1_000_000,
            out,
        );
        if let Some(t) = self.txn.as_mut() {
            t.began = !self.standalone;
        }
        Ok(())
    }

    fn on_query(&mut self, ev: Event, out: &mut Vec<CaptureItem>) -> Result<(), BinlogError> {
        let q = ev
            .read_event::<mysql_async::binlog::events::QueryEvent<'_>>()
            .map_err(|e| self.decode_err(&ev, "QUERY event", e.to_string()))?;
        let text = q.query().trim().to_string();
        let schema = q.schema().to_string();
        // Classified after leading comments (`/* app */ UPDATE ...` is DML, not DDL).
        let upper: String = strip_leading_comments(&text)
            .chars()
            .take(24)
            .collect::<String>()
            .to_ascii_uppercase();
        let mariadb_ts = match self.flavor {
            Flavor::Mariadb => Some(i64::from(ev.header().timestamp()) * 1_000_000),
            Flavor::Mysql => None,
        };
        if upper == "BEGIN" || upper.starts_with("XA START") || upper.starts_with("XA END") {
            if self.txn.is_none() {
                self.begin(None, i64::from(ev.header().timestamp()) * 1_000_000, out);
            }
            if let Some(t) = self.txn.as_mut() {
                t.began = true;
            }
            return Ok(());
        }
        if upper == "COMMIT" {
            return self.commit(&ev, mariadb_ts, None, out);
        }
        // Savepoints inside a transaction (ORMs' nested transactions). A `ROLLBACK TO` that
        // only undid transactional changes removed their rows from the binlog already and is
        // not logged; a logged one means non-transactional changes were kept while the
        // transactional ones since the savepoint were undone, which the rows cannot tell apart.
        if self.txn.is_some()
            && (upper.starts_with("SAVEPOINT") || upper.starts_with("RELEASE SAVEPOINT"))
        {
            return Ok(());
        }
        if self.txn.is_some() && upper.starts_with("ROLLBACK TO") {
            let tables = self
                .txn
                .as_ref()
                .map(|t| t.tables.clone())
                .unwrap_or_default();
            for table in tables {
                out.push(CaptureItem::Taint {
                    table,
                    reason: format!(
                        "{} was logged (a transaction mixing transactional and \
                         non-transactional tables): which of its rows were undone is unknown",
                        text.chars().take(80).collect::<String>()
                    ),
                });
            }
            return Ok(());
        }
        if upper.starts_with("ROLLBACK") && !upper.starts_with("ROLLBACK TO") {
            self.txn = None;
            out.push(CaptureItem::Rollback);
            return Ok(());
        }
        if upper.starts_with("XA COMMIT") || upper.starts_with("XA ROLLBACK") {
            // Resolves a transaction prepared earlier (docs/correctness.md, C13).
            let Some(r) = crate::xa::parse_resolution(strip_leading_comments(&text)) else {
                return Err(self.decode_err(
                    &ev,
                    "XA statement",
                    format!(
                        "cannot read the xid of `{}`",
                        text.chars().take(200).collect::<String>()
                    ),
                ));
            };
            if self.txn.is_none() {
                self.begin(None, i64::from(ev.header().timestamp()) * 1_000_000, out);
            }
            self.standalone = false;
            if r.one_phase {
                // Not written by the servers (see crate::xa), but exact if it were: the rows
                // before it in this transaction commit here.
                return self.commit(&ev, mariadb_ts, None, out);
            }
            let (_, position) = self.end_txn(&ev)?;
            out.push(CaptureItem::XaResolved {
                xid: r.xid,
                commit: r.commit,
                position,
                commit_us: mariadb_ts,
            });
            return Ok(());
        }
        let dml = ["INSERT", "UPDATE", "DELETE", "REPLACE", "LOAD DATA"]
            .iter()
            .any(|k| upper.starts_with(k));
        if dml {
            // Statement-format DML on a ROW server (a session override):
            // docs/correctness.md, C17.
            let table = statement_table(strip_leading_comments(&text), &schema);
            out.push(CaptureItem::Taint {
                table: table.clone(),
                reason: format!(
                    "statement-format DML seen (a session set binlog_format != ROW): {}",
                    text.chars().take(120).collect::<String>()
                ),
            });
            if let Some(txn) = self.txn.as_mut() {
                txn.tables.push(table);
            }
            if self.standalone {
                self.standalone = false;
                return self.commit(&ev, mariadb_ts, None, out);
            }
            return Ok(());
        }
        // DDL (or another statement logged as a query): a transaction of its own, unless it
        // is inside a transaction that began (CREATE TABLE ... SELECT: the statement, then the
        // rows it selected, then the XID), which it then marks.
        let ddl = if schema.is_empty() {
            text
        } else {
            format!("USE `{}`; {}", schema.replace('`', "``"), text)
        };
        if let Some(t) = self.txn.as_mut().filter(|t| t.began) {
            t.ddl = Some(match t.ddl.take() {
                Some(first) => format!("{first}\n{ddl}"),
                None => ddl,
            });
            return Ok(());
        }
        if self.txn.is_none() {
            self.begin(None, i64::from(ev.header().timestamp()) * 1_000_000, out);
        }
        self.standalone = false;
        self.commit(&ev, mariadb_ts, Some(ddl), out)
    }

    fn commit(
        &mut self,
        ev: &Event,
        commit_us: Option<i64>,
        ddl: Option<String>,
        out: &mut Vec<CaptureItem>,
    ) -> Result<(), BinlogError> {
        let ddl = ddl.or_else(|| self.txn.as_mut().and_then(|t| t.ddl.take()));
        let (_, position) = self.end_txn(ev)?;
        out.push(CaptureItem::Commit {
            position,
            commit_us,
            ddl,
        });
        Ok(())
    }

    /// Ends the open transaction at `ev`: its GTID joins the captured set; returns it with
    /// the position just after it.
    fn end_txn(&mut self, ev: &Event) -> Result<(OpenTxn, Position), BinlogError> {
        let Some(txn) = self.txn.take() else {
            return Err(self.decode_err(ev, "commit", "commit without a transaction start"));
        };
        if let Some(g) = &txn.gtid {
            self.gtids
                .insert(g)
                .map_err(|e| self.decode_err(ev, "GTID", e.to_string()))?;
        }
        let mut position = self.position_after(ev);
        if let Some(end) = self.in_payload {
            position.pos = end;
        }
        Ok((txn, position))
    }

    /// XA_PREPARE: a one-phase `XA COMMIT` commits here; otherwise the transaction is
    /// prepared, and its rows wait for `XA COMMIT` (docs/correctness.md, C13).
    fn on_xa_prepare(&mut self, ev: &Event, out: &mut Vec<CaptureItem>) -> Result<(), BinlogError> {
        let (one_phase, xid) = crate::xa::decode_prepare(ev.data())
            .map_err(|d| self.decode_err(ev, "XA_PREPARE event", d))?;
        let commit_us = match self.flavor {
            Flavor::Mariadb => Some(i64::from(ev.header().timestamp()) * 1_000_000),
            Flavor::Mysql => None,
        };
        if one_phase {
            return self.commit(ev, commit_us, None, out);
        }
        let (_, position) = self.end_txn(ev)?;
        out.push(CaptureItem::XaPrepared {
            xid,
            position,
            commit_us,
        });
        Ok(())
    }

    async fn on_table_map(&mut self, ev: &Event) -> Result<(), BinlogError> {
        let tme = ev
            .read_event::<TableMapEvent<'_>>()
            .map_err(|e| self.decode_err(ev, "TABLE_MAP event", e.to_string()))?;
        let id = tme.table_id();
        // The table id is in the first bytes; the rest describes the table.
        let raw = ev.data().get(6..).unwrap_or_default().to_vec();
        if self.tables.get(&id).is_some_and(|e| e.raw == raw) {
            return Ok(());
        }
        let what = format!("TABLE_MAP of {}.{}", tme.database_name(), tme.table_name());
        let (mut schema, codecs) =
            schema_from_tme(&tme).map_err(|d| self.decode_err(ev, &what, d))?;
        let lacks_metadata = schema.columns.iter().any(|c| c.name.starts_with('@'));
        let (current, fks) = match self.meta_conn.as_mut() {
            Some(conn) => (
                crate::infoschema::table_columns(conn, &schema.table).await?,
                crate::infoschema::foreign_keys(conn, &schema.table).await?,
            ),
            None => (Vec::new(), Vec::new()),
        };
        if let Err(d) = crate::infoschema::merge(&mut schema, &current, &fks, lacks_metadata) {
            return Err(self.decode_err(ev, &what, d));
        }
        self.tables.insert(
            id,
            TableEntry {
                raw,
                schema: Arc::new(schema),
                codecs: Arc::new(codecs),
            },
        );
        Ok(())
    }

    fn on_rows(
        &mut self,
        ev: &Event,
        t: u8,
        out: &mut Vec<CaptureItem>,
    ) -> Result<(), BinlogError> {
        let data = ev
            .read_data()
            .map_err(|e| self.decode_err(ev, "ROWS event", e.to_string()))?;
        let Some(mysql_async::binlog::events::EventData::RowsEvent(rows)) = data else {
            return Err(self.decode_err(ev, "ROWS event", "not a rows event"));
        };
        let id = rows.table_id();
        let Some(entry) = self.tables.get(&id) else {
            return Err(self.decode_err(
                ev,
                "ROWS event",
                format!("no TABLE_MAP seen for table id {id}"),
            ));
        };
        let schema = entry.schema.clone();
        let codecs = entry.codecs.clone();
        let n = rows.num_columns() as usize;
        if n != schema.columns.len() {
            return Err(self.decode_err(
                ev,
                "ROWS event",
                "column count differs from its TABLE_MAP",
            ));
        }
        let before: Option<Vec<bool>> = rows
            .columns_before_image()
            .map(|b| (0..n).map(|i| b.get(i).is_some_and(|x| *x)).collect());
        let after: Option<Vec<bool>> = rows
            .columns_after_image()
            .map(|b| (0..n).map(|i| b.get(i).is_some_and(|x| *x)).collect());
        let mut r = RowReader::new(rows.rows_data());
        let what = || format!("row of {}", schema.table);
        let mut lossy = false;
        while !r.is_empty() {
            let change = match t {
                23 | 30 => {
                    let a = r
                        .read_row(&schema.columns, &codecs, after.as_deref().unwrap_or(&[]))
                        .map_err(|d| self.decode_err(ev, &what(), d))?;
                    lossy |= a.lossy;
                    RowChange::Insert { after: a.row }
                }
                25 | 32 => {
                    let b = r
                        .read_row(&schema.columns, &codecs, before.as_deref().unwrap_or(&[]))
                        .map_err(|d| self.decode_err(ev, &what(), d))?;
                    lossy |= b.lossy;
                    RowChange::Delete { before: b.row }
                }
                _ => {
                    let b = r
                        .read_row(&schema.columns, &codecs, before.as_deref().unwrap_or(&[]))
                        .map_err(|d| self.decode_err(ev, &what(), d))?;
                    let a = r
                        .read_row(&schema.columns, &codecs, after.as_deref().unwrap_or(&[]))
                        .map_err(|d| self.decode_err(ev, &what(), d))?;
                    lossy |= a.lossy || b.lossy;
                    RowChange::Update {
                        before: b.row,
                        after: a.row,
                    }
                }
            };
            out.push(CaptureItem::Row {
                schema: schema.clone(),
                change,
            });
        }
        if let Some(txn) = self.txn.as_mut() {
            txn.has_rows = true;
            if !txn.tables.contains(&schema.table) {
                txn.tables.push(schema.table.clone());
            }
        } else {
            return Err(self.decode_err(ev, "ROWS event", "row event outside a transaction"));
        }
        if lossy {
            out.push(CaptureItem::Taint {
                table: schema.table.clone(),
                reason: "JSON values holding DECIMAL or date/time scalars are kept as JSON \
                         numbers/strings"
                    .into(),
            });
        }
        Ok(())
    }

    /// Re-runs the startup checks on a new connection (used after reconnects).
    pub async fn recheck(conn: &mut Conn) -> Result<ServerInfo, BinlogError> {
        checks::check_server(conn).await
    }
}

/// `text` without leading `/* ... */` (not `/*!` executable ones), `-- ...` and `# ...`
/// comments and the whitespace around them.
pub(crate) fn strip_leading_comments(text: &str) -> &str {
    let mut t = text.trim_start();
    loop {
        if t.starts_with("/*") && !t.starts_with("/*!") {
            match t.find("*/") {
                Some(e) => t = t[e + 2..].trim_start(),
                None => return t,
            }
        } else if t.starts_with("-- ") || t.starts_with('#') {
            match t.find('\n') {
                Some(e) => t = t[e + 1..].trim_start(),
                None => return "",
            }
        } else {
            return t;
        }
    }
}

/// The table a statement-format DML statement writes, for tainting: a table only when the
/// statement has the plain single-table form (`INSERT|REPLACE [modifiers] [INTO] t (...|VALUES|
/// SET|SELECT`, `UPDATE [modifiers] t SET`, `DELETE [modifiers] FROM t [WHERE|ORDER|LIMIT]`,
/// `LOAD DATA ... INTO TABLE t`); anything else (multi-table UPDATE/DELETE, comments, names this
/// reading cannot split) is the wildcard `*.*`, which taints every table, because the rows
/// it changed are unknown (docs/correctness.md, C17). Triggers fired by a statement are not
/// visible in its text; they are named in C17 as a limit.
pub(crate) fn statement_table(text: &str, default_db: &str) -> TableRef {
    let any = TableRef::new("*", "*");
    let words: Vec<&str> = text.split_whitespace().collect();
    let upper: Vec<String> = words.iter().map(|w| w.to_ascii_uppercase()).collect();
    let at = |i: usize| upper.get(i).map(String::as_str).unwrap_or("");
    let skip = |mut i: usize, mods: &[&str]| {
        while mods.contains(&at(i)) {
            i += 1;
        }
        i
    };
    // (index of the table name, what may follow it)
    let (i, next): (usize, &[&str]) = match at(0) {
        "INSERT" | "REPLACE" => {
            let mut i = skip(1, &["LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE"]);
            if at(i) == "INTO" {
                i += 1;
            }
            (i, &["VALUES", "VALUE", "SET", "SELECT", "PARTITION", "("])
        }
        "UPDATE" => (skip(1, &["LOW_PRIORITY", "IGNORE"]), &["SET"]),
        "DELETE" => {
            let i = skip(1, &["LOW_PRIORITY", "QUICK", "IGNORE"]);
            if at(i) != "FROM" {
                return any;
            }
            (i + 1, &["WHERE", "ORDER", "LIMIT", "PARTITION", ""])
        }
        "LOAD" => match upper.iter().position(|w| w == "TABLE") {
            Some(p) if upper.iter().any(|w| w == "INTO") => (
                p + 1,
                &[
                    "CHARACTER",
                    "FIELDS",
                    "COLUMNS",
                    "LINES",
                    "IGNORE",
                    "(",
                    "SET",
                    "PARTITION",
                    "",
                ],
            ),
            _ => return any,
        },
        _ => return any,
    };
    let Some(raw) = words.get(i) else {
        return any;
    };
    // `t(a, b)` glues the column list to the name.
    let (name, glued) = match raw.split_once('(') {
        Some((n, _)) => (n, true),
        None => (*raw, false),
    };
    let follows = if glued { "(" } else { at(i + 1) };
    let follows_ok = next.iter().any(|n| {
        if *n == "(" {
            follows.starts_with('(')
        } else {
            follows == *n
        }
    });
    let plain = |p: &str| {
        let p = p
            .strip_prefix('`')
            .and_then(|p| p.strip_suffix('`'))
            .unwrap_or(p);
        (!p.is_empty() && !p.contains(['`', ',', '(', ')', ';', '*'])).then(|| p.to_string())
    };
    if !follows_ok || name.contains(',') {
        return any;
    }
    let parts: Vec<&str> = if name.contains("`.`") || !name.contains('`') {
        name.splitn(2, '.').collect()
    } else {
        vec![name]
    };
    match parts.as_slice() {
        [t] => match plain(t) {
            Some(t) => TableRef::new(default_db, t),
            None => any,
        },
        [d, t] => match (plain(d), plain(t)) {
            (Some(d), Some(t)) => TableRef::new(d, t),
            _ => any,
        },
        _ => any,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_tables() {
        assert_eq!(
            statement_table("INSERT INTO `t1`(a) VALUES (1)", "db"),
            TableRef::new("db", "t1")
        );
        assert_eq!(
            statement_table("delete from other.t where 1", "db"),
            TableRef::new("other", "t")
        );
        assert_eq!(
            statement_table("UPDATE t SET a=1", "db"),
            TableRef::new("db", "t")
        );
        assert_eq!(
            statement_table("INSERT IGNORE INTO `d`.`t` VALUES (1)", "db"),
            TableRef::new("d", "t")
        );
        assert_eq!(
            statement_table("DELETE FROM t", "db"),
            TableRef::new("db", "t")
        );
        assert_eq!(
            statement_table(
                strip_leading_comments("/* app */ -- x\n UPDATE t SET a=1"),
                "db"
            ),
            TableRef::new("db", "t")
        );
        assert_eq!(
            strip_leading_comments("/*!40101 SET x */"),
            "/*!40101 SET x */"
        );
        let any = TableRef::new("*", "*");
        // Multi-table forms, comments and what cannot be read write unknown tables.
        for s in [
            "UPDATE a, b SET a.x = b.x WHERE a.id = b.id",
            "UPDATE a JOIN b ON a.id = b.id SET a.x = 1",
            "DELETE a, b FROM a JOIN b ON a.id = b.id",
            "DELETE FROM a USING a JOIN b",
            "DELETE FROM a, b USING a JOIN b",
            "UPDATE /* hint */ t SET a = 1",
            "UPDATE `odd name` SET a = 1",
            "INSERT INTO t SELECT * FROM u",
        ] {
            let got = statement_table(s, "db");
            if s.starts_with("INSERT INTO t SELECT") {
                assert_eq!(got, TableRef::new("db", "t"), "{s}");
            } else {
                assert_eq!(got, any, "{s}");
            }
        }
    }
}
