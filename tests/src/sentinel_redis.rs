//! A replicated Redis watched by Sentinel: one primary, two replicas and three sentinels on free
//! loopback ports (quorum 2, the primary judged down after 1 s). Every process is a [`Proc`],
//! killed by pid on drop; the test SIGKILLs the primary and the sentinels promote a replica.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use crate::redis_nodes::{base_args, cli, poll_sync, start_node};
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
    _dir: TempDir,
}

impl SentinelSet {
    /// Starts the five… six processes and waits until the sentinels know both replicas and
    /// each other.
    pub fn start() -> Self {
        let dir = TempDir::new("sentinel");
        let d = dir.path();
        let (primary, primary_port) = start_node("redis-primary", "redis-server", &[], |port| {
            base_args(port, &node_dir(d, port))
        });
        let mut nodes = vec![(primary_port, primary)];
        for i in 0..2 {
            let (proc, port) =
                start_node(&format!("redis-replica{i}"), "redis-server", &[], |port| {
                    let mut a = base_args(port, &node_dir(d, port));
                    a.extend([
                        "--replicaof".into(),
                        "127.0.0.1".into(),
                        primary_port.to_string(),
                    ]);
                    a
                });
            nodes.push((port, proc));
        }
        poll_sync("both replicas online", SETTLE, || {
            let info = cli(primary_port, &[], &["INFO", "replication"]).ok()?;
            (info.matches("state=online").count() == 2).then_some(())
        });
        let mut sentinels = Vec::new();
        for i in 0..3 {
            let (proc, port) = start_node(&format!("sentinel{i}"), "redis-sentinel", &[], |port| {
                vec![sentinel_conf(d, port, primary_port)]
            });
            sentinels.push((port, proc));
        }
        for (port, _) in &sentinels {
            poll_sync(
                "each sentinel to see 2 replicas and 2 sentinels",
                SETTLE,
                || {
                    let m = master_info(*port)?;
                    (m.get("num-slaves").map(String::as_str) == Some("2")
                        && m.get("num-other-sentinels").map(String::as_str) == Some("2"))
                    .then_some(())
                },
            );
        }
        Self {
            nodes,
            sentinels,
            _dir: dir,
        }
    }

    /// `REDIS_URL` for sentinel mode: the three sentinels.
    pub fn urls(&self) -> String {
        self.sentinels
            .iter()
            .map(|(p, _)| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The port of the primary the sentinels name now.
    pub fn primary_port(&self) -> Option<u16> {
        let (port, _) = &self.sentinels[0];
        let out = cli(*port, &[], &["SENTINEL", "get-master-addr-by-name", MASTER]).ok()?;
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
            let role = cli(port, &[], &["ROLE"]).ok()?;
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
fn sentinel_conf(dir: &Path, port: u16, primary: u16) -> String {
    let d = node_dir(dir, port);
    let path = d.join("sentinel.conf");
    let conf = format!(
        "port {port}\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\ndir {}\n\
         sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n\
         sentinel down-after-milliseconds {MASTER} 1000\n\
         sentinel failover-timeout {MASTER} 3000\n\
         sentinel parallel-syncs {MASTER} 2\n",
        d.display()
    );
    std::fs::write(&path, conf).expect("write sentinel.conf");
    path.to_string_lossy().into_owned()
}

/// `SENTINEL MASTER sy` as a map (redis-cli prints the pairs one per line).
fn master_info(port: u16) -> Option<HashMap<String, String>> {
    let out = cli(port, &[], &["SENTINEL", "MASTER", MASTER]).ok()?;
    let lines: Vec<&str> = out.lines().collect();
    Some(
        lines
            .chunks(2)
            .filter_map(|kv| Some((kv[0].to_owned(), kv.get(1)?.to_string())))
            .collect(),
    )
}
