//! Redis `INFO` text decoded into typed structs (command counts, CPU time, memory), and the
//! before/after snapshots whose difference is a phase's cost on the Redis side.

use std::collections::BTreeMap;

use redis::aio::MultiplexedConnection;

/// An `INFO` reply without a field the bench needs, or with a malformed value.
#[derive(Debug, thiserror::Error)]
pub enum InfoError {
    /// The field is absent.
    #[error("INFO: field {0} missing")]
    Missing(&'static str),
    /// The field's value does not parse.
    #[error("INFO: field {field} has the malformed value {value:?}")]
    Malformed {
        /// The field (or `cmdstat_<name>`).
        field: String,
        /// Its raw value.
        value: String,
    },
}

/// `key:value` lines of an `INFO` reply; section headers (`# Cpu`) and blank lines skipped.
fn fields(text: &str) -> BTreeMap<&str, &str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .collect()
}

fn number<T: std::str::FromStr>(
    fields: &BTreeMap<&str, &str>,
    name: &'static str,
) -> Result<T, InfoError> {
    let raw = fields.get(name).ok_or(InfoError::Missing(name))?;
    raw.parse().map_err(|_| InfoError::Malformed {
        field: name.to_owned(),
        value: (*raw).to_owned(),
    })
}

/// One line of `INFO commandstats`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommandStat {
    /// Times the command ran (calls from Lua scripts included).
    pub calls: u64,
    /// Microseconds spent in it.
    pub usec: u64,
}

/// `INFO commandstats`: per command (`xadd`, `evalsha`, `xgroup|create`, …) its counters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandStats {
    /// Counters by lower-case command name.
    pub commands: BTreeMap<String, CommandStat>,
}

impl CommandStats {
    /// Decodes the text of `INFO commandstats`.
    pub fn parse(text: &str) -> Result<Self, InfoError> {
        let mut commands = BTreeMap::new();
        for (key, value) in fields(text) {
            let Some(name) = key.strip_prefix("cmdstat_") else {
                continue;
            };
            let malformed = || InfoError::Malformed {
                field: key.to_owned(),
                value: value.to_owned(),
            };
            let mut stat = CommandStat::default();
            let (mut calls, mut usec) = (false, false);
            for pair in value.split(',') {
                let (k, v) = pair.split_once('=').ok_or_else(malformed)?;
                match k {
                    "calls" => {
                        stat.calls = v.parse().map_err(|_| malformed())?;
                        calls = true;
                    }
                    "usec" => {
                        stat.usec = v.parse().map_err(|_| malformed())?;
                        usec = true;
                    }
                    _ => {}
                }
            }
            if !(calls && usec) {
                return Err(malformed());
            }
            commands.insert(name.to_owned(), stat);
        }
        Ok(Self { commands })
    }

    /// Total calls of every command.
    pub fn total_calls(&self) -> u64 {
        self.commands.values().map(|c| c.calls).sum()
    }

    /// What each command did since `before`, most called first (commands not called omitted).
    pub fn since(&self, before: &Self) -> Vec<(String, CommandStat)> {
        let mut out: Vec<(String, CommandStat)> = self
            .commands
            .iter()
            .map(|(name, now)| {
                let then = before.commands.get(name).copied().unwrap_or_default();
                let delta = CommandStat {
                    calls: now.calls.saturating_sub(then.calls),
                    usec: now.usec.saturating_sub(then.usec),
                };
                (name.clone(), delta)
            })
            .filter(|(_, d)| d.calls > 0)
            .collect();
        out.sort_by(|a, b| b.1.calls.cmp(&a.1.calls).then_with(|| a.0.cmp(&b.0)));
        out
    }
}

/// `INFO cpu`: CPU time Redis has used, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CpuUsage {
    /// `used_cpu_user`.
    pub user_s: f64,
    /// `used_cpu_sys`.
    pub sys_s: f64,
}

impl CpuUsage {
    /// Decodes the text of `INFO cpu`.
    pub fn parse(text: &str) -> Result<Self, InfoError> {
        let f = fields(text);
        Ok(Self {
            user_s: number(&f, "used_cpu_user")?,
            sys_s: number(&f, "used_cpu_sys")?,
        })
    }

    /// User plus system time, in seconds.
    pub fn total_s(&self) -> f64 {
        self.user_s + self.sys_s
    }
}

/// `INFO memory`: what the bench reports of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Memory {
    /// `used_memory`, bytes allocated by Redis.
    pub used_memory: u64,
    /// `used_memory_peak`, the most it ever allocated.
    pub used_memory_peak: u64,
}

impl Memory {
    /// Decodes the text of `INFO memory`.
    pub fn parse(text: &str) -> Result<Self, InfoError> {
        let f = fields(text);
        Ok(Self {
            used_memory: number(&f, "used_memory")?,
            used_memory_peak: number(&f, "used_memory_peak")?,
        })
    }
}

/// Command counters and CPU time at one moment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    /// `INFO commandstats`.
    pub commands: CommandStats,
    /// `INFO cpu`.
    pub cpu: CpuUsage,
}

impl Snapshot {
    /// Reads both sections in one round trip.
    pub async fn take(con: &mut MultiplexedConnection) -> Result<Self, crate::BenchError> {
        let (commands, cpu): (String, String) = redis::pipe()
            .cmd("INFO")
            .arg("commandstats")
            .cmd("INFO")
            .arg("cpu")
            .query_async(con)
            .await?;
        Ok(Self {
            commands: CommandStats::parse(&commands)?,
            cpu: CpuUsage::parse(&cpu)?,
        })
    }
}

/// Reads `INFO memory`.
pub async fn memory(con: &mut MultiplexedConnection) -> Result<Memory, crate::BenchError> {
    let text: String = redis::cmd("INFO").arg("memory").query_async(con).await?;
    Ok(Memory::parse(&text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMANDSTATS: &str = "# Commandstats\r\n\
        cmdstat_xadd:calls=120,usec=600,usec_per_call=5.00,rejected_calls=0,failed_calls=0\r\n\
        cmdstat_evalsha:calls=10,usec=900,usec_per_call=90.00,rejected_calls=0,failed_calls=1\r\n\
        cmdstat_xgroup|create:calls=1,usec=3,usec_per_call=3.00,rejected_calls=0,failed_calls=0\r\n";

    #[test]
    fn commandstats_decode_with_subcommands_and_deltas() {
        let now = CommandStats::parse(COMMANDSTATS).expect("decodes");
        assert_eq!(
            now.commands["xadd"],
            CommandStat {
                calls: 120,
                usec: 600
            }
        );
        assert_eq!(now.commands["xgroup|create"].calls, 1);
        assert_eq!(now.total_calls(), 131);
        let before = CommandStats::parse("cmdstat_xadd:calls=20,usec=100\r\n").expect("decodes");
        let calls: Vec<(String, u64, u64)> = now
            .since(&before)
            .into_iter()
            .map(|(n, d)| (n, d.calls, d.usec))
            .collect();
        assert_eq!(
            calls,
            vec![
                ("xadd".to_owned(), 100, 500),
                ("evalsha".to_owned(), 10, 900),
                ("xgroup|create".to_owned(), 1, 3)
            ]
        );
    }

    #[test]
    fn malformed_or_missing_fields_are_errors_not_zeros() {
        assert!(matches!(
            CommandStats::parse("cmdstat_get:calls=x,usec=1"),
            Err(InfoError::Malformed { .. })
        ));
        assert!(matches!(
            CommandStats::parse("cmdstat_get:usec=1"),
            Err(InfoError::Malformed { .. })
        ));
        assert!(matches!(
            CpuUsage::parse("# Cpu\r\nused_cpu_sys:1.5\r\n"),
            Err(InfoError::Missing("used_cpu_user"))
        ));
        let cpu = CpuUsage::parse("# Cpu\r\nused_cpu_sys:1.5\r\nused_cpu_user:2.25\r\n")
            .expect("decodes");
        assert!((cpu.total_s() - 3.75).abs() < 1e-9);
        let mem =
            Memory::parse("used_memory:1024\r\nused_memory_human:1K\r\nused_memory_peak:2048")
                .expect("decodes");
        assert_eq!(mem.used_memory, 1024);
        assert_eq!(mem.used_memory_peak, 2048);
    }
}
