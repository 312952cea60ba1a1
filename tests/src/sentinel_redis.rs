//! A replicated Redis watched by Sentinel: one primary, two replicas and three sentinels on free
//! loopback ports (quorum 2, the primary judged down after 1 s). Every process is a [`Proc`],
//! killed by pid on drop; the test SIGKILLs the primary and the sentinels promote a replica.
//! Over TLS if asked ([`SentinelSet::start_tls`]): every node and sentinel listens on TLS only,
//! replication and the sentinels' own links included.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use crate::redis_nodes::{base_args, poll_sync, start_node};
use crate::tls_files::{TlsFiles, maybe};
use crate::{Proc, TempDir};

/// The master name the sentinels monitor (`REDIS_SENTINEL_MASTER`).
pub const MASTER: &str = "sy";

/// How long the topology may take to settle (replicas synced, sentinels aware of each other).
const SETTLE: Duration = Duration::from_secs(30);

/// One primary, two replicas, three sentinels.
#[derive(Debug)]
pub struct SentinelSet {
    /// The data nodes by port (the primary first at start).
    nodes: Vec<(u16, Proc)>,
    sentinels: Vec<(u16, Proc)>,
    tls: Option<TlsFiles>,
    _dir: TempDir,
}

impl SentinelSet {
    /// Starts the six processes over plain TCP and waits until the sentinels know both
    /// replicas and each other.
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// [`SentinelSet::start`] with every link over TLS, a CA made for it.
    pub fn start_tls() -> Self {
        Self::start_with(Some(TlsFiles::make()))
    }

    fn start_with(tls: Option<TlsFiles>) -> Self {
        let dir = TempDir::new("sentinel");
        let d = &dir.path().to_path_buf();
        let cli_tls = tls.as_ref().map(TlsFiles::cli_args).unwrap_or_default();
        let cli_tls: Vec<&str> = cli_tls.iter().map(String::as_str).collect();
        let node_args = |port: u16| {
            let mut a = base_args(port, &node_dir(d, port));
            if let Some(tls) = &tls {
                a.drain(..2);
                a.extend(tls.server_args(port));
                a.extend(["--tls-replication".into(), "yes".into()]);
            }
            a
        };
        let (primary, primary_port) =
            start_node("redis-primary", "redis-server", &cli_tls, node_args);
        let mut nodes = vec![(primary_port, primary)];
        for i in 0..2 {
            let label = format!("redis-replica{i}");
            let (proc, port) = start_node(&label, "redis-server", &cli_tls, |port| {
                let mut a = node_args(port);
                a.extend([
                    "--replicaof".into(),
                    "127.0.0.1".into(),
                    primary_port.to_string(),
                ]);
                a
            });
            nodes.push((port, proc));
        }
        let mut set = Self {
            nodes,
            sentinels: Vec::new(),
            tls,
            _dir: dir,
        };
        poll_sync("both replicas online", SETTLE, || {
            let info = set.cli(primary_port, &["INFO", "replication"]).ok()?;
            (info.matches("state=online").count() == 2).then_some(())
        });
        for i in 0..3 {
            let label = format!("sentinel{i}");
            let (proc, port) = start_node(&label, "redis-sentinel", &cli_tls, |port| {
                vec![sentinel_conf(d, port, primary_port, set.tls.as_ref())]
            });
            set.sentinels.push((port, proc));
        }
        for (port, _) in &set.sentinels {
            poll_sync(
                "each sentinel to see 2 replicas and 2 sentinels",
                SETTLE,
                || {
                    let m = set.master_info(*port)?;
                    (m.get("num-slaves").map(String::as_str) == Some("2")
                        && m.get("num-other-sentinels").map(String::as_str) == Some("2"))
                    .then_some(())
                },
            );
        }
        set
    }

    fn cli(&self, port: u16, args: &[&str]) -> Result<String, String> {
        maybe::cli(self.tls.as_ref(), port, args)
    }

    /// The variables a binary needs besides `REDIS_URL` (TLS files, if any).
    pub fn client_env(&self) -> Vec<(&'static str, String)> {
        maybe::client_env(self.tls.as_ref())
    }

    /// `REDIS_URL` for sentinel mode: the three sentinels.
    pub fn urls(&self) -> String {
        maybe::urls(self.tls.as_ref(), self.sentinels.iter().map(|(p, _)| p))
    }

    /// The port of the primary the sentinels name now.
    pub fn primary_port(&self) -> Option<u16> {
        let (port, _) = &self.sentinels[0];
        let out = self
            .cli(*port, &["SENTINEL", "get-master-addr-by-name", MASTER])
            .ok()?;
        out.lines().nth(1)?.trim().parse().ok()
    }

    /// SIGKILLs the current primary (by pid); answers its port. Nothing restarts it.
    pub fn kill_primary(&mut self) -> u16 {
        let port = self.primary_port().expect("the sentinels name a primary");
        let (_, proc) = self
            .nodes
            .iter()
            .find(|(p, _)| *p == port)
            .expect("the primary is one of this set's nodes");
        proc.sigkill();
        port
    }

    /// Waits until the sentinels name a primary other than `old`, which answers as a primary.
    pub fn wait_promoted(&self, old: u16, within: Duration) -> u16 {
        poll_sync("a replica to be promoted", within, || {
            let port = self.primary_port().filter(|p| *p != old)?;
            let role = self.cli(port, &["ROLE"]).ok()?;
            role.starts_with("master").then_some(port)
        })
    }
}

fn node_dir(dir: &Path, port: u16) -> std::path::PathBuf {
    let d = dir.join(format!("node-{port}"));
    std::fs::create_dir_all(&d).expect("create a node dir");
    d
}

/// Writes a sentinel's config (sentinels rewrite their file, so each has its own). A short
/// failover timeout: on a loaded machine a split vote or a TILT period (the sentinel's timer
/// jumped) otherwise delays the promotion by tens of seconds.
fn sentinel_conf(dir: &Path, port: u16, primary: u16, tls: Option<&TlsFiles>) -> String {
    let d = node_dir(dir, port);
    let path = d.join("sentinel.conf");
    let listen = match tls {
        Some(tls) => format!("{}tls-replication yes\n", tls.config_lines(port)),
        None => format!("port {port}\n"),
    };
    let conf = format!(
        "{listen}bind 127.0.0.1\nprotected-mode no\ndaemonize no\ndir {}\n\
         sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n\
         sentinel down-after-milliseconds {MASTER} 1000\n\
         sentinel failover-timeout {MASTER} 3000\n\
         sentinel parallel-syncs {MASTER} 2\n",
        d.display()
    );
    std::fs::write(&path, conf).expect("write sentinel.conf");
    path.to_string_lossy().into_owned()
}

impl SentinelSet {
    /// `SENTINEL MASTER sy` as a map (redis-cli prints the pairs one per line).
    fn master_info(&self, port: u16) -> Option<HashMap<String, String>> {
        let out = self.cli(port, &["SENTINEL", "MASTER", MASTER]).ok()?;
        let lines: Vec<&str> = out.lines().collect();
        Some(
            lines
                .chunks(2)
                .filter_map(|kv| Some((kv[0].to_owned(), kv.get(1)?.to_string())))
                .collect(),
        )
    }
}
