//! dbtraild: the dbtrail daemon.
//!
//! Startup order (systemd `Type=notify`): validate the config, open every source's log, bind
//! the API socket and the metrics listener, then send `READY=1`; then start capture. SIGTERM
//! or SIGINT: stop accepting, flush every log, exit 0.
mod api;
mod backup;
mod cascades;
mod config;
mod metrics;
mod pitr;
mod source;
mod store;

use anyhow::Context;
use clap::Parser;
use config::Config;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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
        return match rt.block_on(check(&args.config)) {
            Ok(true) => std::process::ExitCode::SUCCESS,
            Ok(false) => std::process::ExitCode::FAILURE,
            Err(e) => {
                eprintln!("dbtraild: {e:#}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("dbtraild: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `--check`: connects to every source and runs the startup checks.
async fn check(path: &std::path::Path) -> anyhow::Result<bool> {
    let cfg = Config::load(path)?;
    let mut all_ok = true;
    for s in &cfg.sources {
        let spec = s.spec()?;
        let result = async {
            let mut conn = dbtrail_binlog::stream::connect(&spec).await?;
            dbtrail_binlog::checks::check_server(&mut conn).await
        }
        .await;
        match result {
            Ok(info) => {
                println!(
                    "{}: ready ({} {}, gtid_mode {}, server {})",
                    s.name,
                    match info.flavor {
                        dbtrail_binlog::checks::Flavor::Mysql => "MySQL",
                        dbtrail_binlog::checks::Flavor::Mariadb => "MariaDB",
                    },
                    info.version,
                    if info.gtid_mode { "ON" } else { "OFF" },
                    info.server_uuid
                );
                for w in &info.warnings {
                    println!("  warning: {w}");
                }
            }
            Err(e) => {
                all_ok = false;
                println!("{}: NOT READY: {e}", s.name);
            }
        }
    }
    Ok(all_ok)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let cfg = Config::load(&args.config)?;
    for s in &cfg.sources {
        // Fail before READY=1 on unreadable or world-readable password files.
        s.password()?;
    }
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data_dir {}", cfg.data_dir.display()))?;
    let metrics = Arc::new(metrics::Metrics::new());
    let mut sources = Vec::new();
    for sc in &cfg.sources {
        let dir = cfg.data_dir.join("sources").join(&sc.name).join("log");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let log = dbtrail_storage::Log::open(&dir)
            .with_context(|| format!("opening the log of source {}", sc.name))?;
        let store = store::BaselineStore::open(&cfg, sc)?;
        let tmp = cfg.data_dir.join("sources").join(&sc.name).join("tmp");
        // Temporaries of backups that a previous process did not finish.
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
        }
        sources.push(Arc::new(source::Source {
            config: sc.clone(),
            log: Arc::new(log),
            shared: Arc::new(Mutex::new(source::Shared::default())),
            backups: Arc::new(backup::Backups::new(store, tmp.clone())),
            restores: Arc::new(pitr::Restores::open(
                cfg.data_dir.join("sources").join(&sc.name).join("pitr"),
                tmp,
                cfg.data_dir.join("restores").join(&sc.name),
            )?),
        }));
    }
    let cancel = CancellationToken::new();
    let state = Arc::new(api::AppState {
        sources: sources.clone(),
        metrics: metrics.clone(),
        cancel: cancel.clone(),
    });
    let listener = api::bind_socket(&cfg.socket)?;
    let metrics_listener = if cfg.metrics_addr.is_empty() {
        None
    } else {
        Some(
            tokio::net::TcpListener::bind(&cfg.metrics_addr)
                .await
                .with_context(|| format!("binding metrics_addr {}", cfg.metrics_addr))?,
        )
    };
    let tracker = TaskTracker::new();
    tracker.spawn(api::serve(listener, state.clone(), cancel.clone()));
    if let Some(l) = metrics_listener {
        tracker.spawn(api::serve_metrics(l, state.clone(), cancel.clone()));
    }
    for s in &sources {
        tracker.spawn(source::run(s.clone(), metrics.clone(), cancel.clone()));
        let (s2, c2) = (s.clone(), cancel.clone());
        tracker.spawn(async move {
            tokio::select! {
                r = backup::reconcile(&s2, &s2.backups.store) => if let Err(e) = r {
                    tracing::warn!(source = %s2.config.name, error = %format!("{e:#}"),
                        "checking the baseline store against the catalog");
                },
                () = c2.cancelled() => {}
            }
        });
        tracker.spawn(backup::schedule(
            s.clone(),
            s.backups.clone(),
            metrics.clone(),
            cancel.clone(),
        ));
    }
    notify("READY=1");
    tracing::info!(socket = %cfg.socket.display(), sources = sources.len(), "dbtraild ready");
    let watchdog = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let Some(period) = std::env::var("WATCHDOG_USEC")
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
            else {
                return;
            };
            let mut tick = tokio::time::interval(std::time::Duration::from_micros(period / 2));
            loop {
                tokio::select! {
                    _ = tick.tick() => notify("WATCHDOG=1"),
                    () = cancel.cancelled() => return,
                }
            }
        })
    };
    shutdown_signal().await;
    notify("STOPPING=1");
    tracing::info!("shutting down: flushing logs");
    cancel.cancel();
    tracker.close();
    tracker.wait().await;
    watchdog.abort();
    let _ = std::fs::remove_file(&cfg.socket);
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = tokio::signal::ctrl_c() => {},
    }
}

/// sd_notify(3): one datagram to $NOTIFY_SOCKET, if set.
fn notify(msg: &str) {
    let Ok(path) = std::env::var("NOTIFY_SOCKET") else {
        return;
    };
    let sock = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(_) => return,
    };
    if let Some(abstract_name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        if let Ok(addr) = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name) {
            let _ = sock.send_to_addr(msg.as_bytes(), &addr);
        }
    } else {
        let _ = sock.send_to(msg.as_bytes(), &path);
    }
}
