//! A Redis Cluster of three primaries on free loopback ports, created with
//! `redis-cli --cluster create`: without replicas ([`ClusterSet::start`]), with one replica per
//! primary ([`ClusterSet::start_with`]), over TLS only if asked. Every node is a [`Proc`],
//! killed by pid on drop; a test may SIGKILL a primary and wait for its replica's promotion.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::redis_nodes::{base_args, cli, poll_sync, start_node};
use crate::tls_files::{TlsFiles, maybe};
use crate::{Proc, TempDir, free_port};

/// How the cluster is built.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClusterOptions {
    /// Replicas per primary (`--cluster-replicas`).
    pub replicas: usize,
    /// TLS only, between clients and nodes and on the cluster bus.
    pub tls: bool,
}

/// The cluster's nodes, by client port.
#[derive(Debug)]
pub struct ClusterSet {
    nodes: Vec<(u16, Proc)>,
    tls: Option<TlsFiles>,
    _dir: TempDir,
}

impl ClusterSet {
    /// Three primaries, no replicas, plain TCP.
    pub fn start() -> Self {
        Self::start_with(ClusterOptions::default(), &[])
    }

    /// Three primaries with `opts`, each node started with `extra` options too. Waits until
    /// every node reports `cluster_state:ok` and knows every other node.
    pub fn start_with(opts: ClusterOptions, extra: &[&str]) -> Self {
        let dir = TempDir::new("cluster");
        let tls = opts.tls.then(TlsFiles::make);
        let cli_tls = tls.as_ref().map(TlsFiles::cli_args).unwrap_or_default();
        let cli_tls: Vec<&str> = cli_tls.iter().map(String::as_str).collect();
        let mut nodes = Vec::new();
        for i in 0..3 * (1 + opts.replicas) {
            let d = dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(&d).expect("create a node dir");
            let (proc, port) =
                start_node(&format!("cluster{i}"), "redis-server", &cli_tls, |port| {
                    let mut a = base_args(port, &d);
                    if let Some(tls) = &tls {
                        a.drain(..2);
                        a.extend(tls.server_args(port));
                        a.extend(
                            ["--tls-cluster", "yes", "--tls-replication", "yes"].map(str::to_owned),
                        );
                    }
                    a.extend(
                        [
                            "--cluster-enabled",
                            "yes",
                            "--cluster-config-file",
                            "nodes.conf",
                            "--cluster-node-timeout",
                            "2000",
                            // The bus port is not left to port + 10000, which may be past 65535.
                            "--cluster-port",
                            &free_port().to_string(),
                        ]
                        .map(str::to_owned),
                    );
                    a.extend(extra.iter().map(|s| (*s).to_owned()));
                    a
                });
            nodes.push((port, proc));
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|(p, _)| format!("127.0.0.1:{p}"))
            .collect();
        let replicas = opts.replicas.to_string();
        let mut args = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        args.extend(["--cluster-replicas", &replicas, "--cluster-yes"]);
        if let Err(e) = cli(nodes[0].0, &cli_tls, &args) {
            panic!("redis-cli --cluster create failed: {e}");
        }
        let set = Self {
            nodes,
            tls,
            _dir: dir,
        };
        let known = set.nodes.len();
        for (port, _) in &set.nodes {
            poll_sync("cluster_state:ok", Duration::from_secs(30), || {
                let info = set.cli(*port, &["CLUSTER", "INFO"]).ok()?;
                let all = format!("cluster_known_nodes:{known}");
                (info.contains("cluster_state:ok") && info.contains(&all)).then_some(())
            });
            poll_sync("replicas synced", Duration::from_secs(30), || {
                let info = set.cli(*port, &["INFO", "replication"]).ok()?;
                let synced = info.contains("role:master") || info.contains("master_link_status:up");
                synced.then_some(())
            });
        }
        set
    }

    fn cli(&self, port: u16, args: &[&str]) -> Result<String, String> {
        maybe::cli(self.tls.as_ref(), port, args)
    }

    /// `REDIS_URL` for cluster mode: every node as a seed (`rediss://` over TLS).
    pub fn urls(&self) -> String {
        maybe::urls(self.tls.as_ref(), self.nodes.iter().map(|(p, _)| p))
    }

    /// The variables a binary needs besides `REDIS_URL` and `REDIS_MODE` (TLS files, if any).
    pub fn client_env(&self) -> Vec<(&'static str, String)> {
        maybe::client_env(self.tls.as_ref())
    }

    /// The port of the primary serving `key`'s slot now, as the live nodes see it.
    pub fn node_of(&self, key: &str) -> u16 {
        self.try_node_of(key)
            .unwrap_or_else(|| panic!("no live primary serves the slot of {key}"))
    }

    fn try_node_of(&self, key: &str) -> Option<u16> {
        let live = || self.nodes.iter().filter(|(_, proc)| proc.is_running());
        let slot: u16 = live().find_map(|(p, _)| {
            self.cli(*p, &["CLUSTER", "KEYSLOT", key])
                .ok()?
                .parse()
                .ok()
        })?;
        // `CLUSTER NODES`: the ninth field on is a primary's slot ranges (`lo-hi` or `n`).
        live().find_map(|(port, _)| {
            let nodes = self.cli(*port, &["CLUSTER", "NODES"]).ok()?;
            let line = nodes.lines().find(|l| l.contains("myself"))?;
            let serves = line.split_whitespace().skip(8).any(|range| {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                matches!((lo.parse::<u16>(), hi.parse::<u16>()),
                    (Ok(lo), Ok(hi)) if (lo..=hi).contains(&slot))
            });
            (line.contains("master") && serves).then_some(*port)
        })
    }

    /// `n` queue names (`q0`, `q1`, …) whose `{queue}` hash tags are served by `n` different
    /// primaries.
    pub fn queues_on_distinct_primaries(&self, n: usize) -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for i in 0..100 {
            let q = format!("q{i}");
            if seen.insert(self.node_of(&format!("{{{q}}}"))) {
                out.push(q);
            }
            if out.len() == n {
                return out;
            }
        }
        panic!("no {n} queues on {n} primaries among q0..q99");
    }

    /// SIGKILLs the node on `port` (by pid). Nothing restarts it.
    pub fn kill(&self, port: u16) {
        let (_, proc) = self
            .nodes
            .iter()
            .find(|(p, _)| *p == port)
            .expect("the port is one of this cluster's nodes");
        proc.sigkill();
    }

    /// Waits until a live node other than `old` serves `key`'s slot as a primary; answers its
    /// port.
    pub fn wait_promoted(&self, key: &str, old: u16, within: Duration) -> u16 {
        poll_sync("a replica to take over the slot", within, || {
            self.try_node_of(key).filter(|p| *p != old)
        })
    }
}
