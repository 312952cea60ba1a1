//! The tools a tool task can call. `echo`, `sleep` and `fail` are always on (tests and
//! benchmarks use them); the others need a capability switch and are not built yet.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_shared::task::{KNOWN_TOOLS, ToolPayload, decode_payload};

/// A tool call that did not produce output.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ToolError {
    /// Worth another attempt (transient failure).
    #[error("{0}")]
    Retryable(String),
    /// Will fail the same way every time (bad arguments, unknown tool).
    #[error("{0}")]
    Permanent(String),
}

/// Runs the tool a payload names and returns its `{"output": …}` result. Cancellation and
/// shutdown stop it by dropping the future, which every tool here tolerates.
pub async fn run(payload: &Value) -> Result<Value, ToolError> {
    let p: ToolPayload =
        decode_payload(payload).map_err(|e| ToolError::Permanent(e.to_string()))?;
    let output = match p.tool.as_str() {
        "echo" => p.args,
        "sleep" => sleep(&p.args).await?,
        "fail" => return Err(fail(&p.args)?),
        other if KNOWN_TOOLS.contains(&other) => {
            return Err(ToolError::Permanent(format!(
                "tool {other:?} is not available on this worker"
            )));
        }
        other => return Err(ToolError::Permanent(format!("unknown tool {other:?}"))),
    };
    Ok(json!({ "output": output }))
}

fn args<T: serde::de::DeserializeOwned>(tool: &str, v: &Value) -> Result<T, ToolError> {
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
        let r = run(&json!({"tool": "echo", "args": {"a": 1}})).await;
        assert_eq!(r, Ok(json!({"output": {"a": 1}})));
    }

    #[tokio::test(start_paused = true)]
    async fn sleep_sleeps_for_ms() {
        let t = tokio::time::Instant::now();
        let r = run(&json!({"tool": "sleep", "args": {"ms": 1500}})).await;
        assert_eq!(r, Ok(json!({"output": {"slept_ms": 1500}})));
        assert!(t.elapsed() >= Duration::from_millis(1500));
    }

    #[tokio::test]
    async fn bad_args_and_unknown_tools_fail_permanently() {
        let r = run(&json!({"tool": "sleep", "args": {"ms": "x"}})).await;
        assert!(matches!(r, Err(ToolError::Permanent(m)) if m.contains("ms")));
        let r = run(&json!({"tool": "teleport"})).await;
        assert!(matches!(r, Err(ToolError::Permanent(m)) if m.contains("teleport")));
        let r = run(&json!({"tool": "exec"})).await;
        assert!(matches!(r, Err(ToolError::Permanent(m)) if m.contains("not available")));
    }

    #[tokio::test]
    async fn fail_is_retryable_unless_permanent() {
        let r = run(&json!({"tool": "fail", "args": {"message": "boom"}})).await;
        assert_eq!(r, Err(ToolError::Retryable("boom".into())));
        let r = run(&json!({"tool": "fail", "args": {"permanent": true}})).await;
        assert!(matches!(r, Err(ToolError::Permanent(_))));
    }
}
