//! A Redis Cluster of three primaries (no replicas) on free loopback ports, created with
//! `redis-cli --cluster create`. Every node is a [`Proc`], killed by pid on drop.

use std::time::Duration;

use crate::redis_nodes::{base_args, cli, poll_sync, start_node};
use crate::{Proc, TempDir};

/// Three cluster primaries.
#[derive(Debug)]
pub struct ClusterSet {
    nodes: Vec<(u16, Proc)>,
    _dir: TempDir,
}

impl ClusterSet {
    /// Starts three nodes, creates the cluster (the 16,384 slots split in three) and waits
    /// until every node reports `cluster_state:ok`.
    pub fn start() -> Self {
        let dir = TempDir::new("cluster");
        let mut nodes = Vec::new();
        for i in 0..3 {
            let d = dir.path().join(format!("node{i}"));
            std::fs::create_dir_all(&d).expect("create a node dir");
            let (proc, port) = start_node(&format!("cluster{i}"), "redis-server", &[], |port| {
                let mut a = base_args(port, &d);
                a.extend(
                    [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "2000",
                    ]
                    .map(str::to_owned),
                );
                a
            });
            nodes.push((port, proc));
        }
        let addrs: Vec<String> = nodes
            .iter()
            .map(|(p, _)| format!("127.0.0.1:{p}"))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        if let Err(e) = cli(nodes[0].0, &[], &args) {
            panic!("redis-cli --cluster create failed: {e}");
        }
        for (port, _) in &nodes {
            poll_sync("cluster_state:ok", Duration::from_secs(30), || {
                let info = cli(*port, &[], &["CLUSTER", "INFO"]).ok()?;
                info.contains("cluster_state:ok").then_some(())
            });
        }
        Self { nodes, _dir: dir }
    }

    /// `REDIS_URL` for cluster mode: every node as a seed.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|(p, _)| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The port of the primary serving `key`'s slot.
    pub fn node_of(&self, key: &str) -> u16 {
        let slot: u16 = cli(self.nodes[0].0, &[], &["CLUSTER", "KEYSLOT", key])
            .ok()
            .and_then(|s| s.parse().ok())
            .expect("CLUSTER KEYSLOT answers a number");
        // `CLUSTER NODES`: the ninth field on is the node's slot ranges (`lo-hi` or `n`).
        for (port, _) in &self.nodes {
            let nodes = cli(*port, &[], &["CLUSTER", "NODES"]).unwrap_or_default();
            let Some(line) = nodes.lines().find(|l| l.contains("myself")) else {
                continue;
            };
            for range in line.split_whitespace().skip(8) {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>())
                    && (lo..=hi).contains(&slot)
                {
                    return *port;
                }
            }
        }
        panic!("no node serves slot {slot}");
    }
}
