//! Redis's cost per task over a phase: commands run (those inside Lua scripts included) and CPU
//! time, from two [`Snapshot`]s, with the bench's own commands taken out.

use serde::Serialize;

use crate::info::Snapshot;

/// Commands shown in the breakdown.
const TOP: usize = 8;

/// One command's share of a phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandShare {
    /// Command name as `INFO commandstats` spells it (`evalsha`, `xgroup|create`, …).
    pub command: String,
    /// Calls during the phase.
    pub calls: u64,
    /// Calls per task.
    pub per_task: f64,
    /// Microseconds Redis spent in it per task, as `INFO commandstats` counts them (a script's
    /// time includes the calls it makes, which also count under their own names).
    pub usec_per_task: f64,
}

/// Redis's cost of a phase per task.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Efficiency {
    /// Tasks the cost is divided by.
    pub tasks: u64,
    /// Commands run during the phase (calls from Lua scripts included).
    pub commands: u64,
    /// `commands / tasks`.
    pub commands_per_task: f64,
    /// Redis CPU time (user + system) during the phase, seconds.
    pub cpu_s: f64,
    /// Redis CPU per task, µs.
    pub cpu_us_per_task: f64,
    /// The most called commands, most called first.
    pub top: Vec<CommandShare>,
    /// The dispatcher's CPU (user + system) per task over the phase, µs, when measured.
    pub dispatcher_cpu_us_per_task: Option<f64>,
    /// The worker's CPU per task over the phase, µs, when measured.
    pub worker_cpu_us_per_task: Option<f64>,
}

impl Efficiency {
    /// The cost between `before` and `after` of `tasks` tasks, less `own_hmgets` HMGET polls the
    /// bench sent and every INFO (only the bench sends those).
    pub fn between(before: &Snapshot, after: &Snapshot, tasks: u64, own_hmgets: u64) -> Self {
        let per_task = |n: f64| if tasks > 0 { n / tasks as f64 } else { 0.0 };
        let mut deltas = after.commands.since(&before.commands);
        deltas.retain(|(name, _)| name != "info");
        for (name, d) in &mut deltas {
            if name == "hmget" && d.calls > 0 {
                // Take the polls' share of the time out with their calls.
                let own = own_hmgets.min(d.calls);
                d.usec -= d.usec * own / d.calls;
                d.calls -= own;
            }
        }
        deltas.retain(|(_, d)| d.calls > 0);
        deltas.sort_by(|a, b| b.1.calls.cmp(&a.1.calls).then_with(|| a.0.cmp(&b.0)));
        let commands: u64 = deltas.iter().map(|(_, d)| d.calls).sum();
        let cpu_s = (after.cpu.total_s() - before.cpu.total_s()).max(0.0);
        Self {
            tasks,
            commands,
            commands_per_task: per_task(commands as f64),
            cpu_s,
            cpu_us_per_task: per_task(cpu_s * 1e6),
            top: deltas
                .into_iter()
                .take(TOP)
                .map(|(command, d)| CommandShare {
                    per_task: per_task(d.calls as f64),
                    usec_per_task: per_task(d.usec as f64),
                    command,
                    calls: d.calls,
                })
                .collect(),
            dispatcher_cpu_us_per_task: None,
            worker_cpu_us_per_task: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::info::{CommandStats, CpuUsage};

    fn snap(stats: &str, cpu_user: f64) -> Snapshot {
        Snapshot {
            commands: CommandStats::parse(stats).expect("decodes"),
            cpu: CpuUsage {
                user_s: cpu_user,
                sys_s: 0.5,
            },
        }
    }

    #[test]
    fn cost_per_task_leaves_out_the_bench_own_commands() {
        let before = snap(
            "cmdstat_info:calls=2,usec=1\r\ncmdstat_hmget:calls=1,usec=1",
            1.0,
        );
        let after = snap(
            "cmdstat_info:calls=6,usec=1\r\ncmdstat_hmget:calls=31,usec=4\r\n\
             cmdstat_evalsha:calls=200,usec=1\r\ncmdstat_xadd:calls=100,usec=1",
            1.1,
        );
        let e = Efficiency::between(&before, &after, 100, 20);
        assert_eq!(e.commands, 310);
        assert!((e.commands_per_task - 3.1).abs() < 1e-9);
        assert!((e.cpu_us_per_task - 1000.0).abs() < 1e-6);
        assert_eq!(e.top[0].command, "evalsha");
        assert_eq!(e.top[2].calls, 10);
        assert!((e.top[2].usec_per_task - 0.01).abs() < 1e-9);
    }
}
