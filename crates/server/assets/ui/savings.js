// Savings: what GET /api/v1/findings says could stop being paid for (idle, orphaned,
// oversized and untagged resources), with the money per month. The totals are the
// server's, over every finding that matches the filters (all pages); the list comes a page
// at a time, largest saving first, and "More" appends the next page by its cursor. The
// filters and the finding whose evidence is open are in the URL; the CSV download asks
// the same question with `format=csv` (through fetch, so that the token is sent).
//
// A finding's evidence: its window, the inventory facts it read, and for each series it
// read a chart of that metric for that resource over the window, from GET /api/v1/points
// with the series' stat in buckets of about the width the finding read them in.
//
// Reconciliation findings (a service whose estimated cost is off its bill) are listed
// too, but their money is the estimate's error a month, not a saving: the API leaves it
// out of the total, and so does the page, which shows it apart; their evidence is the
// days compared (charted) and the resources that explain the gap.

import { get, saveBlob } from "./api.js";
import { h, replace, errorBox, money, int, time, show, unitValue, debounce } from "./dom.js";
import { lineChart, legend } from "./chart.js";
import { link, setParams } from "./nav.js";
import { pick } from "./resource.js";

/** The kinds whose money is a saving; `reconciliation` is the estimate's error. */
export const KINDS = ["idle", "orphaned", "rightsizing", "untagged"];
const ALL_KINDS = [...KINDS, "reconciliation"];
const KIND_TITLE = {
  idle: "Running but unused: CPU, network, connections or requests stayed near zero",
  orphaned: "Attached to nothing or stopped for long, and still billed",
  rightsizing: "Busy, but a cheaper size of its family holds its load",
  untagged: "Spend on resources missing a required tag",
  reconciliation: "A service whose estimated cost is off its bill: the estimate's error a month, not a saving",
};
const FILTERS = [
  ["provider", "Provider", "aws, gcp, azure…"],
  ["account", "Account", "account / project / subscription"],
  ["region", "Region", "us-east-1…"],
];
const SIZES = [25, 50, 100, 250];
/** Bucket widths of an evidence chart: the smallest that keeps it under 400 points. */
const STEPS = [60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400];
const MAX_BUCKETS = 400;

/** The query of the findings API for the page's params (empty values are left out). */
export function findingsQuery(p) {
  return {
    kind: ALL_KINDS.includes(p.kind) ? p.kind : "",
    provider: p.provider, account: p.account, region: p.region,
    min_monthly_usd: p.min_usd,
  };
}

/** The step in seconds for a window of `seconds`. */
export function stepFor(seconds) {
  return STEPS.find((s) => seconds / s <= MAX_BUCKETS) || STEPS[STEPS.length - 1];
}

/** How points of `stat` are combined into a bucket, and across labelled series. */
const AGG = { max: "max", min: "min", sum: "sum", count: "sum" };
const COMBINE = {
  max: (vs) => Math.max(...vs),
  min: (vs) => Math.min(...vs),
  sum: (vs) => vs.reduce((a, b) => a + b, 0),
  avg: (vs) => vs.reduce((a, b) => a + b, 0) / vs.length,
};

const usd = (v) => (v === null || v === undefined ? "–" : money(v, "USD"));
const days = (ms) => {
  const d = ms / 86400e3;
  return d >= 1 ? `${Math.round(d * 10) / 10} days` : `${Math.round(ms / 3600e3)} h`;
};

export function mount(root, params) {
  let state = { ...params };
  let signature = null;
  let ctrl = null;
  let evCtrl = null;
  let items = [];
  let nextCursor = null;
  let shownEvidence = null;

  const inputs = {};
  const onInput = debounce(() => {
    const next = { ...state };
    for (const [k] of FILTERS) next[k] = inputs[k].value.trim();
    next.min_usd = inputs.min_usd.value.trim();
    setParams(next);
  }, 250);
  const kindSel = h("select", {
    name: "kind", on: { change: () => setParams({ ...state, kind: kindSel.value }, { push: true }) },
  }, h("option", { value: "" }, "All kinds"), ALL_KINDS.map((k) => h("option", { value: k, title: KIND_TITLE[k] }, k)));
  inputs.min_usd = h("input", {
    name: "min_usd", type: "number", min: "0", step: "any", placeholder: "0", autocomplete: "off", on: { input: onInput },
  });
  const filterBox = h("div", { class: "filters" },
    h("label", {}, "Kind", kindSel),
    FILTERS.map(([k, label, ph]) => {
      inputs[k] = h("input", { name: k, type: "text", placeholder: ph, autocomplete: "off", on: { input: onInput } });
      return h("label", {}, label, inputs[k]);
    }),
    h("label", {}, "Min USD / month", inputs.min_usd));
  const size = h("select", {
    name: "limit", title: "Findings per page",
    on: { change: () => setParams({ ...state, limit: size.value }) },
  }, SIZES.map((n) => h("option", { value: String(n) }, `${n} per page`)));
  const csv = h("button", { type: "button", class: "ghost", id: "savings-csv", title: "Every finding that matches the filters, as CSV", on: { click: () => download() } }, "Download CSV");
  const asOf = h("span", { class: "muted small", id: "savings-at" });
  const err = h("div");
  const totals = h("div", { class: "panel", id: "savings-total" }, h("p", { class: "muted" }, "Loading…"));
  const body = h("tbody");
  const status = h("span", { class: "muted", id: "savings-range" });
  const more = h("button", { type: "button", class: "ghost", id: "savings-more", hidden: true, on: { click: () => loadMore() } }, "More");
  const evidence = h("div", { id: "evidence" });

  root.append(
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Savings"), asOf), h("span", { class: "spacer" }), csv),
    err,
    totals,
    h("div", { class: "panel" },
      filterBox,
      h("div", { class: "table-wrap" }, h("table", { id: "findings" },
        h("thead", {}, h("tr", {},
          h("th", {}, "Resource"), h("th", {}, "Kind"), h("th", {}, "Reason"), h("th", {}, "Action"),
          h("th", {}, "Recommended"),
          h("th", { class: "num", title: "What the action saves a month, at list price (hover: what the resource costs now)" }, "Saving / month"), h("th", {}))),
        body)),
      h("div", { class: "pager" }, more, status, h("span", { class: "spacer" }), size)),
    evidence,
  );

  function totalsPanel(t) {
    const recon = (t.by_kind || {}).reconciliation;
    // The findings the total is the saving of.
    const saving = t.count - (recon ? recon.count : 0);
    return [
      h("h2", {}, "Monthly saving"),
      h("div", { class: "totals" },
        h("div", { class: "stat", dataset: { kind: "all" } },
          h("span", { class: "stat-label" }, "total"),
          h("span", { class: "total" }, usd(t.monthly_usd)),
          h("span", { class: "muted small" }, `${int(saving)} finding${saving === 1 ? "" : "s"}`)),
        KINDS.map((k) => {
          const kt = (t.by_kind || {})[k] || { count: 0, monthly_usd: 0 };
          return h("div", { class: `stat kind-${k}`, dataset: { kind: k }, title: KIND_TITLE[k] },
            h("span", { class: "stat-label" }, k),
            h("span", { class: "total" }, usd(kt.monthly_usd)),
            h("span", { class: "muted small" }, `${int(kt.count)} finding${kt.count === 1 ? "" : "s"}`));
        }),
        recon ? h("div", { class: "stat kind-reconciliation", dataset: { kind: "reconciliation" }, title: KIND_TITLE.reconciliation },
          h("span", { class: "stat-label" }, "estimate vs bill"),
          h("span", { class: "total" }, usd(recon.monthly_usd)),
          h("span", { class: "muted small" }, `error a month in ${int(recon.count)} service${recon.count === 1 ? "" : "s"}; not a saving`)) : null),
      h("p", { class: "muted small" }, "At list price per month of 730 hours, whatever discounts the bill applies; untagged is the spend of the last 30 days."),
    ];
  }

  function row(f) {
    const r = f.resource;
    const selected = state.finding === f.id;
    return h("tr", { dataset: { finding: f.id, kind: f.kind }, class: selected ? "selected" : null },
      h("td", {}, r.key ? h("a", { href: link("resource", r.key), title: r.key }, r.name || r.id) : h("b", {}, r.name || r.id),
        h("span", { class: "sub mono", title: r.id }, `${r.provider} · ${r.account}${r.region ? ` · ${r.region}` : ""} · ${r.kind}`)),
      h("td", {}, h("span", { class: `badge kind-${f.kind}`, title: KIND_TITLE[f.kind] }, f.kind)),
      h("td", {}, f.reason, (f.notes || []).length ? h("span", { class: "sub", title: f.notes.join("\n") }, f.notes.join("; ")) : null),
      h("td", {}, f.action),
      h("td", { class: "mono" }, f.recommended_type || ""),
      h("td", {
        class: f.kind === "reconciliation" ? "num muted" : "num", dataset: { amount: f.monthly_usd ?? "" },
        title: f.kind === "reconciliation" ? "The estimate's error a month: not a saving"
          : f.monthly_usd === null ? "No list price for it: see the note" : `It costs ${usd(f.current_monthly_usd)} a month now`,
      }, f.kind === "reconciliation" && f.monthly_usd !== null ? `±${usd(f.monthly_usd)}` : usd(f.monthly_usd)),
      h("td", {}, h("button", {
        type: "button", class: "ghost small", dataset: { evidence: f.id },
        on: { click: () => setParams({ ...state, finding: selected ? "" : f.id }, { push: true }) },
      }, selected ? "Hide evidence" : "Evidence")),
    );
  }

  function renderRows() {
    const frag = document.createDocumentFragment();
    for (const f of items) frag.appendChild(row(f));
    if (!items.length) {
      const filtered = Object.values(findingsQuery(state)).some((v) => v);
      frag.appendChild(h("tr", {}, h("td", { colspan: 7, class: "empty", id: "savings-empty" },
        filtered
          ? "No findings match these filters."
          : "No findings: nothing in the inventory is idle, orphaned, oversized or missing a required tag. Findings need the resources' metrics and a price table for their money (see docs/savings.md).")));
    }
    body.replaceChildren(frag);
    more.hidden = !nextCursor;
    status.textContent = items.length ? `${int(items.length)} of ${int(Number(totals.dataset.count || items.length))} shown` : "";
  }

  async function load() {
    const q = findingsQuery(state);
    const limit = Number(state.limit) || 50;
    const sig = JSON.stringify({ ...q, limit });
    if (sig === signature) {
      // Only the selected finding changed: the list stays.
      renderRows();
      showEvidence();
      return;
    }
    signature = sig;
    if (ctrl) ctrl.abort();
    ctrl = new AbortController();
    status.textContent = "Loading…";
    let page;
    try {
      page = await get("/api/v1/findings", { ...q, limit }, { signal: ctrl.signal });
    } catch (e) {
      if (e.name === "AbortError") return;
      signature = null;
      replace(err, errorBox(e));
      status.textContent = "";
      return;
    }
    replace(err);
    replace(totals, totalsPanel(page.totals));
    totals.dataset.count = String(page.totals.count);
    totals.dataset.loaded = sig;
    asOf.textContent = `as of ${time(page.at)}`;
    items = page.items;
    nextCursor = page.next_cursor || null;
    renderRows();
    showEvidence();
  }

  async function loadMore() {
    if (!nextCursor) return;
    const q = findingsQuery(state);
    const limit = Number(state.limit) || 50;
    more.disabled = true;
    try {
      const page = await get("/api/v1/findings", { ...q, limit, cursor: nextCursor }, { signal: ctrl.signal });
      items = items.concat(page.items);
      nextCursor = page.next_cursor || null;
      renderRows();
    } catch (e) {
      if (e.name !== "AbortError") replace(err, errorBox(e));
    } finally {
      more.disabled = false;
    }
  }

  async function download() {
    csv.disabled = true;
    try {
      const blob = await get("/api/v1/findings", { ...findingsQuery(state), format: "csv" }, { blob: true });
      saveBlob(blob, "skymeter-findings.csv");
      replace(err);
    } catch (e) {
      replace(err, errorBox(e));
    } finally {
      csv.disabled = false;
    }
  }

  /** The evidence of the finding named in the URL, when it is in the list. */
  function showEvidence() {
    const f = state.finding ? items.find((x) => x.id === state.finding) : null;
    if (shownEvidence === (f ? f.id : null) && (f || !state.finding)) return;
    if (evCtrl) evCtrl.abort();
    evCtrl = null;
    shownEvidence = f ? f.id : null;
    if (!state.finding) {
      replace(evidence);
      return;
    }
    if (!f) {
      replace(evidence, h("div", { class: "panel muted" },
        `Finding ${state.finding} is not in the list shown (other filters, a later page, or gone since).`));
      return;
    }
    evCtrl = new AbortController();
    renderEvidence(f, evCtrl.signal);
    // Below a long list: bring it where the reader is looking.
    evidence.scrollIntoView({ block: "start" });
  }

  function renderEvidence(f, signal) {
    const ev = f.evidence || {};
    const r = f.resource;
    const facts = Object.entries(ev.facts || {});
    const start = ev.start ? Date.parse(ev.start) : null;
    const end = ev.end ? Date.parse(ev.end) : null;
    const charts = h("div", { class: "grid2", id: "evidence-charts" });
    // The window in ms on the panel: what a reader (or a test) needs to know which points
    // the charts should have.
    replace(evidence, h("div", { class: "panel", dataset: { finding: f.id, start: start ?? "", end: end ?? "" } },
      h("div", { class: "chart-head" }, h("h2", {}, "Evidence: ", r.key ? h("a", { href: link("resource", r.key) }, r.name || r.id) : r.name || r.id),
        h("span", { class: "muted small" }, f.kind)),
      h("p", {}, f.reason, " → ", h("b", {}, f.action),
        f.monthly_usd === null ? "" : f.kind === "reconciliation" ? ` (the estimate is off by ${usd(f.monthly_usd)} a month)` : ` saves ${usd(f.monthly_usd)} a month`),
      (f.notes || []).length ? h("ul", { class: "small", id: "evidence-notes" }, f.notes.map((n) => h("li", {}, n))) : null,
      h("dl", { class: "kv", id: "evidence-window" },
        start !== null && end !== null
          ? [h("dt", {}, "Window"), h("dd", {}, `${time(start)} → ${time(end)} (${days(end - start)})`)]
          : [h("dt", {}, "Window"), h("dd", { class: "muted" }, "none: this finding rests on the inventory, not on metrics")]),
      h("h3", { class: "group-title" }, "Facts"),
      facts.length
        ? h("dl", { class: "kv", id: "evidence-facts" }, facts.map(([k, v]) => [h("dt", { class: "mono" }, k), h("dd", {}, show(v))]))
        : h("p", { class: "muted" }, "No facts recorded."),
      (ev.series || []).length ? [h("h3", { class: "group-title" }, "Series read"), charts] : null,
      (ev.days || []).length ? reconDays(ev.days, f.group) : null,
      (f.drivers || []).length ? reconDrivers(f.drivers, f.group) : null,
    ));
    if (!(ev.series || []).length || start === null || end === null) return;
    const stepS = stepFor((end - start) / 1000);
    for (const es of ev.series) {
      const box = h("div");
      const head = h("span", { class: "muted small" }, `${es.stat} · ${es.summary} ${es.value} · ${int(es.points)} points read`);
      const components = es.metric.split("+");
      charts.appendChild(h("div", { class: "panel", dataset: { evidenceMetric: es.metric, readPoints: es.points } },
        h("div", { class: "chart-head" }, h("h3", { class: "mono" }, es.metric), head),
        legend(components), box));
      chartSeries(r.key, es, components, start, end, stepS, signal).then(({ lines, unit }) => {
        if (signal.aborted) return;
        head.textContent = `${es.stat} · ${es.summary} ${unitValue(es.value, unit)} · ${int(es.points)} points read`;
        lineChart(box, {
          series: lines, x0: start, x1: end, step: stepS * 1000,
          format: (v) => unitValue(v, unit),
        });
        box.dataset.step = String(stepS);
      }).catch((e) => {
        if (e.name !== "AbortError") replace(box, errorBox(e));
      });
    }
  }

  /** A reconciliation's compared days: billed and estimated per day, charted and listed. */
  function reconDays(days, group) {
    const cur = (group && group.currency) || "USD";
    const box = h("div", { id: "evidence-days-chart" });
    const pts = (k) => days.map((d) => [Date.parse(d.day), d[k]]);
    const x0 = Date.parse(days[0].day);
    const x1 = Math.max(Date.parse(days[days.length - 1].day), x0 + 86400e3);
    queueMicrotask(() => lineChart(box, {
      series: [{ name: "billed", points: pts("billed") }, { name: "estimated", points: pts("estimated") }],
      x0, x1, step: 86400e3, days: true, format: (v) => money(v, cur),
    }));
    return [
      h("h3", { class: "group-title" }, `Days compared (${days.length})`),
      legend(["billed", "estimated"]), box,
      h("div", { class: "table-wrap" }, h("table", { id: "evidence-days" },
        h("thead", {}, h("tr", {}, h("th", {}, "Day"), h("th", { class: "num" }, "Billed"), h("th", { class: "num" }, "Estimated"), h("th", { class: "num" }, "Gap"))),
        h("tbody", {}, days.slice().reverse().map((d) => h("tr", {},
          h("td", {}, d.day), h("td", { class: "num" }, money(d.billed, cur)),
          h("td", { class: "num" }, money(d.estimated, cur)), h("td", { class: "num" }, money(d.gap, cur))))))),
    ];
  }

  /** The resources that explain a reconciliation gap, largest first. */
  function reconDrivers(drivers, group) {
    const cur = (group && group.currency) || "USD";
    return [
      h("h3", { class: "group-title" }, "Resources that explain it"),
      h("div", { class: "table-wrap" }, h("table", { id: "evidence-drivers" },
        h("thead", {}, h("tr", {}, ["Resource", "Cause", "Billed", "Estimated", "Billed − estimated"].map((c, i) => h("th", { class: i > 1 ? "num" : null }, c)))),
        h("tbody", {}, drivers.map((d) => h("tr", {},
          h("td", {}, d.key ? h("a", { href: link("resource", d.key) }, d.name || d.resource) : d.resource || "(not itemized)",
            h("span", { class: "sub mono" }, [d.kind, d.region].filter(Boolean).join(" · "))),
          h("td", {}, d.why),
          h("td", { class: "num" }, money(d.billed, cur)), h("td", { class: "num" }, money(d.estimated, cur)),
          h("td", { class: "num" }, money(d.delta, cur))))))),
    ];
  }

  /** The points of each component metric of an evidence series over its window. */
  async function chartSeries(key, es, components, start, end, stepS, signal) {
    const agg = AGG[es.stat] || "avg";
    let unit = "";
    const lines = await Promise.all(components.map(async (metric) => {
      // The finding read (start, end]; the API's window is [start, end): one second on,
      // as the finding itself asks the store.
      const page = await get("/api/v1/points", {
        resource: key, metric, stat: es.stat, step: `${stepS}s`, agg,
        start: (start / 1000 + 1).toFixed(3), end: (end / 1000 + 1).toFixed(3), limit: 1000,
      }, { signal });
      const series = page.series || [];
      if (series.length && !unit) unit = series[0].unit;
      return { name: metric, points: pick(series, metric, es.stat, COMBINE[agg] || COMBINE.avg) };
    }));
    return { lines, unit };
  }

  function update(p) {
    state = { ...p };
    for (const [k] of FILTERS) {
      if (document.activeElement !== inputs[k]) inputs[k].value = state[k] || "";
    }
    if (document.activeElement !== inputs.min_usd) inputs.min_usd.value = state.min_usd || "";
    kindSel.value = ALL_KINDS.includes(state.kind) ? state.kind : "";
    size.value = String(SIZES.includes(Number(state.limit)) ? Number(state.limit) : 50);
    load();
  }

  update(params);
  return {
    update(p, { reload } = {}) {
      if (reload) signature = null;
      update(p);
    },
    unmount() {
      if (ctrl) ctrl.abort();
      if (evCtrl) evCtrl.abort();
    },
  };
}
