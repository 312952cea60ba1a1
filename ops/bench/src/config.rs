//! The bench's settings: command-line flags, each with an `SY_BENCH_*` environment fallback, read
//! by hand (no argument-parser dependency) into one typed [`Config`].

use std::path::PathBuf;
use std::time::Duration;

use crate::error::BenchError;
use crate::topology::Topology;

/// Default `--tasks`: tasks of the ceiling and end-to-end phases.
pub const DEFAULT_TASKS: u64 = 100_000;
/// Default `--enqueue-tasks`: tasks of each enqueue sub-phase.
pub const DEFAULT_ENQUEUE_TASKS: u64 = 20_000;
/// Default `--clients`: concurrent HTTP clients of single enqueues (batches use a quarter).
pub const DEFAULT_CLIENTS: usize = 32;
/// Default `--batch`: tasks per batch request.
pub const DEFAULT_BATCH: usize = 100;
/// Default `--latency-secs`: length of the open-loop latency run.
pub const DEFAULT_LATENCY_SECS: u64 = 10;
/// Default `--wait-samples`: sequential `?wait_ms=` round trips.
pub const DEFAULT_WAIT_SAMPLES: u64 = 2_000;
/// Default `--bin-dir`: where `dispatcher` and `worker` are, relative to the working directory.
pub const DEFAULT_BIN_DIR: &str = "target/release";
/// Default `--log-level`: `LOG_LEVEL` of the children.
pub const DEFAULT_LOG_LEVEL: &str = "warn";
/// Default `--timeout-s`: deadline of the whole run.
pub const DEFAULT_TIMEOUT_S: u64 = 900;
/// Default `--stream-node-max-entries`: the `stream-node-max-entries` the bench's redis-server is
/// started with, the value the shipped deployments (compose, k8s) set. Redis' own default is 100.
pub const DEFAULT_STREAM_NODE_MAX_ENTRIES: u64 = 16;
/// Default `--held-tasks`: sleep tasks held at once by the held phase (issue 19).
pub const DEFAULT_HELD_TASKS: u64 = 10_000;
/// Default `--held-workers`: workers holding them.
pub const DEFAULT_HELD_WORKERS: usize = 4;
/// Default `--held-secs`: each measuring window of the held phase.
pub const DEFAULT_HELD_SECS: u64 = 10;
/// Default `--kill-tasks`: running tasks of the worker the kill phase SIGKILLs.
pub const DEFAULT_KILL_TASKS: u64 = 1_000;
/// Default `--rss-tasks`: concurrency of the worker whose RSS per running task is measured.
pub const DEFAULT_RSS_TASKS: u64 = 5_000;
/// `WORKER_CONCURRENCY` of every worker the bench starts.
pub const WORKER_CONCURRENCY: usize = 50;

/// The `--help` text.
pub const USAGE: &str = "\
bench: the switchyard benchmark. Starts its own redis-server, dispatcher and worker, then runs
the phases ceiling (raw Redis), enqueue (single and batch), drain, end-to-end, latency (open loop
and ?wait_ms round trips); prints a table and one `BENCH_JSON {...}` line. Exit 1 when a phase
timed out or any task was lost or refused; targets are markers, not exit codes.

usage: bench [FLAGS]     (each flag also reads SY_BENCH_<NAME>, e.g. SY_BENCH_TASKS=1000)

  --tasks N           tasks of the ceiling and end-to-end phases        (default 100000)
  --enqueue-tasks M   tasks of each enqueue sub-phase (single, batch)   (default 20000)
  --clients C         concurrent clients of single enqueues; batches C/4 (default 32)
  --batch B           tasks per batch request                          (default 100)
  --latency-secs D    length of the open-loop latency run               (default 10)
  --rate R            latency arrival rate, tasks/s                     (default: half the e2e rate)
  --wait-samples W    sequential POST /api/tasks?wait_ms=5000           (default 2000)
  --no-drain          skip the drain figure (preloaded tasks, worker started after)
  --bin-dir DIR       where dispatcher and worker are                  (default target/release)
  --log-level L       LOG_LEVEL of dispatcher and worker                (default warn)
  --timeout-s S       deadline of the whole run                        (default 900)
  --stream-node-max-entries N
                      stream-node-max-entries of the redis-server      (default 16, as shipped;
                      100 is Redis' own default)
  --held-tasks N      sleep tasks held at once (held phase)             (default 10000)
  --held-workers W    workers holding them                             (default 4)
  --held-secs S       each measuring window of the held phase          (default 10)
  --kill-tasks K      running tasks of the worker SIGKILLed (kill phase) (default 1000)
  --rss-tasks R       concurrency of the worker whose RSS per task is measured (default 5000)
  --redis MODE        plain (default): the phases above. tls or cluster: only the end-to-end
                      load (--tasks, --batch, --clients/4 producers) on the bench's redis-server,
                      then on a TLS-only redis-server (rediss://, a CA made for the run; with
                      --wait-samples round trips) or a 3-primary cluster (REDIS_MODE=cluster, 3
                      queues on 3 primaries), side by side; prints BENCH_TOPOLOGY_JSON
  --held-only         run only the held, kill and RSS phases (issue 19)
  --no-held           skip them
  --json-only         print only the BENCH_JSON line on stdout
  -h, --help          this text

The services start with a clean environment; only PATH, RUNTIME_THREADS and MIMALLOC_* (e.g.
MIMALLOC_ALLOW_THP=0) are passed on from the bench's own.
";

/// Everything one run is told.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Tasks of the ceiling and end-to-end phases.
    pub tasks: u64,
    /// Tasks of each enqueue sub-phase.
    pub enqueue_tasks: u64,
    /// Concurrent clients of single enqueues; batch phases use a quarter (at least one).
    pub clients: usize,
    /// Tasks per batch request.
    pub batch: usize,
    /// Length of the open-loop latency run.
    pub latency: Duration,
    /// Arrival rate of the latency run in tasks/s; `None`: half the end-to-end rate.
    pub rate: Option<f64>,
    /// Sequential `?wait_ms=` round trips.
    pub wait_samples: u64,
    /// Whether to measure the drain figure.
    pub drain: bool,
    /// Directory holding `dispatcher` and `worker`.
    pub bin_dir: PathBuf,
    /// `LOG_LEVEL` of the children.
    pub log_level: String,
    /// Deadline of the whole run.
    pub timeout: Duration,
    /// Print only the JSON line on stdout.
    pub json_only: bool,
    /// `stream-node-max-entries` of the bench's redis-server.
    pub stream_node_max_entries: u64,
    /// Sleep tasks held at once by the held phase.
    pub held_tasks: u64,
    /// Workers holding them.
    pub held_workers: usize,
    /// Each measuring window of the held phase.
    pub held_secs: u64,
    /// Running tasks of the worker the kill phase SIGKILLs.
    pub kill_tasks: u64,
    /// Concurrency of the worker whose RSS per running task is measured.
    pub rss_tasks: u64,
    /// Which phases run.
    pub phases: Phases,
    /// `--redis`: the ordinary phases, or a TLS / cluster comparison.
    pub redis: Topology,
}

/// Which phases a run includes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phases {
    /// Every phase.
    All,
    /// Only the held, kill and RSS phases.
    HeldOnly,
    /// Every phase but those.
    NoHeld,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tasks: DEFAULT_TASKS,
            enqueue_tasks: DEFAULT_ENQUEUE_TASKS,
            clients: DEFAULT_CLIENTS,
            batch: DEFAULT_BATCH,
            latency: Duration::from_secs(DEFAULT_LATENCY_SECS),
            rate: None,
            wait_samples: DEFAULT_WAIT_SAMPLES,
            drain: true,
            bin_dir: PathBuf::from(DEFAULT_BIN_DIR),
            log_level: DEFAULT_LOG_LEVEL.to_owned(),
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_S),
            json_only: false,
            stream_node_max_entries: DEFAULT_STREAM_NODE_MAX_ENTRIES,
            held_tasks: DEFAULT_HELD_TASKS,
            held_workers: DEFAULT_HELD_WORKERS,
            held_secs: DEFAULT_HELD_SECS,
            kill_tasks: DEFAULT_KILL_TASKS,
            rss_tasks: DEFAULT_RSS_TASKS,
            phases: Phases::All,
            redis: Topology::Plain,
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Run the bench.
    Run(Config),
    /// Print [`USAGE`].
    Help,
}

/// Flags that take a value, with their environment fallback's suffix.
const VALUE_FLAGS: &[&str] = &[
    "tasks",
    "enqueue-tasks",
    "clients",
    "batch",
    "latency-secs",
    "rate",
    "wait-samples",
    "bin-dir",
    "log-level",
    "timeout-s",
    "stream-node-max-entries",
    "held-tasks",
    "held-workers",
    "held-secs",
    "kill-tasks",
    "rss-tasks",
    "redis",
];
/// Switches (no value); the environment fallback is `1`/`true`.
const SWITCHES: &[&str] = &["no-drain", "json-only", "held-only", "no-held"];

fn env_name(flag: &str) -> String {
    format!("SY_BENCH_{}", flag.replace('-', "_").to_ascii_uppercase())
}

/// Reads `args` (without the program name) over the `SY_BENCH_*` values `env` gives.
pub fn parse(
    args: impl IntoIterator<Item = String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Command, BenchError> {
    let mut cfg = Config::default();
    for flag in VALUE_FLAGS {
        if let Some(v) = env(&env_name(flag)).filter(|v| !v.is_empty()) {
            apply(&mut cfg, flag, &v).map_err(|m| bad(&env_name(flag), m))?;
        }
    }
    for flag in SWITCHES {
        if let Some(v) = env(&env_name(flag)) {
            match v.as_str() {
                "1" | "true" => apply_switch(&mut cfg, flag),
                "" | "0" | "false" => {}
                _ => return Err(bad(&env_name(flag), "expected 1/true or 0/false".into())),
            }
        }
    }
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Command::Help);
        }
        let Some(name) = arg.strip_prefix("--") else {
            return Err(bad(&arg, "unexpected argument (see --help)".into()));
        };
        let (name, inline) = match name.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (name, None),
        };
        if SWITCHES.contains(&name) && inline.is_none() {
            apply_switch(&mut cfg, name);
        } else if VALUE_FLAGS.contains(&name) {
            let value = match inline {
                Some(v) => v,
                None => args
                    .next()
                    .ok_or_else(|| bad(&arg, "needs a value".into()))?,
            };
            apply(&mut cfg, name, &value).map_err(|m| bad(&format!("--{name}"), m))?;
        } else {
            return Err(bad(&arg, "unknown flag (see --help)".into()));
        }
    }
    Ok(Command::Run(cfg))
}

fn bad(what: &str, message: String) -> BenchError {
    BenchError::Usage(format!("{what}: {message}"))
}

fn apply_switch(cfg: &mut Config, flag: &str) {
    match flag {
        "no-drain" => cfg.drain = false,
        "held-only" => cfg.phases = Phases::HeldOnly,
        "no-held" => cfg.phases = Phases::NoHeld,
        _ => cfg.json_only = true,
    }
}

fn apply(cfg: &mut Config, flag: &str, v: &str) -> Result<(), String> {
    match flag {
        "tasks" => cfg.tasks = positive(v)?,
        "enqueue-tasks" => cfg.enqueue_tasks = positive(v)?,
        "clients" => cfg.clients = usize::try_from(positive(v)?).map_err(|e| e.to_string())?,
        "batch" => cfg.batch = usize::try_from(positive(v)?).map_err(|e| e.to_string())?,
        "latency-secs" => cfg.latency = Duration::from_secs(positive(v)?),
        "rate" => {
            let r: f64 = v.parse().map_err(|_| format!("not a number: {v:?}"))?;
            if !(r.is_finite() && r > 0.0) {
                return Err(format!("must be a positive rate, not {v:?}"));
            }
            cfg.rate = Some(r);
        }
        "wait-samples" => cfg.wait_samples = positive(v)?,
        "bin-dir" => cfg.bin_dir = PathBuf::from(v),
        "log-level" => cfg.log_level = v.to_owned(),
        "stream-node-max-entries" => cfg.stream_node_max_entries = positive(v)?,
        "held-tasks" => cfg.held_tasks = positive(v)?,
        "held-workers" => {
            cfg.held_workers = usize::try_from(positive(v)?).map_err(|e| e.to_string())?;
        }
        "held-secs" => cfg.held_secs = positive(v)?,
        "kill-tasks" => cfg.kill_tasks = positive(v)?,
        "rss-tasks" => cfg.rss_tasks = positive(v)?,
        "redis" => cfg.redis = Topology::parse(v)?,
        _ => cfg.timeout = Duration::from_secs(positive(v)?),
    }
    Ok(())
}

fn positive(v: &str) -> Result<u64, String> {
    match v.replace('_', "").parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("not a whole number: {v:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Command, BenchError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        parse(args.iter().map(|s| (*s).to_owned()), |k| {
            env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn flags_override_environment_which_overrides_defaults() {
        let Ok(Command::Run(cfg)) = run(
            &[
                "--tasks",
                "300",
                "--batch=10",
                "--no-drain",
                "--rate",
                "50.5",
            ],
            &[("SY_BENCH_TASKS", "7"), ("SY_BENCH_CLIENTS", "4")],
        ) else {
            panic!("expected a run");
        };
        assert_eq!(cfg.tasks, 300);
        assert_eq!(cfg.clients, 4);
        assert_eq!(cfg.batch, 10);
        assert_eq!(cfg.rate, Some(50.5));
        assert!(!cfg.drain);
        assert_eq!(cfg.enqueue_tasks, DEFAULT_ENQUEUE_TASKS);
        assert_eq!(cfg.stream_node_max_entries, DEFAULT_STREAM_NODE_MAX_ENTRIES);
    }

    #[test]
    fn stream_node_max_entries_from_flag_or_environment() {
        let Ok(Command::Run(cfg)) = run(&["--stream-node-max-entries", "100"], &[]) else {
            panic!("expected a run");
        };
        assert_eq!(cfg.stream_node_max_entries, 100);
        let Ok(Command::Run(cfg)) = run(&[], &[("SY_BENCH_STREAM_NODE_MAX_ENTRIES", "32")]) else {
            panic!("expected a run");
        };
        assert_eq!(cfg.stream_node_max_entries, 32);
    }

    #[test]
    fn bad_input_is_refused_with_the_flag_named() {
        for (args, needle) in [
            (vec!["--tasks", "0"], "--tasks"),
            (vec!["--tasks"], "--tasks"),
            (vec!["--frobnicate"], "--frobnicate"),
            (vec!["stray"], "stray"),
            (vec!["--rate", "-1"], "--rate"),
            (vec!["--redis", "sentinel"], "--redis"),
            (
                vec!["--stream-node-max-entries", "0"],
                "--stream-node-max-entries",
            ),
        ] {
            match run(&args, &[]) {
                Err(BenchError::Usage(m)) => assert!(m.contains(needle), "{m}"),
                other => panic!("{args:?} gave {other:?}"),
            }
        }
        assert!(matches!(run(&["--help"], &[]), Ok(Command::Help)));
    }

    #[test]
    fn held_phase_sizes_and_phase_selection() {
        let Ok(Command::Run(cfg)) = run(
            &["--held-only", "--held-tasks", "2000", "--held-workers=2"],
            &[("SY_BENCH_KILL_TASKS", "100")],
        ) else {
            panic!("expected a run");
        };
        assert_eq!(cfg.phases, Phases::HeldOnly);
        assert_eq!((cfg.held_tasks, cfg.held_workers), (2_000, 2));
        assert_eq!((cfg.kill_tasks, cfg.rss_tasks), (100, DEFAULT_RSS_TASKS));
        let Ok(Command::Run(cfg)) = run(&["--no-held"], &[]) else {
            panic!("expected a run");
        };
        assert_eq!(cfg.phases, Phases::NoHeld);
        assert!(matches!(
            run(&["--held-workers", "0"], &[]),
            Err(BenchError::Usage(_))
        ));
    }
}
