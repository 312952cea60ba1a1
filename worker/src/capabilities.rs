//! What a worker can serve and which queues carry what: the routing convention of capability
//! tools. Each switch (`ENABLE_WEB_SEARCH`, `ENABLE_FILE_TOOLS`, `ENABLE_CODE_EXEC`) owns one
//! queue (`web`, `files`, `exec`); tasks for its tools are submitted there, and only workers with
//! the switch on may list that queue in `WORKER_QUEUES`: a worker that would consume a queue it
//! cannot serve refuses to start. The list of served tools is advertised in the registry record
//! and so in `GET /api/workers`.

use switchyard_shared::config::{ConfigError, WorkerConfig};
use switchyard_shared::task::ALWAYS_ON_TOOLS;
use tracing::warn;

/// Tools behind one switch, and the queue their tasks go to.
#[derive(Debug, Clone, Copy)]
pub struct Capability {
    /// The queue that carries this capability's tasks.
    pub queue: &'static str,
    /// The environment variable that turns it on.
    pub switch: &'static str,
    /// The tools it serves.
    pub tools: &'static [&'static str],
    /// Reads the switch from the configuration.
    is_on: fn(&WorkerConfig) -> bool,
}

/// Every capability, by the routing convention.
pub const CAPABILITIES: &[Capability] = &[
    Capability {
        queue: "web",
        switch: "ENABLE_WEB_SEARCH",
        is_on: |c| c.tools.enable_web_search,
        tools: &["web_fetch"],
    },
    Capability {
        queue: "files",
        switch: "ENABLE_FILE_TOOLS",
        is_on: |c| c.tools.enable_file_tools,
        tools: &["read_file", "write_file", "list_dir"],
    },
    Capability {
        queue: "exec",
        switch: "ENABLE_CODE_EXEC",
        is_on: |c| c.tools.enable_code_exec,
        tools: &["exec"],
    },
];

impl Capability {
    /// Whether `cfg` turns this capability on.
    pub fn enabled(&self, cfg: &WorkerConfig) -> bool {
        (self.is_on)(cfg)
    }
}

/// The capability a tool needs; `None` for the always-on tools (and unknown names).
pub fn needed_by(tool: &str) -> Option<&'static Capability> {
    CAPABILITIES.iter().find(|c| c.tools.contains(&tool))
}

/// The tools `cfg` serves: the always-on ones, then those of each enabled capability.
pub fn served_tools(cfg: &WorkerConfig) -> Vec<&'static str> {
    let mut tools = ALWAYS_ON_TOOLS.to_vec();
    for c in CAPABILITIES.iter().filter(|c| c.enabled(cfg)) {
        tools.extend_from_slice(c.tools);
    }
    tools
}

/// Refuses a `WORKER_QUEUES` that names a capability queue whose switch is off: this worker
/// would fail every task on it that a capable worker could have run.
pub fn check_queues(cfg: &WorkerConfig) -> Result<(), ConfigError> {
    for c in CAPABILITIES {
        if !c.enabled(cfg) && cfg.worker_queues.iter().any(|q| q == c.queue) {
            return Err(ConfigError::Invalid {
                var: "WORKER_QUEUES",
                message: format!(
                    "lists queue {:?}, which carries {} tasks, but {} is off; set {}=true or drop the queue",
                    c.queue,
                    c.tools.join("/"),
                    c.switch,
                    c.switch
                ),
            });
        }
    }
    Ok(())
}

/// Logs capabilities that are on but whose queue this worker does not consume (they only serve
/// tasks that arrive on another queue by mistake).
pub fn warn_unused(cfg: &WorkerConfig) {
    for c in CAPABILITIES {
        if c.enabled(cfg) && !cfg.worker_queues.iter().any(|q| q == c.queue) {
            warn!(
                switch = c.switch,
                queue = c.queue,
                "capability is on but WORKER_QUEUES does not list its queue; its tasks will not reach this worker"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_shared::task::KNOWN_TOOLS;

    fn cfg(pairs: &[(&str, &str)]) -> WorkerConfig {
        let vars: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        WorkerConfig::from_vars(&vars).expect("valid test config")
    }

    #[test]
    fn every_known_tool_is_always_on_or_behind_one_switch() {
        for t in KNOWN_TOOLS {
            let switches = CAPABILITIES.iter().filter(|c| c.tools.contains(t)).count();
            assert_eq!(
                usize::from(ALWAYS_ON_TOOLS.contains(t)) + switches,
                1,
                "{t}"
            );
        }
    }

    #[test]
    fn a_capability_queue_needs_its_switch() {
        let e = check_queues(&cfg(&[("WORKER_QUEUES", "chat,tool,web")])).expect_err("off");
        let msg = e.to_string();
        assert!(
            msg.contains("WORKER_QUEUES") && msg.contains("ENABLE_WEB_SEARCH"),
            "{msg}"
        );
        let on = cfg(&[("WORKER_QUEUES", "chat,web"), ("ENABLE_WEB_SEARCH", "true")]);
        check_queues(&on).expect("served");
        assert_eq!(
            served_tools(&on),
            vec!["echo", "sleep", "fail", "web_fetch"]
        );
        check_queues(&cfg(&[])).expect("defaults serve their queues");
    }
}
