//! The run's result: every figure in one [`Report`], judged against the targets of issue #6
//! (markers, not exit codes) and against correctness (any lost or refused task fails the run),
//! printed as a table ([`crate::table`]) and as one `BENCH_JSON {…}` line.

use serde::Serialize;

use crate::ceiling::Ceiling;
use crate::e2e::{Drain, E2e};
use crate::efficiency::Efficiency;
use crate::enqueue::Load;
use crate::latency::Latency;
use crate::wait::WaitRoundTrip;

/// Target: end-to-end throughput, % of the ceiling, at least.
const TARGET_E2E_PCT: f64 = 40.0;
/// Target: latency p50, ms, at most.
const TARGET_LATENCY_P50_MS: f64 = 0.5;
/// Target: latency p99, ms, at most.
const TARGET_LATENCY_P99_MS: f64 = 2.0;
/// Target: wait round trip p50, ms, at most.
const TARGET_WAIT_P50_MS: f64 = 1.0;
/// Target: Redis CPU per task, µs, at most.
const TARGET_CPU_US: f64 = 15.0;
/// Target: idle RSS per process, MiB, at most.
const TARGET_IDLE_RSS_MIB: f64 = 30.0;

/// The sizes and Redis setting the run used.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Settings {
    /// `--tasks`.
    pub tasks: u64,
    /// `--enqueue-tasks`.
    pub enqueue_tasks: u64,
    /// `--clients`.
    pub clients: usize,
    /// `--batch`.
    pub batch: usize,
    /// `--latency-secs`.
    pub latency_secs: u64,
    /// `--wait-samples`.
    pub wait_samples: u64,
    /// `WORKER_CONCURRENCY` of the workers.
    pub worker_concurrency: usize,
    /// `stream-node-max-entries` of the run's redis-server (`--stream-node-max-entries`); the
    /// ceiling is measured with it too.
    pub redis_stream_node_max_entries: u64,
}

/// Memory figures; `None` where the process never ran.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Memory {
    /// VmRSS of the end-to-end dispatcher once healthy, before load, KiB.
    pub dispatcher_idle_rss_kib: Option<u64>,
    /// Its VmHWM at the end of the run, KiB.
    pub dispatcher_peak_rss_kib: Option<u64>,
    /// VmRSS of the end-to-end worker once healthy, before load, KiB.
    pub worker_idle_rss_kib: Option<u64>,
    /// Its VmHWM at the end of the run, KiB.
    pub worker_peak_rss_kib: Option<u64>,
    /// VmHWM of the enqueue phase's dispatcher after its load, KiB.
    pub enqueue_dispatcher_peak_rss_kib: Option<u64>,
    /// Redis `used_memory` after the run, bytes.
    pub redis_used_memory_bytes: Option<u64>,
    /// Redis `used_memory_peak` after the run, bytes.
    pub redis_used_memory_peak_bytes: Option<u64>,
}

/// CPU the bench itself used during the phases that share the machine with the system.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BenchCpu {
    /// Seconds of CPU during the end-to-end phase.
    pub e2e_cpu_s: Option<f64>,
    /// Wall-clock seconds of that phase.
    pub e2e_wall_s: Option<f64>,
    /// Seconds of CPU during the latency phase.
    pub latency_cpu_s: Option<f64>,
    /// Wall-clock seconds of that phase (settling included).
    pub latency_wall_s: Option<f64>,
}

/// A figure against its target.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// What is measured.
    pub name: &'static str,
    /// The figure.
    pub value: f64,
    /// The limit.
    pub limit: f64,
    /// `>=` or `<=`.
    pub op: &'static str,
    /// Unit of both.
    pub unit: &'static str,
    /// Whether the figure meets the limit.
    pub pass: bool,
}

/// Throughputs as % of the ceiling.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OfCeiling {
    /// Single enqueues.
    pub enqueue_single_pct: Option<f64>,
    /// Batch enqueues.
    pub enqueue_batch_pct: Option<f64>,
    /// Drain of a preloaded queue.
    pub drain_pct: Option<f64>,
    /// End to end.
    pub e2e_pct: Option<f64>,
}

/// Every figure of one run; a phase is `None` when the run stopped before it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// No phase timed out and no task was lost or refused.
    pub ok: bool,
    /// Sizes and Redis setting used.
    pub settings: Settings,
    /// Whether `POST /api/tasks/batch` exists.
    pub batch_endpoint: bool,
    /// Raw Redis.
    pub ceiling: Option<Ceiling>,
    /// Redis cost per task of the ceiling (its setup and clean-up commands included).
    pub ceiling_efficiency: Option<Efficiency>,
    /// `POST /api/tasks`, no worker.
    pub enqueue_single: Option<Load>,
    /// `POST /api/tasks/batch`, no worker.
    pub enqueue_batch: Option<Load>,
    /// The enqueued tasks drained by a worker started afterwards.
    pub drain: Option<Drain>,
    /// Enqueue while a worker runs.
    pub e2e: Option<E2e>,
    /// Redis cost per task of the end-to-end phase.
    pub efficiency: Option<Efficiency>,
    /// Open-loop enqueue → done.
    pub latency: Option<Latency>,
    /// `?wait_ms=` round trips.
    pub wait: Option<WaitRoundTrip>,
    /// Streamed answers: time to first token, Redis commands per token, RSS with open streams.
    pub streaming: Option<crate::streaming::StreamingFigures>,
    /// Held tasks: Redis commands and CPU per held task per second.
    pub held: Option<crate::held::HeldFigures>,
    /// A worker holding running tasks SIGKILLed: restart delays.
    pub kill: Option<crate::kill::KillFigures>,
    /// Worker RSS per running task.
    pub held_rss: Option<crate::kill::RssFigures>,
    /// Memory.
    pub memory: Memory,
    /// The bench's own CPU use.
    pub bench_cpu: BenchCpu,
    /// Throughputs vs the ceiling.
    pub of_ceiling: OfCeiling,
    /// Figures against their targets.
    pub targets: Vec<Target>,
    /// Why the run failed (empty when `ok`).
    pub failures: Vec<String>,
    /// Things to know about the figures.
    pub notes: Vec<String>,
}

/// KiB → MiB.
pub(crate) fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

impl Report {
    /// Computes ratios, targets, failures and `ok` from the phase results.
    pub fn finish(&mut self) {
        let ceiling = self.ceiling.as_ref().map_or(0.0, |c| c.tasks_per_s);
        let pct = |tps: f64| (ceiling > 0.0).then(|| 100.0 * tps / ceiling);
        self.of_ceiling = OfCeiling {
            enqueue_single_pct: self
                .enqueue_single
                .as_ref()
                .and_then(|l| pct(l.tasks_per_s)),
            enqueue_batch_pct: self
                .enqueue_batch
                .as_ref()
                .filter(|l| !l.missing_route)
                .and_then(|l| pct(l.tasks_per_s)),
            drain_pct: self.drain.as_ref().and_then(|d| pct(d.tasks_per_s)),
            e2e_pct: self.e2e.as_ref().and_then(|e| pct(e.tasks_per_s)),
        };
        self.targets.clear();
        let mut target = |name, value: Option<f64>, op, limit, unit| {
            if let Some(value) = value {
                let pass = if op == ">=" {
                    value >= limit
                } else {
                    value <= limit
                };
                self.targets.push(Target {
                    name,
                    value,
                    limit,
                    op,
                    unit,
                    pass,
                });
            }
        };
        let lat = self.latency.as_ref().map(|l| l.latency);
        target(
            "e2e vs ceiling",
            self.of_ceiling.e2e_pct,
            ">=",
            TARGET_E2E_PCT,
            "%",
        );
        target(
            "latency p50",
            lat.map(|p| p.p50_ms),
            "<=",
            TARGET_LATENCY_P50_MS,
            "ms",
        );
        target(
            "latency p99",
            lat.map(|p| p.p99_ms),
            "<=",
            TARGET_LATENCY_P99_MS,
            "ms",
        );
        let wait = self.wait.as_ref().map(|w| w.latency.p50_ms);
        target("wait round trip p50", wait, "<=", TARGET_WAIT_P50_MS, "ms");
        let cpu = self.efficiency.as_ref().map(|e| e.cpu_us_per_task);
        target("Redis CPU per task", cpu, "<=", TARGET_CPU_US, "µs");
        let m = &self.memory;
        let d = m.dispatcher_idle_rss_kib.map(mib);
        target("dispatcher idle RSS", d, "<=", TARGET_IDLE_RSS_MIB, "MiB");
        let w = m.worker_idle_rss_kib.map(mib);
        target("worker idle RSS", w, "<=", TARGET_IDLE_RSS_MIB, "MiB");
        let st = self.streaming.as_ref();
        let (p50, p99) = (
            st.map(|s| s.ttft_overhead_p50_ms),
            st.map(|s| s.ttft_overhead_p99_ms),
        );
        target(
            "streaming TTFT overhead p50",
            p50,
            "<=",
            crate::streaming::TARGET_TTFT_P50_MS,
            "ms",
        );
        target(
            "streaming TTFT overhead p99",
            p99,
            "<=",
            crate::streaming::TARGET_TTFT_P99_MS,
            "ms",
        );
        target(
            "/v1 streaming TTFT overhead p50",
            st.map(|s| s.ttft_v1_overhead_p50_ms),
            "<=",
            crate::streaming::TARGET_TTFT_P50_MS,
            "ms",
        );
        target(
            "/v1 streaming TTFT overhead p99",
            st.map(|s| s.ttft_v1_overhead_p99_ms),
            "<=",
            crate::streaming::TARGET_TTFT_P99_MS,
            "ms",
        );
        let cpt = st.map(|s| s.commands_per_token);
        target(
            "Redis commands per streamed token",
            cpt,
            "<=",
            crate::streaming::TARGET_COMMANDS_PER_TOKEN,
            "",
        );
        if let Some(h) = &self.held {
            self.targets.extend(crate::held::targets(h));
        }
        if let Some(k) = &self.kill {
            self.targets.extend(crate::kill::targets(k));
        }
        self.failures = self.check();
        self.ok = self.failures.is_empty();
    }

    /// Every correctness problem and timeout of the run.
    fn check(&self) -> Vec<String> {
        let mut f = self.failures.clone();
        if let Some(s) = &self.streaming
            && (s.incomplete > 0 || s.v1_incomplete > 0 || s.open_streams_done < s.open_streams)
        {
            f.push(format!(
                "streaming: {} of {} /api and {} of {} /v1 streams lacked their whole answer; {} of {} open streams ended with done",
                s.incomplete, s.samples, s.v1_incomplete, s.samples, s.open_streams_done, s.open_streams
            ));
        }
        if let Some(h) = &self.held {
            f.extend(crate::held::problems(h));
        }
        if let Some(k) = &self.kill {
            f.extend(crate::kill::problems(k));
        }
        if let Some(c) = &self.ceiling
            && (c.timed_out || c.acked < c.tasks)
        {
            f.push(format!(
                "ceiling: {} of {} entries acked before the deadline",
                c.acked, c.tasks
            ));
        }
        for (name, load) in [
            ("enqueue single", &self.enqueue_single),
            ("enqueue batch", &self.enqueue_batch),
        ] {
            let Some(l) = load else { continue };
            if l.timed_out {
                f.push(format!(
                    "{name}: timed out with {} of {} tasks accepted",
                    l.accepted, l.tasks
                ));
            }
            if l.refused_tasks > 0 || l.failed_requests > 0 {
                f.push(format!(
                    "{name}: {} tasks refused ({} failed requests, {} refused items); first: {}",
                    l.refused_tasks,
                    l.failed_requests,
                    l.item_errors,
                    l.first_error.as_deref().unwrap_or("-")
                ));
            }
        }
        if let Some(d) = &self.drain
            && (d.timed_out || d.succeeded < d.tasks)
        {
            f.push(format!(
                "drain: {} of {} tasks succeeded",
                d.succeeded, d.tasks
            ));
        }
        if let Some(e) = &self.e2e {
            let l = &e.enqueue;
            if e.timed_out || l.timed_out {
                f.push(format!(
                    "e2e: timed out with {} of {} tasks accepted, {} succeeded",
                    l.accepted, l.tasks, e.succeeded
                ));
            }
            if l.refused_tasks > 0 || l.failed_requests > 0 {
                f.push(format!(
                    "e2e: {} tasks refused; first: {}",
                    l.refused_tasks,
                    l.first_error.as_deref().unwrap_or("-")
                ));
            }
            if e.failed > 0 || e.succeeded < l.accepted {
                f.push(format!(
                    "e2e: {} of {} accepted tasks succeeded, {} failed or dead",
                    e.succeeded, l.accepted, e.failed
                ));
            }
        }
        if let Some(l) = &self.latency {
            if l.timed_out {
                f.push(format!(
                    "latency: timed out with {} of {} tasks accepted",
                    l.accepted, l.tasks
                ));
            }
            if l.failed_requests > 0 || l.never_seen > 0 || l.ended_otherwise > 0 {
                f.push(format!(
                    "latency: {} failed requests, {} tasks never seen succeeding, {} ended otherwise; first: {}",
                    l.failed_requests,
                    l.never_seen,
                    l.ended_otherwise,
                    l.first_error.as_deref().unwrap_or("-")
                ));
            }
        }
        if let Some(w) = &self.wait
            && (w.timed_out || w.errors > 0 || w.ok < w.samples)
        {
            f.push(format!(
                "wait: {} of {} round trips answered 200 succeeded; first error: {}",
                w.ok,
                w.samples,
                w.first_error.as_deref().unwrap_or("-")
            ));
        }
        f
    }

    /// `BENCH_JSON {…}`.
    pub fn json_line(&self) -> String {
        match serde_json::to_string(self) {
            Ok(json) => format!("BENCH_JSON {json}"),
            // Only non-finite floats could fail; they never come out of the phases.
            Err(e) => format!("BENCH_JSON {{\"ok\":false,\"failures\":[\"report: {e}\"]}}"),
        }
    }
}
