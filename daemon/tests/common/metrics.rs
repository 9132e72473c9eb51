//! A daemon with `/metrics` on a free loopback port, and reading its series.
use super::Daemon;
use dbtrail_testkit::Server;

/// [`Daemon::start`] with `metrics_addr` on a free loopback port; returns that port.
pub fn start_with_metrics(server: Server, extra: &str) -> (Daemon, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut daemon = Daemon::start(server, extra);
    daemon.kill9();
    let cfg = std::fs::read_to_string(&daemon.config).expect("cfg");
    std::fs::write(
        &daemon.config,
        cfg.replace(
            "metrics_addr = \"\"",
            &format!("metrics_addr = \"127.0.0.1:{port}\""),
        ),
    )
    .expect("cfg");
    daemon.spawn();
    (daemon, port)
}

/// The `/metrics` text.
pub async fn scrape(port: u16) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("metrics port");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut body = String::new();
    s.read_to_string(&mut body).await.expect("read");
    body
}

/// The value of series `name{source="src"}`, if present.
pub fn value(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find(|l| l.starts_with(&format!("{name}{{source=\"src\"}}")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
