#!/usr/bin/env bash
# End-to-end test of compose/docker-compose.yml on this machine's Docker engine:
#
#   builds local images, `up` with 5 workers, checks health and registration, runs ops/e2e.sh,
#   pushes 500 sleep tasks and checks every worker ran some, kills one worker container while
#   they run and checks that no task is lost, starts it again and checks it rejoins, then tears
#   everything down (containers, networks, volumes, images).
#
# No registry is needed: the images are FROM scratch with the host-built release binaries and the
# libraries they link (compose/rootfs.sh, as the production compose/Dockerfile does), and Redis is
# the host's redis-server packed the same way. The compose file is the production one; only
# images, the env file and the host port are swapped through its SY_* variables.
#
# Script settings: SY_SKIP_BUILD=1 (use the existing target/release binaries),
# SY_E2E_TIMEOUT_S (bound of the whole run, default 1200), SY_KEEP_IMAGES=1.
# Ends with "compose e2e: N passed, M failed"; exits 1 if a check failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

WORKERS=5
TASKS=500
PROJECT="sy-e2e-$$"
TAG="e2e-$$"
TIMEOUT_S="${SY_E2E_TIMEOUT_S:-1200}"
TMP=$(mktemp -d)
PASSED=0
FAILED=0
declare -a FAILURES=()
CLEANED=0

say() { printf 'compose e2e: %s\n' "$*"; }
pass() { PASSED=$((PASSED + 1)); say "PASS $*"; }
failc() { FAILED=$((FAILED + 1)); FAILURES+=("$1"); say "FAIL $*" >&2; }

if docker compose version >/dev/null 2>&1; then
  DC=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
  DC=(docker-compose)
else
  say "neither 'docker compose' nor docker-compose is installed" >&2
  exit 1
fi
for tool in python3 curl redis-server redis-cli ldd; do
  command -v "$tool" >/dev/null 2>&1 || { say "$tool is not installed" >&2; exit 1; }
done

export SY_ENV_FILE="$TMP/env"
export SY_DISPATCHER_IMAGE="switchyard-dispatcher:$TAG"
export SY_WORKER_IMAGE="switchyard-worker:$TAG"
export SY_REDIS_IMAGE="switchyard-redis:$TAG"
SY_DISPATCHER_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export SY_DISPATCHER_PORT
ROOT_URL="http://127.0.0.1:$SY_DISPATCHER_PORT"
SECRET="e2e-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"

dc() { "${DC[@]}" -p "$PROJECT" -f compose/docker-compose.yml "$@"; }

cleanup() {
  ((CLEANED)) && return 0
  CLEANED=1
  [[ -n ${WATCHDOG:-} ]] && kill "$WATCHDOG" 2>/dev/null || true
  if [[ ${STARTED:-0} == 1 ]]; then
    if ((FAILED > 0)); then
      say "logs of the failed run (last 30 lines per container):"
      dc logs --no-color --tail 30 2>&1 | sed 's/^/  | /' || true
    fi
    dc down -v --remove-orphans -t 5 >/dev/null 2>&1 || true
  fi
  if [[ ${SY_KEEP_IMAGES:-0} != 1 ]]; then
    docker rmi -f "$SY_DISPATCHER_IMAGE" "$SY_WORKER_IMAGE" "$SY_REDIS_IMAGE" >/dev/null 2>&1 || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM
# Bound the whole run: the watchdog sends TERM, the trap tears everything down.
# It kills its own sleep when stopped, so no orphan keeps the output pipe open.
(
  trap 'kill "$sp" 2>/dev/null; exit 0' TERM
  sleep "$TIMEOUT_S" &
  sp=$!
  wait "$sp"
  say "timed out after ${TIMEOUT_S}s" >&2
  kill -TERM $$
) 2>/dev/null &
WATCHDOG=$!

finish() {
  say "$PASSED passed, $FAILED failed${FAILURES[*]:+ (${FAILURES[*]})}"
  ((FAILED == 0))
  exit $?
}

# api METHOD PATH [JSON]: prints the body; fails on a non-2xx status.
api() {
  local -a args=(-sS -f --max-time 30 -X "$1" -H "Authorization: Bearer $SECRET")
  [[ -n ${3:-} ]] && args+=(-H 'content-type: application/json' --data-binary "$3")
  curl "${args[@]}" "$ROOT_URL$2"
}

# wait_for SECONDS DESCRIPTION COMMAND…: polls COMMAND every second.
wait_for() {
  local limit=$1 what=$2 i
  shift 2
  for ((i = 0; i < limit; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 1
  done
  say "gave up waiting ${limit}s for $what" >&2
  return 1
}

# ---- 1. images ---------------------------------------------------------------------------
if [[ ${SY_SKIP_BUILD:-0} != 1 ]]; then
  say "cargo build --release --bins"
  cargo build --release --bins --quiet
fi
for b in dispatcher worker; do
  [[ -x target/release/$b ]] || { say "target/release/$b is missing" >&2; exit 1; }
done

build_image() { # NAME TAG ENTRY USER BINARY…
  local name=$1 image=$2 entry=$3 user=$4 ctx="$TMP/ctx-$1" bin
  shift 4
  mkdir -p "$ctx/bin"
  sh compose/rootfs.sh "$ctx/rootfs" "$@"
  {
    echo "FROM scratch"
    echo "COPY rootfs/ /"
    for bin in "$@"; do
      cp -L "$bin" "$ctx/bin/"
      echo "COPY bin/$(basename "$bin") /usr/local/bin/$(basename "$bin")"
    done
    echo "ENV PATH=/usr/local/bin LOG_FORMAT=json"
    echo "WORKDIR /data"
    echo "USER $user"
    [[ -n $entry ]] && echo "ENTRYPOINT [\"/usr/local/bin/$entry\"]"
  } >"$ctx/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t "$image" "$ctx" >/dev/null 2>"$TMP/build-$name.err" || {
    cat "$TMP/build-$name.err" >&2
    return 1
  }
}
mb() { docker image inspect -f '{{.Size}}' "$1" | awk '{printf "%.1f", $1 / 1e6}'; }

if build_image dispatcher "$SY_DISPATCHER_IMAGE" dispatcher 65532:65532 target/release/dispatcher &&
  build_image worker "$SY_WORKER_IMAGE" worker 65532:65532 target/release/worker &&
  build_image redis "$SY_REDIS_IMAGE" "" 65532:65532 "$(command -v redis-server)" "$(command -v redis-cli)"; then
  d=$(mb "$SY_DISPATCHER_IMAGE") w=$(mb "$SY_WORKER_IMAGE") r=$(mb "$SY_REDIS_IMAGE")
  if awk -v d="$d" -v w="$w" 'BEGIN { exit !(d < 30 && w < 30) }'; then
    pass "images built: dispatcher $d MB, worker $w MB (goal < 30 MB), test redis $r MB"
  else
    failc images "dispatcher $d MB, worker $w MB: over 30 MB"
  fi
else
  failc images "docker build failed"
  finish
fi

# ---- 2. up with 5 workers, healthy -------------------------------------------------------
grep -v '^ROOT_NODE_SECRET=' compose/.env.example >"$SY_ENV_FILE"
cat >>"$SY_ENV_FILE" <<ENV
ROOT_NODE_SECRET=$SECRET
# Small batches and concurrency so 500 short tasks spread over all workers.
WORKER_CONCURRENCY=4
WORKER_BATCH_SIZE=4
ENV

say "${DC[*]} -p $PROJECT up -d --no-build --scale worker=$WORKERS (dispatcher on $ROOT_URL)"
STARTED=1
if ! dc up -d --no-build --scale "worker=$WORKERS" >"$TMP/up.log" 2>&1; then
  cat "$TMP/up.log" >&2
  failc up "docker-compose up failed"
  finish
fi

all_healthy() {
  local ids id st n=0
  ids=$(dc ps -q) || return 1
  for id in $ids; do
    st=$(docker inspect -f '{{.State.Health.Status}}' "$id") || return 1
    [[ $st == healthy ]] || return 1
    n=$((n + 1))
  done
  ((n == WORKERS + 2))
}
if wait_for 90 "every container healthy" all_healthy; then
  pass "redis, dispatcher and $WORKERS workers healthy (healthcheck subcommands, redis-cli ping)"
else
  dc ps >&2 || true
  failc health "not every container became healthy"
  finish
fi

# workers_alive: number of non-offline workers in GET /api/workers.
workers_alive() {
  api GET /api/workers | python3 -c 'import json,sys; j=json.load(sys.stdin); print(len([w for w in j["workers"] if w["status"] != "offline"]))'
}
five_alive() { [[ $(workers_alive) == "$WORKERS" ]]; }
if wait_for 30 "$WORKERS workers in /api/workers" five_alive; then
  pass "GET /api/workers shows $WORKERS workers"
else
  failc workers "GET /api/workers shows $(workers_alive || echo '?') alive workers, want $WORKERS"
fi

# ---- 3. the operator's acceptance script ---------------------------------------------------
if ROOT_URL="$ROOT_URL" ROOT_NODE_SECRET="$SECRET" SY_E2E_MIN_WORKERS="$WORKERS" bash ops/e2e.sh >"$TMP/e2e.log" 2>&1; then
  pass "ops/e2e.sh: $(tail -n 1 "$TMP/e2e.log" | sed 's/^e2e: //')"
else
  sed 's/^/  | /' "$TMP/e2e.log" >&2
  failc e2e.sh "ops/e2e.sh failed"
fi

# ---- 4. 500 tasks, one worker killed mid-run ----------------------------------------------
# Python does the HTTP fan-out: enqueue, then wait until every task is finished.
cat >"$TMP/load.py" <<'PY'
import json, random, sys, time, urllib.request
base, secret, mode, idfile = sys.argv[1:5]
H = {"Authorization": "Bearer " + secret, "content-type": "application/json"}
def call(method, path, body=None):
    req = urllib.request.Request(base + path, method=method, headers=H,
                                 data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)
if mode == "enqueue":
    n, lo, hi = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
    ids = [call("POST", "/api/tasks", {"kind": "tool", "max_attempts": 5, "timeout_ms": 30000,
                "payload": {"tool": "sleep", "args": {"ms": random.randint(lo, hi)}}})["id"]
           for _ in range(n)]
    json.dump(ids, open(idfile, "w"))
    print(len(ids))
else:  # wait SECONDS: every task finished; prints {"states": …, "workers": {worker: count}}
    ids, deadline = json.load(open(idfile)), time.time() + float(sys.argv[5])
    done = {}
    while True:
        for i in ids:
            if i not in done:
                t = call("GET", "/api/tasks/" + i)
                if t["state"] in ("succeeded", "failed", "dead", "cancelled"):
                    done[i] = t
        if len(done) == len(ids) or time.time() > deadline:
            break
        time.sleep(1)
    states, workers = {}, {}
    for i in ids:
        t = done.get(i)
        s = t["state"] if t else "unfinished"
        states[s] = states.get(s, 0) + 1
        if t and s == "succeeded":
            workers[t.get("worker")] = workers.get(t.get("worker"), 0) + 1
    print(json.dumps({"states": states, "workers": workers}))
PY

# Worker ids are hostname-pid; a container's hostname is its short id.
declare -A WORKER_OF_CONTAINER=()
for cid in $(dc ps -q worker); do
  WORKER_OF_CONTAINER[$cid]=$(docker inspect -f '{{.Config.Hostname}}' "$cid")
done

say "enqueueing $TASKS sleep tasks (200–600 ms)"
if n=$(python3 "$TMP/load.py" "$ROOT_URL" "$SECRET" enqueue "$TMP/ids.json" "$TASKS" 200 600) && [[ $n == "$TASKS" ]]; then
  sleep 2
  VICTIM=$(dc ps -q worker | head -n 1)
  VICTIM_HOST=${WORKER_OF_CONTAINER[$VICTIM]}
  say "docker kill ${VICTIM:0:12} (worker $VICTIM_HOST-*) while the tasks run"
  docker kill "$VICTIM" >/dev/null
  if result=$(python3 "$TMP/load.py" "$ROOT_URL" "$SECRET" wait "$TMP/ids.json" 180); then
    read -r succeeded per_worker <<<"$(python3 -c '
import json, sys
r = json.loads(sys.argv[1])
print(r["states"].get("succeeded", 0), " ".join(f"{w}={c}" for w, c in sorted(r["workers"].items())))' "$result")"
    if [[ $succeeded == "$TASKS" ]]; then
      pass "all $TASKS tasks succeeded although worker ${VICTIM_HOST} was killed mid-run"
    else
      failc no-loss "states: $result"
    fi
    ran=0
    for cid in "${!WORKER_OF_CONTAINER[@]}"; do
      [[ " $per_worker" == *" ${WORKER_OF_CONTAINER[$cid]}-"* ]] && ran=$((ran + 1))
    done
    if ((ran == WORKERS)); then
      pass "all $WORKERS workers ran some: $per_worker"
    else
      failc spread "$ran of $WORKERS workers ran tasks: $per_worker"
    fi
  else
    failc no-loss "waiting for the tasks failed"
  fi

  # ---- 5. the killed worker comes back ---------------------------------------------------
  victim_status() {
    api GET /api/workers | python3 -c '
import json, sys
host = sys.argv[1]
print(" ".join(w["status"] for w in json.load(sys.stdin)["workers"] if w["id"].startswith(host + "-")))' "$VICTIM_HOST"
  }
  restarted=$(docker inspect -f '{{.RestartCount}}' "$VICTIM")
  say "victim after the kill: running=$(docker inspect -f '{{.State.Running}}' "$VICTIM"), restarts=$restarted, registry: $(victim_status || true)"
  dc start worker >/dev/null 2>&1 || docker start "$VICTIM" >/dev/null
  rejoined() {
    [[ $(docker inspect -f '{{.State.Health.Status}}' "$VICTIM") == healthy ]] &&
      [[ $(victim_status) == idle || $(victim_status) == busy ]] && five_alive
  }
  if wait_for 60 "the killed worker to rejoin" rejoined; then
    python3 "$TMP/load.py" "$ROOT_URL" "$SECRET" enqueue "$TMP/ids2.json" 60 200 400 >/dev/null
    result=$(python3 "$TMP/load.py" "$ROOT_URL" "$SECRET" wait "$TMP/ids2.json" 60 || echo '{}')
    if python3 -c '
import json, sys
r = json.loads(sys.argv[1]); host = sys.argv[2]
ok = r["states"].get("succeeded") == 60 and any(w.startswith(host + "-") for w in r["workers"])
sys.exit(0 if ok else 1)' "$result" "$VICTIM_HOST" 2>/dev/null; then
      pass "killed worker rejoined: $WORKERS workers alive, and it ran some of 60 new tasks"
    else
      failc rejoin "rejoined but the new tasks: $result"
    fi
  else
    failc rejoin "the killed worker did not rejoin (status: $(victim_status || true))"
  fi
else
  failc enqueue "enqueueing $TASKS tasks failed"
fi

# ---- 6. teardown ---------------------------------------------------------------------------
dc down -v --remove-orphans -t 5 >"$TMP/down.log" 2>&1 || cat "$TMP/down.log" >&2
STARTED=0
left=$(
  docker ps -aq --filter "label=com.docker.compose.project=$PROJECT"
  docker network ls -q --filter "label=com.docker.compose.project=$PROJECT"
  docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT"
)
if [[ -z $left ]]; then
  pass "torn down: no container, network or volume of project $PROJECT left"
else
  failc teardown "left behind: $left"
fi
finish
