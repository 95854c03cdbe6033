// The page in headless Chromium (Debian's chromium driven by playwright-core): it loads,
// shows the model, generates a story with streamed text, counts tokens and speed, stops a
// long generation, and chats. Usage: node page.mjs BASE_URL OUT_DIR
import { chromium } from "playwright-core";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const [base, outDir] = process.argv.slice(2);
const exe = process.env.CHROMIUM || ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => fs.existsSync(p));
if (!exe) { console.log("FAIL: chromium is not installed (run .ci/deps-server.sh)"); process.exit(1); }
const profile = fs.mkdtempSync(path.join(os.tmpdir(), "hearth-chromium-"));
// a fresh profile: playwright passes it to chromium as --user-data-dir
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: exe, headless: true, viewport: { width: 1100, height: 720 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
let failures = 0, checks = 0;
async function t(name, fn) {
  checks++;
  try { await fn(); console.log("ok   " + name); }
  catch (e) { failures++; console.log("FAIL " + name + ": " + (e && e.stack || e)); }
}
const page = browser.pages()[0] || await browser.newPage();
const errors = [];
page.on("pageerror", (e) => errors.push(String(e)));
page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });

try {
  await t("the page loads and names the model", async () => {
    await page.goto(base + "/");
    assert.equal(await page.title(), "hearth");
    await page.waitForFunction(() => document.getElementById("model").textContent.includes("stories260K"), null, { timeout: 5000 });
    await page.waitForFunction(() => +document.getElementById("tokens").textContent > 0, null, { timeout: 5000 });
  });

  await t("generate streams text into the story", async () => {
    await page.fill("#story", "Once upon a time");
    await page.fill("#seed", "42");
    // count how the text grows while it streams: several distinct lengths = streamed, not all at once
    await page.evaluate(() => {
      window.__lens = new Set();
      const s = document.getElementById("story");
      const iv = setInterval(() => window.__lens.add(s.value.length), 5);
      window.__stopWatch = () => clearInterval(iv);
    });
    await page.click("#generate");
    await page.waitForFunction(() => !document.getElementById("stop").disabled, null, { timeout: 5000 }).catch(() => {});
    await page.waitForFunction(() => document.getElementById("stop").disabled, null, { timeout: 20000 });
    const lens = await page.evaluate(() => { window.__stopWatch(); return window.__lens.size; });
    const story = await page.inputValue("#story");
    assert.ok(story.startsWith("Once upon a time") && story.length > 40, "the story grew: " + JSON.stringify(story));
    assert.ok(lens >= 3, "the text arrived in pieces (" + lens + " lengths seen)");
    const gen = +(await page.textContent("#gen"));
    assert.ok(gen > 10, "generated count shown: " + gen);
    const speed = await page.textContent("#speed");
    assert.ok(/^[0-9.]+$/.test(speed), "speed shown: " + speed);
    assert.equal(await page.textContent("#error"), "");
  });

  await t("stop ends a long generation", async () => {
    await page.evaluate(() => { document.getElementById("max_length").value = "1024"; document.getElementById("max_length").dispatchEvent(new Event("input")); });
    await page.fill("#story", "The dog");
    await page.click("#generate");
    await page.waitForFunction(() => +document.getElementById("gen").textContent >= 5, null, { timeout: 10000 });
    await page.click("#stop");
    await page.waitForFunction(() => document.getElementById("stop").disabled, null, { timeout: 5000 });
    const gen = +(await page.textContent("#gen"));
    assert.ok(gen < 1000, "stopped early at " + gen + " tokens");
    await page.screenshot({ path: path.join(outDir, "page-story.png") });
  });

  await t("chat mode sends a message and streams the reply", async () => {
    await page.click("#mode-chat");
    await page.evaluate(() => { document.getElementById("max_length").value = "32"; document.getElementById("max_length").dispatchEvent(new Event("input")); });
    await page.fill("#chat-input", "Tell me about a cat");
    await page.press("#chat-input", "Enter");
    await page.waitForSelector(".msg.user");
    await page.waitForFunction(() => document.getElementById("stop").disabled && document.querySelector(".msg.assistant").textContent.length > 0, null, { timeout: 15000 });
    assert.equal(await page.textContent(".msg.user"), "Tell me about a cat");
    await page.screenshot({ path: path.join(outDir, "page-chat.png") });
  });

  await t("no errors in the console", async () => { assert.deepEqual(errors, []); });
} finally {
  await browser.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
console.log(`page.mjs: ${checks} checks, ${failures} failed; screenshots in ${outDir}`);
process.exit(failures ? 1 : 0);
