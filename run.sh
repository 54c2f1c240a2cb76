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

# The tests that run a second time against PostgreSQL (the database, queue, retrain, export and browser
# tests); everything runs against SQLite first.
PG_TESTS=(tests/persistence tests/pipeline/test_retrain.py tests/pipeline/test_export.py tests/app/test_app_desk.py
          tests/app/test_browser.py)

postgres() {
  # A throwaway PostgreSQL server from Debian's package, on a Unix socket in /tmp (no TCP port), fsync off;
  # exports FNET_TEST_DB_URL for the second test run and stops the server on exit.
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$PG_BIN" ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq postgresql >/dev/null) || true
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  fi
  if [ -z "$PG_BIN" ]; then
    echo "warning: no PostgreSQL server (apt-get install postgresql): the tests run against SQLite only" >&2
    return 0
  fi
  PGTMP=$(mktemp -d /tmp/fnet-pg.XXXXXX)
  PG_AS=()
  if [ "$(id -u)" = 0 ]; then chown postgres "$PGTMP"; PG_AS=(runuser -u postgres --); fi  # initdb refuses root
  "${PG_AS[@]}" "$PG_BIN/initdb" -D "$PGTMP/data" -A trust -U fnet -E UTF8 --no-sync >"$PGTMP/initdb.log"
  "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PGTMP/data" -l "$PGTMP/server.log" -w \
    -o "-k $PGTMP -c listen_addresses= -c fsync=off -c max_connections=200" start >/dev/null
  trap '"${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PGTMP/data" -m immediate stop >/dev/null; rm -rf "$PGTMP"' EXIT
  "${PG_AS[@]}" "$PG_BIN/createdb" -h "$PGTMP" -U fnet fnet_test
  export FNET_TEST_DB_URL="postgresql+psycopg://fnet@/fnet_test?host=$PGTMP"
  echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') for the tests on $PGTMP"
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
    if [ $# -gt 0 ]; then  # chosen tests: against SQLite, or the server $FNET_TEST_DB_URL names
      exec "$VENV/bin/python" -m pytest -q -n 2 "$@"
    fi
    unset FNET_TEST_DB_URL
    postgres
    rc=0
    env -u FNET_TEST_DB_URL "$VENV/bin/python" -m pytest -q -n 2 --dist loadfile || rc=$?
    if [ -n "${FNET_TEST_DB_URL:-}" ]; then
      echo "== the database, queue, retrain, export and browser tests again, against PostgreSQL"
      "$VENV/bin/python" -m pytest -q -n 2 --dist loadfile "${PG_TESTS[@]}" || rc=$?
    fi
    exit $rc
    ;;
  setup)
    setup
    ;;
  *)
    echo "usage: ./run.sh demo | test [pytest args] | setup" >&2
    exit 2
    ;;
esac
