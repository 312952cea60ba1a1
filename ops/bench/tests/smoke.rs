//! The bench binary end to end with tiny sizes against the debug `dispatcher` and `worker`:
//! it finishes, and its `BENCH_JSON` line says every task was accepted and succeeded. No
//! timing is asserted.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn u(v: &Value, path: &str) -> u64 {
    v.pointer(path)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("BENCH_JSON has no number at {path}: {v}"))
}

#[test]
fn tiny_run_reports_consistent_counts_with_no_errors() {
    // The fixture finds (and rebuilds when stale) the binaries next to this test's profile dir.
    let dispatcher = switchyard_tests::bin_path("dispatcher");
    let _ = switchyard_tests::bin_path("worker");
    let bin_dir = dispatcher.parent().unwrap_or(Path::new("."));
    let out = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args([
            "--tasks",
            "300",
            "--enqueue-tasks",
            "200",
            "--clients",
            "8",
            "--batch",
            "20",
            "--latency-secs",
            "1",
            "--rate",
            "200",
            "--wait-samples",
            "20",
            "--timeout-s",
            "180",
            // The held phases hold 60 s tasks by design; they are measured by `--held-only`.
            "--no-held",
            "--log-level",
            "info",
        ])
        .arg("--bin-dir")
        .arg(bin_dir)
        .output()
        .expect("the bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench failed\n{stdout}\n{stderr}");
    let json = stdout
        .lines()
        .find_map(|l| l.strip_prefix("BENCH_JSON "))
        .unwrap_or_else(|| panic!("no BENCH_JSON line\n{stdout}\n{stderr}"));
    let r: Value = serde_json::from_str(json).expect("BENCH_JSON is JSON");

    assert_eq!(r["ok"], true, "{json}");
    // The default, as the shipped deployments set it; read back from the running redis-server.
    assert_eq!(u(&r, "/settings/redis_stream_node_max_entries"), 16);
    assert_eq!(r["failures"].as_array().map(Vec::len), Some(0), "{json}");
    assert_eq!(u(&r, "/ceiling/acked"), 300);
    assert_eq!(u(&r, "/enqueue_single/accepted"), 200);
    assert_eq!(u(&r, "/enqueue_single/refused_tasks"), 0);
    if r["batch_endpoint"] == true {
        assert_eq!(u(&r, "/enqueue_batch/accepted"), 200);
        assert_eq!(u(&r, "/enqueue_batch/refused_tasks"), 0);
        assert_eq!(u(&r, "/drain/succeeded"), 400);
    } else {
        assert_eq!(u(&r, "/drain/succeeded"), 200);
    }
    assert_eq!(u(&r, "/e2e/enqueue/accepted"), 300);
    assert_eq!(u(&r, "/e2e/succeeded"), 300);
    assert_eq!(u(&r, "/e2e/failed"), 0);
    assert_eq!(u(&r, "/e2e/enqueue/refused_tasks"), 0);
    let latency_tasks = u(&r, "/latency/tasks");
    assert_eq!(u(&r, "/latency/accepted"), latency_tasks);
    assert_eq!(u(&r, "/latency/latency/count"), latency_tasks);
    assert_eq!(u(&r, "/latency/never_seen"), 0);
    assert_eq!(u(&r, "/latency/failed_requests"), 0);
    assert_eq!(u(&r, "/wait/ok"), 20);
    assert_eq!(u(&r, "/wait/errors"), 0);
    assert!(u(&r, "/efficiency/commands") > 0, "{json}");
    assert!(u(&r, "/memory/dispatcher_idle_rss_kib") > 0, "{json}");
    assert!(u(&r, "/memory/worker_peak_rss_kib") > 0, "{json}");
    assert!(u(&r, "/memory/redis_used_memory_bytes") > 0, "{json}");
}
