// Costs: billed, estimated and rated side by side, as totals, by provider, service and
// account, and as a daily trend, all from GET /api/v1/costs?group_by=…,source over whole
// UTC days. Billed lines come from the clouds' bills, estimated ones from a price table
// (the page says how old the oldest one behind them is), rated ones from the server's
// rating rules (what skymeter charges its scopes: see the Rating page). Billed and
// estimated add up to the cloud's cost; rated is a separate, internal price of the same
// usage, so it is never added to them.
//
// Above them, one bar per budget of GET /api/v1/budgets (the `[[budget]]` entries of the
// server's config): the month's actual spend against the amount, the forecast marked,
// each threshold ticked, red once one is crossed. No budgets: no bar.

import { get } from "./api.js";
import { h, replace, errorBox, money, int } from "./dom.js";
import { lineChart, legend } from "./chart.js";
import { setParams } from "./nav.js";

const DAY = 86400e3;
export const RANGES = { "7d": 7, "30d": 30, "90d": 90, all: 0 };
export const SOURCES = ["billed", "estimated", "rated"];
const SOURCE_TITLE = {
  billed: "From the providers' bills",
  estimated: "Priced by skymeter from list prices, where no bill has the usage yet",
  rated: "Priced by this server's rating rules (internal chargeback); not added to billed or estimated",
};

/** The first UTC midnight of a range of `days` whole days ending today. */
export function rangeStart(days, now = Date.now()) {
  const today = Math.floor(now / DAY) * DAY;
  return today - (days - 1) * DAY;
}

/** A range param (`30d`) as it is read: an unknown one is the default. */
export const rangeOf = (p) => (p in RANGES ? p : "30d");

/** The `start` of the API query of a range (none for `all`). */
export function rangeQueryStart(range) {
  const days = RANGES[range];
  return days ? new Date(rangeStart(days)).toISOString() : undefined;
}

/** The range buttons (7d, 30d, 90d, All); a click sets `range` in the page's params. */
export function rangeSeg(id, params) {
  const seg = h("div", { class: "seg", id }, Object.keys(RANGES).map((r) => h("button", {
    type: "button", dataset: { range: r }, on: { click: () => setParams({ ...params(), range: r }, { push: true }) },
  }, r === "all" ? "All" : r)));
  seg.mark = (range) => {
    for (const b of seg.children) b.classList.toggle("on", b.dataset.range === range);
  };
  return seg;
}

/** `Total, last 30 days (UTC)` */
export const rangeTitle = (what, range) => (RANGES[range] ? `${what}, last ${RANGES[range]} days (UTC)` : `${what}, all time`);

const label = (v) => (v === "" || v === undefined ? "(none)" : v);

/**
 * Groups of `keys` + `source` → one row per value of `keys`, with each source's group:
 * `[{group: {provider: "aws"}, by: {billed: g, rated: g}, currency, lines, cloud, rated}]`,
 * `cloud` being billed + estimated.
 */
export function pivot(groups, keys) {
  const rows = new Map();
  for (const g of groups) {
    const id = keys.map((k) => g.group[k]).join("\u0000");
    let row = rows.get(id);
    if (!row) {
      row = { group: Object.fromEntries(keys.map((k) => [k, g.group[k]])), by: {}, currency: g.currency, lines: 0, cloud: 0, rated: 0 };
      rows.set(id, row);
    }
    row.by[g.group.source] = g;
    row.lines += g.lines;
    if (g.group.source === "rated") row.rated += g.billed_cost;
    else row.cloud += g.billed_cost;
  }
  return [...rows.values()];
}

/** Largest cloud cost first, then largest rated, then by name. */
const byCost = (keys) => (a, b) => b.cloud - a.cloud || b.rated - a.rated
  || keys.map((k) => a.group[k]).join("/").localeCompare(keys.map((k) => b.group[k]).join("/"));

function estBadge(g) {
  return g && g.oldest_price_date
    ? h("span", { class: "badge est", title: `Estimated from the price table of ${g.oldest_price_date} (oldest behind this line)` }, `est. ${g.oldest_price_date}`)
    : null;
}

/** One source's amount in a table cell: `–` when the group has no line of it. */
function amountCell(row, source) {
  const g = row.by[source];
  if (!g) return h("td", { class: "num muted", dataset: { source } }, "–");
  return h("td", {
    class: "num", dataset: { source, amount: g.billed_cost },
    title: `${source}: ${money(g.effective_cost, g.currency)} effective · ${int(g.lines)} lines`,
  }, money(g.billed_cost, g.currency));
}

const sourceHead = (s) => h("th", { class: `num src-${s}`, title: SOURCE_TITLE[s] }, s[0].toUpperCase() + s.slice(1));

function table(id, title, rows, keys) {
  const top = Math.max(...rows.map((r) => Math.max(Math.abs(r.cloud), Math.abs(r.rated))), 0) || 1;
  return h("div", { class: "panel table-wrap" },
    h("h2", {}, title),
    rows.length
      ? h("table", { id },
        h("thead", {}, h("tr", {}, keys.map((k) => h("th", {}, k[0].toUpperCase() + k.slice(1))),
          SOURCES.map(sourceHead), h("th", { class: "num" }, "Lines"),
          h("th", { class: "bar-cell", title: "Cloud cost (billed + estimated) and rated" }))),
        h("tbody", {}, rows.map((r) => h("tr", { dataset: { group: keys.map((k) => r.group[k]).join("/") } },
          keys.map((k, i) => h("td", {}, label(r.group[k]), i === keys.length - 1 ? [" ", estBadge(r.by.estimated)] : null)),
          SOURCES.map((s) => amountCell(r, s)),
          h("td", { class: "num" }, int(r.lines)),
          h("td", { class: "bar-cell" },
            r.cloud ? h("div", { class: "bar", dataset: { w: (Math.abs(r.cloud) / top).toFixed(3) } }) : null,
            r.rated ? h("div", { class: "bar rated", dataset: { w: (Math.abs(r.rated) / top).toFixed(3) } }) : null),
        ))))
      : h("p", { class: "muted" }, "No cost lines in this range."));
}

/** The totals: one row per currency, each source side by side. */
function totalsPanel(range, rows, estDates) {
  return h("div", { class: "panel", id: "cost-total" },
    h("h2", {}, rangeTitle("Total", range)),
    rows.length
      ? rows.map((r) => h("div", { class: "totals", dataset: { currency: r.group.currency } },
        SOURCES.map((s) => {
          const g = r.by[s];
          return h("div", { class: `stat src-${s}`, dataset: { source: s }, title: SOURCE_TITLE[s] },
            h("span", { class: "stat-label" }, s),
            h("span", { class: "total" }, money(g ? g.billed_cost : 0, r.currency)),
            h("span", { class: "muted small" }, g ? `${money(g.effective_cost, g.currency)} effective · ${int(g.lines)} lines` : "no lines"));
        }),
        h("div", { class: "stat", dataset: { source: "cloud" }, title: "What the clouds charge: billed plus estimated" },
          h("span", { class: "stat-label" }, "cloud cost"),
          h("span", { class: "total" }, money(r.cloud, r.currency)),
          h("span", { class: "muted small" }, "billed + estimated"))))
      : h("p", { class: "muted" }, "No cost lines in this range."),
    estDates.length
      ? h("p", { class: "small", id: "price-note" }, h("span", { class: "badge est" }, "estimated"),
        ` Some lines are estimates from list prices; the oldest price table behind them is from ${estDates[0]}.`)
      : null);
}

/** `scope` of a budget as chips: `provider=aws`, `tag team=web`; none: every cost line. */
function scopeChips(scope) {
  const parts = [];
  for (const k of ["provider", "account", "service"]) if (scope && scope[k]) parts.push(`${k}=${scope[k]}`);
  for (const [k, v] of Object.entries((scope && scope.tags) || {})) parts.push(`tag ${k}=${v}`);
  return parts.length ? parts.map((p) => h("span", { class: "chip" }, p)) : h("span", { class: "muted small" }, "all cost lines");
}

const pct = (v) => `${v.toLocaleString("en-US", { maximumFractionDigits: 1 })} %`;

/**
 * One budget's bar. The track spans 0 to the largest of 100 %, the actual, the forecast
 * and the thresholds (so every mark fits); positions are percents of that span, set
 * through the CSSOM (the page's policy allows no inline style).
 */
function budgetBar(b) {
  const crossed = b.thresholds.filter((t) => t.crossed);
  const hasForecast = b.forecast !== undefined && b.forecast !== null;
  const span = Math.max(100, b.percent_actual, hasForecast ? b.percent_forecast : 0, ...b.thresholds.map((t) => t.percent)) * 1.04;
  const at = (percent) => `${(Math.max(0, percent) / span) * 100}%`;
  const fill = h("div", { class: "budget-fill" });
  fill.style.width = at(b.percent_actual);
  const track = h("div", {
    class: "budget-track", role: "img",
    "aria-label": `${b.name}: ${pct(b.percent_actual)} spent${hasForecast ? `, ${pct(b.percent_forecast)} forecast` : ""}`,
  }, fill);
  if (hasForecast) {
    // The rest of the month at the current rate, then the forecast's mark.
    const rest = h("div", { class: "budget-projected" });
    rest.style.left = at(b.percent_actual);
    rest.style.width = at(b.percent_forecast - b.percent_actual);
    const mark = h("div", { class: "budget-forecast", title: `Forecast ${money(b.forecast)} (${pct(b.percent_forecast)})` });
    mark.style.left = at(b.percent_forecast);
    track.append(rest, mark);
  }
  for (const t of b.thresholds) {
    const tick = h("div", {
      class: `budget-tick on-${t.on}${t.crossed ? " crossed" : ""}`,
      dataset: { percent: t.percent, on: t.on, crossed: t.crossed ? "true" : "false" },
      title: `${pct(t.percent)} of the ${t.on === "forecast" ? "forecast" : "actual spend"}: ${money(t.limit)}${t.crossed ? " (crossed)" : ""}`,
    });
    tick.style.left = at(t.percent);
    track.appendChild(tick);
  }
  return h("div", {
    class: `budget${crossed.length ? " crossed" : ""}`,
    dataset: { budget: b.name, crossed: String(crossed.length) },
  },
  h("div", { class: "budget-head" },
    h("b", {}, b.name), scopeChips(b.scope), h("span", { class: "spacer" }),
    h("span", { class: "budget-actual", dataset: { amount: b.actual } }, money(b.actual)),
    h("span", { class: "muted" }, ` of ${money(b.amount)} · ${pct(b.percent_actual)}`)),
  track,
  h("div", { class: "muted small budget-foot" },
    hasForecast
      ? h("span", { class: "budget-forecast-text" }, `forecast ${money(b.forecast)} (${pct(b.percent_forecast)}) at ${money(b.daily_rate)} a day over the last ${b.rate_days} day${b.rate_days === 1 ? "" : "s"}`)
      : h("span", { class: "budget-forecast-text" }, "no forecast yet (no complete day this month)"),
    " · thresholds: ",
    b.thresholds.map((t, i) => h("span", { class: t.crossed ? "bad-text" : null },
      i ? ", " : "", `${pct(t.percent)} ${t.on}${t.crossed ? " crossed" : ""}`))));
}

/** The budgets panel: hidden when the server has none (or predates budgets). */
function budgetsPanel(answer) {
  const budgets = (answer && answer.budgets) || [];
  if (!budgets.length) return null;
  const months = [...new Set(budgets.map((b) => b.month))];
  return h("div", { class: "panel", id: "budgets" },
    h("div", { class: "chart-head" }, h("h2", {}, `Budgets, ${months.join(", ")}`),
      h("span", { class: "muted small" }, `as of ${answer.as_of} (UTC), whatever the range below`)),
    budgets.map(budgetBar));
}

export function mount(root, params) {
  let range = rangeOf(params.range);
  let ctrl = null;
  const seg = rangeSeg("cost-range", () => params);
  const budgets = h("div", { id: "budgets-box" });
  const body = h("div");
  root.append(h("div", { class: "page-head" }, h("h1", {}, "Costs"), h("span", { class: "spacer" }), seg), budgets, body);

  /** The budgets do not depend on the range; a server without the endpoint shows none. */
  async function loadBudgets(signal) {
    try {
      replace(budgets, budgetsPanel(await get("/api/v1/budgets", {}, { signal })));
    } catch (e) {
      if (e.name === "AbortError") return;
      replace(budgets, e.status === 404 ? null : errorBox(e));
    } finally {
      if (!signal.aborted) budgets.dataset.loaded = "";
    }
  }

  async function load() {
    seg.mark(range);
    if (ctrl) ctrl.abort();
    ctrl = new AbortController();
    const signal = ctrl.signal;
    delete budgets.dataset.loaded;
    loadBudgets(signal);
    const days = RANGES[range];
    const start = rangeQueryStart(range);
    const ask = (group_by) => get("/api/v1/costs", { group_by, start }, { signal }).then((r) => r.groups);
    let totals, providers, services, accounts, trend;
    try {
      [totals, providers, services, accounts, trend] = await Promise.all([
        ask("currency,source"), ask("provider,source"), ask("provider,service,source"), ask("provider,account,source"), ask("day,source"),
      ]);
    } catch (e) {
      if (e.name !== "AbortError") replace(body, errorBox(e));
      return;
    }
    const dates = trend.map((g) => g.group.day).filter(Boolean).sort();
    const estDates = trend.filter((g) => g.oldest_price_date).map((g) => g.oldest_price_date).sort();
    const x0 = days ? rangeStart(days) : dates.length ? Date.parse(dates[0]) : Date.now();
    const x1 = Math.max(days ? rangeStart(1) : dates.length ? Date.parse(dates[dates.length - 1]) : x0, x0 + DAY);
    const line = (source) => trend.filter((g) => g.group.source === source)
      .map((g) => [Date.parse(g.group.day), g.billed_cost]).sort((a, b) => a[0] - b[0]);
    const totalRows = pivot(totals, ["currency"]);
    const currency = totalRows.length === 1 ? totalRows[0].group.currency : "USD";
    const chartBox = h("div", { id: "cost-trend" });
    const sorted = (groups, keys) => pivot(groups, keys).sort(byCost(keys));
    replace(body,
      totalsPanel(range, totalRows, estDates),
      h("div", { class: "panel" },
        h("div", { class: "chart-head" }, h("h2", {}, "Daily trend"), h("span", { class: "muted small" }, "by charge period start, UTC")),
        totalRows.length > 1 ? h("p", { class: "muted small" }, "Several currencies: the trend adds them as they are.") : null,
        legend(SOURCES), chartBox),
      h("div", { class: "grid2" },
        table("by-provider", "By provider", sorted(providers, ["provider"]), ["provider"]),
        table("by-account", "By account", sorted(accounts, ["provider", "account"]), ["provider", "account"])),
      table("by-service", "By service", sorted(services, ["provider", "service"]), ["provider", "service"]),
    );
    // Bar widths are set through the CSSOM: the page's policy allows no inline style.
    for (const bar of body.querySelectorAll(".bar")) bar.style.width = `${Number(bar.dataset.w) * 100}%`;
    lineChart(chartBox, {
      series: SOURCES.map((s) => ({ name: s, points: line(s) })),
      x0, x1, step: DAY, days: true, format: (v) => money(v, currency),
    });
  }

  load();
  return {
    update(p, { reload } = {}) {
      params = p;
      const r = rangeOf(p.range);
      if (r !== range || reload) {
        range = r;
        load();
      }
    },
    unmount() {
      if (ctrl) ctrl.abort();
    },
  };
}
