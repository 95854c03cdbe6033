// The official OpenAI client against hearth: completions and chat, streaming and not,
// real usage counts, errors surfaced as the library's APIError. Usage: node openai.mjs BASE_URL
import OpenAI from "openai";
import assert from "node:assert/strict";

const base = process.argv[2];
const client = new OpenAI({ baseURL: base + "/v1", apiKey: "unused", maxRetries: 0 });
let failures = 0, checks = 0;
async function t(name, fn) {
  checks++;
  try { await fn(); console.log("ok   " + name); }
  catch (e) { failures++; console.log("FAIL " + name + ": " + (e && e.stack || e)); }
}

async function tokenCount(text) {
  const r = await fetch(base + "/api/extra/tokencount", { method: "POST", body: JSON.stringify({ prompt: text }) });
  return (await r.json()).value;
}

await t("models.list", async () => {
  const models = await client.models.list();
  assert.equal(models.data.length, 1);
  assert.equal(models.data[0].id, "koboldcpp/stories260K");
});

await t("completions.create", async () => {
  const r = await client.completions.create({ model: "koboldcpp/stories260K", prompt: "Once upon a time", max_tokens: 16, seed: 3 });
  assert.equal(r.object, "text_completion");
  assert.equal(typeof r.choices[0].text, "string");
  assert.ok(r.choices[0].text.length > 0);
  assert.equal(r.usage.prompt_tokens, await tokenCount("Once upon a time"));
  assert.ok(r.usage.completion_tokens >= 1 && r.usage.completion_tokens <= 16);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

await t("completions.create stream: one chunk per token, same text as without", async () => {
  const plain = await client.completions.create({ model: "m", prompt: "Once upon a time", max_tokens: 20, seed: 11 });
  const stream = await client.completions.create({ model: "m", prompt: "Once upon a time", max_tokens: 20, seed: 11, stream: true,
                                                   stream_options: { include_usage: true } });
  let text = "", chunks = 0, finish = null, usage = null;
  for await (const c of stream) {
    if (c.usage) usage = c.usage;
    if (!c.choices.length) continue;
    chunks++;
    text += c.choices[0].text;
    if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
  }
  assert.equal(text, plain.choices[0].text);
  assert.equal(chunks, plain.usage.completion_tokens);
  assert.equal(finish, plain.choices[0].finish_reason);
  assert.ok(usage && usage.completion_tokens === plain.usage.completion_tokens);
});

await t("chat.completions.create", async () => {
  const r = await client.chat.completions.create({ model: "m", messages: [
    { role: "system", content: "You tell short stories." }, { role: "user", content: "Tell me a story" }], max_tokens: 16 });
  assert.equal(r.object, "chat.completion");
  assert.equal(r.choices[0].message.role, "assistant");
  assert.equal(typeof r.choices[0].message.content, "string");
  assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 10, "the chat format's tokens are counted");
  assert.ok(r.usage.completion_tokens >= 1);
});

await t("chat.completions.create stream", async () => {
  const stream = await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "Hello" }],
                                                        max_tokens: 12, stream: true, seed: 5 });
  let text = "", first = true, finish = null, n = 0;
  for await (const c of stream) {
    assert.equal(c.object, "chat.completion.chunk");
    if (first) { assert.equal(c.choices[0].delta.role, "assistant"); first = false; }
    text += c.choices[0].delta.content || "";
    if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
    n++;
  }
  assert.ok(n >= 1 && finish !== null, "a finish_reason arrives");
  assert.equal(typeof text, "string");
});

await t("chat stream aborted by the client, then a normal request", async () => {
  const ctrl = new AbortController();
  const stream = await client.chat.completions.create({ model: "m", messages: [{ role: "user", content: "Go on" }],
                                                        max_tokens: 400, stream: true }, { signal: ctrl.signal });
  let n = 0;
  try { for await (const c of stream) { if (++n === 3) ctrl.abort(); } } catch (e) { /* aborted */ }
  const r = await client.completions.create({ model: "m", prompt: "The cat", max_tokens: 4 });
  assert.ok(r.choices[0].text.length > 0);
});

await t("a bad request is a 400 APIError with the message", async () => {
  await assert.rejects(client.completions.create({ model: "m", prompt: "x", max_tokens: "many" }),
                       (e) => e.status === 400 && /max_tokens/.test(e.message));
});

console.log(`openai.mjs: ${checks} checks, ${failures} failed`);
process.exit(failures ? 1 : 0);
