#!/bin/bash
# Every endpoint with curl: status, the shapes KoboldCpp clients expect (testdata/kcpp-api, recorded from KoboldCpp 1.76),
# real token counts, one SSE event per token, prefix reuse, trimming, context shift, one-shot modes.
. "$(dirname "$0")/lib.sh"
start_server --contextsize 512

# ---- GET endpoints: same keys as KoboldCpp's answers ----
for pair in "/api/v1/model api_v1_model.json" "/api/v1/info/version api_v1_info_version.json" \
            "/api/v1/config/max_context_length api_v1_config_max_context_length.json" \
            "/api/v1/config/max_length api_v1_config_max_length.json" "/api/extra/version api_extra_version.json" \
            "/api/extra/true_max_context_length api_extra_true_max_context_length.json" \
            "/api/extra/perf api_extra_perf.json" "/v1/models v1_models.json" "/api/tags api_tags.json"; do
  set -- $pair
  req GET "$1"
  check "GET $1 status $CODE" [ "$CODE" = 200 ]
  check "GET $1 has KoboldCpp's keys: $BODY" same_keys "$KCPP/$2"
done
req GET /api/v1/model;                      check "model name" jq_ok '.result == "koboldcpp/stories260K"'
req GET /api/v1/config/max_context_length;  check "max_context_length 512" jq_ok '.value == 512'
req GET /api/extra/true_max_context_length; check "true_max_context_length 512" jq_ok '.value == 512'
req GET /api/extra/version;                 check "version says KoboldCpp, unprotected" jq_ok '.result == "KoboldCpp" and .protected == false'
req GET /v1/models;                         check "v1/models data[0].id" jq_ok '.object == "list" and .data[0].id == "koboldcpp/stories260K" and .data[0].object == "model"'
req GET /api/v1/model/;                     check "a trailing slash works" [ "$CODE" = 200 ]
req GET /api/latest/model;                  check "/api/latest is /api/v1" [ "$CODE" = 200 ]

# ---- tokencount: the same ids as KoboldCpp (BOS counted) ----
req POST /api/extra/tokencount '{"prompt":"Once upon a time"}'
check "tokencount = KoboldCpp's: $BODY" [ "$(printf '%s' "$BODY" | jq -c .)" = "$(jq -c . "$KCPP/tokencount.json")" ]

# ---- generate ----
G='{"prompt":"Once upon a time","max_length":24,"temperature":0.7,"sampler_seed":7}'
req POST /api/v1/generate "$G"
check "generate 200" [ "$CODE" = 200 ]
check "generate has KoboldCpp's shape: $BODY" jq_ok '(.results|length) == 1 and (.results[0].text|type) == "string" and .results[0].finish_reason == "length" and (.results[0].text|length) > 0'
check "generate: results[0] keys" jq_ok '(.results[0]|keys) == ["finish_reason","text"]'
T1=$(printf '%s' "$BODY" | jq -r .results[0].text)
req GET /api/extra/perf
check "perf: 24 tokens generated, seed 7: $BODY" jq_ok '.last_token_count == 24 and .last_seed == 7 and .stop_reason == 0 and .idle == 1'
req POST /api/v1/generate "$G"
check "the same seed gives the same text" [ "$(printf '%s' "$BODY" | jq -r .results[0].text)" = "$T1" ]
req GET /api/extra/perf
check "prefix reuse: the second identical prompt reuses the cache ($BODY)" jq_ok '.last_reused_tokens >= 4'
req POST /api/v1/generate '{"prompt":"Once upon a time","max_length":24,"temperature":0.7,"sampler_seed":8}'
check "another seed gives another text" [ "$(printf '%s' "$BODY" | jq -r .results[0].text)" != "$T1" ]

# greedy, stop strings, logit bias
req POST /api/v1/generate '{"prompt":"Once upon a time","max_length":40,"temperature":0}'
GREEDY=$(printf '%s' "$BODY" | jq -r .results[0].text)
WORD=$(printf '%s' "$GREEDY" | awk '{print $6}')
if [ -n "$WORD" ]; then
  req POST /api/v1/generate "{\"prompt\":\"Once upon a time\",\"max_length\":40,\"temperature\":0,\"stop_sequence\":[\" $WORD\"]}"
  STOPPED=$(printf '%s' "$BODY" | jq -r .results[0].text)
  check "a stop sequence cuts the text before it ('$STOPPED' vs '$GREEDY')" [ "${GREEDY#"$STOPPED"" $WORD"}" != "$GREEDY" ]
  check "finish_reason stop" jq_ok '.results[0].finish_reason == "stop"'
  req POST /api/v1/generate "{\"prompt\":\"Once upon a time\",\"max_length\":40,\"temperature\":0,\"stop_sequence\":[\" $WORD\"],\"trim_stop\":false}"
  check "trim_stop false keeps the stop string" [ "$(printf '%s' "$BODY" | jq -r .results[0].text)" = "$STOPPED $WORD" ]
else fail "greedy text too short: $GREEDY"; fi
FIRST=$(curl -s "$BASE/api/extra/tokencount" -d "{\"prompt\":\"Once upon a time$(printf '%s' "$GREEDY" | cut -c1-1)\"}" | jq '.ids[-1]')
req POST /api/v1/generate "{\"prompt\":\"Once upon a time\",\"max_length\":3,\"temperature\":0,\"logit_bias\":{\"$FIRST\":-100}}"
check "logit_bias -100 bans the greedy first token ($FIRST)" [ "$(printf '%s' "$BODY" | jq -r .results[0].text | cut -c1-1)" != "$(printf '%s' "$GREEDY" | cut -c1-1)" ]
req POST /api/v1/generate '{"prompt":"Once upon a time","max_length":16,"temperature":0.9,"sampler_order":[6,0,1,3,4,2,5],"top_k":40,"top_a":0.1,"typical":0.9,"tfs":0.95,"min_p":0.05,"rep_pen":1.1,"rep_pen_range":64,"rep_pen_slope":0.7,"presence_penalty":0.2,"dry_multiplier":0.8,"dry_base":1.75,"dry_allowed_length":2,"dry_sequence_breakers":["\n",":"],"xtc_threshold":0.1,"xtc_probability":0.5,"dynatemp_range":0.3,"smoothing_factor":0.2,"ban_eos_token":true,"genkey":"KCPP1234"}'
check "every KoboldCpp sampler field is accepted ($CODE)" [ "$CODE" = 200 ]
# what Kobold Lite sends (fields hearth does not use are accepted and ignored)
req POST /api/extra/generate/stream '{"n":1,"max_context_length":4096,"max_length":8,"rep_pen":1.07,"temperature":0.7,"top_p":0.92,"top_k":100,"top_a":0,"typical":1,"tfs":1,"rep_pen_range":360,"rep_pen_slope":0.7,"sampler_order":[6,0,1,3,4,2,5],"memory":"","trim_stop":true,"genkey":"KCPP4321","min_p":0,"dynatemp_range":0,"dynatemp_exponent":1,"smoothing_factor":0,"banned_tokens":[],"render_special":false,"logprobs":false,"presence_penalty":0,"logit_bias":{},"prompt":"\n### Instruction:\nHello\n### Response:\n","quiet":true,"stop_sequence":["### Instruction:","### Response:"],"use_default_badwordsids":false,"bypass_eos":false,"images":[],"grammar":"","grammar_retain_state":false,"dry_multiplier":0,"dry_base":1.75,"dry_allowed_length":2,"dry_sequence_breakers":["\n",":","\"","*"],"xtc_threshold":0.2,"xtc_probability":0}'
check "a Kobold Lite request streams ($CODE)" [ "$CODE" = 200 ] && printf '%s' "$BODY" | grep -q '^event: message'
req GET /api/extra/preloadstory; check "preloadstory answers {}" jq_ok '. == {}'
req POST /api/v1/generate '{"prompt":"Once upon a time","max_length":16,"mirostat":2,"mirostat_tau":3,"mirostat_eta":0.1}'
check "mirostat is accepted ($CODE)" [ "$CODE" = 200 ]

# ---- phrase bans (banned_tokens): go back and choose otherwise; never shown, even streamed ----
B='"prompt":"Once upon a time","max_length":40,"top_k":1,"sampler_seed":1'
req POST /api/v1/generate "{$B}"
check "greedy text holds the phrase to ban: $BODY" jq_ok '.results[0].text | test("little girl")'
req POST /api/v1/generate "{$B,\"banned_tokens\":[\"little girl\",\"LILY\"]}"
BANNED=$(printf '%s' "$BODY" | jq -r .results[0].text)
check "no banned phrase, in any case: $BANNED" jq_ok '(.results[0].text | ascii_downcase | test("little girl|lily") | not) and .results[0].finish_reason == "length"'
req GET /api/extra/perf
check "a ban still generates max_length tokens" jq_ok '.last_token_count == 40'
curl -sN "$BASE/api/extra/generate/stream" -d "{$B,\"banned_strings\":[\"little girl\",\"LILY\"]}" > "$WORK/ban.txt"
check "streamed text with bans = generated text" [ "$(grep '^data: ' "$WORK/ban.txt" | sed 's/^data: //' | jq -j .token)" = "$BANNED" ]
req POST /api/v1/generate '{"prompt":"x","banned_tokens":[1]}'
check "a banned phrase must be a string ($CODE)" [ "$CODE" = 400 ]

# ---- grammars (GBNF): only what the grammar allows, stop where it ends; JSON mode ----
GR='"prompt":"Once upon a time","max_length":60,"sampler_seed":3,"grammar":"root ::= \" \" [A-Z] [a-z]+ (\" \" [a-z]+){2,5} \".\""'
req POST /api/v1/generate "{$GR}"
GTEXT=$(printf '%s' "$BODY" | jq -r .results[0].text)
check "grammar: a sentence of 4-7 words ($GTEXT)" [ "$(printf '%s' "$GTEXT" | grep -cE '^ [A-Z][a-z]+( [a-z]+){2,5}\.$')" = 1 ]
check "grammar: finishes when the grammar ends" jq_ok '.results[0].finish_reason == "stop"'
curl -sN "$BASE/api/extra/generate/stream" -d "{$GR}" > "$WORK/gr.txt"
check "grammar: streamed = generated" [ "$(grep '^data: ' "$WORK/gr.txt" | sed 's/^data: //' | jq -j .token)" = "$GTEXT" ]
req POST /api/v1/generate '{"prompt":"x","grammar":"root ::= foo"}'
check "a bad grammar is a 400 naming the rule: $BODY" jq_ok '.detail.msg | test("rule .foo. is used but not defined")'
[ "$CODE" = 400 ]; check "bad grammar code $CODE" [ $? = 0 ]
req POST /v1/chat/completions '{"messages":[{"role":"user","content":"Give JSON"}],"max_tokens":40,"response_format":{"type":"json_object"},"seed":2}'
check "json_object mode starts an object: $BODY" jq_ok '.choices[0].message.content | test("^[ \t\n]*[{]")'
req POST /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"yaml"}}'
check "an unknown response_format is a 400 ($CODE)" [ "$CODE" = 400 ]

# ---- streaming: one event per token, the same text as without streaming ----
curl -sN "$BASE/api/extra/generate/stream" -d "$G" > "$WORK/stream.txt"
EVENTS=$(grep -c '^event: message$' "$WORK/stream.txt")
DATAS=$(grep -c '^data: ' "$WORK/stream.txt")
req GET /api/extra/perf
NTOK=$(printf '%s' "$BODY" | jq .last_token_count)
check "one event per token ($EVENTS events, $NTOK tokens)" [ "$EVENTS" = "$NTOK" ] && [ "$DATAS" = "$NTOK" ]
STREAMED=$(grep '^data: ' "$WORK/stream.txt" | sed 's/^data: //' | jq -j .token)
check "streamed text = generated text" [ "$STREAMED" = "$T1" ]
check "every event but the last has finish_reason null" [ "$(grep '^data: ' "$WORK/stream.txt" | sed 's/^data: //' | jq -r .finish_reason | sort | uniq -c | awk '{print $2":"$1}' | tr '\n' ' ')" = "length:1 null:$((NTOK - 1)) " ]
check "events are separated by a blank line" [ "$(awk 'NR%3==0' "$WORK/stream.txt" | grep -vc '^$')" = 0 ]

# ---- generate/check and abort when idle ----
req GET /api/extra/generate/check;  check "check GET shape: $BODY" jq_ok '(.results[0].text|type) == "string"'
req POST /api/extra/generate/check '{"genkey":"KCPP1234"}'; check "check POST with genkey" jq_ok '(.results[0].text|type) == "string"'
req POST /api/extra/abort '{"genkey":"nothing"}'; check "abort when idle: success false" jq_ok '.success == "false" and .done == "true"'

# ---- OpenAI endpoints with curl: shapes and real usage ----
req POST /v1/completions '{"prompt":"Once upon a time","max_tokens":16}'
check "completions 200" [ "$CODE" = 200 ]
check "completions has KoboldCpp's keys" same_keys "$KCPP/completions.json"
PT=$(curl -s "$BASE/api/extra/tokencount" -d '{"prompt":"Once upon a time"}' | jq .value)
check "completions: real usage ($BODY)" jq_ok ".usage.prompt_tokens == $PT and .usage.completion_tokens == 16 and .usage.total_tokens == $((PT + 16)) and .object == \"text_completion\" and .choices[0].finish_reason == \"length\""
req POST /v1/chat/completions '{"messages":[{"role":"user","content":"Tell me a story"}],"max_tokens":16}'
check "chat 200" [ "$CODE" = 200 ]
check "chat has KoboldCpp's keys" same_keys "$KCPP/chat.json"
check "chat: message and usage ($BODY)" jq_ok '.object == "chat.completion" and .choices[0].message.role == "assistant" and (.choices[0].message.content|type) == "string" and .usage.prompt_tokens > 5 and .usage.completion_tokens <= 16 and .usage.completion_tokens >= 1'
curl -sN "$BASE/v1/completions" -d '{"prompt":"Once upon a time","max_tokens":12,"stream":true}' > "$WORK/ostream.txt"
check "completions stream ends with [DONE]" [ "$(grep '^data: ' "$WORK/ostream.txt" | tail -1)" = "data: [DONE]" ]
N=$(grep '^data: {' "$WORK/ostream.txt" | wc -l)
check "completions stream: one chunk per token ($N)" [ "$N" = 12 ]
check "completions stream chunks" [ "$(grep '^data: {' "$WORK/ostream.txt" | sed 's/^data: //' | jq -r '.object' | sort -u)" = text_completion ]
curl -sN "$BASE/v1/chat/completions" -d '{"messages":[{"role":"user","content":"Hi"}],"max_tokens":8,"stream":true,"stream_options":{"include_usage":true}}' > "$WORK/cstream.txt"
check "chat stream: chunks with deltas" [ "$(grep '^data: {' "$WORK/cstream.txt" | head -1 | sed 's/^data: //' | jq -r '.object + " " + .choices[0].delta.role')" = "chat.completion.chunk assistant" ]
check "chat stream: usage chunk at the end" [ "$(grep '^data: {' "$WORK/cstream.txt" | tail -1 | sed 's/^data: //' | jq '.usage.completion_tokens >= 1 and (.choices|length) == 0')" = true ]
check "chat stream ends with [DONE]" [ "$(tail -2 "$WORK/cstream.txt" | head -1)" = "data: [DONE]" ]

# ---- unknown endpoint ----
req GET /api/nothing; check "unknown endpoint 404 JSON" [ "$CODE" = 404 ] && jq_ok '.detail.type == "not_found"'
req GET /; check "the page is served" [ "$CODE" = 200 ] && printf '%s' "$BODY" | grep -q '<title>hearth</title>'
stop_server

# ---- a prompt longer than the context keeps memory and the end of the prompt ----
start_server --contextsize 128
LONG=$(for i in $(seq 1 60); do printf 'The little dog ran to the park and played. '; done)
MEM="Lily had a red ball. "
MEMTOK=$(( $(curl -s "$BASE/api/extra/tokencount" -d "{\"prompt\":\"$MEM\"}" | jq .value) - 1 ))
req POST /api/v1/generate "{\"prompt\":\"$LONG\",\"memory\":\"$MEM\",\"max_length\":16,\"temperature\":0}"
check "an over-long prompt still generates ($CODE)" [ "$CODE" = 200 ]
req GET /api/extra/perf
check "perf says the prompt was trimmed to the context ($BODY)" jq_ok '.last_trimmed_tokens > 100 and .last_prompt_tokens == 112'
check "the log says memory was kept ($MEMTOK tokens)" grep -q "kept memory ($MEMTOK tokens)" "$WORK/server.log"

# ---- context shift: a prompt that drops a block from the middle reuses what follows ----
S1=" Once upon a time there was a girl."
S2=" She had a big red ball and a small blue car that she loved very much."
S3=" One day she went to the park with her mom and her dog, and they all played in the sun together."
S4=" Then they went home."
req POST /api/v1/generate "{\"prompt\":\"$S1$S2$S3\",\"max_length\":1}"
req POST /api/v1/generate "{\"prompt\":\"$S1$S3$S4\",\"max_length\":1}"
req GET /api/extra/perf
S1N=$(( $(curl -s "$BASE/api/extra/tokencount" -d "{\"prompt\":\"$S1\"}" | jq .value) ))
# S3 alone counts BOS and a lone "▁" (the tokenizer's dummy prefix before its leading space)
S3N=$(( $(curl -s "$BASE/api/extra/tokencount" -d "{\"prompt\":\"$S3\"}" | jq .value) - 2 ))
check "context shift: reused $(printf '%s' "$BODY" | jq .last_reused_tokens) >= $((S1N + S3N))" jq_ok ".last_reused_tokens >= $((S1N + S3N))"
check "the log says the cache was shifted" grep -q "context shift" "$WORK/server.log"
stop_server

start_server --contextsize 128 --noshift
req POST /api/v1/generate "{\"prompt\":\"$S1$S2$S3\",\"max_length\":1}"
req POST /api/v1/generate "{\"prompt\":\"$S1$S3$S4\",\"max_length\":1}"
req GET /api/extra/perf
check "--noshift: only the common prefix is reused" jq_ok ".last_reused_tokens == $S1N"
stop_server

# ---- one-shot modes ----
OUT=$("$HEARTH_BIN" --model "$HEARTH_MODEL" --prompt "Once upon a time" --promptlimit 12 2>/dev/null)
check "--prompt prints a continuation ('$OUT')" [ -n "$OUT" ]
"$HEARTH_BIN" --model "$HEARTH_MODEL" --contextsize 256 --benchmark "$WORK/bench.csv" > "$WORK/bench.txt" 2>&1
check "--benchmark prints both speeds" grep -q "ProcessingSpeed: .*T/s" "$WORK/bench.txt"
check "--benchmark generated 100 tokens" grep -q "generated: 100 tokens" "$WORK/bench.txt"
check "--benchmark wrote its CSV" [ "$(wc -l < "$WORK/bench.csv")" = 2 ]
"$HEARTH_BIN" --model "$HEARTH_MODEL" --nosuchflag >/dev/null 2>&1
check "an unknown flag is an error" [ $? = 2 ]
"$HEARTH_BIN" --model "$HEARTH_MODEL" --chatcompletionsadapter nosuch >/dev/null 2>"$WORK/ad.txt"
check "an unknown chat adapter is an error that lists the known ones" grep -q "chatml" "$WORK/ad.txt"

# ---- a chat adapter by name and from KoboldCpp's JSON ----
start_server --contextsize 512 --chatcompletionsadapter ChatML
grep -q "chat format: chatml" "$WORK/server.log"; check "--chatcompletionsadapter ChatML picks chatml" [ $? = 0 ]
stop_server
printf '{"system_start":"<S>","system_end":"</S>","user_start":"<U>","user_end":"</U>","assistant_start":"<A>","assistant_end":"</A>"}' > "$WORK/ad.json"
start_server --contextsize 512 --chatcompletionsadapter "$WORK/ad.json"
req POST /v1/chat/completions '{"messages":[{"role":"user","content":"Hi"}],"max_tokens":4}'
PT=$(curl -s "$BASE/api/extra/tokencount" -d '{"prompt":"<U>Hi</U><A>"}' | jq .value)
check "a KoboldCpp adapter file shapes the prompt ($PT tokens)" jq_ok ".usage.prompt_tokens == $PT"
stop_server
finish
