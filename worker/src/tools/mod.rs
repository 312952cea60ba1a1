//! The tools a tool task can call. `echo`, `sleep` and `fail` are always on (tests and
//! benchmarks use them); `web_fetch`, the file tools and `exec` each need their capability switch
//! (see [`crate::capabilities`]). A [`Toolbox`] holds the enabled tools with their limits; a tool
//! whose switch is off fails permanently with an error naming the switch and the queue to use.
//!
//! # Layout
//! - [`web_fetch`]: HTTP GET with address checks on every hop, size/redirect/time limits.
//! - [`files`]: `read_file`, `write_file`, `list_dir`, confined to `TOOL_SANDBOX_DIR`.
//! - [`exec`]: an argument vector run in the sandbox without a shell, with time/output limits.

pub mod exec;
pub mod files;
pub mod web_fetch;

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_shared::config::WorkerConfig;
use switchyard_shared::task::{KNOWN_TOOLS, ToolPayload, decode_payload};

use crate::capabilities;
pub use exec::Exec;
pub use files::Sandbox;
pub use web_fetch::WebFetch;

/// A tool call that did not produce output.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ToolError {
    /// Worth another attempt (transient failure).
    #[error("{0}")]
    Retryable(String),
    /// Will fail the same way every time (bad arguments, unknown or disabled tool, refusal).
    #[error("{0}")]
    Permanent(String),
}

/// Why the enabled tools could not be set up at start.
#[derive(Debug, thiserror::Error)]
pub enum ToolSetupError {
    /// `TOOL_SANDBOX_DIR` cannot be created or resolved.
    #[error("configuration: TOOL_SANDBOX_DIR {dir:?}: {source}")]
    Sandbox {
        /// The configured directory.
        dir: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The `web_fetch` HTTP client could not be built.
    #[error("cannot build the web_fetch HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// The tools one worker serves, with their limits.
#[derive(Debug, Clone, Default)]
pub struct Toolbox {
    web: Option<WebFetch>,
    files: Option<Sandbox>,
    exec: Option<Exec>,
}

impl Toolbox {
    /// The tools `cfg` enables; creates `TOOL_SANDBOX_DIR` when a tool needs it.
    pub fn from_config(cfg: &WorkerConfig) -> Result<Self, ToolSetupError> {
        let sandbox = match (
            &cfg.tools.tool_sandbox_dir,
            cfg.tools.enable_file_tools || cfg.tools.enable_code_exec,
        ) {
            (Some(dir), true) => Some(
                Sandbox::open(dir, files::FileLimits::from_config(cfg)).map_err(|source| {
                    ToolSetupError::Sandbox {
                        dir: dir.clone(),
                        source,
                    }
                })?,
            ),
            _ => None,
        };
        Ok(Self {
            web: cfg
                .tools
                .enable_web_search
                .then(|| WebFetch::from_config(cfg))
                .transpose()?,
            exec: sandbox
                .as_ref()
                .filter(|_| cfg.tools.enable_code_exec)
                .map(|s| Exec::from_config(s.root(), cfg)),
            files: sandbox.filter(|_| cfg.tools.enable_file_tools),
        })
    }

    /// Only the always-on tools.
    pub fn always_on() -> Self {
        Self::default()
    }

    /// With `web_fetch` served by `web`.
    pub fn with_web_fetch(mut self, web: WebFetch) -> Self {
        self.web = Some(web);
        self
    }

    /// With the file tools served in `sandbox`.
    pub fn with_files(mut self, sandbox: Sandbox) -> Self {
        self.files = Some(sandbox);
        self
    }

    /// With `exec` served by `exec`.
    pub fn with_exec(mut self, exec: Exec) -> Self {
        self.exec = Some(exec);
        self
    }

    /// Runs the tool a payload names and returns its `{"output": …}` result. Cancellation and
    /// shutdown stop it by dropping the future, which every tool here tolerates (`exec` kills
    /// its command).
    pub async fn run(&self, payload: &Value) -> Result<Value, ToolError> {
        let p: ToolPayload =
            decode_payload(payload).map_err(|e| ToolError::Permanent(e.to_string()))?;
        let tool = p.tool.as_str();
        let output = match tool {
            "echo" => p.args,
            "sleep" => sleep(&p.args).await?,
            "fail" => return Err(fail(&p.args)?),
            "web_fetch" => enabled(tool, self.web.as_ref())?.run(&p.args).await?,
            "read_file" => {
                enabled(tool, self.files.as_ref())?
                    .read_file(&p.args)
                    .await?
            }
            "write_file" => {
                enabled(tool, self.files.as_ref())?
                    .write_file(&p.args)
                    .await?
            }
            "list_dir" => {
                enabled(tool, self.files.as_ref())?
                    .list_dir(&p.args)
                    .await?
            }
            "exec" => enabled(tool, self.exec.as_ref())?.run(&p.args).await?,
            other if KNOWN_TOOLS.contains(&other) => {
                return Err(ToolError::Permanent(format!(
                    "tool {other:?} is not available on this worker"
                )));
            }
            other => return Err(ToolError::Permanent(format!("unknown tool {other:?}"))),
        };
        Ok(json!({ "output": output }))
    }
}

/// The tool, or the permanent error of a tool whose switch is off on this worker.
fn enabled<'a, T>(tool: &str, served: Option<&'a T>) -> Result<&'a T, ToolError> {
    served.ok_or_else(|| match capabilities::needed_by(tool) {
        Some(c) => ToolError::Permanent(format!(
            "tool {tool:?} is not enabled on this worker ({} is off); submit it on queue {:?}, which only workers with {}=true consume",
            c.switch, c.queue, c.switch
        )),
        None => ToolError::Permanent(format!("tool {tool:?} is not available on this worker")),
    })
}

/// Decodes a tool's `args`, naming the offending field.
pub(crate) fn args<T: serde::de::DeserializeOwned>(tool: &str, v: &Value) -> Result<T, ToolError> {
    decode_payload(v).map_err(|e| ToolError::Permanent(format!("{tool}: args.{e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SleepArgs {
    ms: u64,
}

async fn sleep(v: &Value) -> Result<Value, ToolError> {
    let a: SleepArgs = args("sleep", v)?;
    tokio::time::sleep(Duration::from_millis(a.ms)).await;
    Ok(json!({ "slept_ms": a.ms }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FailArgs {
    #[serde(default = "default_fail_message")]
    message: String,
    #[serde(default)]
    permanent: bool,
}

fn default_fail_message() -> String {
    "the fail tool always fails".to_owned()
}

fn fail(v: &Value) -> Result<ToolError, ToolError> {
    let a: FailArgs = args("fail", v)?;
    Ok(if a.permanent {
        ToolError::Permanent(a.message)
    } else {
        ToolError::Retryable(a.message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn echo_returns_its_args() {
        let r = Toolbox::always_on()
            .run(&json!({"tool": "echo", "args": {"a": 1}}))
            .await;
        assert_eq!(r, Ok(json!({"output": {"a": 1}})));
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_sleeps_for_ms() {
        let t = tokio::time::Instant::now();
        let r = Toolbox::always_on()
            .run(&json!({"tool": "sleep", "args": {"ms": 1500}}))
            .await;
        assert_eq!(r, Ok(json!({"output": {"slept_ms": 1500}})));
        assert!(t.elapsed() >= Duration::from_millis(1500));
    }

    #[tokio::test]
    async fn bad_args_and_unknown_tools_fail_permanently() {
        let r = Toolbox::always_on()
            .run(&json!({"tool": "sleep", "args": {"ms": "x"}}))
            .await;
        assert!(matches!(r, Err(ToolError::Permanent(m)) if m.contains("ms")));
        let r = Toolbox::always_on().run(&json!({"tool": "teleport"})).await;
        assert!(matches!(r, Err(ToolError::Permanent(m)) if m.contains("teleport")));
    }

    #[tokio::test]
    async fn disabled_tools_fail_permanently_naming_switch_and_queue() {
        let tb = Toolbox::always_on();
        for (tool, switch, queue) in [
            ("exec", "ENABLE_CODE_EXEC", "\"exec\""),
            ("web_fetch", "ENABLE_WEB_SEARCH", "\"web\""),
            ("read_file", "ENABLE_FILE_TOOLS", "\"files\""),
        ] {
            let r = tb.run(&json!({"tool": tool, "args": {}})).await;
            assert!(
                matches!(&r, Err(ToolError::Permanent(m)) if m.contains("not enabled") && m.contains(switch) && m.contains(queue)),
                "{r:?}"
            );
        }
    }

    #[tokio::test]
    async fn fail_is_retryable_unless_permanent() {
        let r = Toolbox::always_on()
            .run(&json!({"tool": "fail", "args": {"message": "boom"}}))
            .await;
        assert_eq!(r, Err(ToolError::Retryable("boom".into())));
        let r = Toolbox::always_on()
            .run(&json!({"tool": "fail", "args": {"permanent": true}}))
            .await;
        assert!(matches!(r, Err(ToolError::Permanent(_))));
    }
}
