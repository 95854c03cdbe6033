#!/bin/bash
# Bad input of every kind gets a 400 with a JSON error naming the problem (KoboldCpp: 500 or
# `null`); the password guards every endpoint but the page; CORS; nothing crashes.
. "$(dirname "$0")/lib.sh"
start_server --contextsize 256 --test-max-body 65536

err_is() { # err_is CODE WORD: status CODE and a JSON error whose message mentions WORD
  [ "$CODE" = "$1" ] && printf '%s' "$BODY" | jq -e --arg w "$2" '((.detail.msg // .error.message) | test($w))' >/dev/null 2>&1
}
req POST /api/v1/generate '{"prompt": "Once upon'
check "malformed JSON -> 400 naming it: $CODE $BODY" err_is 400 "malformed JSON"
req POST /api/v1/generate '{"prompt": 5}'
check "prompt of the wrong type -> 400 naming prompt: $CODE $BODY" err_is 400 "'prompt'"
req POST /api/v1/generate '{"prompt": "x", "max_length": "ten"}'
check "max_length a string -> 400: $BODY" err_is 400 "'max_length'"
req POST /api/v1/generate '{"prompt": "x", "temperature": [1]}'
check "temperature an array -> 400: $BODY" err_is 400 "'temperature'"
req POST /api/v1/generate '{"prompt": "x", "stop_sequence": [1, 2]}'
check "stop_sequence of numbers -> 400: $BODY" err_is 400 "'stop_sequence'"
req POST /api/v1/generate '{"prompt": "x", "sampler_order": [0, 9]}'
check "sampler_order out of range -> 400: $BODY" err_is 400 "'sampler_order'"
req POST /api/v1/generate '{"prompt": "x", "logit_bias": {"abc": 1}}'
check "logit_bias with a bad key -> 400: $BODY" err_is 400 "'logit_bias'"
req POST /api/v1/generate '{"prompt": "x", "max_length": -3}'
check "negative max_length -> 400: $BODY" err_is 400 "'max_length'"
req POST /api/v1/generate '[1,2,3]'
check "a body that is not an object -> 400: $BODY" err_is 400 "object"
req POST /api/v1/generate '' -H 'Content-Type: application/json'
check "an empty body -> 400: $BODY" err_is 400 "JSON body"
printf '{"prompt": "Once upon a \xff\xfe time"}' > "$WORK/bad.json"
req POST /api/v1/generate "@$WORK/bad.json"
check "invalid UTF-8 -> 400 naming it: $BODY" err_is 400 "UTF-8"
printf '{"prompt": "\xc0\xaf"}' > "$WORK/overlong.json"
req POST /api/v1/generate "@$WORK/overlong.json"
check "an overlong UTF-8 form -> 400: $BODY" err_is 400 "UTF-8"
head -c 100000 /dev/zero | tr '\0' 'a' | sed 's/^/{"prompt":"/; s/$/"}/' > "$WORK/big.json"
req POST /api/v1/generate "@$WORK/big.json"
check "an oversized body -> 400 naming the limit: $CODE $BODY" err_is 400 "limit of 65536 bytes"
req POST /api/v1/generate "@$WORK/big.json" -H 'Transfer-Encoding: chunked'
check "an oversized chunked body -> 400: $CODE $BODY" err_is 400 "limit"
req POST /v1/chat/completions '{"messages": "hi"}'
check "OpenAI errors use OpenAI's shape: $BODY" err_is 400 "'messages'"
req POST /v1/chat/completions '{"messages": [{"role": "wizard", "content": "hi"}]}'
check "unknown chat role -> 400: $BODY" err_is 400 "wizard"
req POST /v1/completions '{"prompt": "x", "stream": "yes"}'
check "stream not a boolean -> 400: $BODY" err_is 400 "'stream'"
req POST /v1/completions '{"prompt": "x", "n": 3}'
check "n > 1 -> 400: $BODY" err_is 400 "'n'"
req POST /api/extra/tokencount '{"prompt": null}'
check "tokencount without a prompt -> 400" err_is 400 "'prompt'"
req GET /api/v1/generate
check "GET on a POST endpoint -> 405 JSON" err_is 405 "POST|GET"
req GET /no/such/thing
check "unknown endpoint -> 404 JSON: $BODY" err_is 404 "no endpoint"
req GET /api/v1/model
check "the server still answers after all that" [ "$CODE" = 200 ]
# CORS as KoboldCpp sends it
curl -s -D "$WORK/h" -o /dev/null -X OPTIONS "$BASE/api/v1/generate" -H 'Origin: http://example.com' -H 'Access-Control-Request-Method: POST'
check "preflight allows any origin" grep -qi '^Access-Control-Allow-Origin: \*' "$WORK/h"
check "preflight allows Authorization" grep -qi '^Access-Control-Allow-Headers:.*Authorization' "$WORK/h"
curl -s -D "$WORK/h" -o /dev/null "$BASE/api/v1/model"
check "responses carry CORS headers" grep -qi '^Access-Control-Allow-Origin: \*' "$WORK/h"
stop_server

# ---- the password ----
start_server --contextsize 256 --password s3cret
for p in /api/v1/model /api/extra/version /api/extra/perf /v1/models /api/extra/generate/check; do
  req GET $p
  check "GET $p without the password -> 401 JSON ($CODE)" err_is 401 "password"
done
req POST /api/v1/generate '{"prompt":"x","max_length":2}'
check "generate without the password -> 401" err_is 401 "password"
req POST /api/v1/generate '{"prompt":"x","max_length":2}' -H 'Authorization: Bearer wrong'
check "a wrong password -> 401" err_is 401 "password"
req POST /v1/completions '{"prompt":"x","max_tokens":2}' -H 'Authorization: Bearer s3cre'
check "a prefix of the password -> 401 (OpenAI shape)" err_is 401 "password"
req POST /api/v1/generate '{"prompt":"x","max_length":2}' -H 'Authorization: Bearer s3cret'
check "the right password -> 200" [ "$CODE" = 200 ]
req GET /api/extra/version '' -H 'Authorization: Bearer s3cret'
check "version says protected" jq_ok '.protected == true'
req GET /
check "the page needs no password" [ "$CODE" = 200 ]
curl -s -o /dev/null -w '%{http_code}' -X OPTIONS "$BASE/api/v1/generate" > "$WORK/c"
check "a CORS preflight needs no password" [ "$(cat "$WORK/c")" = 200 ]
finish
