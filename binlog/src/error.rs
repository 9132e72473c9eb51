//! Errors split by what happens next: definite ones stop the source until an operator acts;
//! transient ones are retried with capped backoff.
use std::fmt;

/// An error talking to or decoding from a source.
#[derive(Debug, thiserror::Error)]
pub enum BinlogError {
    /// A server setting makes exact capture impossible.
    #[error("{setting} is {actual}, dbtrail needs {expected}; fix: {fix}")]
    InvalidSetting {
        /// The variable.
        setting: &'static str,
        /// What we need.
        expected: &'static str,
        /// What the server has.
        actual: String,
        /// The exact statement or option that fixes it.
        fix: String,
    },
    /// The user lacks a privilege.
    #[error("the replication user lacks {privilege}; fix: {fix}")]
    MissingPrivilege {
        /// The missing privilege.
        privilege: &'static str,
        /// The GRANT that fixes it.
        fix: String,
    },
    /// Something in the stream cannot be decoded exactly: capture must stop, not skip.
    #[error("cannot decode {what} at {file}:{pos}: {detail}")]
    Decode {
        /// The event or value.
        what: String,
        /// Binlog file.
        file: String,
        /// Offset of the event.
        pos: u64,
        /// Why.
        detail: String,
    },
    /// The transactions we need were purged from the server.
    #[error("{0}")]
    Purged(String),
    /// The source's configuration is wrong (credentials, names, identity).
    #[error("{0}")]
    Config(String),
    /// A snapshot's lock could not be taken in time (a long query or transaction holds a
    /// table); nothing was locked, and a later try may succeed.
    #[error("{0}")]
    LockWait(String),
    /// None of a source's listed servers is the one primary (all read-only or unreachable,
    /// or several writable, as in the middle of a failover): retry.
    #[error("{0}")]
    NoPrimary(String),
    /// The server lacks transactions the log already holds (it is behind the log, as after
    /// a lossy failover): capturing from it would log a history without them.
    #[error(
        "server {server} lacks transactions dbtrail has already captured: {missing}; it is \
         behind the log (as after a failover that lost transactions), and capture refuses it \
         rather than continue a history that skips them; fix: apply the missing transactions \
         to it (from the binlogs of the server that ran them) or point the source at a server \
         that has them, then restart dbtraild"
    )]
    Behind {
        /// The server, as `host:port (uuid)`.
        server: String,
        /// The GTIDs it lacks.
        missing: String,
    },
    /// Network, timeouts, server restarts: retry.
    #[error("{action}: {source}")]
    Transient {
        /// What was being attempted.
        action: String,
        /// The driver's error.
        source: mysql_async::Error,
    },
    /// The server answered a query in a shape we did not expect.
    #[error("{action}: unexpected answer from the server: {detail}")]
    Protocol {
        /// What was being attempted.
        action: String,
        /// What was wrong.
        detail: String,
    },
}

impl BinlogError {
    /// True when retrying may help.
    pub fn is_transient(&self) -> bool {
        match self {
            BinlogError::Transient { source, .. } => !matches!(
                source,
                mysql_async::Error::Server(e) if is_definite_server_error(e.code)
            ),
            BinlogError::NoPrimary(_) => true,
            _ => false,
        }
    }

    /// Wraps a driver error with what was being attempted.
    /// The MySQL server error code behind this error, if it is one.
    pub fn server_code(&self) -> Option<u16> {
        match self {
            BinlogError::Transient {
                source: mysql_async::Error::Server(s),
                ..
            } => Some(s.code),
            _ => None,
        }
    }

    /// Wraps a driver error met while doing `action`.
    pub fn driver(action: impl fmt::Display) -> impl FnOnce(mysql_async::Error) -> BinlogError {
        move |source| BinlogError::Transient {
            action: action.to_string(),
            source,
        }
    }
}

/// Server errors that retrying cannot fix: access denied, purged binlogs, bad dump requests.
fn is_definite_server_error(code: u16) -> bool {
    matches!(
        code,
        1045 // access denied
        | 1044 | 1142 | 1227 // privileges
        | 1236 // ER_MASTER_FATAL_ERROR_READING_BINLOG (purged / invalid position)
        | 1049 // unknown database
    )
}
