#!/usr/bin/env bash
# Acceptance check of any running switchyard deployment (local, compose, systemd, Kubernetes):
#
#   ROOT_URL=http://127.0.0.1:3000 ROOT_NODE_SECRET=… ops/e2e.sh
#
# Steps: health, auth, workers, chat (two turns of one session), streamed chat (SSE, then a
# resume with Last-Event-ID), tool task, /v1 (models, one chat completion), queues, metrics.
# Stops at the first failing step, names it and exits 1; prints "e2e: N passed, 0 failed" at the
# end otherwise. Needs curl and python3. It enqueues a few small tasks and leaves them (they
# expire with RESULT_TTL_S).
#
# Script settings: SY_E2E_MIN_WORKERS (workers that must be alive, default 1),
# SY_E2E_TIMEOUT_MS (wait of the chat and tool steps, default 30000).
set -euo pipefail

ROOT_URL="${ROOT_URL:-http://127.0.0.1:3000}"
ROOT_URL="${ROOT_URL%/}"
SECRET="${ROOT_NODE_SECRET:-}"
MIN_WORKERS="${SY_E2E_MIN_WORKERS:-1}"
WAIT_MS="${SY_E2E_TIMEOUT_MS:-30000}"

command -v curl >/dev/null 2>&1 || { echo "e2e: curl is not installed" >&2; exit 2; }
command -v python3 >/dev/null 2>&1 || { echo "e2e: python3 is not installed" >&2; exit 2; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
PASSED=0
SKIPPED=0
STEP=""

fail() {
  echo "e2e: step '$STEP' FAILED: $*" >&2
  echo "e2e: $PASSED passed, 1 failed (at '$STEP')"
  exit 1
}
step() { STEP=$1; printf 'e2e: %-8s ... ' "$STEP"; }
ok() { PASSED=$((PASSED + 1)); echo "ok${1:+ ($1)}"; }
skipped() { SKIPPED=$((SKIPPED + 1)); echo "skipped ($1)"; }

# http METHOD PATH [JSON] [AUTH=yes]: sets STATUS; the body is in $TMP/body.
http() {
  local method=$1 path=$2 body=${3:-} auth=${4:-yes}
  local -a args=(-sS -o "$TMP/body" -w '%{http_code}' -X "$method" --max-time 120)
  [[ $auth == yes && -n $SECRET ]] && args+=(-H "Authorization: Bearer $SECRET")
  [[ -n $body ]] && args+=(-H 'content-type: application/json' --data-binary "$body")
  STATUS=$(curl "${args[@]}" "$ROOT_URL$path" 2>"$TMP/curl.err") || STATUS="000"
  if [[ $STATUS == 000 ]]; then
    fail "$method $ROOT_URL$path: $(tr '\n' ' ' <"$TMP/curl.err")"
  fi
}

# json EXPR: evaluates a Python expression over the last body (`j`); prints the result.
json() {
  python3 - "$1" "$TMP/body" <<'PY' || fail "unexpected answer: $(head -c 400 "$TMP/body")"
import json, sys
expr, path = sys.argv[1], sys.argv[2]
j = json.load(open(path))
r = eval(expr)
if r is False or r is None:
    sys.exit(1)
print(r if not isinstance(r, bool) else "")
PY
}

expect_status() {
  [[ $STATUS == "$1" ]] || fail "HTTP $STATUS instead of $1: $(head -c 400 "$TMP/body")"
}

echo "e2e: target $ROOT_URL"

step health
http GET /health "" no
expect_status 200
json 'j["status"] == "healthy"' >/dev/null
ok

step auth
http GET /api/workers "" no
if [[ -z $SECRET ]]; then
  [[ $STATUS == 200 ]] || fail "HTTP $STATUS without a token, and ROOT_NODE_SECRET is not set"
  skipped "ROOT_NODE_SECRET not set: a loopback deployment without auth"
else
  expect_status 401
  ok "401 without a token"
fi

step workers
http GET /api/workers
expect_status 200
alive=$(json 'len([w for w in j["workers"] if w["status"] != "offline"])')
((alive >= MIN_WORKERS)) || fail "$alive worker(s) alive, want at least $MIN_WORKERS"
ok "$alive alive"

step chat
session="e2e-$RANDOM$RANDOM"
http POST /api/chat "{\"session_id\":\"$session\",\"message\":\"hello from e2e\"}"
expect_status 200
json 'isinstance(j["response"], str) and len(j["response"]) > 0 and j["session_id"] == "'"$session"'"' >/dev/null
w=$(json 'j.get("worker_id") or "?"')
http POST /api/chat "{\"session_id\":\"$session\",\"message\":\"second turn\"}"
expect_status 200
json 'len(j["response"]) > 0' >/dev/null
ok "2 turns, answered by $w"

# sse METHOD PATH [JSON] [LAST_EVENT_ID]: reads a whole SSE answer into $TMP/sse; sets STATUS.
sse() {
  local method=$1 path=$2 body=${3:-} last=${4:-}
  local -a args=(-sS -N -o "$TMP/sse" -w '%{http_code}' -X "$method" --max-time $((WAIT_MS / 1000 + 5)))
  [[ -n $SECRET ]] && args+=(-H "Authorization: Bearer $SECRET")
  [[ -n $body ]] && args+=(-H 'content-type: application/json' --data-binary "$body")
  [[ -n $last ]] && args+=(-H "Last-Event-ID: $last")
  STATUS=$(curl "${args[@]}" "$ROOT_URL$path" 2>"$TMP/curl.err") || STATUS="000"
  [[ $STATUS == 000 ]] && fail "$method $ROOT_URL$path: $(tr '\n' ' ' <"$TMP/curl.err")"
  cp "$TMP/sse" "$TMP/body"
}

# sse_check EXPR: evaluates a Python expression over the events of the last SSE answer (`ev`, a
# list of {id, event, data} with data decoded from JSON); prints the result.
sse_check() {
  python3 - "$1" "$TMP/sse" <<'PY' || fail "unexpected stream: $(head -c 600 "$TMP/sse")"
import json, sys
expr, path = sys.argv[1], sys.argv[2]
ev = []
for block in open(path).read().replace("\r\n", "\n").split("\n\n"):
    e = {"id": None, "event": "message", "data": ""}
    seen = False
    for line in block.split("\n"):
        k, _, v = line.partition(":")
        v = v[1:] if v.startswith(" ") else v
        if k in ("id", "event", "data") and line[:1] != ":":
            e[k] = v
            seen = True
    if seen:
        e["data"] = json.loads(e["data"]) if e["data"] else None
        ev.append(e)
def text(events):
    last = max([i for i, e in enumerate(events) if e["event"] == "restart"], default=-1)
    return "".join(e["data"]["text"] for e in events[last + 1:] if e["event"] == "delta")
r = eval(expr)
if r is False or r is None:
    sys.exit(1)
print(r if not isinstance(r, bool) else "")
PY
}

step stream
sse POST /api/chat "{\"session_id\":\"$session\",\"message\":\"stream this\",\"stream\":true}"
expect_status 200
sse_check 'ev[0]["event"] == "start" and ev[-1]["event"] == "done" and all(e["id"] for e in ev)' >/dev/null
sse_check 'any(e["event"] == "delta" for e in ev) and text(ev) == ev[-1]["data"]["response"]' >/dev/null
task=$(sse_check 'ev[0]["data"]["task_id"]')
first=$(sse_check 'next(e["id"] for e in ev if e["event"] == "delta")')
n=$(sse_check 'len(ev)')
cp "$TMP/sse" "$TMP/sse.all"
sse GET "/api/tasks/$task/stream" "" "$first"
expect_status 200
python3 - "$TMP/sse.all" "$TMP/sse" <<'PY' || fail "the resumed stream is not the rest of the first one"
import sys
a, b = (open(p).read().split("\n\n") for p in sys.argv[1:])
strip = lambda blocks: [x for x in blocks if x.strip() and not x.startswith(":")]
a, b = strip(a), strip(b)
i = next(k for k, x in enumerate(a) if "event: delta" in x or "event:delta" in x)
sys.exit(0 if a[i + 1:] == b else 1)
PY
ok "$n events, deltas add up to done; resumed after the first delta"

step tool
http POST "/api/tasks?wait_ms=$WAIT_MS" '{"kind":"tool","payload":{"tool":"echo","args":{"e2e":42}}}'
[[ $STATUS == 200 || $STATUS == 202 ]] || fail "HTTP $STATUS: $(head -c 400 "$TMP/body")"
state=$(json 'j.get("state")')
[[ $state == succeeded ]] || fail "task ended $state: $(head -c 400 "$TMP/body")"
json 'j["result"]["output"] == {"e2e": 42}' >/dev/null
ok "echo round trip"

step v1
http GET /v1/models
expect_status 200
model=$(json '(j["data"] or [{"id": ""}])[0]["id"] or "none"')
if [[ $model == none ]]; then
  skipped "no live worker lists a model"
else
  http POST /v1/chat/completions "{\"model\":\"$model\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}"
  expect_status 200
  json 'j["object"] == "chat.completion" and j["choices"][0]["message"]["role"] == "assistant"' >/dev/null
  ok "OpenAI-compatible chat completion with $model"
fi

step queues
http GET /api/queues
expect_status 200
json 'j' >/dev/null
ok

step metrics
http GET /metrics "" no
expect_status 200
if grep -q '^switchyard_queue_depth{' "$TMP/body" && grep -q '^switchyard_tasks_enqueued_total{' "$TMP/body"; then
  ok "Prometheus text with queue depth and enqueue counters"
else
  fail "/metrics lacks switchyard_queue_depth or switchyard_tasks_enqueued_total"
fi

echo "e2e: $PASSED passed, 0 failed, $SKIPPED skipped"
