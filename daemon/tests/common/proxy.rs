//! A loopback TCP proxy the test controls, between the daemon and a real test server.
//!
//! It listens on `127.0.0.1:0` and forwards every connection to the server. The test switches
//! its [`Mode`] at any time:
//! - [`Mode::Pass`]: bytes flow both ways.
//! - [`Mode::Cut`]: every connection is cut (both sockets shut down) at a random offset of its
//!   server->client stream, drawn from a seeded generator when the connection first carries
//!   bytes in this mode: one draw in eight falls in its first 2 KiB (greeting, authentication,
//!   the first queries), five in its first 64 KiB (the first events), two anywhere below
//!   `max_bytes` (inside large events; `max_bytes` above the largest transaction lets capture
//!   get past it). The proxy writes exactly up to the offset, then cuts.
//! - [`Mode::Hang`]: nothing is forwarded in either direction and no socket is closed, as a
//!   server that stopped answering; new connections are accepted and stall the same way.
//!   Leaving the mode lets the held bytes go on.
//! - [`Mode::HangAfter`]: the same after the first `bytes` of each connection's
//!   server->client stream (the handshake done, a query sent, its answer held).
//!
//! The seed is printed (`proxy seed N`); `DBTRAIL_TEST_PROXY_SEED=N` replays its draws. Only
//! 127.0.0.1 is ever connected to.
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// What the proxy does with bytes now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything.
    Pass,
    /// Cut each connection at a random server->client offset below `max_bytes`.
    Cut {
        /// The largest offset drawn.
        max_bytes: u64,
    },
    /// Forward nothing, close nothing.
    Hang,
    /// Forward the first `bytes` of each connection's server->client stream, then nothing
    /// (close nothing): a server that stops answering in the middle of a conversation.
    HangAfter {
        /// Bytes a connection gets before it hangs.
        bytes: u64,
    },
}

struct Ctl {
    mode: Mutex<Mode>,
    changed: Condvar,
    rng: Mutex<u64>,
    stop: AtomicBool,
    cuts: AtomicU64,
    connections: AtomicU64,
    open: Mutex<std::collections::HashMap<u64, [TcpStream; 2]>>,
}

/// A running proxy; dropping it closes every connection.
pub struct Proxy {
    /// Where the daemon connects.
    pub addr: SocketAddr,
    /// The generator's seed.
    pub seed: u64,
    ctl: Arc<Ctl>,
}

impl Ctl {
    fn mode(&self) -> Mode {
        *self.mode.lock().expect("mode")
    }

    /// Waits while the mode is [`Mode::Hang`]; returns the mode after.
    fn wait_unhung(&self) -> Mode {
        self.wait_while(|m| m == Mode::Hang)
    }

    /// Waits while `hung` holds for the mode; returns the mode after.
    fn wait_while(&self, hung: impl Fn(Mode) -> bool) -> Mode {
        let mut m = self.mode.lock().expect("mode");
        while hung(*m) && !self.stop.load(Ordering::SeqCst) {
            m = self
                .changed
                .wait_timeout(m, Duration::from_millis(200))
                .expect("mode")
                .0;
        }
        *m
    }

    fn draw(&self, max_bytes: u64) -> u64 {
        let mut r = self.rng.lock().expect("rng");
        let mut next = || {
            *r ^= *r << 13;
            *r ^= *r >> 7;
            *r ^= *r << 17;
            *r
        };
        match next() % 8 {
            0 => next() % 2048,
            1..=5 => next() % (64 << 10).min(max_bytes.max(1)),
            _ => next() % max_bytes.max(1),
        }
    }
}

impl Proxy {
    /// A proxy in [`Mode::Pass`] to `upstream` (a 127.0.0.1 address).
    pub fn start(upstream: SocketAddr) -> Proxy {
        assert!(
            upstream.ip().is_loopback(),
            "the proxy only forwards to loopback"
        );
        let seed = std::env::var("DBTRAIL_TEST_PROXY_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
                    | 1
            });
        eprintln!("proxy seed {seed} (replay with DBTRAIL_TEST_PROXY_SEED={seed})");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let ctl = Arc::new(Ctl {
            mode: Mutex::new(Mode::Pass),
            changed: Condvar::new(),
            rng: Mutex::new(seed),
            stop: AtomicBool::new(false),
            cuts: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            open: Mutex::new(Default::default()),
        });
        let c = ctl.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if c.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let c = c.clone();
                std::thread::spawn(move || serve(c, client, upstream));
            }
        });
        Proxy { addr, seed, ctl }
    }

    /// The proxy of `server`'s URL (host must be 127.0.0.1).
    pub fn of_url(url: &str) -> Proxy {
        let opts = mysql_async::Opts::from_url(url).expect("server url");
        let host = opts.ip_or_hostname();
        let host = if host == "localhost" {
            "127.0.0.1"
        } else {
            host
        };
        let up: SocketAddr = format!("{host}:{}", opts.tcp_port())
            .parse()
            .expect("a 127.0.0.1 server address");
        Proxy::start(up)
    }

    /// Switches the mode.
    pub fn set(&self, mode: Mode) {
        *self.ctl.mode.lock().expect("mode") = mode;
        self.ctl.changed.notify_all();
    }

    /// Connections cut so far.
    pub fn cuts(&self) -> u64 {
        self.ctl.cuts.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.ctl.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.ctl.stop.store(true, Ordering::SeqCst);
        self.set(Mode::Pass);
        for [a, b] in self.ctl.open.lock().expect("open").drain().map(|(_, s)| s) {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect(self.addr);
    }
}

fn serve(ctl: Arc<Ctl>, client: TcpStream, upstream: SocketAddr) {
    let id = ctl.connections.fetch_add(1, Ordering::SeqCst);
    if ctl.wait_unhung() == Mode::Hang {
        return;
    }
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
        client.try_clone(),
        server.try_clone(),
        client.try_clone(),
        server.try_clone(),
    ) else {
        return;
    };
    ctl.open.lock().expect("open").insert(id, [c3, s3]);
    let up = {
        let ctl = ctl.clone();
        std::thread::spawn(move || copy_up(&ctl, c2, s2))
    };
    copy_down(&ctl, server, client);
    let _ = up.join();
    ctl.open.lock().expect("open").remove(&id);
}

/// client -> server: forwarded unless hung.
fn copy_up(ctl: &Ctl, mut client: TcpStream, mut server: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        ctl.wait_unhung();
        if server.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = server.shutdown(Shutdown::Write);
}

/// server -> client: forwarded unless hung; in [`Mode::Cut`] cut at the drawn offset.
fn copy_down(ctl: &Ctl, mut server: TcpStream, mut client: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut sent: u64 = 0;
    let mut cut_at: Option<u64> = None;
    loop {
        let n = match server.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mode = ctl.wait_unhung();
        if let Mode::HangAfter { bytes } = mode
            && sent + n as u64 > bytes
        {
            let keep = bytes.saturating_sub(sent) as usize;
            if client.write_all(&buf[..keep]).is_err() {
                break;
            }
            sent += keep as u64;
            ctl.wait_while(|m| matches!(m, Mode::Hang | Mode::HangAfter { .. }));
            if client.write_all(&buf[keep..n]).is_err() {
                break;
            }
            sent += (n - keep) as u64;
            continue;
        }
        if let Mode::Cut { max_bytes } = mode {
            let at = *cut_at.get_or_insert_with(|| sent + ctl.draw(max_bytes));
            if sent + n as u64 >= at {
                let keep = (at - sent) as usize;
                let _ = client.write_all(&buf[..keep]);
                let _ = client.flush();
                ctl.cuts.fetch_add(1, Ordering::SeqCst);
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
                return;
            }
        } else {
            cut_at = None;
        }
        if client.write_all(&buf[..n]).is_err() {
            break;
        }
        sent += n as u64;
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}
