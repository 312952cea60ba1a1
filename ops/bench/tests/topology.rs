//! `bench --redis tls` and `--redis cluster` end to end with tiny sizes against the debug
//! binaries: each runs the load on the plain redis-server and on the other Redis, and its
//! `BENCH_TOPOLOGY_JSON` line says every task succeeded on both. No timing is asserted.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn run(mode: &str) -> Value {
    let dispatcher = switchyard_tests::bin_path("dispatcher");
    let _ = switchyard_tests::bin_path("worker");
    let bin_dir = dispatcher.parent().unwrap_or(Path::new("."));
    let out = Command::new(env!("CARGO_BIN_EXE_bench"))
        .args(["--redis", mode, "--tasks", "300", "--batch", "20"])
        .args([
            "--clients",
            "8",
            "--wait-samples",
            "20",
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
        .find_map(|l| l.strip_prefix("BENCH_TOPOLOGY_JSON "))
        .unwrap_or_else(|| panic!("no BENCH_TOPOLOGY_JSON line\n{stdout}\n{stderr}"));
    let r: Value = serde_json::from_str(json).expect("BENCH_TOPOLOGY_JSON is JSON");
    assert_eq!(r["ok"], true, "{json}");
    assert_eq!(r["mode"], mode, "{json}");
    r
}

fn sides(r: &Value) -> Vec<&Value> {
    let sides: Vec<&Value> = r["sides"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    assert_eq!(sides.len(), 2, "the plain side and the other: {r}");
    for s in &sides {
        assert_eq!(s["load"]["succeeded"], 300, "{s}");
        assert_eq!(s["load"]["refused"], 0, "{s}");
    }
    sides
}

#[test]
fn tls_runs_beside_plain_tcp_with_every_task_succeeded() {
    let r = run("tls");
    let s = sides(&r);
    assert_eq!(
        (s[0]["redis"].as_str(), s[1]["redis"].as_str()),
        (Some("redis://"), Some("rediss://"))
    );
    for side in s {
        assert_eq!(side["wait"]["ok"], 20, "{side}");
    }
}

#[test]
fn cluster_runs_beside_one_redis_with_three_queues_on_three_primaries() {
    let r = run("cluster");
    assert_eq!(r["queues"].as_array().map(Vec::len), Some(3), "{r}");
    for side in sides(&r) {
        let per_queue: Vec<u64> = side["load"]["queues"]
            .as_array()
            .map(|a| a.iter().filter_map(|q| q["succeeded"].as_u64()).collect())
            .unwrap_or_default();
        assert_eq!(per_queue, [100, 100, 100], "{side}");
    }
}
