//! `generate man|completions DIR` (hidden; for packaging).
use crate::cli::Cli;
use clap::CommandFactory;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[arg(value_parser = ["man", "completions"])]
    what: String,
    dir: PathBuf,
}

/// Writes `dbtrailctl.1` and one page per visible subcommand, or the bash, zsh and fish
/// completions, into the directory.
pub fn run(args: Args) -> anyhow::Result<()> {
    let dir = &args.dir;
    std::fs::create_dir_all(dir)?;
    let cmd = Cli::command();
    if args.what == "man" {
        // dbtrailctl.1, and dbtrailctl-SUBCOMMAND.1 for each (visible) subcommand.
        clap_mangen::generate_to(cmd, dir)?;
    } else {
        // The same command without the hidden subcommands, which completions would offer.
        let mut cmd = clap::Command::new("dbtrailctl")
            .version(env!("CARGO_PKG_VERSION"))
            .args(cmd.get_arguments().cloned())
            .subcommands(cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
        use clap_complete::Shell;
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            clap_complete::generate_to(shell, &mut cmd, "dbtrailctl", dir)?;
        }
    }
    Ok(())
}
