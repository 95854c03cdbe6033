#!/bin/bash
# A bounded load test with wrk (Debian's package): many concurrent clients through the queue
# for HEARTH_LOAD_SECONDS (default 40). Only 200s and the expected 503s, no socket errors,
# memory flat, and the server still answers afterwards.
. "$(dirname "$0")/lib.sh"
command -v wrk >/dev/null || { echo "FAIL: wrk is not installed (run .ci/deps-server.sh)"; exit 1; }
SECS=${HEARTH_LOAD_SECONDS:-40}
start_server --contextsize 256 --multiuser 4 --quiet
rss() { awk '/^VmRSS/ {print $2}' /proc/$SERVER_PID/status; }

# warm up (first allocations, thread stacks), then measure
wrk -t2 -c16 -d3s --timeout 10s -s "$TESTDIR/load.lua" "$BASE" > "$WORK/warm.txt" 2>&1
RSS0=$(rss)
wrk -t2 -c32 -d${SECS}s --timeout 20s -s "$TESTDIR/load.lua" "$BASE" > "$WORK/load.txt" 2>&1
RSS1=$(rss)
cat "$WORK/load.txt"
cp "$WORK/load.txt" "$HEARTH_TEST_OUT/load.txt"
N200=$(awk '$1=="status" && $2==200 {print $3}' "$WORK/load.txt"); N200=${N200:-0}
N503=$(awk '$1=="status" && $2==503 {print $3}' "$WORK/load.txt"); N503=${N503:-0}
OTHER=$(awk '$1=="status" && $2!=200 && $2!=503 {s+=$3} END {print s+0}' "$WORK/load.txt")
ERRS=$(awk '$1=="errors" {print $2+$3+$4+$5}' "$WORK/load.txt")
echo "200: $N200, 503: $N503, other: $OTHER, socket errors: $ERRS, RSS ${RSS0} kB -> ${RSS1} kB"
check "many requests were served ($N200)" [ "$N200" -gt 50 ]
check "the queue turned some away with 503 ($N503)" [ "$N503" -gt 0 ]
check "no status but 200 and 503 ($OTHER)" [ "$OTHER" = 0 ]
check "no socket errors or timeouts ($ERRS)" [ "$ERRS" = 0 ]
check "memory stayed flat (${RSS0} kB -> ${RSS1} kB)" [ "$RSS1" -lt $((RSS0 + RSS0 / 4 + 16384)) ]
req POST /api/v1/generate '{"prompt":"Once upon a time","max_length":8}'
check "the server answers afterwards" [ "$CODE" = 200 ] && jq_ok '(.results[0].text|length) > 0'
req GET /api/extra/perf
check "and is idle with an empty queue: $BODY" jq_ok '.queue == 0 and .idle == 1'
finish
