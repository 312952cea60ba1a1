#!/usr/bin/env bash
# Checks and tests the whole workspace, as CI does: formatting, clippy (warnings are errors), the
# Python venv of the OpenAI SDK tests (ops/test-pyenv.sh), a debug build of the binaries (the
# end-to-end tests spawn target/debug/dispatcher and target/debug/worker against a real
# redis-server; the console test drives Debian's headless chromium through chromedriver), then
# the tests.
#
# usage: ops/test.sh [ARGS…]   ARGS are passed to the test runner (cargo nextest run / cargo test)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

say() { printf '%s\n' "$*"; }

# The tests start redis-server, redis-sentinel (Sentinel failover), redis-cli (`--cluster create`,
# readiness of TLS nodes) and openssl (the TLS tests' private CA).
REDIS_COMMANDS=(redis-server redis-sentinel redis-cli openssl)
REDIS_PACKAGES=(redis-server redis-sentinel redis-tools openssl)

# Whether every command named is on PATH.
commands_present() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || return 1
  done
}

# ensure_commands HINT COMMANDS PACKAGES: when a command of the array COMMANDS is missing,
# installs the array PACKAGES with apt-get (as root on Debian), else prints HINT's text and exits.
ensure_commands() {
  local hint=$1
  local -n cmds=$2 pkgs=$3
  if commands_present "${cmds[@]}"; then
    return
  fi
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${pkgs[*]} with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${pkgs[@]}"
    commands_present "${cmds[@]}" && return
    say "error: apt-get did not install ${cmds[*]}" >&2
    exit 1
  fi
  "$hint" >&2
  exit 1
}

redis_hint() {
  cat <<'EOF'
error: the end-to-end tests need redis-server, redis-sentinel, redis-cli and openssl.
  Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y redis-server redis-sentinel redis-tools openssl
  Fedora:         sudo dnf install -y redis openssl
  macOS:          brew install redis openssl
Then run ops/test.sh again. (The tests start their own servers on free ports; a system Redis is
not used.)
EOF
}

# The console test (tests/tests/console.rs) drives a headless Chromium over WebDriver.
BROWSER_COMMANDS=(chromium chromedriver)
BROWSER_PACKAGES=(chromium chromium-driver)

browser_hint() {
  cat <<'EOF'
error: the console test needs chromium and chromedriver.
  Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y chromium chromium-driver
Then run ops/test.sh again.
EOF
}

now_ms() {
  if [[ -n ${EPOCHREALTIME:-} ]]; then
    local t=${EPOCHREALTIME/[.,]/}
    echo $((t / 1000))
  else
    echo $((SECONDS * 1000))
  fi
}

fmt_ms() {
  local ms=$1
  printf '%d.%01ds' $((ms / 1000)) $((ms % 1000 / 100))
}

declare -a FAILED=() SUMMARY=()

# step NAME COMMAND…: runs COMMAND, records its time and whether it failed.
step() {
  local name=$1 start rc=0 took
  shift
  say ""
  say "==> $name: $*"
  start=$(now_ms)
  "$@" || rc=$?
  took=$(fmt_ms $(($(now_ms) - start)))
  if ((rc == 0)); then
    say "<== $name ok ($took)"
    SUMMARY+=("$(printf '%-7s %8s  %s' ok "$took" "$name")")
  else
    say "<== $name FAILED with exit code $rc ($took)" >&2
    SUMMARY+=("$(printf '%-7s %8s  %s' FAILED "$took" "$name")")
    FAILED+=("$name")
  fi
  return "$rc"
}

skip() {
  say ""
  say "==> $1: skipped ($2)"
  SUMMARY+=("$(printf '%-7s %8s  %s' skipped - "$1 ($2)")")
}

total_start=$(now_ms)

command -v cargo >/dev/null 2>&1 || {
  say "error: cargo is not installed; install Rust from https://rustup.rs" >&2
  exit 1
}
ensure_commands redis_hint REDIS_COMMANDS REDIS_PACKAGES
say "redis-server: $(redis-server --version | head -n 1)"
ensure_commands browser_hint BROWSER_COMMANDS BROWSER_PACKAGES
say "$(chromium --version 2>/dev/null | head -n 1)"
say "$(cargo --version)"

# Lints do not stop the build and tests from running (so one run shows everything), but a failed
# build skips the tests.
step "fmt" cargo fmt --all -- --check || true
step "clippy" cargo clippy --workspace --all-targets -- -D warnings || true
# The /v1 tests drive the dispatcher with the official OpenAI Python client from this venv.
step "python venv" ops/test-pyenv.sh || true
if step "build" cargo build --workspace --bins; then
  if cargo nextest --version >/dev/null 2>&1; then
    step "test (nextest)" cargo nextest run --workspace --no-fail-fast "$@" || true
  else
    step "test" cargo test --workspace --no-fail-fast "$@" || true
  fi
else
  skip "test" "the build failed"
fi

say ""
say "summary:"
for line in "${SUMMARY[@]}"; do say "  $line"; done
say "  $(printf '%-7s %8s' total "$(fmt_ms $(($(now_ms) - total_start)))")"

if ((${#FAILED[@]} > 0)); then
  say "FAILED step(s): ${FAILED[*]}" >&2
  exit 1
fi
say "all steps passed"
