#!/usr/bin/env bash
# One entry point for a fresh clone: `./run.sh demo` or `./run.sh test`.
# Both create .venv (Python >= 3.11) and install the project into it first.
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
VENV=.venv

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "need Python >= 3.11 ($PY is $("$PY" --version))" >&2; exit 1; }
    "$PY" -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[test]" 2>&1 | grep -v "^WARNING: Location" || true
  "$VENV/bin/python" -c "import inspector, model, db, torch" || { echo "install failed" >&2; exit 1; }
}

browser() {
  # Browser tests drive Debian's Chromium through Playwright (playwright's own browser download is not used).
  if [ ! -x /usr/bin/chromium ]; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "warning: could not install chromium; browser tests will be skipped" >&2
    else
      echo "warning: /usr/bin/chromium missing (apt-get install chromium); browser tests will be skipped" >&2
    fi
  fi
}

case "${1:-}" in
  demo)
    shift
    setup
    exec "$VENV/bin/inspector" demo "$@"
    ;;
  test)
    shift
    setup
    browser
    exec "$VENV/bin/python" -m pytest -q -n 2 "$@"
    ;;
  setup)
    setup
    ;;
  *)
    echo "usage: ./run.sh demo | test [pytest args] | setup" >&2
    exit 2
    ;;
esac
