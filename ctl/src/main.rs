//! dbtrailctl: talk to dbtraild over its unix socket.
//!
//! `main` parses the command line (clap exits 2 on a usage error), runs the command with stdout
//! as its output, and maps its error to the exit status ([`exit`]).
mod cli;
mod commands;
mod exit;

use clap::Parser;
use cli::{Cli, Cmd};
use commands::{backups, coverage, events, generate, lookback, pitr, status, undo, verify};
use dbtrail_ctl::Client;
use std::io::Write;
use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut stdout = std::io::stdout();
    let result = match dispatch(cli, &mut stdout).await {
        Ok(()) => stdout.flush().map_err(Into::into),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => exit::Exit::Ok.into(),
        Err(e) => {
            let _ = stdout.flush();
            if let Some(m) = exit::message(&e) {
                eprintln!("{m}");
            }
            exit::classify(&e).into()
        }
    }
}

async fn dispatch(cli: Cli, out: &mut dyn Write) -> anyhow::Result<()> {
    let client = Client::new(&cli.socket);
    match cli.cmd {
        Cmd::Status(a) => status::run(&client, a, out).await,
        Cmd::Events(a) => events::run(&client, a, out).await,
        Cmd::Backup(a) => backups::run_backup(&client, a, out).await,
        Cmd::Baseline { cmd } => backups::run_baseline(&client, cmd, out).await,
        Cmd::Backups(a) => backups::run_list(&client, a, out).await,
        Cmd::Pitr(a) => pitr::run(&client, a, out).await,
        Cmd::PitrStatus(a) => pitr::run_status(&client, a, out).await,
        Cmd::Coverage(a) => coverage::run(&client, a, out).await,
        Cmd::Undo(a) => undo::run(&client, a, out).await,
        Cmd::Show(a) => lookback::show(&client, a, out).await,
        Cmd::Diff(a) => lookback::diff(&client, a, out).await,
        Cmd::History(a) => lookback::history(&client, a, out).await,
        Cmd::Verify(a) => verify::run(&client, a, out).await,
        Cmd::Generate(a) => generate::run(a),
    }
}
