// Cross-origin attacks on a skymeter server without tokens, in headless Chromium:
//   node cross_origin.test.mjs SERVER_URL
//
// Serves an attack page from a second HTTP server (this script's, on another loopback port,
// reached as http://evil.test:PORT through --host-resolver-rules) and lets it try what a web
// page can do without asking: `fetch` POSTs with `text/plain` (a "simple" request that skips
// the CORS preflight) to ingest and to agent registration, the classic JSON-in-a-form POST,
// and a JSON `fetch` (which needs a preflight). Then it loads the server under a foreign
// name (http://rebind.test:PORT, as after DNS rebinding) and reads from there. Last, a
// control: the server's own origin may post JSON, so the checks can fail.
//
// Prints one line `RESULT {json}` with what each attempt saw; tests/cross_origin_browser.rs
// checks it and the store. Exits non-zero when the browser cannot be driven.

import { createRequire } from "node:module";
import http from "node:http";
import path from "node:path";

const [serverUrl] = process.argv.slice(2);
if (!serverUrl) {
  console.error("usage: node cross_origin.test.mjs SERVER_URL");
  process.exit(2);
}
const require = createRequire(path.join(process.env.SKYMETER_UI_TEST_DIR || ".", "package.json"));
const { chromium } = require("playwright-core");
const server = new URL(serverUrl);

const batch = (id, extra = {}) => ({
  schema: 1,
  batch_id: crypto.randomUUID(),
  agent_id: "evil",
  collected_at: "2026-11-22T10:30:00Z",
  points: [{
    metric: "evil.write", unit: "count", stat: "last", period_s: 60, ts: "2026-11-22T10:30:00Z", value: 1,
    resource: { provider: "custom", account: "", region: "", id },
  }],
  task: "t",
  ...extra,
});

// The JSON-in-a-form trick: a text/plain form sends `name=value`; the name holds the JSON up
// to the inside of the last string, the value closes it, so the body parses as a batch.
const formJson = JSON.stringify(batch("from-evil-form"));
const formName = formJson.slice(0, -2); // up to `"task":"t`
const formValue = 'x"}';

const attackPage = `<!doctype html><html><body>
<iframe name="sink" id="sink"></iframe>
<form id="f" method="POST" enctype="text/plain" target="sink" action="${serverUrl}/api/v1/ingest">
<input type="hidden" id="fi">
</form>
<script>
window.attack = async () => {
  const out = {};
  const ingest = ${JSON.stringify(serverUrl + "/api/v1/ingest")};
  const register = ${JSON.stringify(serverUrl + "/api/v1/agents/register")};
  const opaque = async (url, body) => {
    try {
      const r = await fetch(url, { method: "POST", mode: "no-cors", headers: { "Content-Type": "text/plain" }, body });
      return "sent (" + r.type + ")";
    } catch (e) { return "blocked: " + e.message; }
  };
  out.fetch_ingest_text_plain = await opaque(ingest, ${JSON.stringify(JSON.stringify(batch("from-evil-fetch")))});
  out.fetch_register_text_plain = await opaque(register, ${JSON.stringify(JSON.stringify({ id: "evil-agent", hostname: "evil", version: "1", tasks: [], heartbeat_interval_s: 30 }))});
  try {
    const r = await fetch(ingest, { method: "POST", headers: { "Content-Type": "application/json" }, body: ${JSON.stringify(JSON.stringify(batch("from-evil-json")))} });
    out.fetch_ingest_json = "answered " + r.status;
  } catch (e) { out.fetch_ingest_json = "blocked: " + e.message; }
  try {
    const r = await fetch(${JSON.stringify(serverUrl + "/api/v1/resources")});
    out.cross_origin_read = "read " + r.status + " " + (await r.text()).slice(0, 200);
  } catch (e) { out.cross_origin_read = "blocked: " + e.message; }
  const fi = document.getElementById("fi");
  fi.name = ${JSON.stringify(formName)};
  fi.value = ${JSON.stringify(formValue)};
  await new Promise((done) => {
    document.getElementById("sink").addEventListener("load", done, { once: true });
    document.getElementById("f").submit();
    setTimeout(done, 5000);
  });
  out.form_post = "submitted";
  return out;
};
</script></body></html>`;

const attacker = http.createServer((req, res) => {
  res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
  res.end(attackPage);
});
await new Promise((ok) => attacker.listen(0, "127.0.0.1", ok));
const attackerPort = attacker.address().port;

const browser = await chromium.launch({
  executablePath: process.env.SKYMETER_CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    // Both names resolve to this machine, as DNS (or rebinding DNS) would make them.
    "--host-resolver-rules=MAP evil.test 127.0.0.1, MAP rebind.test 127.0.0.1",
  ],
});
const result = {};
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.setDefaultTimeout(20000);

  // 1. The attack page on another origin.
  await page.goto(`http://evil.test:${attackerPort}/`);
  Object.assign(result, await page.evaluate(() => window.attack()));
  const sink = page.frame({ name: "sink" });
  result.form_frame = sink ? await sink.content().catch((e) => "unreadable: " + e.message) : "no frame";

  // 2. DNS rebinding: the server reached under a name that is not its own. The page is then
  // same-origin with the server, so a read would succeed if the server answered it.
  const rebound = `http://rebind.test:${server.port}`;
  const nav = await page.goto(rebound + "/");
  result.rebind_page_status = nav.status();
  result.rebind_read = await page.evaluate(async () => {
    const r = await fetch("/api/v1/resources");
    return { status: r.status, body: (await r.text()).slice(0, 300) };
  });
  result.rebind_write = await page.evaluate(async (b) => {
    const r = await fetch("/api/v1/ingest", { method: "POST", headers: { "Content-Type": "application/json" }, body: b });
    return { status: r.status, body: (await r.text()).slice(0, 300) };
  }, JSON.stringify(batch("from-rebind")));

  // 3. Control: the server's own page (the web UI's origin) posts JSON and is answered.
  await page.goto(serverUrl + "/");
  result.same_origin_write = await page.evaluate(async (b) => {
    const r = await fetch("/api/v1/ingest", { method: "POST", headers: { "Content-Type": "application/json" }, body: b });
    return { status: r.status, body: (await r.text()).slice(0, 300) };
  }, JSON.stringify(batch("same-origin-control")));
} finally {
  await browser.close();
  attacker.close();
}
console.log("RESULT " + JSON.stringify(result));
