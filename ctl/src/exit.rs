//! The exit status of `dbtrailctl`, decided in one place.
use dbtrail_ctl::Error;
use std::process::ExitCode;

/// What the process exits with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// The command did what was asked.
    Ok = 0,
    /// The operation failed or the daemon refused the request (an API error, a backup or
    /// restore that ended failed, `pitr-status` of a failed restore, a local error).
    Failed = 1,
    /// The command line is wrong (clap prints the usage and exits with this itself).
    Usage = 2,
    /// The daemon's socket could not be connected to: not running, wrong path, no permission.
    Unreachable = 3,
}

/// The exit status, as `--help` prints it.
pub const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  success
  1  the operation failed or dbtraild refused the request (including a backup or restore
     that ended failed, and pitr-status of a failed restore)
  2  usage error (bad arguments)
  3  dbtraild could not be reached (no socket, not running, or permission denied)";

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// The failure was already reported on stdout (e.g. the status of a failed restore): exit
/// [`Exit::Failed`] without an error message.
#[derive(Debug)]
pub struct Reported;

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("failure reported above")
    }
}

impl std::error::Error for Reported {}

/// The exit status for a command's error.
pub fn classify(e: &anyhow::Error) -> Exit {
    let unreachable = e
        .chain()
        .any(|c| matches!(c.downcast_ref::<Error>(), Some(Error::Unreachable { .. })));
    if unreachable {
        Exit::Unreachable
    } else {
        Exit::Failed
    }
}

/// What to print on stderr for a command's error, if anything.
pub fn message(e: &anyhow::Error) -> Option<String> {
    (!e.is::<Reported>()).then(|| format!("dbtrailctl: {e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;
    use hyper::StatusCode;

    fn unreachable() -> anyhow::Error {
        Error::Unreachable {
            socket: "/run/x.sock".into(),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        }
        .into()
    }

    #[test]
    fn codes_are_fixed() {
        let codes = [Exit::Ok, Exit::Failed, Exit::Usage, Exit::Unreachable].map(|e| e as u8);
        assert_eq!(codes, [0, 1, 2, 3]);
    }

    #[test]
    fn unreachable_daemon_is_3_even_under_context() {
        assert_eq!(classify(&unreachable()), Exit::Unreachable);
        let wrapped = unreachable().context("listing the sources");
        assert_eq!(classify(&wrapped), Exit::Unreachable);
        assert_eq!(
            message(&unreachable()).unwrap(),
            "dbtrailctl: cannot connect to dbtraild at /run/x.sock (is it running? set --socket \
             or DBTRAIL_SOCKET): entity not found"
        );
    }

    #[test]
    fn refused_requests_are_1() {
        let refused: anyhow::Error = Error::Api {
            status: StatusCode::CONFLICT,
            code: "conflict".into(),
            message: "later transactions changed the same rows".into(),
        }
        .into();
        assert_eq!(classify(&refused), Exit::Failed);
        assert_eq!(
            message(&refused).unwrap(),
            "dbtrailctl: later transactions changed the same rows (conflict)"
        );
        let bare: anyhow::Error = Error::Status {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            body: "oops".into(),
        }
        .into();
        assert_eq!(classify(&bare), Exit::Failed);
        assert_eq!(
            message(&bare).unwrap(),
            "dbtrailctl: dbtraild answered 500 Internal Server Error: oops"
        );
    }

    #[test]
    fn other_failures_are_1() {
        let failed = anyhow::anyhow!("restore pitr-1 failed: table changed");
        assert_eq!(classify(&failed), Exit::Failed);
        let io: anyhow::Error = std::io::Error::from(std::io::ErrorKind::NotFound).into();
        assert_eq!(classify(&io), Exit::Failed);
    }

    #[test]
    fn reported_failures_are_1_and_silent() {
        let e = anyhow::Error::new(Reported);
        assert_eq!(classify(&e), Exit::Failed);
        assert_eq!(message(&e), None);
    }

    #[test]
    fn usage_errors_are_clap_exit_code() {
        for args in [
            &["dbtrailctl", "--bogus"][..],
            &["dbtrailctl"],
            &["dbtrailctl", "pitr"],
            &["dbtrailctl", "events", "--limit", "many"],
            &[
                "dbtrailctl",
                "pitr",
                "--at",
                "2026-01-01 00:00:00",
                "--image",
                "sideways",
            ],
        ] {
            let Err(e) = Cli::try_parse_from(args) else {
                panic!("{args:?} parsed");
            };
            assert_eq!(e.exit_code(), Exit::Usage as i32, "{args:?}");
        }
    }
}
