//! `dispatcher healthcheck` and `worker healthcheck`: one blocking `GET /health` against the
//! process's own health port, so container healthchecks need neither a shell nor curl.
//!
//! The port (and address) is read from the same variables, with the same defaults, as the
//! component itself: `DISPATCHER_ADDR` for the dispatcher, `WORKER_BIND` and `WORKER_PORT` for a
//! worker. An unspecified bind address (`0.0.0.0`, `::`) or a host name is checked on loopback.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::config::{DispatcherConfig, WorkerConfig};

/// Bound of the whole check: connect, request and response.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// The component whose health port is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// The dispatcher (`DISPATCHER_ADDR`).
    Dispatcher,
    /// A worker (`WORKER_BIND`, `WORKER_PORT`).
    Worker,
}

/// If the first command-line argument is `healthcheck`, runs the check of `component` against
/// the environment's configuration and exits: 0 when `/health` answers 200, 1 otherwise (with
/// the reason on stderr). Returns without doing anything otherwise.
pub fn run_if_requested(component: Component) {
    if std::env::args_os()
        .nth(1)
        .is_none_or(|a| a != "healthcheck")
    {
        return;
    }
    let code = match target(component, &crate::config::env_vars()).and_then(|a| check(a, TIMEOUT)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("healthcheck: {e}");
            1
        }
    };
    std::process::exit(code);
}

/// The address `/health` of `component` is checked on, from `vars`.
pub fn target(component: Component, vars: &[(String, String)]) -> Result<SocketAddr, String> {
    match component {
        Component::Dispatcher => {
            let c = DispatcherConfig::from_vars(vars).map_err(|e| e.to_string())?;
            let (host, port) = c
                .dispatcher_addr
                .rsplit_once(':')
                .ok_or_else(|| format!("DISPATCHER_ADDR {:?} has no port", c.dispatcher_addr))?;
            let port: u16 = port
                .parse()
                .map_err(|_| format!("DISPATCHER_ADDR {:?}: bad port", c.dispatcher_addr))?;
            Ok(SocketAddr::new(local_ip(host), port))
        }
        Component::Worker => {
            let c = WorkerConfig::from_vars(vars).map_err(|e| e.to_string())?;
            if c.worker_port == 0 {
                return Err("WORKER_PORT is 0 (a random port): nothing to check".to_owned());
            }
            Ok(SocketAddr::new(local_ip(&c.worker_bind), c.worker_port))
        }
    }
}

/// Where to reach a server bound to `host`: the address itself if it is a specific IP, loopback
/// if it is unspecified or a name.
fn local_ip(host: &str) -> IpAddr {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        Ok(ip) if !ip.is_unspecified() => ip,
        _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
    }
}

/// `GET /health` over HTTP/1.0 on `addr`; `Ok` iff the status is 200 within `timeout`.
pub fn check(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let left = || {
        deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
            .ok_or_else(|| format!("http://{addr}/health: timed out after {timeout:?}"))
    };
    let io = |e: std::io::Error| format!("http://{addr}/health: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, left()?).map_err(io)?;
    stream.set_write_timeout(Some(left()?)).map_err(io)?;
    stream
        .write_all(b"GET /health HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(io)?;
    // The status line is all that matters; read until it is complete or the server closes.
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 1024 {
        stream.set_read_timeout(Some(left()?)).map_err(io)?;
        let n = stream.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or("").trim();
    match line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        _ if line.is_empty() => Err(format!("http://{addr}/health: empty answer")),
        _ => Err(format!("http://{addr}/health: {line}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn serve_once(answer: &'static [u8]) -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf);
                let _ = s.write_all(answer);
            }
        });
        addr
    }

    #[test]
    fn targets_follow_the_component_configuration() {
        let d = target(Component::Dispatcher, &[]).expect("defaults");
        assert_eq!(d, "127.0.0.1:3000".parse().expect("addr"));
        let d = target(
            Component::Dispatcher,
            &vars(&[("DISPATCHER_ADDR", "[::]:8080")]),
        )
        .expect("v6");
        assert_eq!(d, "[::1]:8080".parse().expect("addr"));
        let w = target(
            Component::Worker,
            &vars(&[("WORKER_PORT", "4001"), ("WORKER_BIND", "10.1.2.3")]),
        )
        .expect("worker");
        assert_eq!(w, "10.1.2.3:4001".parse().expect("addr"));
        assert!(target(Component::Worker, &vars(&[("WORKER_PORT", "0")])).is_err());
        assert!(target(Component::Worker, &vars(&[("WORKER_CONCURRENCY", "x")])).is_err());
    }

    #[test]
    fn only_status_200_is_healthy() {
        let ok = serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}");
        check(ok, TIMEOUT).expect("200");
        let bad = serve_once(b"HTTP/1.1 503 Service Unavailable\r\n\r\n");
        let e = check(bad, TIMEOUT).expect_err("503");
        assert!(e.contains("503"), "{e}");
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr")
        };
        assert!(check(closed, TIMEOUT).is_err());
    }

    #[test]
    fn a_silent_server_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let started = Instant::now();
        let e = check(addr, Duration::from_millis(300)).expect_err("no answer");
        assert!(started.elapsed() < Duration::from_secs(2), "{e}");
        drop(l);
    }
}
