// Browser test of the skymeter web UI: node ui.test.mjs URL OUTDIR
//
// Drives Debian's chromium (SKYMETER_CHROMIUM) with playwright-core, installed in
// SKYMETER_UI_TEST_DIR/node_modules, through every page of a server that
// tests/ui_browser.rs has seeded; OUTDIR/expect.json says what the pages must show.
// Saves a screenshot of each page in OUTDIR, prints progress, and ends with one line
// `SUMMARY {json}` (timings, screenshots). Exits non-zero on the first failed check.

import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const [url, outdir] = process.argv.slice(2);
if (!url || !outdir) {
  console.error("usage: node ui.test.mjs URL OUTDIR (OUTDIR/expect.json from tests/ui_browser.rs)");
  process.exit(2);
}
const want = JSON.parse(fs.readFileSync(path.join(outdir, "expect.json"), "utf8"));
const require = createRequire(path.join(process.env.SKYMETER_UI_TEST_DIR || ".", "package.json"));
const { chromium } = require("playwright-core");

const origin = new URL(url).origin;
const shots = [];
const problems = [];
let checks = 0;

function check(cond, what) {
  checks++;
  if (!cond) throw new Error(`check failed: ${what}`);
}
const money = (v) => new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" }).format(v);

const browser = await chromium.launch({
  executablePath: process.env.SKYMETER_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});

/** A page that records requests to other origins than `home`, script errors and console errors. */
async function open(context, home = origin) {
  const page = await context.newPage();
  page.setDefaultTimeout(20000);
  page.on("request", (r) => {
    const u = r.url();
    if (!u.startsWith(home + "/") && !u.startsWith("data:")) problems.push(`request to another origin: ${u}`);
  });
  page.on("pageerror", (e) => problems.push(`script error: ${e.message}`));
  page.on("console", (m) => {
    // A 401 is how the server asks for a token: expected before one is given.
    if (m.type() === "error" && !/status of 401/.test(m.text())) problems.push(`console error: ${m.text()}`);
  });
  return page;
}

/** A screenshot: the whole page, or (`fullPage` false) the window, as a person sees it. */
async function shot(page, name, fullPage = true) {
  const file = `${String(shots.length + 1).padStart(2, "0")}-${name}.png`;
  await page.screenshot({ path: path.join(outdir, file), fullPage });
  shots.push(file);
}

let current = null;
async function step(name, fn) {
  const t = Date.now();
  try {
    await fn();
  } catch (e) {
    if (current) await current.screenshot({ path: path.join(outdir, `FAILED-${name}.png`), fullPage: true }).catch(() => {});
    console.error(`FAILED ${name}: ${e.stack || e}`);
    await browser.close();
    process.exit(1);
  }
  console.log(`ok ${name} (${Date.now() - t} ms)`);
}

const rowKeys = (page) => page.$$eval("#inventory tbody tr[data-key]", (rs) => rs.map((r) => r.dataset.key));
const waitRows = (page, fn, arg) => page.waitForFunction(fn, arg, { polling: 50 });

// 1. No token yet: the UI asks for one, refuses a wrong one, then shows the inventory.
const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
const page = await open(context);
current = page;
await step("token dialog", async () => {
  await page.goto(url + "/");
  await page.waitForSelector("#token-dialog[open]");
  await shot(page, "token-dialog");
  await page.fill("#token-input", "skm_not_a_real_token");
  await page.click("#token-save");
  await page.waitForFunction(() => document.querySelector("#token-dialog").open
    && /refused/.test(document.querySelector("#token-reason").textContent));
  await page.fill("#token-input", want.token);
  await page.click("#token-save");
  await waitRows(page, () => document.querySelectorAll("#inventory tbody tr[data-key]").length === 100);
  check(await page.evaluate(() => localStorage.getItem("skymeter.token")) === want.token, "the token is kept in localStorage");
});

await step("inventory first page", async () => {
  await page.waitForFunction((n) => document.querySelector("#inventory-total").textContent.includes(n), want.total.toLocaleString("en-US"));
  const keys = await rowKeys(page);
  check(keys.length === 100, `100 rows, got ${keys.length}`);
  check([...keys].sort().join() === keys.join(), "rows are in key order by default");
  const status = await page.textContent("#inventory-range");
  check(/Page 1 · rows 1–100$/.test(status), `status "${status}"`);
  check(await page.isDisabled("#prev-page") && !(await page.isDisabled("#next-page")), "only Next is enabled");
  await shot(page, "inventory", false);
});

// 2. Load time of the first page with 10,000 resources: a fresh browser context (no
// cache) with the token already stored, then a reload (cached, hashed assets).
const timing = {};
await step("inventory load time", async () => {
  const ctx = await browser.newContext({
    viewport: { width: 1440, height: 900 },
    storageState: { cookies: [], origins: [{ origin, localStorage: [{ name: "skymeter.token", value: want.token }] }] },
  });
  const p = await open(ctx);
  const measure = async (go) => {
    const t0 = Date.now();
    await go();
    await waitRows(p, () => document.querySelectorAll("#inventory tbody tr[data-key]").length === 100);
    const wall = Date.now() - t0;
    const mark = await p.evaluate(() => performance.getEntriesByName("skymeter:inventory:first-page")[0]?.startTime);
    return { wall, mark: Math.round(mark) };
  };
  const cold = await measure(() => p.goto(url + "/#/inventory"));
  const warm = [];
  for (let i = 0; i < 3; i++) warm.push(await measure(() => p.reload()));
  warm.sort((a, b) => a.wall - b.wall);
  timing.inventory_cold_ms = cold.wall;
  timing.inventory_cold_mark_ms = cold.mark;
  timing.inventory_warm_ms = warm[1].wall;
  timing.inventory_warm_mark_ms = warm[1].mark;
  console.log(`inventory first page with ${want.total} resources: cold ${cold.wall} ms (page mark ${cold.mark} ms), warm median ${warm[1].wall} ms (page mark ${warm[1].mark} ms)`);
  check(cold.wall < 10000, `first page in under 10 s (took ${cold.wall} ms)`);
  await ctx.close();
});

// 3. Filter, paginate, sort.
const f = want.filter;
await step("filter", async () => {
  await page.fill("input[name=provider]", f.provider);
  await page.fill("input[name=region]", f.region);
  await waitRows(page, (first) => {
    const rows = [...document.querySelectorAll("#inventory tbody tr[data-key]")];
    return rows.length === 100 && rows[0].dataset.key === first;
  }, f.page1[0]);
  const keys = await rowKeys(page);
  check(JSON.stringify(keys) === JSON.stringify(f.page1), "page 1 of the filtered listing is the expected 100 resources");
  check(page.url().includes("provider=gcp") && page.url().includes("region=europe-west1"), `filters are in the URL: ${page.url()}`);
  await shot(page, "inventory-filtered", false);
});

await step("paginate", async () => {
  await page.click("#next-page");
  await waitRows(page, (first) => document.querySelector("#inventory tbody tr[data-key]")?.dataset.key === first, f.page2[0]);
  const keys = await rowKeys(page);
  check(JSON.stringify(keys) === JSON.stringify(f.page2), "page 2 is the next 100 resources");
  const status = await page.textContent("#inventory-range");
  check(status.includes("Page 2 · rows 101–200"), `status "${status}"`);
  await shot(page, "inventory-page-2", false);
  await page.click("#prev-page");
  await waitRows(page, (first) => document.querySelector("#inventory tbody tr[data-key]")?.dataset.key === first, f.page1[0]);
  // Walk to the end: the last page says how many match.
  const pages = Math.ceil(f.count / 100);
  for (let i = 1; i < pages; i++) {
    const before = (await rowKeys(page))[0];
    await page.click("#next-page");
    await waitRows(page, (b) => document.querySelector("#inventory tbody tr[data-key]")?.dataset.key !== b, before);
  }
  const last = await page.textContent("#inventory-range");
  check(last.endsWith(`of ${f.count.toLocaleString("en-US")}`), `last page status "${last}" names the count ${f.count}`);
  check(await page.isDisabled("#next-page"), "Next is disabled on the last page");
});

await step("sort", async () => {
  await page.click("th[data-sort=name]");
  await waitRows(page, (n) => document.querySelector("#inventory tbody tr[data-key] a")?.textContent === n, f.first_by_name);
  check((await page.textContent("#inventory-range")).startsWith("Page 1 "), "sorting goes back to page 1");
  check((await page.getAttribute("th[data-sort=name]", "aria-sort")) === "ascending", "the name column shows its order");
  await page.click("th[data-sort=name]");
  await waitRows(page, (n) => document.querySelector("#inventory tbody tr[data-key] a")?.textContent === n, f.last_by_name);
  await shot(page, "inventory-sorted", false);
});

// 4. Open a resource; its charts have one point per bucket of data in the window.
const c = want.chart;
/** Buckets (t - step, t] of the seeded minutes within (start, end], as the store forms them. */
function expectedBuckets(start, end, step) {
  const seen = new Set();
  for (let m = 0; m < c.minutes; m++) {
    const ts = c.newest - 60 * m;
    if (ts > start && ts <= end) seen.add(Math.ceil(ts / step));
  }
  return seen.size;
}
const CHARTED = ["cpu.utilization", "memory.usage", "disk.read_throughput", "network.received_throughput", "network.sent_throughput"];

async function checkCharts(range, nominal) {
  await page.waitForSelector(`#charts[data-range="${range}"]:not([data-loading])`);
  const d = await page.$eval("#charts", (el) => ({ ...el.dataset }));
  const [start, end, stepS] = [Number(d.start), Number(d.end), Number(d.step)];
  check(end - start === nominal * stepS, `${range}: window of ${nominal} steps`);
  const expected = expectedBuckets(start, end, stepS);
  // Minutes passing between seeding and now (seeding 10,000 resources takes a while on a
  // loaded machine) leave the newest buckets empty; what is drawn must still match exactly.
  check(expected >= nominal - 5 && expected <= nominal, `${range}: ${expected} buckets of data expected`);
  for (const m of CHARTED) {
    for (const series of ["avg", "max"]) {
      const n = await page.$eval(`[data-metric="${m}"] path[data-series=${series}]`, (p) => Number(p.dataset.points)).catch(() => -1);
      check(n === expected, `${range} ${m} ${series}: ${n} points drawn, ${expected} expected`);
      const segs = await page.$eval(`[data-metric="${m}"] path[data-series=${series}]`, (p) => (p.getAttribute("d").match(/[ML]/g) || []).length);
      check(segs === expected, `${range} ${m} ${series}: the path has ${segs} vertices`);
    }
  }
  return { start, end, step: stepS };
}

await step("open resource", async () => {
  await page.click("a[data-nav=inventory]");
  await page.fill("input[name=provider]", "");
  await page.fill("input[name=region]", "");
  await page.fill("input[name=q]", c.q);
  await waitRows(page, (k) => {
    const rows = document.querySelectorAll("#inventory tbody tr[data-key]");
    return rows.length === 1 && rows[0].dataset.key === k;
  }, c.key);
  await page.click("#inventory tbody tr[data-key] a");
  await page.waitForSelector("#attributes");
  check(decodeURIComponent(page.url()).includes(`#/resource/${c.key}`), `resource URL ${page.url()}`);
  check((await page.textContent("h1")) === c.name, "the page is titled with the resource's name");
  check((await page.textContent("#attributes")).includes(c.instance_type), "attributes show the current instance type");
  check((await page.textContent("#history")).includes(c.history_field), "history shows the instance type change");
  check((await page.textContent("#tags")).includes("env="), "tags are listed");
  check((await page.textContent("#summary")).includes("cpu.utilization"), "the metrics summary lists cpu.utilization");
});

await step("charts 1h", async () => {
  const w = await checkCharts("1h", 60);
  await shot(page, "resource-1h");
  // Hover the CPU chart: the tooltip shows the avg of the bucket under the cursor, as the
  // API computes it.
  const area = await page.$('[data-metric="cpu.utilization"] .hover-area');
  await area.scrollIntoViewIfNeeded();
  const box = await area.boundingBox();
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.5);
  await page.waitForSelector('[data-metric="cpu.utilization"] .tip:not([hidden])');
  const tip = await page.$eval('[data-metric="cpu.utilization"] .tip', (t) => ({
    time: t.firstChild.textContent,
    avg: t.querySelector("[data-series=avg]")?.textContent,
    max: t.querySelector("[data-series=max]")?.textContent,
  }));
  check(/^\d{4}-\d\d-\d\d \d\d:\d\d UTC$/.test(tip.time), `tooltip time "${tip.time}"`);
  check(tip.avg && tip.avg.includes("%") && tip.max && tip.max.includes("%"), `tooltip values ${JSON.stringify(tip)}`);
  const api = await page.evaluate(async ({ key, start, end, step }) => {
    const q = new URLSearchParams({
      resource: key, metric: "cpu.utilization", stat: "avg", step: `${step}s`, agg: "avg",
      start: (start + 0.001).toFixed(3), end: (end + 0.001).toFixed(3),
    });
    const r = await fetch(`/api/v1/points?${q}`, { headers: { Authorization: `Bearer ${localStorage.getItem("skymeter.token")}` } });
    return r.json();
  }, { key: c.key, ...w });
  const at = Date.parse(tip.time.replace(" UTC", ":00Z").replace(" ", "T"));
  const point = api.series[0].points.find(([t]) => Date.parse(t) === at);
  check(point, `the API has a bucket at ${tip.time}`);
  const shown = parseFloat(tip.avg.replace(/^avg\s*/, ""));
  check(Math.abs(shown - point[1]) <= 0.05 + 0.005 * Math.abs(point[1]), `tooltip avg ${shown} = API ${point[1]}`);
  await shot(page, "resource-1h-hover", false);
  await page.mouse.move(0, 0);
});

for (const [range, nominal] of [["6h", 72], ["24h", 96], ["7d", 168]]) {
  await step(`charts ${range}`, async () => {
    await page.click(`#range button[data-range="${range}"]`);
    await checkCharts(range, nominal);
    check(page.url().includes(`range=${range}`), "the range is in the URL");
    check((await page.textContent("#summary")).length > 0, "summary follows the range");
    if (range !== "24h") await shot(page, `resource-${range}`);
  });
}

// 5. Costs: billed, estimated and rated side by side, the daily trend and the price-date note.
const k = want.costs;
const SOURCES = ["billed", "estimated", "rated"];
await step("costs", async () => {
  await page.click("a[data-nav=costs]");
  await page.waitForSelector("#by-provider tbody tr");
  for (const s of SOURCES) {
    const total = await page.textContent(`#cost-total .stat[data-source=${s}] .total`);
    check(total === money(k.totals[s] || 0), `${s} total ${total}, expected ${money(k.totals[s] || 0)}`);
  }
  const cloud = await page.textContent("#cost-total .stat[data-source=cloud] .total");
  check(cloud === money(k.totals.billed + k.totals.estimated), `cloud cost ${cloud} is billed + estimated`);
  for (const [provider, bySource] of Object.entries(k.providers)) {
    for (const s of SOURCES) {
      const cell = await page.$eval(`#by-provider tr[data-group="${provider}"] td[data-source=${s}]`, (td) => td.textContent);
      const expected = s in bySource ? money(bySource[s]) : "–";
      check(cell === expected, `${provider} ${s}: ${cell}, expected ${expected}`);
    }
  }
  check((await page.$$("#by-service tbody tr")).length === k.services, `${k.services} services`);
  check((await page.$$("#by-account tbody tr")).length === k.accounts, `${k.accounts} accounts`);
  // The rated lines of an account sit beside its billed ones, in the same row.
  const row = await page.$eval('#by-account tr[data-group="Amazon Web Services/111111111111"]', (tr) =>
    [...tr.querySelectorAll("td[data-source]")].map((td) => [td.dataset.source, td.textContent !== "–"]));
  check(JSON.stringify(row) === JSON.stringify([["billed", true], ["estimated", false], ["rated", true]]), `account row ${JSON.stringify(row)}`);
  for (const series of SOURCES) {
    const n = await page.$eval(`#cost-trend path[data-series=${series}]`, (p) => Number(p.dataset.points));
    check(n === k.days, `trend ${series}: ${n} days drawn, ${k.days} expected`);
  }
  const note = await page.textContent("#price-note");
  check(note.includes(k.price_date), `price-date note "${note}" names ${k.price_date}`);
  check((await page.textContent("#by-service")).includes(`est. ${k.price_date}`), "estimated services carry their price date");
  await shot(page, "costs");
});

// 6. Budgets on the Costs page: one bar per budget of GET /api/v1/budgets, as the API
// answered the Rust side: actual of amount, the forecast's mark, a tick per threshold,
// red once one is crossed; positions on a track spanning the largest mark.
await step("budgets", async () => {
  const answer = want.budgets;
  await page.waitForSelector("#budgets .budget");
  const names = await page.$$eval("#budgets .budget", (els) => els.map((e) => e.dataset.budget));
  check(JSON.stringify(names) === JSON.stringify(answer.budgets.map((b) => b.name)), `budgets ${JSON.stringify(names)}`);
  const colors = {};
  for (const b of answer.budgets) {
    const sel = `#budgets .budget[data-budget="${b.name}"]`;
    const shown = await page.$eval(sel, (el) => {
      const track = el.querySelector(".budget-track").getBoundingClientRect();
      const x = (q) => {
        const r = el.querySelector(q)?.getBoundingClientRect();
        return r ? (r.left - track.left) / track.width : null;
      };
      const fill = el.querySelector(".budget-fill");
      return {
        actual: el.querySelector(".budget-actual").textContent,
        head: el.querySelector(".budget-head").textContent,
        crossed: el.classList.contains("crossed"),
        fill: fill.getBoundingClientRect().width / track.width,
        fillColor: getComputedStyle(fill).backgroundColor,
        forecast: x(".budget-forecast"),
        ticks: [...el.querySelectorAll(".budget-tick")].map((t) => ({
          percent: Number(t.dataset.percent), on: t.dataset.on, crossed: t.dataset.crossed === "true",
          x: (t.getBoundingClientRect().left + t.getBoundingClientRect().width / 2 - track.left) / track.width,
        })),
      };
    });
    check(shown.actual === money(b.actual), `${b.name}: actual ${shown.actual}, expected ${money(b.actual)}`);
    check(shown.head.includes(`of ${money(b.amount)}`), `${b.name}: the amount in "${shown.head}"`);
    const anyCrossed = b.thresholds.some((t) => t.crossed);
    check(shown.crossed === anyCrossed, `${b.name}: red is ${shown.crossed}, a threshold crossed is ${anyCrossed}`);
    colors[anyCrossed] = shown.fillColor;
    // The track spans the largest mark and 4 % more.
    const hasForecast = b.forecast !== undefined && b.forecast !== null;
    const span = Math.max(100, b.percent_actual, hasForecast ? b.percent_forecast : 0, ...b.thresholds.map((t) => t.percent)) * 1.04;
    const near = (got, percent) => got !== null && Math.abs(got - percent / span) < 0.01;
    check(near(shown.fill, Math.max(b.percent_actual, 0)), `${b.name}: the fill at ${shown.fill}, ${b.percent_actual} % of ${span}`);
    if (hasForecast) check(near(shown.forecast, b.percent_forecast), `${b.name}: the forecast mark at ${shown.forecast}, ${b.percent_forecast} % of ${span}`);
    else check(shown.forecast === null, `${b.name}: no forecast, no mark`);
    check(shown.ticks.length === b.thresholds.length, `${b.name}: ${shown.ticks.length} ticks`);
    b.thresholds.forEach((t, i) => {
      const got = shown.ticks[i];
      check(got.percent === t.percent && got.on === t.on && got.crossed === t.crossed && near(got.x, t.percent),
        `${b.name}: tick ${JSON.stringify(got)} for ${JSON.stringify(t)}`);
    });
  }
  check(colors.true === "rgb(198, 40, 40)", `a crossed budget is red: ${colors.true}`);
  check(colors.false && colors.false !== colors.true, `a budget within its thresholds is not: ${colors.false}`);
  await page.evaluate(() => window.scrollTo(0, 0));
  await shot(page, "costs-budgets", false);
});

// 7. Savings: the totals, the list (largest first, paged with "More"), filters in the URL,
// the CSV download with the same filters, an empty state, and the evidence charts of the
// idle and the oversized instance.
const sv = want.savings;
const KINDS = ["idle", "orphaned", "rightsizing", "untagged"];
const findingIds = (p) => p.$$eval("#findings tbody tr[data-finding]", (rs) => rs.map((r) => r.dataset.finding));
const sameList = (a, b) => JSON.stringify(a) === JSON.stringify(b);
/** The fields of one CSV line (RFC 4180 quoting; no field here holds a line break). */
function csvFields(line) {
  const out = [];
  let cur = "", quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') { cur += '"'; i++; } else if (ch === '"') quoted = false; else cur += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ",") { out.push(cur); cur = ""; } else cur += ch;
  }
  out.push(cur);
  return out;
}
await step("savings", async () => {
  await page.click("a[data-nav=savings]");
  await waitRows(page, (n) => document.querySelectorAll("#findings tbody tr[data-finding]").length === n, sv.items.length);
  check(await page.$eval("a[data-nav=savings]", (a) => a.classList.contains("active")), "the nav shows the Savings page");
  const total = await page.textContent('#savings-total .stat[data-kind=all] .total');
  check(total === money(sv.totals.monthly_usd), `total ${total}, expected ${money(sv.totals.monthly_usd)}`);
  for (const k of KINDS) {
    const t = sv.totals.by_kind[k] || { count: 0, monthly_usd: 0 };
    const shown = await page.textContent(`#savings-total .stat[data-kind=${k}] .total`);
    check(shown === money(t.monthly_usd), `${k}: ${shown}, expected ${money(t.monthly_usd)}`);
    const count = await page.textContent(`#savings-total .stat[data-kind=${k}] .small`);
    check(count.startsWith(`${t.count} finding`), `${k} count "${count}", expected ${t.count}`);
  }
  // Every finding, largest saving first, with its amount (none for the unpriced one).
  const ids = await findingIds(page);
  check(sameList(ids, sv.items.map((f) => f.id)), `the list in the API's order: ${JSON.stringify(ids)}`);
  const amounts = await page.$$eval("#findings tbody tr[data-finding] td[data-amount]", (tds) => tds.map((td) => td.textContent));
  // The estimate's error is shown as ± its amount: not a saving.
  const shownAmount = (f) => (f.monthly_usd === null ? "–" : f.kind === "reconciliation" ? `±${money(f.monthly_usd)}` : money(f.monthly_usd));
  check(sameList(amounts, sv.items.map(shownAmount)), `amounts ${JSON.stringify(amounts)}`);
  const rc = sv.totals.by_kind.reconciliation;
  const savingCount = await page.textContent("#savings-total .stat[data-kind=all] .small");
  check(savingCount.startsWith(`${sv.totals.count - rc.count} findings`), `the total counts the savings only: "${savingCount}"`);
  const rcShown = await page.textContent("#savings-total .stat[data-kind=reconciliation] .total");
  check(rcShown === money(rc.monthly_usd), `the estimate's error apart: ${rcShown}, expected ${money(rc.monthly_usd)}`);
  const first = sv.items[0];
  const href = await page.$eval(`#findings tr[data-finding="${first.id}"] a`, (a) => [a.getAttribute("href"), a.textContent]);
  check(href[0] === `#/resource/${encodeURIComponent(first.key)}` && href[1] === first.name, `the resource links to its page: ${href}`);
  const rs = sv.items.find((f) => f.kind === "rightsizing");
  const rsCells = await page.$eval(`#findings tr[data-finding="${rs.id}"]`, (tr) => [...tr.cells].map((c) => c.textContent));
  check(rsCells[4] === rs.recommended_type, `the recommended type of ${rs.id}: ${JSON.stringify(rsCells)}`);
  check(await page.isHidden("#savings-more"), "no More with every finding shown");
  await shot(page, "savings");

  // Pages of 25: the first page, then "More" appends the rest.
  await page.selectOption("select[name=limit]", String(sv.page));
  await waitRows(page, (n) => document.querySelectorAll("#findings tbody tr[data-finding]").length === n, sv.page);
  check(sameList(await findingIds(page), sv.items.slice(0, sv.page).map((f) => f.id)), "page 1 is the largest 25");
  check(page.url().includes(`limit=${sv.page}`), `the page size is in the URL: ${page.url()}`);
  check((await page.textContent('#savings-total .stat[data-kind=all] .total')) === money(sv.totals.monthly_usd), "the totals cover every page");
  await page.click("#savings-more");
  await waitRows(page, (n) => document.querySelectorAll("#findings tbody tr[data-finding]").length === n, sv.items.length);
  check(sameList(await findingIds(page), sv.items.map((f) => f.id)), "More appends the rest in order");
  check(await page.isHidden("#savings-more"), "no More after the last page");
});

await step("savings filter and CSV", async () => {
  const fl = sv.filter;
  await page.selectOption("select[name=kind]", fl.kind);
  await page.fill("input[name=min_usd]", String(fl.min_usd));
  await waitRows(page, (want) => {
    const ids = [...document.querySelectorAll("#findings tbody tr[data-finding]")].map((r) => r.dataset.finding);
    return JSON.stringify(ids) === JSON.stringify(want);
  }, fl.ids);
  check(page.url().includes(`kind=${fl.kind}`) && page.url().includes(`min_usd=${fl.min_usd}`), `filters are in the URL: ${page.url()}`);
  await page.waitForFunction((t) => document.querySelector("#savings-total .stat[data-kind=all] .total").textContent === t, money(fl.monthly_usd));
  const [dl] = await Promise.all([page.waitForEvent("download"), page.click("#savings-csv")]);
  check(dl.suggestedFilename() === "skymeter-findings.csv", `file name ${dl.suggestedFilename()}`);
  const text = fs.readFileSync(await dl.path(), "utf8");
  const lines = text.split("\n").filter((l) => l.length);
  check(lines[0] === fl.csv_header, `CSV header "${lines[0]}"`);
  check(lines.length === 1 + fl.ids.length, `CSV has ${lines.length - 1} rows, expected ${fl.ids.length}`);
  const idAt = csvFields(lines[0]).indexOf("id");
  check(sameList(lines.slice(1).map((l) => csvFields(l)[idAt]), fl.ids), `CSV rows are the filtered findings: ${text}`);
  await shot(page, "savings-filtered", false);

  // Nothing saves that much: the empty state.
  await page.fill("input[name=min_usd]", "100000");
  await page.waitForSelector("#savings-empty");
  check((await page.textContent("#savings-empty")) === "No findings match these filters.", "empty state text");
  check((await page.textContent('#savings-total .stat[data-kind=all] .total')) === money(0), "total of nothing");
});

/** Hours of seeded points within the finding's window (start, end]: the API's [start + 1 s, end + 1 s). */
function hoursIn(startMs, endMs) {
  let n = 0;
  for (let i = 0; i < sv.hourly.hours; i++) {
    const ms = (sv.hourly.newest - 3600 * i) * 1000;
    if (ms >= startMs + 1000 && ms < endMs + 1000) n++;
  }
  return n;
}

async function checkEvidence(f, name) {
  await page.click(`#findings tr[data-finding="${f.id}"] button[data-evidence]`);
  const panel = `#evidence > [data-finding="${f.id}"]`;
  for (const [metric, components] of Object.entries(f.series)) {
    for (const c of components) await page.waitForSelector(`${panel} [data-evidence-metric="${metric}"] path[data-series="${c}"]`);
  }
  check(decodeURIComponent(page.url()).includes(`finding=${f.id}`), `the open finding is in the URL: ${page.url()}`);
  const w = await page.$eval(panel, (el) => ({ start: Number(el.dataset.start), end: Number(el.dataset.end) }));
  check(w.end - w.start === 14 * 86400e3, `a 14-day window: ${JSON.stringify(w)}`);
  check((await page.textContent("#evidence-window")).includes("14 days"), "the window is shown");
  const expected = hoursIn(w.start, w.end);
  check(expected >= 335 && expected <= 336, `${expected} hours of points in the window`);
  for (const [metric, components] of Object.entries(f.series)) {
    const sel = `${panel} [data-evidence-metric="${metric}"]`;
    const read = await page.$eval(sel, (el) => Number(el.dataset.readPoints));
    check(read === expected, `${name} ${metric}: the finding read ${read} points, ${expected} seeded`);
    for (const c of components) {
      const n = await page.$eval(`${sel} path[data-series="${c}"]`, (p) => Number(p.dataset.points));
      check(n === expected, `${name} ${metric} ${c}: ${n} points drawn, ${expected} expected`);
    }
  }
}

await step("savings evidence", async () => {
  await page.evaluate(() => { location.hash = "#/savings"; });
  await waitRows(page, (n) => document.querySelectorAll("#findings tbody tr[data-finding]").length === n, sv.items.length);
  await checkEvidence(sv.idle, "idle");
  check((await page.textContent("#evidence-facts")).includes(sv.idle.instance_type), "the facts show the instance type");
  await page.$eval("#evidence", (el) => el.scrollIntoView());
  await shot(page, "savings-evidence-idle");
  await checkEvidence(sv.rightsizing, "rightsizing");
  check((await page.textContent("#evidence-facts")).includes("recommended_vcpus"), "the sizing figures are facts");
  await shot(page, "savings-evidence-rightsizing");

  // A reconciliation: the days compared, charted and listed, each with its gap.
  const rc = sv.reconciliation;
  await page.click(`#findings tr[data-finding="${rc.id}"] button[data-evidence]`);
  await page.waitForSelector(`#evidence > [data-finding="${rc.id}"] #evidence-days-chart path[data-series=estimated]`);
  for (const series of ["billed", "estimated"]) {
    const n = await page.$eval(`#evidence-days-chart path[data-series=${series}]`, (p) => Number(p.dataset.points));
    check(n === rc.days, `${series}: ${n} days drawn, ${rc.days} compared`);
  }
  const gaps = await page.$$eval("#evidence-days tbody tr", (trs) => trs.map((tr) => tr.cells[3].textContent));
  check(gaps.length === rc.days && gaps.every((g) => g === money(rc.gap)), `a gap of ${money(rc.gap)} on each day: ${JSON.stringify(gaps)}`);
  check((await page.$$("#evidence-drivers tbody tr")).length >= 1, "the resources that explain it are listed");
  await shot(page, "savings-evidence-reconciliation");
});

// 8. Rating on a server without `[rating]`: the page says how to turn it on.
await step("rating off", async () => {
  await page.click("a[data-nav=rating]");
  await page.waitForSelector("#rating-off");
  const text = await page.textContent("#rating-off");
  check(text.includes("[rating]") && text.includes("docs/rating.md"), `empty state "${text}"`);
  check(await page.isHidden("#rating-range"), "no range to pick without rating");
  await shot(page, "rating-off", false);
});

// 9. Rating on the server whose job rated a small fleet (no token there: auth is off).
const r = want.rating;
const utc = (t) => new Date(t).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
// An hour may end while the test runs: the job then rates one more (empty) period.
const readyNow = (text) => [0, 3600e3].some((d) => text.startsWith(utc(Date.parse(r.ready_until) + d)));
await step("rating", async () => {
  const ctx = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const rp = await open(ctx, new URL(r.url).origin);
  current = rp;
  await rp.goto(r.url + "/#/rating");
  await rp.waitForSelector("#rating-summary");
  check(await rp.$eval("a[data-nav=rating]", (a) => a.classList.contains("active")), "the nav shows the Rating page");
  const field = (name) => rp.$eval(`#rating-summary dd[data-field="${name}"]`, (dd) => dd.textContent);
  check((await field("Period")) === r.period, `period "${await field("Period")}"`);
  check((await field("Scope by")) === r.scope_by, "scope_by");
  check((await field("Rules file")) === r.rules_file, "rules file");
  check(readyNow(await field("Ready until")), `ready until "${await field("Ready until")}" is ${utc(r.ready_until)}`);
  check(readyNow(await field("Rated until")), `rated until "${await field("Rated until")}": everything ready is rated`);
  check((await field("Last round")).includes("ago") || (await field("Last round")).includes("just now"), "last round");
  check((await field("Error")) === "none", "no error");

  // Modules, in run order.
  for (const [name, m] of Object.entries(r.modules)) {
    const cells = await rp.$eval(`#rating-modules tr[data-module="${name}"]`, (tr) => [...tr.cells].map((c) => c.textContent));
    const want = [name, m.enabled ? "enabled" : "disabled", String(m.priority), m.order ? String(m.order) : "—"];
    check(JSON.stringify(cells) === JSON.stringify(want), `module ${name}: ${JSON.stringify(cells)}, expected ${JSON.stringify(want)}`);
  }
  check((await rp.textContent("#rating-scripts")).includes(r.scripts[0]), "the script is listed");
  check((await rp.$$("#rating-services tbody tr")).length === 2, "two rated services");

  // Rules: one row per mapping and threshold, with the names their ids point to.
  const rules = await rp.$$eval("#rating-rules tbody tr", (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
  check(rules.length === r.rule_rows, `${rules.length} rule rows, expected ${r.rule_rows}`);
  const has = (row) => rules.some((x) => JSON.stringify(x) === JSON.stringify(row));
  check(has(["instance", "instance_type", "m5.large", "flat", "0.5", "compute", "all"]), `the m5.large mapping in ${JSON.stringify(rules)}`);
  check(has(["instance", "account", "team-research", "rate", "× 1.5", "compute", "all"]), "the rate mapping");
  check(has(["volume.size", "(service)", "any", "flat", "0.0625", "volume_thresholds", "all"]), "the service mapping");
  check(has(["volume.size", "(service)", "≥ 500", "threshold rate", "× 0.25", "volume_thresholds", "team-research"]), "the scoped threshold");

  // Scopes: rated up to what is ready, with their lag.
  const scopes = await rp.$$eval("#rating-scopes tbody tr", (trs) => trs.map((tr) => ({
    scope: tr.dataset.scope, until: tr.cells[1].textContent, lag: Number(tr.cells[2].dataset.lag), lagText: tr.cells[2].textContent,
  })));
  check(JSON.stringify(scopes.map((s) => s.scope)) === JSON.stringify(r.scopes), `scopes ${JSON.stringify(scopes)}`);
  for (const s of scopes) {
    check(readyNow(s.until), `${s.scope} rated until ${s.until}`);
    check(s.lag >= 7200 && s.lag < 3 * 3600 + 600 && /^\d h( \d+ min)?$/.test(s.lagText), `${s.scope} lag ${s.lag} s shown as "${s.lagText}"`);
  }

  // Rated totals of the default range (30 days).
  for (const [scope, amount] of Object.entries(r.by_scope)) {
    const cell = await rp.$eval(`#rated-by-scope tr[data-group="${scope}"] td[data-amount]`, (td) => td.textContent);
    check(cell === money(amount), `rated ${scope}: ${cell}, expected ${money(amount)}`);
  }
  for (const [key, amount] of Object.entries(r.by_service)) {
    const cell = await rp.$eval(`#rated-by-service tr[data-group="${key}"] td[data-amount]`, (td) => td.textContent);
    check(cell === money(amount), `rated ${key}: ${cell}, expected ${money(amount)}`);
  }
  check((await rp.$$("#rated-by-service tbody tr")).length === Object.keys(r.by_service).length, "one row per scope and service");
  const total = Object.values(r.by_scope).reduce((a, b) => a + b, 0);
  check((await rp.textContent("#rating-total .total")) === money(total), "the rated total");

  // The re-rate request.
  const rr = await rp.$eval(`#rating-rerates tr[data-rerate="${r.rerate.id}"]`, (tr) => ({ state: tr.dataset.state, cells: [...tr.cells].map((c) => c.textContent) }));
  check(rr.state === r.rerate.state && rr.cells[5] === String(r.rerate.deleted) && rr.cells[6] === String(r.rerate.lines), `re-rate ${JSON.stringify(rr)}`);
  await shot(rp, "rating");

  // Another range keeps the figures (everything rated is from today or yesterday), and is in the URL.
  await rp.click('#rating-range button[data-range="7d"]');
  await rp.waitForSelector('#rating-body[data-loaded="7d"]');
  check(rp.url().includes("range=7d"), "the range is in the URL");
  check((await rp.textContent("#rating-total .total")) === money(total), "the 7-day rated total");

  // This server has no budgets: its Costs page shows no budget bar.
  await rp.click("a[data-nav=costs]");
  await rp.waitForSelector("#budgets-box[data-loaded]", { state: "attached" });
  await rp.waitForSelector("#cost-total");
  check((await rp.$("#budgets")) === null, "no budgets, no budget bar");
  await ctx.close();
  current = page;
});

// 10. Agents.
await step("agents", async () => {
  await page.click("a[data-nav=agents]");
  const row = `#agents tr[data-agent="${want.agent.id}"]`;
  await page.waitForSelector(row);
  const text = await page.textContent(row);
  check(text.includes("healthy") && text.includes(want.agent.hostname), `agent row "${text}"`);
  check((await page.textContent("#agent-counts")).includes("1 registered"), "the counts");
  await shot(page, "agents");
});

await step("nothing went elsewhere and nothing failed", async () => {
  check(problems.length === 0, problems.join("\n"));
});

await browser.close();
console.log(`SUMMARY ${JSON.stringify({ ...timing, checks, screenshots: shots })}`);
