-- wrk script for test_load.sh: rotates over the generate endpoints (plain, streamed, OpenAI)
-- and tallies the status codes of every thread.
local bodies = {
  { "/api/v1/generate", '{"prompt":"Once upon a time","max_length":16}' },
  { "/api/extra/generate/stream", '{"prompt":"The little dog","max_length":16}' },
  { "/v1/completions", '{"prompt":"Lily went to the park","max_tokens":16}' },
  { "/v1/chat/completions", '{"messages":[{"role":"user","content":"Hi"}],"max_tokens":8,"stream":true}' },
}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) codes = {}; n = 0 end
function request()
  n = n + 1
  local b = bodies[(n % #bodies) + 1]
  return wrk.format("POST", b[1], { ["Content-Type"] = "application/json" }, b[2])
end
function response(status, headers, body) codes[status] = (codes[status] or 0) + 1 end
function done(summary, latency, requests)
  local agg = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("codes")) do agg[k] = (agg[k] or 0) + v end
  end
  for k, v in pairs(agg) do io.write(string.format("status %d %d\n", k, v)) end
  local e = summary.errors
  io.write(string.format("errors %d %d %d %d\n", e.connect, e.read, e.write, e.timeout))
end
