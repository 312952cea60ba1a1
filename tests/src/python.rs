//! The official OpenAI Python SDK as a test client: the scenarios in `tests/python/` run with the
//! interpreter of the virtual environment `ops/test-pyenv.sh` creates (`target/pyenv`, next to
//! the test binaries' profile directories). A missing environment fails the test with the command
//! that makes it, rather than installing from the network in the middle of a test run.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// Longest a scenario may run.
const SCENARIO_DEADLINE: Duration = Duration::from_secs(120);

/// The virtual environment's interpreter.
pub fn venv_python() -> PathBuf {
    let exe = std::env::current_exe().expect("cannot locate the test executable");
    // target/<profile>/deps/<test> → target
    let target = exe
        .ancestors()
        .nth(3)
        .expect("test executable is not in target/<profile>/deps")
        .to_path_buf();
    let python = target.join("pyenv").join("bin").join("python");
    assert!(
        python.is_file(),
        "{} is missing: the OpenAI SDK tests need the Python virtual environment; create it with \
         `ops/test-pyenv.sh` (ops/test.sh runs it)",
        python.display()
    );
    python
}

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python")
}

/// Runs `scenario` of `tests/python/sdk_scenarios.py` against the `/v1` at `base_url` with
/// `api_key`, `model` and `args` (the scenario's expectations), and answers the JSON facts it
/// printed. Panics with the scenario's output when it fails.
pub async fn run_scenario(
    scenario: &str,
    base_url: &str,
    api_key: &str,
    model: &str,
    args: &Value,
) -> Value {
    let python = venv_python();
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(scripts_dir().join("sdk_scenarios.py"))
        .arg(scenario)
        .env_clear()
        .env("SY_BASE_URL", base_url)
        .env("SY_API_KEY", api_key)
        .env("SY_MODEL", model)
        .env("SY_ARGS", args.to_string())
        // The SDK must talk to the loopback dispatcher, never through a proxy.
        .env("NO_PROXY", "*")
        .kill_on_drop(true);
    let out = tokio::time::timeout(SCENARIO_DEADLINE, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("scenario {scenario} ran longer than {SCENARIO_DEADLINE:?}"))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scenario {scenario} failed ({}):\n{stderr}\n{stdout}",
        out.status
    );
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("scenario {scenario} printed no JSON facts ({e}): {stdout}"))
}
