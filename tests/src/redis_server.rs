//! Real `redis-server` processes for tests: one per test that needs to stop or restart it, or
//! one shared by every test of a process; each dies with the test process.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use switchyard_harness::{Log, Proc, Spawn};

use crate::process::INHERITED;
use crate::{POLL_INTERVAL, free_port, unique_name};

/// Environment variable naming an existing Redis that [`shared_redis`] uses instead of starting
/// one.
pub const REDIS_URL_ENV: &str = "SWITCHYARD_TEST_REDIS_URL";

/// How long a Redis server may take to answer PING after start.
const REDIS_START_DEADLINE: Duration = Duration::from_secs(10);

/// A `redis-server` on a free loopback port with its own data dir; killed and its data dir
/// removed on drop. Also stands for an external server when [`REDIS_URL_ENV`] is set.
#[derive(Debug)]
pub struct RedisServer {
    url: String,
    local: Option<LocalRedis>,
}

#[derive(Debug)]
struct LocalRedis {
    port: u16,
    dir: PathBuf,
    aof: bool,
    /// The server, if started; its watchdog removes `dir` if the test process dies first,
    /// because a static server is never dropped and a test killed by a timeout runs no
    /// destructor.
    running: Option<Proc>,
}

impl RedisServer {
    /// Starts a server without persistence (`--save "" --appendonly no`).
    pub fn start() -> Self {
        Self::start_local(false)
    }

    /// Starts a server with AOF (`appendfsync always`), so [`stop`](Self::stop) then
    /// [`restart`](Self::restart) keeps the data.
    pub fn start_with_aof() -> Self {
        Self::start_local(true)
    }

    fn start_local(aof: bool) -> Self {
        let dir = std::env::temp_dir().join(unique_name("redis"));
        fs::create_dir_all(&dir).expect("cannot create the Redis data dir under the temp dir");
        // A free port can be taken by someone else before redis binds it: try a few.
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port();
            let mut local = LocalRedis {
                port,
                dir: dir.clone(),
                aof,
                running: None,
            };
            match local.launch() {
                Ok(()) => {
                    return Self {
                        url: format!("redis://127.0.0.1:{port}"),
                        local: Some(local),
                    };
                }
                Err(e) => last_error = e,
            }
        }
        let _ = fs::remove_dir_all(&dir);
        panic!("redis-server did not start: {last_error}");
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The port, for a server this fixture started.
    pub fn port(&self) -> Option<u16> {
        self.local.as_ref().map(|l| l.port)
    }

    /// Its data dir, for a server this fixture started.
    pub fn data_dir(&self) -> Option<&Path> {
        self.local.as_ref().map(|l| l.dir.as_path())
    }

    /// Kills the server (SIGKILL, like a crash) and keeps its data dir.
    pub fn stop(&mut self) {
        self.local_mut("stop").kill();
    }

    /// Starts the server again on the same port and data dir and waits until it answers PING.
    pub fn restart(&mut self) {
        let local = self.local_mut("restart");
        local.kill();
        if let Err(e) = local.launch() {
            panic!("redis-server did not restart on port {}: {e}", local.port);
        }
    }

    /// Whether the server process is alive (always true for an external server).
    pub fn is_running(&mut self) -> bool {
        match &self.local {
            None => true,
            Some(l) => l.is_running(),
        }
    }

    fn local_mut(&mut self, what: &str) -> &mut LocalRedis {
        self.local
            .as_mut()
            .unwrap_or_else(|| panic!("cannot {what} an external Redis ({REDIS_URL_ENV})"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(local) = &mut self.local {
            local.kill();
            let _ = fs::remove_dir_all(&local.dir);
        }
    }
}

impl LocalRedis {
    fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    fn launch(&mut self) -> Result<(), String> {
        let port = self.port.to_string();
        let dir = self.dir.to_string_lossy().into_owned();
        let mut args: Vec<&str> = vec![
            "--port",
            &port,
            "--bind",
            "127.0.0.1",
            "--protected-mode",
            "no",
            "--daemonize",
            "no",
            "--dir",
            &dir,
            "--save",
            "",
        ];
        if self.aof {
            args.extend(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            args.extend(["--appendonly", "no"]);
        }
        let proc = Spawn::new(
            "redis-server",
            Path::new("redis-server"),
            Log::Kept(self.log_path()),
        )
        .args(args)
        .inherit(INHERITED)
        .remove_if_orphaned(&self.dir)
        .start()
        .map_err(|e| e.to_string())?;
        self.running = Some(proc);

        let deadline = Instant::now() + REDIS_START_DEADLINE;
        loop {
            if ping(self.port) {
                return Ok(());
            }
            if !self.is_running() {
                let log = fs::read_to_string(self.log_path()).unwrap_or_default();
                self.kill();
                return Err(format!("redis-server exited at start; its log:\n{log}"));
            }
            if Instant::now() >= deadline {
                let log = fs::read_to_string(self.log_path()).unwrap_or_default();
                self.kill();
                return Err(format!(
                    "no PONG on port {} within {REDIS_START_DEADLINE:?}; its log:\n{log}",
                    self.port
                ));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    fn is_running(&self) -> bool {
        self.running.as_ref().is_some_and(|p| p.is_running())
    }

    /// Kills the server's group and reaps it, so the port is free once this returns.
    fn kill(&mut self) {
        self.running = None;
    }
}

/// Whether a Redis on 127.0.0.1:`port` answers PING with PONG (not LOADING or an error).
fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(n) => buf[..n].starts_with(b"+PONG"),
        Err(_) => false,
    }
}

/// The Redis shared by every test of this process: the server at [`REDIS_URL_ENV`] if set, else
/// one started on first use. It dies with the test process (its wrapper watches our pid).
pub fn shared_redis() -> &'static RedisServer {
    static SHARED: OnceLock<RedisServer> = OnceLock::new();
    SHARED.get_or_init(|| match std::env::var(REDIS_URL_ENV) {
        Ok(url) if !url.is_empty() => RedisServer { url, local: None },
        _ => RedisServer::start(),
    })
}
