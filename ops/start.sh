#!/usr/bin/env bash
# Runs switchyard on this machine: redis-server (AOF on, data in ./data), the dispatcher and N
# workers with the built-in echo chat provider. Everything it starts is recorded under ./.run/
# (pid files, logs, the generated secret) and only those processes are ever stopped.
#
# Script-only knobs use the SY_ prefix: the binaries refuse unknown variables that start with
# their own prefixes (REDIS_, WORKER_, …), so never invent such variables here.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

RUN_DIR="$ROOT/.run"
LOG_DIR="$RUN_DIR/logs"
DATA_DIR="$ROOT/data"
BIN_DIR="$ROOT/target/release"

REDIS_PORT="${SY_REDIS_PORT:-6379}"
HTTP_PORT="${SY_PORT:-3000}"
START_TIMEOUT_S="${SY_START_TIMEOUT_S:-30}"
STOP_TIMEOUT_S="${SY_STOP_TIMEOUT_S:-15}"

usage() {
  cat <<EOF
usage: ops/start.sh COMMAND

commands:
  local [N]     build (release), start redis-server on 127.0.0.1:$REDIS_PORT (AOF, data in ./data),
                the dispatcher on :$HTTP_PORT and N workers (default ${SY_WORKERS:-2}) on
                :$((HTTP_PORT + 1)), :$((HTTP_PORT + 2)), …; running it again restarts the binaries
  stop          stop the workers, the dispatcher, then redis (only what 'local' started)
  status        show what runs, the health of each component and a redis PING
  logs [NAME]   follow all logs, or one: redis, dispatcher, worker-1, …
  check         run ops/e2e.sh (the acceptance check) against the 'local' deployment
  compose up [N]     docker compose: build the images, start redis, the dispatcher and N
                     workers (default ${SY_WORKERS:-2}), wait until the dispatcher is healthy;
                     creates compose/.env from compose/.env.example with a fresh secret if missing
  compose down [-v]  stop and remove the containers and network (-v: the Redis volume too)
  compose logs [SERVICE]  follow the logs (redis, dispatcher, worker)
  compose ps         list the containers and their health
  help          this text

script settings (environment):
  SY_REDIS_PORT       redis port (default 6379)
  SY_PORT             dispatcher port (default 3000); worker i serves /health on SY_PORT+i
  SY_WORKERS          default number of workers for 'local' (default 2)
  SY_SKIP_BUILD=1     do not run cargo build (use the existing target/release binaries)
  SY_START_TIMEOUT_S  how long 'local' waits for every /health (default 30)
  SY_STOP_TIMEOUT_S   how long 'stop' waits after SIGTERM before SIGKILL (default 15)
  ROOT_NODE_SECRET    if set, used instead of the secret generated in .run/secret
  SY_COMPOSE_PROJECT  compose project name (default switchyard)
  SY_COMPOSE_PROFILES compose profiles to enable, e.g. monitoring (prometheus + grafana)
  SY_DISPATCHER_PORT  host port of the dispatcher in compose (default 3000)

Other variables the binaries read (LLM_PROVIDER, WORKER_CONCURRENCY, …) are passed through;
see compose/.env.example. Files: .run/<name>.pid, .run/logs/<name>.log, .run/secret.
EOF
}

say() { printf '%s\n' "$*"; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# ---------------------------------------------------------------------------------------------
# processes

# Whether pid $1 is a live (not zombie) process.
alive() {
  local pid=$1 state=""
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r /proc/$pid/stat ]]; then
    state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || true
  elif command -v ps >/dev/null 2>&1; then
    state=$(ps -o stat= -p "$pid" 2>/dev/null) || true
  fi
  [[ $state != Z* ]]
}

# Command line of pid $1 (empty if unknown).
proc_args() {
  local pid=$1
  if [[ -r /proc/$pid/cmdline ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true
  elif command -v ps >/dev/null 2>&1; then
    ps -o args= -p "$pid" 2>/dev/null || true
  fi
}

# What the command line of component $1 contains.
proc_marker() {
  case $1 in
    redis) echo "redis-server" ;;
    dispatcher) echo "dispatcher" ;;
    *) echo "worker" ;;
  esac
}

# Prints the pid of component $1 if its pid file names a live process that is that component.
live_pid() {
  local name=$1 file="$RUN_DIR/$1.pid" pid args
  [[ -s $file ]] || return 1
  pid=$(tr -dc '0-9' <"$file")
  [[ -n $pid ]] || return 1
  alive "$pid" || return 1
  args=$(proc_args "$pid")
  # A recycled pid that now belongs to something else is not ours.
  [[ -z $args || $args == *"$(proc_marker "$name")"* ]] || return 1
  echo "$pid"
}

# Names of the components that have a pid file, workers first (in order), then the rest.
worker_names() {
  local f
  for f in "$RUN_DIR"/worker-*.pid; do
    [[ -e $f ]] || continue
    basename "$f" .pid
  done | sort -t- -k2 -n
}

# SIGTERM the named components, wait up to STOP_TIMEOUT_S, SIGKILL what is left.
stop_components() {
  local name pid deadline left
  local -a names=() pids=()
  for name in "$@"; do
    if pid=$(live_pid "$name"); then
      kill -TERM "$pid" 2>/dev/null || true
      names+=("$name")
      pids+=("$pid")
      say "stopping $name (pid $pid)"
    fi
  done
  deadline=$((SECONDS + STOP_TIMEOUT_S))
  while ((${#pids[@]} > 0)); do
    left=0
    for pid in "${pids[@]}"; do
      if alive "$pid"; then left=1; fi
    done
    ((left)) || break
    if ((SECONDS >= deadline)); then
      local i
      for i in "${!pids[@]}"; do
        if alive "${pids[$i]}"; then
          say "${names[$i]} (pid ${pids[$i]}) did not stop within ${STOP_TIMEOUT_S}s: SIGKILL"
          kill -KILL "${pids[$i]}" 2>/dev/null || true
        fi
      done
      break
    fi
    sleep 0.2
  done
  for name in "$@"; do
    rm -f "$RUN_DIR/$name.pid" "$RUN_DIR/$name.port"
  done
}

stop_binaries() {
  local -a workers=()
  mapfile -t workers < <(worker_names)
  if ((${#workers[@]} > 0)); then stop_components "${workers[@]}"; fi
  stop_components dispatcher
}

stop_redis() {
  stop_components redis
}

# Whether something accepts TCP connections on 127.0.0.1:$1.
port_open() {
  (: <>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# ---------------------------------------------------------------------------------------------
# prerequisites

ensure_redis_installed() {
  if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
    return
  fi
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "redis-server not found: installing it with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server
    command -v redis-server >/dev/null 2>&1 || die "apt-get did not install redis-server"
    return
  fi
  cat >&2 <<'EOF'
error: redis-server (and redis-cli) are needed but not installed.
  Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y redis-server
  Fedora:         sudo dnf install -y redis
  macOS:          brew install redis
Then run this command again. (A package may also start a system Redis on port 6379; stop it,
or pick another port for this script with SY_REDIS_PORT=6380.)
EOF
  exit 1
}

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is needed but not installed${2:+ ($2)}"
}

ensure_secret() {
  if [[ -n ${ROOT_NODE_SECRET:-} ]]; then
    SECRET=$ROOT_NODE_SECRET
    return
  fi
  local file="$RUN_DIR/secret"
  if [[ ! -s $file ]]; then
    local s
    if command -v openssl >/dev/null 2>&1; then
      s=$(openssl rand -hex 32)
    else
      s=$(od -An -tx1 -N32 /dev/urandom | tr -dc '0-9a-f')
    fi
    (umask 077 && printf '%s\n' "$s" >"$file")
  fi
  SECRET=$(tr -d '[:space:]' <"$file")
  [[ -n $SECRET ]] || die "$file is empty; delete it and run again"
}

# ---------------------------------------------------------------------------------------------
# start

start_redis() {
  local pid saved
  if pid=$(live_pid redis); then
    saved=$(cat "$RUN_DIR/redis.port" 2>/dev/null || echo "$REDIS_PORT")
    if [[ $saved != "$REDIS_PORT" ]]; then
      die "redis from an earlier start runs on port $saved (pid $pid); run 'ops/start.sh stop' first"
    fi
    if [[ $(redis-cli -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; then
      say "redis already running (pid $pid, port $REDIS_PORT)"
      return
    fi
    die "redis (pid $pid) runs but does not answer PING on port $REDIS_PORT; see .run/logs/redis.log"
  fi
  rm -f "$RUN_DIR/redis.pid"
  if port_open "$REDIS_PORT"; then
    die "port $REDIS_PORT is in use by a process this script did not start (a system Redis?).
  Stop it, or use another port: SY_REDIS_PORT=6380 ops/start.sh local"
  fi
  mkdir -p "$DATA_DIR"
  [[ -f $LOG_DIR/redis.log ]] && mv -f "$LOG_DIR/redis.log" "$LOG_DIR/redis.log.1"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" \
    --appendonly yes --maxmemory-policy noeviction --stream-node-max-entries 16 \
    --dir "$DATA_DIR" --pidfile "$RUN_DIR/redis.pid" --logfile "$LOG_DIR/redis.log" \
    >/dev/null
  echo "$REDIS_PORT" >"$RUN_DIR/redis.port"
  local deadline=$((SECONDS + START_TIMEOUT_S))
  until [[ $(redis-cli -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; do
    if ((SECONDS >= deadline)); then
      tail -n 30 "$LOG_DIR/redis.log" >&2 2>/dev/null || true
      die "redis did not answer PING on port $REDIS_PORT within ${START_TIMEOUT_S}s"
    fi
    sleep 0.2
  done
  say "redis running (pid $(cat "$RUN_DIR/redis.pid" 2>/dev/null || echo '?'), port $REDIS_PORT, data in ./data)"
}

# launch NAME BINARY HEALTH_PORT VAR=VALUE…: starts BINARY in the background with the variables
# exported (not on the command line, so the secret does not show in ps).
launch() {
  local name=$1 bin=$2 port=$3
  shift 3
  local log="$LOG_DIR/$name.log"
  [[ -f $log ]] && mv -f "$log" "$log.1"
  (
    for kv in "$@"; do
      # shellcheck disable=SC2163 # kv is "NAME=value"
      export "$kv"
    done
    exec nohup "$bin" </dev/null >"$log" 2>&1
  ) &
  echo $! >"$RUN_DIR/$name.pid"
  echo "$port" >"$RUN_DIR/$name.port"
}

log_tail() {
  local name=$1
  printf -- '--- last lines of .run/logs/%s.log ---\n' "$name" >&2
  tail -n 40 "$LOG_DIR/$name.log" >&2 2>/dev/null || true
  printf -- '---\n' >&2
}

# Waits until every named component answers GET /health on its port.
wait_healthy() {
  local deadline=$((SECONDS + START_TIMEOUT_S)) name pid port
  local -a pending=("$@") still=()
  while ((${#pending[@]} > 0)); do
    still=()
    for name in "${pending[@]}"; do
      port=$(cat "$RUN_DIR/$name.port")
      if curl -fsS -m 2 "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
        say "$name healthy on :$port"
        continue
      fi
      pid=$(tr -dc '0-9' <"$RUN_DIR/$name.pid")
      if ! alive "$pid"; then
        log_tail "$name"
        stop_binaries >/dev/null
        die "$name exited during start-up (log above); other binaries stopped, redis left running"
      fi
      still+=("$name")
    done
    pending=("${still[@]+"${still[@]}"}")
    ((${#pending[@]} > 0)) || break
    if ((SECONDS >= deadline)); then
      for name in "${pending[@]}"; do log_tail "$name"; done
      stop_binaries >/dev/null
      die "no healthy answer within ${START_TIMEOUT_S}s from: ${pending[*]} (log above)"
    fi
    sleep 0.25
  done
}

cmd_local() {
  local n=${1:-${SY_WORKERS:-2}}
  if ! [[ $n =~ ^[1-9][0-9]*$ ]] || ((n > 64)); then
    die "worker count must be 1–64, not '$n'"
  fi
  [[ $HTTP_PORT =~ ^[0-9]+$ && $REDIS_PORT =~ ^[0-9]+$ ]] || die "SY_PORT and SY_REDIS_PORT must be numbers"
  need curl "apt-get install -y curl"
  ensure_redis_installed
  mkdir -p "$RUN_DIR" "$LOG_DIR"

  if [[ ${SY_SKIP_BUILD:-0} != 1 ]]; then
    need cargo "install Rust from https://rustup.rs"
    say "building release binaries (cargo build --release --bins)…"
    cargo build --release --bins
  fi
  [[ -x $BIN_DIR/dispatcher && -x $BIN_DIR/worker ]] ||
    die "target/release/dispatcher or target/release/worker is missing; run without SY_SKIP_BUILD"

  # Idempotent: whatever an earlier 'local' started is stopped first (redis keeps running).
  stop_binaries

  local i port
  for ((i = 0; i <= n; i++)); do
    port=$((HTTP_PORT + i))
    if port_open "$port"; then
      die "port $port is in use by a process this script did not start; free it or set SY_PORT"
    fi
  done

  start_redis
  ensure_secret
  local redis_url="redis://127.0.0.1:$REDIS_PORT"

  launch dispatcher "$BIN_DIR/dispatcher" "$HTTP_PORT" \
    "DISPATCHER_ADDR=0.0.0.0:$HTTP_PORT" "ROOT_NODE_SECRET=$SECRET" \
    "REDIS_URL=$redis_url" "LOG_FORMAT=pretty"
  local -a names=(dispatcher)
  for ((i = 1; i <= n; i++)); do
    port=$((HTTP_PORT + i))
    launch "worker-$i" "$BIN_DIR/worker" "$port" \
      "WORKER_ID=local-$i" "WORKER_PORT=$port" "REDIS_URL=$redis_url" "LOG_FORMAT=pretty"
    names+=("worker-$i")
  done
  wait_healthy "${names[@]}"

  local url="http://localhost:$HTTP_PORT"
  cat <<EOF

switchyard is running: dispatcher $url, $n worker(s), redis 127.0.0.1:$REDIS_PORT
secret (Bearer token, kept in .run/secret): $SECRET

Try it:
  export SECRET=$SECRET
  curl -sS $url/api/chat -H "Authorization: Bearer \$SECRET" -H 'content-type: application/json' \\
    -d '{"session_id":"demo","message":"hello"}'
  curl -sS "$url/api/tasks?wait_ms=5000" -H "Authorization: Bearer \$SECRET" -H 'content-type: application/json' \\
    -d '{"kind":"tool","payload":{"tool":"echo","args":{"hello":"world"}}}'
  curl -sS $url/api/workers -H "Authorization: Bearer \$SECRET" -H 'content-type: application/json'

ops/start.sh status | ops/start.sh logs [name] | ops/start.sh stop
EOF
}

# ---------------------------------------------------------------------------------------------
# stop, status, logs

cmd_stop() {
  [[ -d $RUN_DIR ]] || {
    say "nothing to stop (no .run/ directory)"
    return
  }
  stop_binaries
  stop_redis
  say "stopped"
}

cmd_status() {
  local name pid port health ok=0 pong
  local -a names=()
  mapfile -t names < <(worker_names)
  names=(redis dispatcher "${names[@]+"${names[@]}"}")
  for name in "${names[@]}"; do
    if [[ ! -e $RUN_DIR/$name.pid ]]; then
      printf '%-12s not running\n' "$name"
      ok=1
      continue
    fi
    if ! pid=$(live_pid "$name"); then
      printf '%-12s not running (stale pid file)\n' "$name"
      ok=1
      continue
    fi
    port=$(cat "$RUN_DIR/$name.port" 2>/dev/null || echo "?")
    if [[ $name == redis ]]; then
      pong=$(redis-cli -p "$port" ping 2>&1 || true)
      printf '%-12s running  pid %-7s port %-5s PING: %s\n' "$name" "$pid" "$port" "$pong"
      [[ $pong == PONG ]] || ok=1
    else
      if health=$(curl -fsS -m 2 "http://127.0.0.1:$port/health" 2>&1); then
        printf '%-12s running  pid %-7s port %-5s health: %s\n' "$name" "$pid" "$port" "$health"
      else
        printf '%-12s running  pid %-7s port %-5s health: FAILED (%s)\n' "$name" "$pid" "$port" "$health"
        ok=1
      fi
    fi
  done
  return "$ok"
}

cmd_logs() {
  local -a files=()
  if [[ $# -gt 0 ]]; then
    [[ -f $LOG_DIR/$1.log ]] || {
      say "no log named '$1'; available:" >&2
      local f
      for f in "$LOG_DIR"/*.log; do [[ -e $f ]] && basename "$f" .log >&2; done
      exit 1
    }
    files=("$LOG_DIR/$1.log")
  else
    local f
    for f in "$LOG_DIR"/*.log; do [[ -e $f ]] && files+=("$f"); done
    ((${#files[@]} > 0)) || die "no logs yet in .run/logs (run 'ops/start.sh local' first)"
  fi
  exec tail -n 50 -F "${files[@]}"
}

cmd_check() {
  ensure_secret
  ROOT_URL="http://127.0.0.1:$HTTP_PORT" ROOT_NODE_SECRET="$SECRET" \
    SY_E2E_MIN_WORKERS="${SY_E2E_MIN_WORKERS:-1}" exec bash "$ROOT/ops/e2e.sh"
}

# ---------------------------------------------------------------------------------------------
# compose: the same stack in containers (compose/docker-compose.yml)

COMPOSE_FILE="$ROOT/compose/docker-compose.yml"
COMPOSE_ENV="$ROOT/compose/.env"

# Runs docker compose (v2) or docker-compose (v1) with the project's name and file.
dc() {
  local -a tool
  if docker compose version >/dev/null 2>&1; then
    tool=(docker compose)
  elif command -v docker-compose >/dev/null 2>&1; then
    tool=(docker-compose)
  else
    die "neither 'docker compose' (v2) nor docker-compose is installed"
  fi
  local -a profiles=()
  local p
  local want=${SY_COMPOSE_PROFILES:-}
  for p in ${want//,/ }; do profiles+=(--profile "$p"); done
  "${tool[@]}" -p "${SY_COMPOSE_PROJECT:-switchyard}" -f "$COMPOSE_FILE" "${profiles[@]}" "$@"
}

# compose/.env from compose/.env.example with a generated ROOT_NODE_SECRET, if it is missing.
ensure_compose_env() {
  [[ -f $COMPOSE_ENV ]] && return
  local s
  s=$(od -An -tx1 -N32 /dev/urandom | tr -dc '0-9a-f')
  (umask 077 && sed "s/^ROOT_NODE_SECRET=.*/ROOT_NODE_SECRET=$s/" \
    "$ROOT/compose/.env.example" >"$COMPOSE_ENV")
  say "created compose/.env with a fresh ROOT_NODE_SECRET (edit it for your settings)"
}

cmd_compose() {
  local sub=${1:-help}
  [[ $# -gt 0 ]] && shift
  need docker
  case $sub in
    up)
      local n=${1:-${SY_WORKERS:-2}}
      [[ $n =~ ^[0-9]+$ ]] || die "compose up: N must be a number, not '$n'"
      ensure_compose_env
      dc up -d --build --scale "worker=$n"
      local port=${SY_DISPATCHER_PORT:-3000} i
      for ((i = 0; i < START_TIMEOUT_S * 2; i++)); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$port/health" 2>/dev/null; then
          say ""
          say "switchyard (compose) is running: dispatcher http://localhost:$port, $n worker(s)"
          say "secret: ROOT_NODE_SECRET in compose/.env"
          say "check it: ROOT_URL=http://127.0.0.1:$port ROOT_NODE_SECRET=... ops/e2e.sh"
          say "ops/start.sh compose ps | ops/start.sh compose logs [service] | ops/start.sh compose down"
          return 0
        fi
        sleep 0.5
      done
      dc ps || true
      die "the dispatcher did not answer http://127.0.0.1:$port/health within ${START_TIMEOUT_S}s"
      ;;
    down) dc down --remove-orphans "$@" ;;
    logs) dc logs -f --tail 100 "$@" ;;
    ps) dc ps ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main() {
  local cmd=${1:-help}
  [[ $# -gt 0 ]] && shift
  case $cmd in
    local) cmd_local "$@" ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    logs) cmd_logs "$@" ;;
    check) cmd_check ;;
    compose) cmd_compose "$@" ;;
    help | -h | --help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
