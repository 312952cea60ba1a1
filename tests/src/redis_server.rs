//! Real `redis-server` processes for tests: one per test that needs to stop or restart it, or
//! one shared by every test of a process; each dies with the test process.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use crate::{POLL_INTERVAL, free_port, unique_name};

/// Environment variable naming an existing Redis that [`shared_redis`] uses instead of starting
/// one.
pub const REDIS_URL_ENV: &str = "SWITCHYARD_TEST_REDIS_URL";

/// How long a Redis server may take to answer PING after start.
const REDIS_START_DEADLINE: Duration = Duration::from_secs(10);

/// Shell wrapper of every `redis-server`: runs it in the background and kills it (and removes its
/// data dir) when the test process is gone, because a static server is never dropped and a test
/// process killed by a timeout runs no destructor. `$1` parent pid, `$2` data dir, `$3` log file,
/// the rest is the redis-server command line. Prints the server's pid first.
const REDIS_WRAPPER: &str = r#"
parent=$1; dir=$2; log=$3; shift 3
"$@" >>"$log" 2>&1 </dev/null &
rpid=$!
echo "$rpid"
(
  while kill -0 "$parent" 2>/dev/null; do sleep 0.5; done
  kill -9 "$rpid" 2>/dev/null
) >/dev/null 2>&1 </dev/null &
wpid=$!
wait "$rpid"
code=$?
kill "$wpid" 2>/dev/null
kill -0 "$parent" 2>/dev/null || rm -rf "$dir"
exit "$code"
"#;

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
    /// The wrapper shell (our child) and the pid of the redis-server it runs.
    running: Option<(Child, u32)>,
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
        match &mut self.local {
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
        let log = self.log_path().to_string_lossy().into_owned();
        let mut args: Vec<&str> = vec![
            "redis-server",
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
        let parent = std::process::id().to_string();
        let mut shell = Command::new("sh")
            .arg("-c")
            .arg(REDIS_WRAPPER)
            .arg("sh")
            .arg(&parent)
            .arg(&dir)
            .arg(&log)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run sh to start redis-server: {e}"))?;
        let mut first = String::new();
        if let Some(out) = shell.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut first);
        }
        let pid: u32 = first
            .trim()
            .parse()
            .map_err(|_| format!("the redis wrapper printed no pid: {first:?}"))?;
        self.running = Some((shell, pid));

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

    fn is_running(&mut self) -> bool {
        match &mut self.running {
            None => false,
            Some((shell, _)) => matches!(shell.try_wait(), Ok(None)),
        }
    }

    fn kill(&mut self) {
        if let Some((mut shell, pid)) = self.running.take() {
            if matches!(shell.try_wait(), Ok(None)) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
            // The wrapper reaps redis and exits, so the port is free once this returns.
            let _ = shell.wait();
        }
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
