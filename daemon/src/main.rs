//! dbtraild: the dbtrail daemon's executable. Parses the arguments, sets up logging and the
//! runtime, runs [`dbtraild::run`] (or [`dbtraild::check`]) and turns the result into the
//! exit code; everything else is in the library (src/lib.rs).
use clap::Parser;
use std::path::PathBuf;

/// dbtrail daemon: captures MySQL/MariaDB binlogs into a local log for point-in-time recovery.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Configuration file (TOML).
    #[arg(long, short, default_value = "/etc/dbtrail/dbtrail.toml")]
    config: PathBuf,
    /// Check each source's readiness for capture (settings, privileges), print the result
    /// with the fix for each problem, and exit (non-zero if any source is not ready).
    #[arg(long)]
    check: bool,
    /// Log format: text or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Packaging: write the man page (man) or bash, zsh and fish completions (completions)
    /// into DIR, and exit.
    #[arg(long, hide = true, num_args = 2, value_names = ["man|completions", "DIR"])]
    generate: Option<Vec<String>>,
}

/// `dbtraild --generate man|completions DIR` (hidden; for packaging).
fn generate(what: &str, dir: &std::path::Path) -> anyhow::Result<()> {
    use clap::CommandFactory;
    std::fs::create_dir_all(dir)?;
    let cmd = Args::command();
    match what {
        "man" => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd).section("8").render(&mut out)?;
            std::fs::write(dir.join("dbtraild.8"), out)?;
        }
        "completions" => {
            // Without the hidden options, which completions would offer.
            let mut cmd = clap::Command::new("dbtraild")
                .version(env!("CARGO_PKG_VERSION"))
                .args(cmd.get_arguments().filter(|a| !a.is_hide_set()).cloned());
            use clap_complete::Shell;
            for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
                clap_complete::generate_to(shell, &mut cmd, "dbtraild", dir)?;
            }
        }
        _ => anyhow::bail!("--generate takes man or completions, not {what:?}"),
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if let Some([what, dir]) = args.generate.as_deref() {
        return match generate(what, std::path::Path::new(dir)) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("dbtraild: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("DBTRAIL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if args.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dbtraild: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    if args.check {
        return match rt.block_on(dbtraild::check(&args.config)) {
            Ok(true) => std::process::ExitCode::SUCCESS,
            Ok(false) => std::process::ExitCode::FAILURE,
            Err(e) => {
                eprintln!("dbtraild: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    match rt.block_on(dbtraild::run(&args.config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("dbtraild: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
