#!/usr/bin/env bash
# Runs the switchyard benchmark (issue #6): builds the release binaries, then target/release/bench,
# which starts its own redis-server (no persistence) on a free loopback port, a dispatcher and a
# worker, and measures in one run: the raw-Redis ceiling, enqueue (single and batch), drain,
# end-to-end throughput, open-loop latency, the ?wait_ms= round trip, Redis commands and CPU per
# task, memory, and held tasks (Redis cost per held task, a SIGKILL among 1,000, RSS per running task;
# alone with --held-only). Prints a table and one `BENCH_JSON {...}` line; exits 1 when a phase timed out
# or a task was lost or refused (targets are only marked PASS/FAIL). Takes a few minutes.
#
# usage: ops/bench.sh [FLAGS…]   FLAGS go to the bench (ops/bench.sh --help lists them), e.g.
#   ops/bench.sh                                      the full run (100k tasks)
#   ops/bench.sh --tasks 2000 --enqueue-tasks 1000 --latency-secs 2 --wait-samples 100   a quick one
#   ops/bench.sh --json-only | grep '^BENCH_JSON'     for scripts
#   ops/bench.sh --redis tls --tasks 5000     end to end on redis:// then rediss:// (a CA it makes)
#   ops/bench.sh --redis cluster --tasks 6000 per queue on one redis-server then a 3-primary cluster
# Needs redis-server on PATH (installed with apt-get when missing and run as root, as ops/test.sh);
# --redis tls also needs openssl, --redis cluster redis-cli.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if ! command -v redis-server >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "redis-server not found: installing it with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server >&2
  fi
  if ! command -v redis-server >/dev/null 2>&1; then
    cat >&2 <<'MSG'
error: the bench needs redis-server on PATH (it starts its own on a free port).
  Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y redis-server
  Fedora:         sudo dnf install -y redis
  macOS:          brew install redis
MSG
    exit 1
  fi
fi

cargo build --release -p switchyard-dispatcher -p switchyard-worker -p switchyard-bench >&2
exec target/release/bench --bin-dir target/release "$@"
