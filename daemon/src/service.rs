//! The process: startup in the order systemd `Type=notify` expects, the global tasks (API,
//! metrics), each source's tasks ([`SourceTasks`]), signals and shutdown.
//!
//! Startup order: validate the config, open every source's log, bind the API socket and the
//! metrics listener, then send `READY=1`; then start capture. SIGTERM or SIGINT: stop
//! accepting, flush every log, exit 0.
use crate::config::Config;
use crate::metrics::Metrics;
use crate::tasks::SourceTasks;
use crate::{api, exporter};
use anyhow::Context;
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// `dbtraild --check`: connects to every source, runs the startup checks and prints the
/// result with the fix for each problem; false if any source is not ready.
pub async fn check(path: &Path) -> anyhow::Result<bool> {
    let cfg = Config::load(path)?;
    let mut all_ok = true;
    for s in &cfg.sources {
        let specs = s.specs()?;
        let choice = s.baseline_lock()?;
        let result = async {
            let (mut conn, i) = dbtrail_binlog::failover::connect_primary(&specs).await?;
            if specs.len() > 1 {
                println!(
                    "{}: the primary of the listed servers is {}:{}",
                    s.name, specs[i].host, specs[i].port
                );
            }
            let info = dbtrail_binlog::checks::check_server(&mut conn).await?;
            let method = dbtrail_binlog::start::describe(
                &mut conn,
                &info,
                choice,
                s.backup_databases.as_deref(),
            )
            .await;
            Ok::<_, dbtrail_binlog::BinlogError>((info, method))
        }
        .await;
        match result {
            Ok((info, method)) => {
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
                match method {
                    Ok(m) => println!("  baselines: baseline_lock = {m}"),
                    Err(e) => println!("  baselines: cannot tell which method ({e})"),
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

/// Runs the daemon with the configuration file `path` until SIGTERM or SIGINT.
pub async fn run(path: &Path) -> anyhow::Result<()> {
    let cfg = Config::load(path)?;
    for s in &cfg.sources {
        // Fail before READY=1 on unreadable or world-readable password files.
        s.password()?;
    }
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data_dir {}", cfg.data_dir.display()))?;
    let metrics = Arc::new(Metrics::new());
    let mut sources = Vec::new();
    for sc in &cfg.sources {
        sources.push(SourceTasks::open(&cfg, sc, metrics.clone())?);
    }
    let cancel = CancellationToken::new();
    let handles: Vec<_> = sources.iter().map(|s| s.source.clone()).collect();
    let state = Arc::new(api::AppState {
        sources: sources.clone(),
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
    tracker.spawn(api::serve(listener, state, cancel.clone()));
    if let Some(l) = metrics_listener {
        tracker.spawn(exporter::serve(l, handles, metrics.clone(), cancel.clone()));
    }
    for s in &sources {
        s.spawn(&tracker, &cancel);
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
