// Costs: totals by provider, service and account, and the daily trend of billed and
// estimated lines, all from GET /api/v1/costs?group_by=… over whole UTC days. Estimated
// lines come from a price table; the page says how old the oldest one behind them is.

import { get } from "./api.js";
import { h, replace, errorBox, money, int } from "./dom.js";
import { lineChart, legend } from "./chart.js";
import { setParams } from "./nav.js";

const DAY = 86400e3;
export const RANGES = { "7d": 7, "30d": 30, "90d": 90, all: 0 };

/** The first UTC midnight of a range of `days` whole days ending today. */
export function rangeStart(days, now = Date.now()) {
  const today = Math.floor(now / DAY) * DAY;
  return today - (days - 1) * DAY;
}

const byCost = (a, b) => b.billed_cost - a.billed_cost;
const label = (g, k) => (g.group[k] === "" ? "(none)" : g.group[k]);

function estBadge(g) {
  return g.oldest_price_date
    ? h("span", { class: "badge est", title: `Estimated from the price table of ${g.oldest_price_date} (oldest behind this line)` }, `est. ${g.oldest_price_date}`)
    : null;
}

function table(id, title, groups, keys) {
  const top = Math.max(...groups.map((g) => Math.abs(g.billed_cost)), 0) || 1;
  return h("div", { class: "panel table-wrap" },
    h("h2", {}, title),
    groups.length
      ? h("table", { id },
        h("thead", {}, h("tr", {}, keys.map((k) => h("th", {}, k[0].toUpperCase() + k.slice(1))),
          h("th", { class: "num" }, "Billed"), h("th", { class: "num" }, "Effective"), h("th", { class: "num" }, "Lines"), h("th", { class: "bar-cell" }))),
        h("tbody", {}, groups.map((g) => h("tr", { dataset: { group: keys.map((k) => g.group[k]).join("/") } },
          keys.map((k, i) => h("td", {}, label(g, k), i === keys.length - 1 ? [" ", estBadge(g)] : null)),
          h("td", { class: "num", dataset: { billed: g.billed_cost } }, money(g.billed_cost, g.currency)),
          h("td", { class: "num" }, money(g.effective_cost, g.currency)),
          h("td", { class: "num" }, int(g.lines)),
          h("td", { class: "bar-cell" }, h("div", { class: "bar", dataset: { w: (Math.abs(g.billed_cost) / top).toFixed(3) } })),
        ))))
      : h("p", { class: "muted" }, "No cost lines in this range."));
}

export function mount(root, params) {
  let range = params.range in RANGES ? params.range : "30d";
  let ctrl = null;
  const seg = h("div", { class: "seg", id: "cost-range" }, Object.keys(RANGES).map((r) => h("button", {
    type: "button", dataset: { range: r }, on: { click: () => setParams({ ...params, range: r }, { push: true }) },
  }, r === "all" ? "All" : r)));
  const body = h("div");
  root.append(h("div", { class: "page-head" }, h("h1", {}, "Costs"), h("span", { class: "spacer" }), seg), body);

  async function load() {
    for (const b of seg.children) b.classList.toggle("on", b.dataset.range === range);
    if (ctrl) ctrl.abort();
    ctrl = new AbortController();
    const signal = ctrl.signal;
    const days = RANGES[range];
    const start = days ? new Date(rangeStart(days)).toISOString() : undefined;
    const ask = (group_by) => get("/api/v1/costs", { group_by, start }, { signal }).then((r) => r.groups);
    let totals, providers, services, accounts, trend;
    try {
      [totals, providers, services, accounts, trend] = await Promise.all([
        ask("currency"), ask("provider"), ask("provider,service"), ask("provider,account"), ask("day,source"),
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
    const currency = totals.length === 1 ? totals[0].currency : "USD";
    const chartBox = h("div", { id: "cost-trend" });
    replace(body,
      h("div", { class: "panel", id: "cost-total" },
        h("h2", {}, days ? `Total, last ${days} days (UTC)` : "Total, all time"),
        totals.length
          ? totals.map((g) => h("div", { class: "row" },
            h("span", { class: "total", dataset: { currency: g.currency } }, money(g.billed_cost, g.currency)),
            h("span", { class: "muted" }, `billed · ${money(g.effective_cost, g.currency)} effective · ${int(g.lines)} lines`)))
          : h("p", { class: "muted" }, "No cost lines in this range."),
        estDates.length
          ? h("p", { class: "small", id: "price-note" }, h("span", { class: "badge est" }, "estimated"),
            ` Some lines are estimates from list prices; the oldest price table behind them is from ${estDates[0]}.`)
          : null),
      h("div", { class: "panel" },
        h("div", { class: "chart-head" }, h("h2", {}, "Daily trend"), h("span", { class: "muted small" }, "by charge period start, UTC")),
        totals.length > 1 ? h("p", { class: "muted small" }, "Several currencies: the trend adds them as they are.") : null,
        legend(["billed", "estimated"]), chartBox),
      h("div", { class: "grid2" },
        table("by-provider", "By provider", providers.sort(byCost), ["provider"]),
        table("by-account", "By account", accounts.sort(byCost), ["provider", "account"])),
      table("by-service", "By service", services.sort(byCost), ["provider", "service"]),
    );
    // Bar widths are set through the CSSOM: the page's policy allows no inline style.
    for (const bar of body.querySelectorAll(".bar")) bar.style.width = `${Number(bar.dataset.w) * 100}%`;
    lineChart(chartBox, {
      series: [{ name: "billed", points: line("billed") }, { name: "estimated", points: line("estimated") }],
      x0, x1, step: DAY, days: true, format: (v) => money(v, currency),
    });
  }

  load();
  return {
    update(p, { reload } = {}) {
      params = p;
      const r = p.range in RANGES ? p.range : "30d";
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
