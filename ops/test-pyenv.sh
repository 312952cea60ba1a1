#!/usr/bin/env bash
# Creates (or brings up to date) the Python virtual environment of the /v1 end-to-end tests:
# ${CARGO_TARGET_DIR:-target}/pyenv with tests/python/requirements.txt (the official OpenAI
# client, pinned). Does nothing when it already holds exactly those requirements. Needs python3
# with venv and network access to PyPI the first time. ops/test.sh runs it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
VENV="$TARGET/pyenv"
REQS="$ROOT/tests/python/requirements.txt"
STAMP="$VENV/requirements.installed"

if [[ -x $VENV/bin/python ]] && cmp -s "$REQS" "$STAMP"; then
  exit 0
fi
command -v python3 >/dev/null 2>&1 || {
  echo "error: python3 is needed for the OpenAI SDK tests (Debian: apt-get install python3 python3-venv)" >&2
  exit 1
}
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv
  else
    echo "error: python3's venv module is missing (Debian: apt-get install python3-venv)" >&2
    exit 1
  fi
fi
mkdir -p "$TARGET"
echo "creating $VENV with $(python3 --version) and $(grep -v '^#' "$REQS" | tr '\n' ' ')"
python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQS"
cp "$REQS" "$STAMP"
