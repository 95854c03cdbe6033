# lib.sh: shared by the server tests. Starts a hearth server on a free port, gives curl and
# jq helpers, and counts failures. Every test sources it and ends with `finish`.
set -u
HEARTH_BIN=${HEARTH_BIN:-$(cd "$(dirname "$0")/../.." && pwd)/build/bin/hearth}
HEARTH_MODEL=${HEARTH_MODEL:-$(cd "$(dirname "$0")/../.." && pwd)/models/stories260K.gguf}
HEARTH_TEST_OUT=${HEARTH_TEST_OUT:-/tmp/hearth-test-output}
TESTDIR=$(cd "$(dirname "$0")" && pwd)
KCPP=${KCPP_API:-$TESTDIR/../../testdata/kcpp-api}
mkdir -p "$HEARTH_TEST_OUT"
FAILS=0
CHECKS=0
SERVER_PID=
WORK=$(mktemp -d)
trap 'stop_server; rm -rf "$WORK"' EXIT

for tool in curl jq; do
  command -v $tool >/dev/null || { echo "FAIL: $tool is not installed (run .ci/deps-server.sh)"; exit 1; }
done

ok()   { CHECKS=$((CHECKS + 1)); }
fail() { CHECKS=$((CHECKS + 1)); FAILS=$((FAILS + 1)); echo "FAIL: $*"; }
check() { # check DESCRIPTION COMMAND...
  local what=$1; shift
  if "$@"; then ok; else fail "$what"; fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# start_server [flags...]: runs hearth on a free port, waits until it answers.
start_server() {
  PORT=$(free_port)
  BASE=http://127.0.0.1:$PORT
  # emptied here, not by the background job's redirection: that may run after the wait below
  # has read a previous server's "ready" line from the same file
  : >"$WORK/server.log"
  "$HEARTH_BIN" --model "$HEARTH_MODEL" --port "$PORT" "$@" >>"$WORK/server.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 100); do
    if grep -q "hearth: ready" "$WORK/server.log" 2>/dev/null; then return 0; fi
    if ! kill -0 $SERVER_PID 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "FAIL: the server did not start:"; cat "$WORK/server.log"
  exit 1
}

stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 $SERVER_PID 2>/dev/null; then
    kill $SERVER_PID; wait $SERVER_PID 2>/dev/null
    local rc=$?
    # a clean stop, and no sanitizer report (tests also run under ASan/UBSan)
    if [ $rc != 0 ] || grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$WORK/server.log"; then
      fail "the server exited with status $rc or reported a memory error:"
      grep -vE '^KV cache' "$WORK/server.log" | tail -40
    fi
  fi
  SERVER_PID=
}

# req METHOD PATH [BODY [curl args...]]: sets CODE and BODY (the response).
req() {
  local m=$1 p=$2; shift 2
  local data=()
  if [ $# -gt 0 ]; then   # an empty BODY means none (to pass curl arguments after it)
    [ -n "$1" ] && data=(--data-binary "$1" -H 'Content-Type: application/json'); shift
  fi
  CODE=$(curl -s -o "$WORK/body" -w '%{http_code}' -X "$m" "${data[@]}" "$@" "$BASE$p")
  BODY=$(cat "$WORK/body")
}

# jq_ok FILTER: the last BODY satisfies the jq filter (which must yield true).
jq_ok() { printf '%s' "$BODY" | jq -e "$1" >/dev/null 2>&1; }

# same_keys FILE: the last BODY has the same top-level keys as a recorded KoboldCpp answer
# (hearth may add keys; it never drops one).
same_keys() {
  local missing
  missing=$(jq -n --argjson a "$(cat "$1")" --argjson b "$BODY" '[$a|keys[]] - [$b|keys[]] | length' 2>/dev/null)
  [ "$missing" = "0" ]
}

finish() {
  stop_server
  echo "$(basename "$0"): $CHECKS checks, $FAILS failed"
  [ $FAILS -eq 0 ]
  exit $?
}
