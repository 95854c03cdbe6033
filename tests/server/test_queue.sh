#!/bin/bash
# The queue: one generation at a time, --multiuser waiting places, 503 beyond them, abort
# (genkey-aware), generate/check, and clients that disconnect mid-stream or while waiting.
# --test-token-delay-ms slows each token so the timing does not depend on the machine.
. "$(dirname "$0")/lib.sh"
start_server --contextsize 512 --multiuser 2 --test-token-delay-ms 20

LONG='{"prompt":"Once upon a time","max_length":200,"genkey":"KEYA"}'
BG=()
gen_bg() { curl -sS -o "$WORK/$1.out" -w '%{http_code}' "$BASE/api/v1/generate" -d "$2" > "$WORK/$1.code" 2>"$WORK/$1.err" & BG+=($!); }
wait_bg() { wait "${BG[@]}"; BG=(); }   # not plain `wait`: that would wait for the server
wait_busy() { for _ in $(seq 1 200); do [ "$(curl -s "$BASE/api/extra/perf" | jq .idle)" = 0 ] && return 0; sleep 0.05; done; return 1; }

# one running + one waiting (--multiuser 2), the third is turned away with KoboldCpp's 503
gen_bg a "$LONG"; check "the long generation started" wait_busy
gen_bg b '{"prompt":"Once upon a time","max_length":4}'
sleep 0.3
req GET /api/extra/perf
check "perf shows one waiting: $BODY" jq_ok '.queue == 1 and .idle == 0'
req POST /api/v1/generate '{"prompt":"x","max_length":4}'
check "beyond --multiuser: 503 ($CODE)" [ "$CODE" = 503 ]
check "503 says KoboldCpp's 'Server is busy': $BODY" jq_ok '.detail.msg == "Server is busy; please try again later." and .detail.type == "service_unavailable"'
req POST /v1/completions '{"prompt":"x","max_tokens":4}'
check "OpenAI endpoints get 503 too, in OpenAI's shape" [ "$CODE" = 503 ] && jq_ok '.error.type == "service_unavailable"'
# generate/check shows the running job's text so far
sleep 0.3
req POST /api/extra/generate/check '{"genkey":"KEYA"}'
check "generate/check shows partial text: $BODY" jq_ok '(.results[0].text|length) > 0'
req POST /api/extra/generate/check '{"genkey":"OTHER"}'
check "generate/check with another genkey shows nothing" jq_ok '.results[0].text == ""'
# abort: a wrong genkey does nothing, the right one stops it
req POST /api/extra/abort '{"genkey":"WRONG"}'
check "abort with another genkey: success false" jq_ok '.success == "false"'
T0=$(date +%s.%N)
req POST /api/extra/abort '{"genkey":"KEYA"}'
check "abort with the genkey: success true" jq_ok '.success == "true"'
wait_bg
check "the aborted request still answers 200" [ "$(cat "$WORK/a.code")" = 200 ]
ATOK=$(jq -r .results[0].text "$WORK/a.out" | wc -c)
check "the aborted text is short ($ATOK bytes, 200 tokens would be ~800)" [ "$ATOK" -lt 400 ]
check "the waiting request ran after it" [ "$(cat "$WORK/b.code")" = 200 ] && [ "$(jq '.results[0].text|length' "$WORK/b.out")" -gt 0 ]

# a client that disconnects mid-stream stops its generation; the next request works
curl -sN --max-time 1 "$BASE/api/extra/generate/stream" -d '{"prompt":"Once upon a time","max_length":400}' > "$WORK/cut.txt"
GOT=$(grep -c '^event: message' "$WORK/cut.txt")
check "the stream sent events before the disconnect ($GOT)" [ "$GOT" -gt 3 ]
sleep 0.4
req GET /api/extra/perf
check "the disconnected generation stopped early: $BODY" jq_ok '.idle == 1 and .last_token_count < 100'
req POST /api/v1/generate '{"prompt":"Once upon a time","max_length":8}'
check "a normal request after the disconnect works" [ "$CODE" = 200 ] && jq_ok '(.results[0].text|length) > 0'

# a non-streaming client that disconnects also frees the model
curl -s --max-time 0.8 "$BASE/api/v1/generate" -d '{"prompt":"Once upon a time","max_length":400}' >/dev/null
sleep 0.4
req GET /api/extra/perf
check "a disconnected non-streaming generation stops: $BODY" jq_ok '.idle == 1 and .last_token_count < 100'

# a waiting client that disconnects gives its place back
gen_bg c "$LONG"; check "the long generation started" wait_busy
curl -s --max-time 0.3 "$BASE/api/v1/generate" -d '{"prompt":"x","max_length":4}' >/dev/null
sleep 0.3
req GET /api/extra/perf
check "the place of a client that left the queue is free: $BODY" jq_ok '.queue == 0'
curl -s -o /dev/null -w '%{http_code}' "$BASE/api/extra/generate/stream" -d '{"prompt":"x","max_length":2}' > "$WORK/e.code" & BG+=($!)
sleep 0.3
req GET /api/extra/perf
check "so the next one may wait there: $BODY" jq_ok '.queue == 1'
req POST /api/extra/abort '{}'
check "abort without a genkey stops the current one" jq_ok '.success == "true"'
wait_bg
check "the stream that waited ran" [ "$(cat "$WORK/e.code")" = 200 ]
stop_server

# --multiuser 0: no waiting at all
start_server --contextsize 256 --multiuser 0 --test-token-delay-ms 20
gen_bg d '{"prompt":"Once upon a time","max_length":100}'
if ! wait_busy; then
  fail "the generation started: $(curl -s "$BASE/api/extra/perf")"; sleep 3
  echo "d: $(cat "$WORK/d.code") $(cat "$WORK/d.err") $(cat "$WORK/d.out")"; date; grep -v '^KV' "$WORK/server.log" | tail
fi
req POST /api/v1/generate '{"prompt":"x","max_length":2}'
check "--multiuser 0: busy means 503" [ "$CODE" = 503 ]
req POST /api/extra/abort
check "abort with no body works" jq_ok '.success == "true"'
wait_bg
finish
