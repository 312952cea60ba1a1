#!/usr/bin/env bash
# Checks the Grafana dashboard against real metrics: starts its own Redis, dispatcher, two workers
# and Prometheus (scraping every 1 s), pushes a mix of tasks (echo, failing tools that retry and
# dead-letter, a chat, a sleep), then evaluates EVERY expression of
# ops/grafana/dashboards/switchyard.json through Prometheus' HTTP API. An expression fails if
# Prometheus answers an error or an empty result. Ends with "prom-check: N passed, M failed" and
# exits 1 on any failure. Everything it starts is stopped on exit; everything it writes is in a
# mktemp directory.
#
#   ops/prom-check.sh
#
# Needs redis-server, curl, python3, cargo (only if the binaries are missing) and prometheus; when
# prometheus is missing and we are root with apt-get, it installs the Debian package (without
# letting it start its service).
#
# Script settings (SY_*, never read by the binaries):
#   SY_PROFILE=release      use target/release instead of target/debug
#   SY_PROM_OPTIONAL=1      exit 0 with a "skipped" line when prometheus cannot be installed
#   SY_PROM_SETTLE_S=N      seconds of scraping after the tasks are done (default 8)
#   SY_PROM_TIMEOUT_S=N     hard bound of the whole run (default 180)
#   SY_PROM_KEEP_LOGS=1     print the logs of every process on failure (default: last lines)
set -euo pipefail

cd "$(dirname "$0")/.."
DASHBOARD=ops/grafana/dashboards/switchyard.json
PROFILE=${SY_PROFILE:-debug}
SETTLE_S=${SY_PROM_SETTLE_S:-8}
TIMEOUT_S=${SY_PROM_TIMEOUT_S:-180}
START_S=$SECONDS

say() { echo "prom-check: $*"; }
die() { echo "prom-check: $*" >&2; exit 1; }

for c in curl python3 redis-server; do
  command -v "$c" >/dev/null 2>&1 || die "$c is not installed"
done
[[ -f $DASHBOARD ]] || die "$DASHBOARD is missing"
case $PROFILE in debug | release) ;; *) die "SY_PROFILE must be debug or release" ;; esac

TMP=$(mktemp -d)
PIDS=()
NAMES=()
POLICY_RC=""
WATCHDOG=""
FAILED_RUN=1

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
  local rc=$?
  set +e
  [[ -n $WATCHDOG ]] && kill "$WATCHDOG" 2>/dev/null && wait "$WATCHDOG" 2>/dev/null
  if ((rc != 0)) && ((FAILED_RUN)) && ((${#NAMES[@]})); then
    local n lines=20
    [[ ${SY_PROM_KEEP_LOGS:-0} == 1 ]] && lines=100000
    for n in "${NAMES[@]}"; do
      [[ -s $TMP/$n.log ]] || continue
      echo "---- $n.log (last $lines lines) ----" >&2
      tail -n "$lines" "$TMP/$n.log" >&2
    done
  fi
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill -TERM "${PIDS[i]}" 2>/dev/null
  done
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    local t=0
    while kill -0 "${PIDS[i]}" 2>/dev/null && ((t < 50)); do sleep 0.1; t=$((t + 1)); done
    kill -KILL "${PIDS[i]}" 2>/dev/null
    wait "${PIDS[i]}" 2>/dev/null
  done
  [[ -n $POLICY_RC ]] && rm -f "$POLICY_RC"
  rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Hard bound: the watchdog sends TERM to this script, whose trap stops everything.
(
  trap 'kill "$s" 2>/dev/null; exit 0' TERM
  sleep "$TIMEOUT_S" &
  s=$!
  wait "$s" && echo "prom-check: timed out after ${TIMEOUT_S}s" >&2 && kill -TERM $$
) &
WATCHDOG=$!

deadline_left() { echo $((TIMEOUT_S - (SECONDS - START_S))); }

# ---- prometheus ------------------------------------------------------------------------------
find_prometheus() {
  PROM=$(command -v prometheus 2>/dev/null || true)
  [[ -z $PROM && -x /usr/bin/prometheus ]] && PROM=/usr/bin/prometheus
  [[ -n $PROM ]]
}

install_prometheus() {
  [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1 || return 1
  say "installing prometheus (apt-get install -y prometheus)…"
  # Keep the package's postinst from starting its own service (it would take port 9090): a
  # policy-rc.d that denies every start, only if none exists, removed again on exit.
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    POLICY_RC=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$POLICY_RC"
    chmod 755 "$POLICY_RC"
  fi
  local -a apt=(env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus)
  if ! "${apt[@]}" >"$TMP/apt.log" 2>&1; then
    env DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$TMP/apt.log" 2>&1 || true
    "${apt[@]}" >>"$TMP/apt.log" 2>&1 || { tail -n 5 "$TMP/apt.log" >&2; return 1; }
  fi
  [[ -n $POLICY_RC ]] && rm -f "$POLICY_RC" && POLICY_RC=""
  # Under systemd the unit may have been started anyway: stop and disable it; we run our own.
  if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
  find_prometheus
}

if ! find_prometheus && ! install_prometheus; then
  if [[ ${SY_PROM_OPTIONAL:-0} == 1 ]]; then
    say "skipped: prometheus is not installed and could not be installed (SY_PROM_OPTIONAL=1)"
    FAILED_RUN=0
    exit 0
  fi
  die "prometheus is not installed and could not be installed (root + apt-get needed); set SY_PROM_OPTIONAL=1 to skip"
fi
say "using $PROM ($("$PROM" --version 2>&1 | head -n 1))"

# ---- binaries --------------------------------------------------------------------------------
BIN_DIR=target/$PROFILE
if [[ ! -x $BIN_DIR/dispatcher || ! -x $BIN_DIR/worker ]]; then
  command -v cargo >/dev/null 2>&1 || die "$BIN_DIR binaries are missing and cargo is not installed"
  say "building ($PROFILE)…"
  if [[ $PROFILE == release ]]; then cargo build --release --bins; else cargo build --bins; fi
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# launch NAME [VAR=VALUE…] CMD [ARG…]: in the background, output in $TMP/NAME.log, with a clean environment so no
# stray variable with an owned prefix reaches a binary.
launch() {
  local name=$1
  shift
  env -i PATH="$PATH" HOME="${HOME:-$TMP}" "$@" >"$TMP/$name.log" 2>&1 &
  PIDS+=($!)
  NAMES+=("$name")
}

# wait_http NAME URL: until URL answers 2xx, the process is alive and time remains.
wait_http() {
  local name=$1 url=$2 pid=${PIDS[${#PIDS[@]} - 1]} i
  for ((i = 0; i < 300; i++)); do
    curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || die "$name exited early"
    (($(deadline_left) > 0)) || die "timed out waiting for $name"
    sleep 0.1
  done
  die "$name did not answer on $url within 30 s"
}

REDIS_PORT=$(free_port)
launch redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$TMP" --protected-mode yes
for ((i = 0; i < 100; i++)); do
  redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
  kill -0 "${PIDS[0]}" 2>/dev/null || die "redis-server exited early"
  sleep 0.1
done
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"

SECRET="prom-check-$RANDOM$RANDOM"
D_PORT=$(free_port)
launch dispatcher REDIS_URL="$REDIS_URL" ROOT_NODE_SECRET="$SECRET" \
  DISPATCHER_ADDR="127.0.0.1:$D_PORT" LOG_LEVEL=warn "$BIN_DIR/dispatcher"
wait_http dispatcher "http://127.0.0.1:$D_PORT/health"

W_PORTS=()
for w in 1 2; do
  port=$(free_port)
  W_PORTS+=("$port")
  launch "worker-$w" REDIS_URL="$REDIS_URL" WORKER_ID="prom-check-$w" WORKER_PORT="$port" \
    WORKER_BIND=127.0.0.1 RETRY_BASE_MS=200 RETRY_MAX_MS=400 LOG_LEVEL=warn "$BIN_DIR/worker"
  wait_http "worker-$w" "http://127.0.0.1:$port/health"
done
say "system up: dispatcher 127.0.0.1:$D_PORT, workers ${W_PORTS[*]}, redis $REDIS_PORT"

P_PORT=$(free_port)
cat >"$TMP/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: dispatcher
    static_configs:
      - targets: ["127.0.0.1:$D_PORT"]
  - job_name: worker
    static_configs:
      - targets: ["127.0.0.1:${W_PORTS[0]}", "127.0.0.1:${W_PORTS[1]}"]
EOF
mkdir "$TMP/prom-data"
launch prometheus "$PROM" --config.file="$TMP/prometheus.yml" --storage.tsdb.path="$TMP/prom-data" \
  --web.listen-address="127.0.0.1:$P_PORT"
PROM_URL="http://127.0.0.1:$P_PORT"
wait_http prometheus "$PROM_URL/-/ready"

# All three targets up.
for ((i = 0; ; i++)); do
  up=$(curl -fsS --max-time 2 "$PROM_URL/api/v1/targets?state=active" 2>/dev/null |
    python3 -c 'import json,sys; t=json.load(sys.stdin)["data"]["activeTargets"]; print(sum(x["health"]=="up" for x in t))' 2>/dev/null || echo 0)
  ((up >= 3)) && break
  # shellcheck disable=SC2015
  ((i < 150)) && (($(deadline_left) > 0)) || die "only $up of 3 targets up in Prometheus"
  sleep 0.2
done
say "Prometheus $PROM_URL scrapes 3 targets every 1s"

# ---- traffic ---------------------------------------------------------------------------------
api() { # api METHOD PATH [JSON] → body on stdout; fails on an HTTP error
  local -a args=(-fsS --max-time 30 -X "$1" -H "Authorization: Bearer $SECRET")
  [[ -n ${3:-} ]] && args+=(-H 'content-type: application/json' --data-binary "$3")
  curl "${args[@]}" "http://127.0.0.1:$D_PORT$2"
}
tool() { # tool JSON-PAYLOAD [EXTRA-FIELDS]
  api POST /api/tasks "{\"kind\":\"tool\",\"payload\":$1${2:+,$2}}" >/dev/null ||
    die "POST /api/tasks $1 failed"
}

api POST "/api/tasks?wait_ms=10000" '{"kind":"tool","payload":{"tool":"echo","args":{"n":0}}}' \
  >/dev/null || die "echo task failed"
for n in 1 2 3 4 5; do tool "{\"tool\":\"echo\",\"args\":{\"n\":$n}}"; done
for n in 1 2 3; do tool "{\"tool\":\"fail\",\"args\":{\"message\":\"prom-check $n\"}}" '"max_attempts":2'; done
tool '{"tool":"sleep","args":{"ms":1500}}'
tool '{"tool":"sleep","args":{"ms":1500}}'
api POST /api/chat '{"message":"hi"}' >/dev/null || die "POST /api/chat failed"
api GET /api/queues >/dev/null || die "GET /api/queues failed"
api GET /api/tasks/tool-00000000000000000000000000 >/dev/null 2>&1 || true # a 404 for HTTP metrics
say "pushed 6 echo, 3 fail (max_attempts 2), 2 sleep (1500 ms), 1 chat"

# Until the failing tasks are dead letters and the sampler has published them (bounded).
promq() {
  curl -fsS --max-time 5 "$PROM_URL/api/v1/query" --data-urlencode "query=$1" 2>/dev/null |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "")' 2>/dev/null || true
}
for ((i = 0; ; i++)); do
  dead=$(promq 'sum(switchyard_worker_attempts_total{outcome="dead"})')
  qdead=$(promq 'sum(switchyard_queue_dead)')
  [[ $dead == 3 && $qdead == 3 ]] && break
  # shellcheck disable=SC2015
  ((i < 60)) && (($(deadline_left) > 20)) ||
    die "the 3 failing tasks are not all dead letters in Prometheus (attempts dead=${dead:-none}, queue dead=${qdead:-none})"
  sleep 0.5
done
say "dead letters seen; scraping ${SETTLE_S}s more so every [1m] window has 2+ samples"
sleep "$SETTLE_S"

# ---- evaluate every dashboard expression -----------------------------------------------------
FAILED_RUN=0
set +e
python3 - "$DASHBOARD" "$PROM_URL" <<'PY'
import json, sys, urllib.parse, urllib.request

path, prom = sys.argv[1], sys.argv[2]
dash = json.load(open(path))

def walk(panels):
    for p in panels:
        yield p
        yield from walk(p.get("panels", []))

exprs = []
for p in walk(dash.get("panels", [])):
    for t in p.get("targets", []):
        if t.get("expr"):
            exprs.append((p.get("title", "?"), t["expr"]))
# Template variables: label_values(METRIC, LABEL) must yield values; checked as a count by LABEL.
for v in dash.get("templating", {}).get("list", []):
    q = v.get("query")
    q = q.get("query") if isinstance(q, dict) else q
    if isinstance(q, str) and q.startswith("label_values(") and q.endswith(")"):
        metric, label = [s.strip() for s in q[len("label_values("):-1].rsplit(",", 1)]
        exprs.append((f"variable ${v['name']}", f"count by ({label}) ({metric})"))

subst = {"$queue": ".*", "${queue}": ".*", "$__rate_interval": "1m", "${__rate_interval}": "1m",
         "$__range": "5m", "$__interval": "1s"}
passed = failed = 0
for title, expr in exprs:
    q = expr
    for k in sorted(subst, key=len, reverse=True):
        q = q.replace(k, subst[k])
    try:
        url = prom + "/api/v1/query?" + urllib.parse.urlencode({"query": q})
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.load(r)
        if body.get("status") != "success":
            raise RuntimeError(body.get("error", "status " + str(body.get("status"))))
        data = body["data"]
        n = len(data["result"]) if data["resultType"] in ("vector", "matrix") else 1
        ok = n > 0
        err = "" if ok else "empty result"
    except urllib.error.HTTPError as e:
        ok, n = False, 0
        try:
            err = json.load(e).get("error", str(e))
        except Exception:
            err = str(e)
    except Exception as e:
        ok, n, err = False, 0, str(e)
    if ok:
        passed += 1
        print(f"  ok   {n:3d} series  [{title}] {q}")
    else:
        failed += 1
        print(f"  FAIL {n:3d} series  [{title}] {q}: {err}")
print(f"prom-check: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
rc=$?
set -e
exit "$rc"
