//! `--redis tls|cluster`: the end-to-end load on the bench's plain `redis-server` and then, in
//! the same run, on a TLS-only `redis-server` (a CA made for the run, `rediss://` with a client
//! certificate) or on a three-primary Redis Cluster (`redis-cli --cluster create`, queues whose
//! hash tags land on three different primaries, `REDIS_MODE=cluster`), so the figures stand side
//! by side. The other Redis is the end-to-end tests' fixture (`switchyard_tests`), killed by
//! pid when the run ends.

use std::time::Duration;

use serde::Serialize;
use switchyard_shared::config::RedisConfig;
use switchyard_shared::connect::Connector;
use switchyard_shared::keys::Keys;
use switchyard_tests::TlsRedis;
use switchyard_tests::cluster_redis::ClusterSet;
use tokio::time::Instant;

use crate::api::Api;
use crate::config::Config;
use crate::error::BenchError;
use crate::procs::RunDir;
use crate::redis_server::RedisServer;
use crate::services::{Launcher, check_binaries};
use crate::topology_load::{self, LoadFigures, Plan};
use crate::wait::{self, WaitRoundTrip};

/// Which Redis the run compares with the plain one (`--redis`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Topology {
    /// No comparison: the ordinary phases.
    #[default]
    Plain,
    /// A TLS-only redis-server.
    Tls,
    /// A three-primary Redis Cluster.
    Cluster,
}

impl Topology {
    /// `plain`, `tls` or `cluster`.
    pub fn parse(v: &str) -> Result<Self, String> {
        match v {
            "plain" => Ok(Self::Plain),
            "tls" => Ok(Self::Tls),
            "cluster" => Ok(Self::Cluster),
            _ => Err(format!("expected plain, tls or cluster, not {v:?}")),
        }
    }
}

/// Key prefix of each side (each on its own Redis anyway).
const PREFIX: &str = "benchtopo:";
/// Longest each side's load may take.
const LOAD_BUDGET: Duration = Duration::from_secs(600);
const WAIT_BUDGET: Duration = Duration::from_secs(300);

/// One Redis's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    /// What it was: `redis://`, `rediss://`, `cluster`.
    pub redis: String,
    /// Throughput, end to end and per queue.
    pub load: LoadFigures,
    /// Sequential `?wait_ms=` round trips (TLS only: the latency of one task).
    pub wait: Option<WaitRoundTrip>,
}

/// The comparison, printed as a table and one `BENCH_TOPOLOGY_JSON` line.
#[derive(Debug, Clone, Serialize)]
pub struct TopologyReport {
    /// `tls` or `cluster`.
    pub mode: Topology,
    /// Tasks per side.
    pub tasks: u64,
    /// Tasks per batch request.
    pub batch: usize,
    /// Concurrent producers.
    pub clients: usize,
    /// The queues the tasks are spread over.
    pub queues: Vec<String>,
    /// The bench's own redis-server, then the other.
    pub sides: Vec<Side>,
    /// What went wrong (lost or refused tasks, deadlines).
    pub failures: Vec<String>,
    /// No failure.
    pub ok: bool,
}

/// The other Redis, alive while the run uses it.
enum Other {
    Tls(TlsRedis),
    Cluster(ClusterSet),
}

/// Starts the other Redis (harness code that panics on failure) off the runtime.
async fn start_other(mode: Topology, node_entries: u64) -> Result<Other, BenchError> {
    let started = tokio::task::spawn_blocking(move || {
        let n = node_entries.to_string();
        let extra = ["--stream-node-max-entries", n.as_str()];
        match mode {
            Topology::Cluster => Other::Cluster(ClusterSet::start_with(Default::default(), &extra)),
            _ => Other::Tls(TlsRedis::start_with(&extra)),
        }
    })
    .await;
    started.map_err(|e| BenchError::Process {
        name: format!("{mode:?} redis"),
        message: format!("did not start (its error is printed above): {e}"),
    })
}

/// Runs the comparison `cfg.redis` asks for.
pub async fn run(cfg: &Config) -> Result<TopologyReport, BenchError> {
    check_binaries(&cfg.bin_dir)?;
    let dir = RunDir::create()?;
    let other = start_other(cfg.redis, cfg.stream_node_max_entries).await?;
    let (queues, other_env, label) = match &other {
        Other::Tls(t) => {
            let env = t.env().into_iter().map(|(k, v)| (k.to_owned(), v));
            (
                vec!["tool".to_owned()],
                env.collect::<Vec<_>>(),
                "rediss://",
            )
        }
        Other::Cluster(c) => {
            let mut env = vec![
                ("REDIS_URL".to_owned(), c.urls()),
                ("REDIS_MODE".to_owned(), "cluster".to_owned()),
            ];
            env.extend(c.client_env().into_iter().map(|(k, v)| (k.to_owned(), v)));
            (
                c.queues_on_distinct_primaries(3),
                env,
                "cluster (3 primaries)",
            )
        }
    };
    let plain = RedisServer::start(&dir, cfg.stream_node_max_entries).await?;
    eprintln!(
        "[bench] redis: {} beside {label}, queues {queues:?}",
        plain.url
    );
    let plain_env = vec![("REDIS_URL".to_owned(), plain.url.clone())];
    let mut sides = vec![side(cfg, &dir, plain_env, &queues, "redis://").await?];
    drop(plain);
    sides.push(side(cfg, &dir, other_env, &queues, label).await?);
    drop(other);
    let mut report = TopologyReport {
        mode: cfg.redis,
        tasks: cfg.tasks,
        batch: cfg.batch,
        clients: (cfg.clients / 4).max(1),
        queues,
        sides,
        failures: Vec::new(),
        ok: false,
    };
    report.check();
    if !report.ok {
        let mut dir = dir;
        dir.print_log_tails();
    }
    Ok(report)
}

/// One side: a dispatcher and a worker on `env`'s Redis, the load, then (TLS) the round trips.
async fn side(
    cfg: &Config,
    dir: &RunDir,
    mut env: Vec<(String, String)>,
    queues: &[String],
    label: &str,
) -> Result<Side, BenchError> {
    let mut all = queues.to_vec();
    if !all.iter().any(|q| q == "tool") {
        all.push("tool".to_owned());
    }
    env.push(("QUEUES".to_owned(), all.join(",")));
    env.push(("WORKER_QUEUES".to_owned(), all.join(",")));
    let url = env
        .iter()
        .find(|(k, _)| k == "REDIS_URL")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let launcher = Launcher::new(dir, &cfg.bin_dir, &url, &cfg.log_level)?.with_env(env.clone());
    let keys = Keys::new(PREFIX);
    let dispatcher = launcher.dispatcher(keys.prefix()).await?;
    let worker = launcher.worker(keys.prefix(), "bench-topology").await?;
    let api = Api::new(&dispatcher.base_url, launcher.secret())?;
    env.push(("QUEUE_PREFIX".to_owned(), PREFIX.to_owned()));
    let redis_cfg = RedisConfig::from_vars(&env)
        .map_err(|e| BenchError::Reply(format!("the {label} settings: {e}")))?;
    let con = Connector::new(&redis_cfg)
        .and_then(|c| c.shared())
        .map_err(|e| BenchError::Reply(format!("connecting to {label}: {e}")))?;
    let procs = [&dispatcher.proc, &worker.proc];
    let (tasks, batch, clients) = (cfg.tasks, cfg.batch as u64, (cfg.clients / 4).max(1));
    eprintln!("[bench] {label}: {tasks} tasks in batches of {batch}, {clients} producers");
    let at = Instant::now() + LOAD_BUDGET;
    let plan = Plan {
        queues,
        tasks,
        batch,
        clients,
    };
    let load = topology_load::run(&api, &con, &keys, plan, at);
    let load = crate::watched(&procs, load).await?;
    eprintln!(
        "[bench] {label}: {:.0} tasks/s end to end; per queue {:?}",
        load.tasks_per_s,
        load.queues
            .iter()
            .map(|q| q.tasks_per_s.round())
            .collect::<Vec<_>>()
    );
    let wait = match cfg.redis {
        Topology::Tls => {
            let at = Instant::now() + WAIT_BUDGET;
            let w = crate::watched(&procs, async {
                Ok(wait::run(&api, cfg.wait_samples, at).await)
            });
            Some(w.await?)
        }
        _ => None,
    };
    Ok(Side {
        redis: label.to_owned(),
        load,
        wait,
    })
}

impl TopologyReport {
    /// Fills `failures` and `ok`: every task accepted and succeeded, nothing timed out.
    fn check(&mut self) {
        for s in &self.sides {
            let l = &s.load;
            if l.timed_out {
                self.failures
                    .push(format!("{}: the load hit its deadline", s.redis));
            }
            if l.refused > 0 {
                let e = l.first_error.as_deref().unwrap_or("-");
                self.failures
                    .push(format!("{}: {} tasks refused ({e})", s.redis, l.refused));
            }
            if l.succeeded + l.refused != l.tasks {
                self.failures.push(format!(
                    "{}: {} of {} tasks succeeded",
                    s.redis, l.succeeded, l.tasks
                ));
            }
            if let Some(w) = &s.wait
                && (w.errors > 0 || w.timed_out)
            {
                self.failures
                    .push(format!("{}: {} wait_ms errors", s.redis, w.errors));
            }
        }
        self.ok = self.failures.is_empty();
    }

    /// The figures side by side.
    pub fn table(&self) -> String {
        let mut out = format!(
            "switchyard bench --redis {:?}: {} echo tasks per side, batches of {}, {} producers, \
             1 worker (concurrency {})\n",
            self.mode,
            self.tasks,
            self.batch,
            self.clients,
            crate::config::WORKER_CONCURRENCY
        )
        .to_lowercase();
        out.push_str(&format!("{:<24} {:>14}", "redis", "e2e tasks/s"));
        for q in &self.queues {
            out.push_str(&format!(" {:>12}", format!("{q} /s")));
        }
        out.push_str(&format!(" {:>12} {:>12}\n", "wait p50 ms", "wait p99 ms"));
        for s in &self.sides {
            out.push_str(&format!("{:<24} {:>14.0}", s.redis, s.load.tasks_per_s));
            for q in &s.load.queues {
                out.push_str(&format!(" {:>12.0}", q.tasks_per_s));
            }
            let (p50, p99) = s
                .wait
                .as_ref()
                .map_or((String::from("-"), String::from("-")), |w| {
                    (
                        format!("{:.3}", w.latency.p50_ms),
                        format!("{:.3}", w.latency.p99_ms),
                    )
                });
            out.push_str(&format!(" {p50:>12} {p99:>12}\n"));
        }
        for f in &self.failures {
            out.push_str(&format!("FAILED: {f}\n"));
        }
        out
    }

    /// `BENCH_TOPOLOGY_JSON {...}`.
    pub fn json_line(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
        format!("BENCH_TOPOLOGY_JSON {json}")
    }
}
