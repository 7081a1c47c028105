// One resource: identity, attributes, tags and history from GET /api/v1/resources/{key},
// and charts of its cpu / memory / disk / network metrics over a chosen range from
// GET /api/v1/points. Each chart has two lines, as the monitoring summary defines them:
// avg (the metric's avg series, else last, else whatever stat it has, averaged per
// bucket) and max (its max series, else that same series, maxed per bucket).

import { get, keyPath } from "./api.js";
import { h, replace, errorBox, time, ago, show, unitValue } from "./dom.js";
import { lineChart, legend } from "./chart.js";
import { link, setParams } from "./nav.js";

/** Range → seconds and bucket width: 60 to 168 buckets a chart. */
export const RANGES = {
  "1h": { seconds: 3600, step: 60 },
  "6h": { seconds: 6 * 3600, step: 300 },
  "24h": { seconds: 24 * 3600, step: 900 },
  "7d": { seconds: 7 * 86400, step: 3600 },
};

const GROUPS = [
  { title: "CPU", glob: "cpu.*", first: ["cpu.utilization"] },
  { title: "Memory", glob: "memory.*", first: ["memory.usage", "memory.used"] },
  { title: "Disk", glob: "disk.*", first: ["disk.read_throughput", "disk.write_throughput", "disk.read_iops", "disk.write_iops"] },
  { title: "Network", glob: "network.*", first: ["network.received_throughput", "network.sent_throughput", "network.received_pps", "network.sent_pps"] },
];
const STAT_ORDER = ["avg", "last", "max", "min", "sum", "count", "p50", "p95", "p99"];

/** Every page of a paged endpoint that pages over series. */
async function allSeries(path, params, signal) {
  const out = [];
  let cursor;
  for (let i = 0; i < 50; i++) {
    const page = await get(path, { ...params, limit: 1000, cursor }, { signal });
    out.push(...(page.series || page.items));
    if (!page.next_cursor) break;
    cursor = page.next_cursor;
  }
  return out;
}

/**
 * The series to draw for one metric and stat out of a points answer: the unlabelled one
 * when there is one (a host's total), else the labelled ones (per core, per device)
 * combined per timestamp with `combine`.
 */
export function pick(series, metric, stat, combine) {
  const mine = series.filter((x) => x.metric === metric && x.stat === stat);
  const plain = mine.find((x) => !x.labels || Object.keys(x.labels).length === 0);
  if (plain) return plain.points.map(([t, v]) => [Date.parse(t), v]);
  const byTime = new Map();
  for (const x of mine) {
    for (const [t, v] of x.points) {
      const ms = Date.parse(t);
      (byTime.get(ms) || byTime.set(ms, []).get(ms)).push(v);
    }
  }
  return [...byTime.entries()].sort((a, b) => a[0] - b[0]).map(([t, vs]) => [t, combine(vs)]);
}
const mean = (vs) => vs.reduce((a, b) => a + b, 0) / vs.length;
const maxOf = (vs) => Math.max(...vs);

/** `{cpu: {utilization: {avg, max, unit}}}` → [["cpu.utilization", {avg, max, unit}]] */
function summaryRows(obj, prefix = "", out = []) {
  for (const [k, v] of Object.entries(obj || {})) {
    if (!v || typeof v !== "object") continue;
    const name = prefix ? `${prefix}.${k}` : k;
    if (typeof v.unit === "string" && ("avg" in v || "max" in v)) out.push([name, v]);
    summaryRows(v, name, out);
  }
  return out;
}

export function mount(root, params, key) {
  let range = RANGES[params.range] ? params.range : "1h";
  let ctrl = null;

  const title = h("h1", {}, key);
  const sub = h("div", { class: "muted mono small" }, key);
  const seg = h("div", { class: "seg", id: "range" }, Object.keys(RANGES).map((r) => h("button", {
    type: "button", dataset: { range: r }, on: { click: () => setParams({ ...params, range: r }, { push: true }) },
  }, r)));
  const err = h("div");
  const charts = h("div", { id: "charts" });
  const summary = h("div", { class: "panel" });
  const details = h("div", { class: "panel" });
  const tags = h("div", { class: "panel" });
  const history = h("div", { class: "panel" });
  root.append(
    h("div", { class: "muted small" }, h("a", { href: link("inventory") }, "Inventory"), " / resource"),
    h("div", { class: "page-head" }, h("div", {}, title, sub), h("span", { class: "spacer" }), seg),
    err,
    charts,
    h("div", { class: "grid2" }, summary, details),
    h("div", { class: "grid2" }, tags, history),
  );

  function renderDetail(r) {
    replace(title, r.name || r.id);
    document.title = `${r.name || r.id} · skymeter`;
    const ident = [
      ["Provider", r.provider], ["Account", r.account], ["Region", r.region || "—"], ["Kind", r.kind],
      ["Type", r.native_type || "—"], ["Id", r.id], ["Observed", time(r.observed_at)],
      ["First seen", `${time(r.first_seen)} (${ago(r.first_seen)})`], ["Last seen", `${time(r.last_seen)} (${ago(r.last_seen)})`],
    ];
    const attrs = Object.entries(r.attributes || {});
    replace(details,
      h("h2", {}, "Details"),
      h("dl", { class: "kv" }, ident.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      h("h3", { class: "group-title" }, "Attributes"),
      attrs.length
        ? h("dl", { class: "kv", id: "attributes" }, attrs.map(([k, v]) => [h("dt", { class: "mono" }, k), h("dd", {}, show(v))]))
        : h("p", { class: "muted" }, "No attributes."),
    );
    const t = Object.entries(r.tags || {});
    replace(tags, h("h2", {}, "Tags"), t.length
      ? h("div", { id: "tags" }, t.map(([k, v]) => h("a", {
        class: "chip", href: link("inventory", "", { tag: `${k}=${v}` }), title: "Resources with this tag",
      }, `${k}=${v}`)))
      : h("p", { class: "muted" }, "No tags."));
    const changes = (r.history || []).slice().reverse().flatMap((c) =>
      Object.entries(c.changes).map(([field, [from, to]]) => h("tr", {},
        h("td", { class: "small", title: time(c.at) }, time(c.at)),
        h("td", { class: "mono" }, field),
        h("td", {}, show(from), " → ", show(to)))));
    replace(history, h("h2", {}, "History"), changes.length
      ? h("table", { id: "history" }, h("thead", {}, h("tr", {}, h("th", {}, "When"), h("th", {}, "Field"), h("th", {}, "Change"))), h("tbody", {}, changes))
      : h("p", { class: "muted" }, "No changes recorded since it was first seen."));
    const rows = summaryRows(r.monitoring);
    replace(summary, h("h2", {}, `Metrics summary, last ${range}`), rows.length
      ? h("table", { id: "summary" },
        h("thead", {}, h("tr", {}, h("th", {}, "Metric"), h("th", { class: "num" }, "avg"), h("th", { class: "num" }, "max"))),
        h("tbody", {}, rows.map(([m, v]) => h("tr", {},
          h("td", { class: "mono" }, m), h("td", { class: "num" }, unitValue(v.avg, v.unit)), h("td", { class: "num" }, unitValue(v.max, v.unit))))))
      : h("p", { class: "muted" }, `No points in the last ${range}.`));
  }

  async function loadCharts(signal) {
    const { seconds, step } = RANGES[range];
    // Whole buckets: a bucket is (t - step, t], t a multiple of step since the epoch (a
    // point is stamped with the end of its period). The API's window is [start, end),
    // so asking for (start, end] of an aligned window, one millisecond later, gives
    // exactly seconds / step buckets, the last one holding now.
    const end = Math.ceil(Date.now() / 1000 / step) * step;
    const start = end - seconds;
    const groups = await Promise.all(GROUPS.map(async (g) => {
      const q = {
        resource: key, metric: g.glob, step: `${step}s`,
        start: (start + 0.001).toFixed(3), end: (end + 0.001).toFixed(3),
      };
      const [avg, max] = await Promise.all([
        allSeries("/api/v1/points", { ...q, agg: "avg" }, signal),
        allSeries("/api/v1/points", { ...q, agg: "max" }, signal),
      ]);
      return { g, avg, max };
    }));
    const frag = document.createDocumentFragment();
    for (const { g, avg, max } of groups) {
      const metrics = [...new Set(avg.map((x) => x.metric))]
        .sort((a, b) => (g.first.indexOf(a) + 1 || 99) - (g.first.indexOf(b) + 1 || 99) || a.localeCompare(b));
      const section = h("section", { dataset: { group: g.title.toLowerCase() } }, h("h2", { class: "group-title" }, g.title));
      if (!metrics.length) {
        section.appendChild(h("p", { class: "muted small" }, `No ${g.title.toLowerCase()} metrics in the last ${range}.`));
      }
      const grid = h("div", { class: "grid2" });
      for (const m of metrics) {
        const stats = new Set(avg.filter((x) => x.metric === m).map((x) => x.stat));
        const primary = STAT_ORDER.find((st) => stats.has(st));
        const unit = avg.find((x) => x.metric === m).unit;
        const lines = [
          { name: "avg", points: pick(avg, m, primary, mean) },
          { name: "max", points: pick(max, m, stats.has("max") ? "max" : primary, maxOf) },
        ];
        const box = h("div");
        grid.appendChild(h("div", { class: "panel", dataset: { metric: m } },
          h("div", { class: "chart-head" }, h("h3", {}, m), h("span", { class: "muted small" }, unit)),
          legend(lines.map((l) => l.name)), box));
        // Drawn once in the page, so that it can measure its width.
        queueMicrotask(() => lineChart(box, {
          series: lines, x0: start * 1000, x1: end * 1000, step: step * 1000,
          format: (v) => unitValue(v, unit),
        }));
      }
      section.appendChild(grid);
      frag.appendChild(section);
    }
    charts.replaceChildren(frag);
    // The window drawn, in Unix seconds: what a reader (or a test) needs to know which
    // buckets the charts should have.
    Object.assign(charts.dataset, { range, step: String(step), start: String(start), end: String(end) });
  }

  async function load() {
    for (const b of seg.children) b.classList.toggle("on", b.dataset.range === range);
    if (ctrl) ctrl.abort();
    ctrl = new AbortController();
    const signal = ctrl.signal;
    charts.dataset.loading = "";
    try {
      const [detail] = await Promise.all([
        get(keyPath(key), { period: range }, { signal }),
        loadCharts(signal),
      ]);
      renderDetail(detail);
      replace(err);
    } catch (e) {
      if (e.name === "AbortError") return;
      replace(err, errorBox(e));
    } finally {
      if (!signal.aborted) delete charts.dataset.loading;
    }
  }

  load();
  return {
    update(p, { reload } = {}) {
      params = p;
      const r = RANGES[p.range] ? p.range : "1h";
      if (r !== range || reload) {
        range = r;
        load();
      }
    },
    unmount() {
      if (ctrl) ctrl.abort();
      document.title = "skymeter";
    },
  };
}
