//! The report as a human-readable table: every figure, its share of the ceiling and its target
//! marker, then the notes and failures.

use std::fmt::Write as _;

use crate::enqueue::Load;
use crate::percentile::Percentiles;
use crate::report::{Report, mib};

impl Report {
    /// The marker of target `name`, e.g. `PASS <= 1 ms` (empty when not measured).
    fn target(&self, name: &str) -> String {
        self.targets
            .iter()
            .find(|t| t.name == name)
            .map(|t| {
                let mark = if t.pass { "PASS" } else { "FAIL" };
                format!("{mark} {} {} {}", t.op, t.limit, t.unit)
            })
            .unwrap_or_default()
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut t = Table::default();
        let s = &self.settings;
        let _ = writeln!(
            t.out,
            "switchyard bench: tasks {}, enqueue tasks {}, clients {}, batch {}, latency {} s, wait samples {}, worker concurrency {}\nredis-server: stream-node-max-entries {} (ceiling included)\n",
            s.tasks,
            s.enqueue_tasks,
            s.clients,
            s.batch,
            s.latency_secs,
            s.wait_samples,
            s.worker_concurrency,
            s.redis_stream_node_max_entries
        );
        t.row("figure", "value", "of ceiling", "target");
        t.rule();
        if let Some(c) = &self.ceiling {
            t.rate(
                "ceiling: raw XADD → XREADGROUP+XACK",
                c.tasks_per_s,
                Some(100.0),
                "",
            );
            t.row(
                "  entries, value bytes",
                &format!("{} acked, {} B", c.acked, c.value_bytes),
                "",
                "",
            );
        }
        let oc = &self.of_ceiling;
        if let Some(l) = &self.enqueue_single {
            t.load(
                &format!("enqueue: POST /api/tasks, {} clients", l.clients),
                l,
                oc.enqueue_single_pct,
            );
        }
        match &self.enqueue_batch {
            Some(l) if l.missing_route => {
                t.row(
                    "enqueue: POST /api/tasks/batch",
                    "MISSING (see note)",
                    "",
                    "",
                );
            }
            Some(l) => t.load(
                &format!(
                    "enqueue: POST /api/tasks/batch ×{}, {} clients",
                    l.batch, l.clients
                ),
                l,
                oc.enqueue_batch_pct,
            ),
            None => {}
        }
        if let Some(d) = &self.drain {
            t.rate(
                "drain: preloaded, worker started after",
                d.tasks_per_s,
                oc.drain_pct,
                "",
            );
            t.row(
                "  tasks, worker start-up",
                &format!(
                    "{} / {}, {:.1} ms",
                    d.succeeded, d.tasks, d.worker_startup_ms
                ),
                "",
                "",
            );
        }
        if let Some(e) = &self.e2e {
            let label = format!("e2e: {} enqueue + 1 worker", e.via);
            t.rate(
                &label,
                e.tasks_per_s,
                oc.e2e_pct,
                &self.target("e2e vs ceiling"),
            );
            t.row(
                "  succeeded / accepted, failed",
                &format!("{} / {}, {}", e.succeeded, e.enqueue.accepted, e.failed),
                "",
                "",
            );
            t.row(
                "  enqueue rate during e2e",
                &format!("{:.0} tasks/s", e.enqueue.tasks_per_s),
                "",
                "",
            );
        }
        if let Some(x) = &self.ceiling_efficiency {
            t.row(
                "ceiling Redis commands, CPU per task",
                &format!("{:.2}, {:.2} µs", x.commands_per_task, x.cpu_us_per_task),
                "",
                "",
            );
        }
        if let Some(x) = &self.efficiency {
            t.row(
                "e2e Redis commands per task (in Lua too)",
                &format!("{:.2}", x.commands_per_task),
                "",
                "",
            );
            t.row(
                "e2e Redis CPU per task",
                &format!("{:.2} µs", x.cpu_us_per_task),
                "",
                &self.target("Redis CPU per task"),
            );
            for c in &x.top {
                t.row(
                    &format!("  {}", c.command),
                    &format!("{:.2} /task, {:.2} µs", c.per_task, c.usec_per_task),
                    "",
                    "",
                );
            }
        }
        if let Some(l) = &self.latency {
            t.row(
                "latency: open loop, rate asked / got",
                &format!("{:.0} / {:.0} tasks/s", l.rate_requested, l.rate_achieved),
                "",
                "",
            );
            t.row(
                "  p50",
                &ms(l.latency.p50_ms),
                "",
                &self.target("latency p50"),
            );
            t.row("  p95", &ms(l.latency.p95_ms), "", "");
            t.row(
                "  p99",
                &ms(l.latency.p99_ms),
                "",
                &self.target("latency p99"),
            );
            t.row("  max", &ms(l.latency.max_ms), "", "");
            t.row(
                "  accepted, never seen, ended otherwise",
                &format!("{}, {}, {}", l.accepted, l.never_seen, l.ended_otherwise),
                "",
                "",
            );
        }
        if let Some(w) = &self.wait {
            t.row(
                "wait round trip (?wait_ms=5000) p50",
                &ms(w.latency.p50_ms),
                "",
                &self.target("wait round trip p50"),
            );
            t.row("  p99", &ms(w.latency.p99_ms), "", "");
            t.row(
                "  ok / samples",
                &format!("{} / {}", w.ok, w.samples),
                "",
                "",
            );
        }
        let m = &self.memory;
        let kib = |v: Option<u64>| v.map_or("-".to_owned(), |k| format!("{:.1} MiB", mib(k)));
        t.row(
            "dispatcher RSS idle",
            &kib(m.dispatcher_idle_rss_kib),
            "",
            &self.target("dispatcher idle RSS"),
        );
        t.row("  peak", &kib(m.dispatcher_peak_rss_kib), "", "");
        t.row(
            "worker RSS idle",
            &kib(m.worker_idle_rss_kib),
            "",
            &self.target("worker idle RSS"),
        );
        t.row("  peak", &kib(m.worker_peak_rss_kib), "", "");
        t.row(
            "enqueue-phase dispatcher peak RSS",
            &kib(m.enqueue_dispatcher_peak_rss_kib),
            "",
            "",
        );
        let bytes = |v: Option<u64>| {
            v.map_or("-".to_owned(), |b| {
                format!("{:.1} MiB", b as f64 / 1048576.0)
            })
        };
        t.row(
            "Redis used_memory after the run",
            &bytes(m.redis_used_memory_bytes),
            "",
            "",
        );
        t.row(
            "  used_memory_peak",
            &bytes(m.redis_used_memory_peak_bytes),
            "",
            "",
        );
        let c = &self.bench_cpu;
        for (name, cpu, wall) in [
            ("bench's own CPU during e2e", c.e2e_cpu_s, c.e2e_wall_s),
            (
                "bench's own CPU during latency",
                c.latency_cpu_s,
                c.latency_wall_s,
            ),
        ] {
            if let (Some(cpu), Some(wall)) = (cpu, wall) {
                let share = if wall > 0.0 { 100.0 * cpu / wall } else { 0.0 };
                t.row(name, &format!("{cpu:.2} s ({share:.0}% of a core)"), "", "");
            }
        }
        t.rule();
        for n in &self.notes {
            let _ = writeln!(t.out, "note: {n}");
        }
        for f in &self.failures {
            let _ = writeln!(t.out, "FAILED: {f}");
        }
        let _ = writeln!(t.out, "result: {}", if self.ok { "ok" } else { "FAILED" });
        t.out
    }
}

fn ms(v: f64) -> String {
    format!("{v:.3} ms")
}

/// Fixed-width rows.
#[derive(Default)]
struct Table {
    out: String,
}

impl Table {
    fn row(&mut self, label: &str, value: &str, ratio: &str, target: &str) {
        let _ = writeln!(self.out, "{label:<46} {value:>22} {ratio:>11}  {target}");
    }

    fn rule(&mut self) {
        let _ = writeln!(self.out, "{}", "-".repeat(100));
    }

    fn rate(&mut self, label: &str, tps: f64, pct: Option<f64>, target: &str) {
        let ratio = pct.map_or(String::new(), |p| format!("{p:.1}%"));
        self.row(label, &format!("{tps:.0} tasks/s"), &ratio, target);
    }

    fn load(&mut self, label: &str, l: &Load, pct: Option<f64>) {
        self.rate(label, l.tasks_per_s, pct, "");
        let p: Percentiles = l.request_latency;
        self.row(
            "  request p50 / p99",
            &format!("{:.3} / {:.3} ms", p.p50_ms, p.p99_ms),
            "",
            "",
        );
        self.row(
            "  accepted / tasks, refused",
            &format!("{} / {}, {}", l.accepted, l.tasks, l.refused_tasks),
            "",
            "",
        );
    }
}
