// Rating: the server's rating job (GET /api/v1/rating/status), the rules it rates with
// (GET /api/v1/rating/rules: modules, rated services, hashmap mappings and thresholds,
// scripts), how far each scope is rated, the re-rate requests, and what was rated in a
// range by scope and service (GET /api/v1/costs?source=rated). A server without a
// `[rating]` table says so and how to add one.

import { get } from "./api.js";
import { h, replace, errorBox, money, int, time, ago, duration } from "./dom.js";
import { rangeOf, rangeQueryStart, rangeSeg, rangeTitle } from "./costs.js";

const dash = "—";

/** A definition list of [term, value] pairs; values may be nodes. */
function kv(id, pairs) {
  return h("dl", { class: "kv", id }, pairs.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", { dataset: { field: k } }, v)]));
}

const when = (t) => (t ? h("span", { title: time(t) }, time(t), h("span", { class: "muted" }, ` (${ago(t)})`)) : dash);

function jobPanel(st) {
  const period = st.period_s;
  return h("div", { class: "panel", id: "rating-job" },
    h("h2", {}, "Rating job"),
    st.error ? errorBox(new Error(`The last round failed: ${st.error}`)) : null,
    kv("rating-summary", [
      ["Period", duration(period)],
      ["Wait", `${int(st.wait_periods)} period${st.wait_periods === 1 ? "" : "s"} (${duration(period * st.wait_periods)}) after a period ends`],
      ["Scope by", h("code", {}, st.scope_by)],
      st.rules_file ? ["Rules file", h("code", {}, st.rules_file)] : null,
      ["Start", when(st.start)],
      ["Rated until", when(st.rated_until)],
      ["Ready until", when(st.ready_until)],
      ["Last round", when(st.last_round)],
      ["Error", st.error ? h("span", { class: "bad-text" }, st.error) : "none"],
    ]));
}

function modulesPanel(rules) {
  const order = Object.entries(rules.modules)
    .filter(([, m]) => m.enabled)
    .sort((a, b) => b[1].priority - a[1].priority || a[0].localeCompare(b[0]))
    .map(([n]) => n);
  const rows = Object.entries(rules.modules).sort((a, b) => {
    const ia = order.indexOf(a[0]), ib = order.indexOf(b[0]);
    return (ia < 0 ? 1e9 : ia) - (ib < 0 ? 1e9 : ib) || a[0].localeCompare(b[0]);
  });
  return h("div", { class: "panel table-wrap" },
    h("h2", {}, "Modules"),
    h("table", { id: "rating-modules" },
      h("thead", {}, h("tr", {}, h("th", {}, "Module"), h("th", {}, "Enabled"), h("th", { class: "num" }, "Priority"),
        h("th", { class: "num", title: "Higher priority runs first" }, "Run order"))),
      h("tbody", {}, rows.map(([name, m]) => h("tr", { dataset: { module: name } },
        h("td", {}, name),
        h("td", {}, h("span", { class: `badge ${m.enabled ? "healthy" : "off"}` }, m.enabled ? "enabled" : "disabled")),
        h("td", { class: "num" }, String(m.priority)),
        h("td", { class: "num", dataset: { order: m.enabled ? order.indexOf(name) + 1 : "" } }, m.enabled ? String(order.indexOf(name) + 1) : dash))))),
    h("h3", { class: "group-title" }, "Scripts"),
    rules.scripts.length
      ? h("ol", { id: "rating-scripts", class: "scripts" }, rules.scripts.map((s) => h("li", {}, h("code", {}, s))))
      : h("p", { class: "muted", id: "rating-scripts" }, "No script."));
}

/** The name a rated service has in rules and lines (`alt_name`, else its metric). */
const serviceName = (s) => s.alt_name || s.metric;

function usageText(u) {
  if (!u) return "not collected (quotes only)";
  if (u.kind) return `${u.kind} hours${u.attribute ? ` × ${u.attribute}` : ""}`;
  if (u.metric) return `${u.metric}, ${u.aggregate || "avg"} per period`;
  return JSON.stringify(u);
}

function servicesPanel(rules) {
  return h("div", { class: "panel table-wrap" },
    h("h2", {}, "Rated services"),
    rules.services.length
      ? h("table", { id: "rating-services" },
        h("thead", {}, h("tr", {}, ["Service", "Unit", "Usage", "Group by", "Metadata"].map((c) => h("th", {}, c)))),
        h("tbody", {}, rules.services.map((s) => h("tr", { dataset: { service: serviceName(s) } },
          h("td", {}, serviceName(s), s.description ? h("span", { class: "sub" }, s.description) : null),
          h("td", {}, s.unit),
          h("td", {}, usageText(s.usage)),
          h("td", {}, (s.groupby || []).map((g) => h("span", { class: "chip" }, g))),
          h("td", {}, (s.metadata || []).map((g) => h("span", { class: "chip" }, g)))))))
      : h("p", { class: "muted" }, "No service: only quotes can be priced."));
}

/** One row per hashmap mapping and threshold, with the names their ids point to. */
export function ruleRows(hm) {
  const services = new Map(hm.services.map((s) => [s.service_id, s.name]));
  const fields = new Map(hm.fields.map((f) => [f.field_id, f]));
  const groups = new Map(hm.groups.map((g) => [g.group_id, g.name]));
  const where = (r) => {
    const f = r.field_id ? fields.get(r.field_id) : null;
    return {
      service: services.get(f ? f.service_id : r.service_id) || dash,
      field: f ? f.name : "",
      group: r.group_id ? groups.get(r.group_id) || r.group_id : "",
      scope: r.tenant_id || "",
    };
  };
  const rows = [
    ...hm.mappings.map((m) => ({
      ...where(m), kind: "mapping", value: m.field_id ? m.value ?? "" : "", type: m.map_type, cost: m.cost,
      start: m.start, end: m.end, name: m.name,
    })),
    ...hm.thresholds.map((t) => ({ ...where(t), kind: "threshold", level: t.level, type: t.map_type, cost: t.cost })),
  ];
  const level = (r) => (r.kind === "threshold" ? Number(r.level) : -Infinity);
  return rows.sort((a, b) => a.service.localeCompare(b.service) || a.field.localeCompare(b.field)
    || (a.kind === b.kind ? 0 : a.kind === "mapping" ? -1 : 1) || level(a) - level(b)
    || String(a.value ?? "").localeCompare(String(b.value ?? "")));
}

function rulesPanel(rules) {
  const rows = ruleRows(rules.hashmap);
  const inForce = (r) => (r.start || r.end ? `in force ${r.start ? `from ${time(r.start)} ` : ""}${r.end ? `until ${time(r.end)}` : ""}` : null);
  return h("div", { class: "panel table-wrap" },
    h("h2", {}, "Hashmap rules"),
    h("p", { class: "muted small" }, "Flat: a price per unit. Rate: a multiplier. Within a group only the most expensive matching flat applies and rates multiply; groups add up. Of a service's thresholds only the highest level reached applies."),
    rows.length
      ? h("table", { id: "rating-rules" },
        h("thead", {}, h("tr", {}, ["Service", "Field", "Value / level", "Type", "Cost", "Group", "Scope"]
          .map((c) => h("th", { class: c === "Cost" ? "num" : null }, c)))),
        h("tbody", {}, rows.map((r) => h("tr", { dataset: { kind: r.kind, service: r.service, field: r.field } },
          h("td", {}, r.service),
          h("td", {}, r.field || h("span", { class: "muted" }, "(service)")),
          h("td", {}, r.kind === "threshold" ? `≥ ${r.level}` : r.field ? h("code", {}, r.value) : h("span", { class: "muted" }, "any"),
            inForce(r) ? h("span", { class: "sub" }, inForce(r)) : null),
          h("td", {}, h("span", { class: `chip ${r.type}` }, r.kind === "threshold" ? `threshold ${r.type}` : r.type)),
          h("td", { class: "num mono", dataset: { cost: r.cost } }, r.type === "rate" ? `× ${r.cost}` : r.cost),
          h("td", {}, r.group || h("span", { class: "muted" }, dash)),
          h("td", {}, r.scope ? h("code", {}, r.scope) : h("span", { class: "muted" }, "all"))))))
      : h("p", { class: "muted" }, "No hashmap rule."));
}

function scopesPanel(st) {
  return h("div", { class: "panel table-wrap" },
    h("h2", {}, "Scopes"),
    st.scopes.length
      ? h("table", { id: "rating-scopes" },
        h("thead", {}, h("tr", {}, h("th", {}, "Scope"), h("th", {}, "Rated until"), h("th", { class: "num" }, "Lag"), h("th", {}, "Error"))),
        h("tbody", {}, st.scopes.map((s) => h("tr", { dataset: { scope: s.scope } },
          h("td", {}, h("code", {}, s.scope)),
          h("td", { title: ago(s.rated_until) }, time(s.rated_until)),
          h("td", { class: "num", dataset: { lag: s.lag_s } }, duration(s.lag_s)),
          h("td", {}, s.error ? h("span", { class: "bad-text" }, s.error) : h("span", { class: "muted" }, dash))))))
      : h("p", { class: "muted" }, "No scope rated yet: scopes appear once a period with their usage is rated."));
}

function reratesPanel(st) {
  return h("div", { class: "panel table-wrap" },
    h("h2", {}, "Re-rate requests"),
    st.rerates.length
      ? h("table", { id: "rating-rerates" },
        h("thead", {}, h("tr", {}, ["#", "From", "To", "State", "Done until", "Deleted", "Lines", "Error"]
          .map((c) => h("th", { class: ["Deleted", "Lines"].includes(c) ? "num" : null }, c)))),
        h("tbody", {}, st.rerates.map((r) => h("tr", { dataset: { rerate: r.id, state: r.state } },
          h("td", {}, String(r.id)),
          h("td", {}, time(r.from)),
          h("td", {}, time(r.to)),
          h("td", {}, h("span", { class: `badge ${{ done: "healthy", failed: "offline", running: "late" }[r.state] || "off"}` }, r.state)),
          h("td", {}, time(r.done_until)),
          h("td", { class: "num" }, int(r.deleted)),
          h("td", { class: "num" }, int(r.lines)),
          h("td", {}, r.error ? h("span", { class: "bad-text" }, r.error) : h("span", { class: "muted" }, dash))))))
      : h("p", { class: "muted", id: "rating-rerates" }, "No re-rate requested since the server started (skymeter rating rerate --from … --to …)."));
}

/** Rated totals: by scope, and by scope and service. */
function totalsPanel(range, st, byScope, byService) {
  const scopeCol = st.scope_by === "account" ? "Scope" : "Account";
  const note = st.scope_by === "account" ? null
    : h("p", { class: "muted small" }, `Scopes are drawn from ${st.scope_by}; the costs API groups rated lines by their account (each line carries the scope in its rating_scope tag).`);
  const sum = byScope.reduce((a, g) => a + g.billed_cost, 0);
  const currency = byScope.length ? byScope[0].currency : "USD";
  const top = Math.max(...byScope.map((g) => Math.abs(g.billed_cost)), 0) || 1;
  const sort = (a, b) => b.billed_cost - a.billed_cost || (a.group.account || "").localeCompare(b.group.account || "");
  const name = (v) => (v ? h("code", {}, v) : h("span", { class: "muted" }, "(none)"));
  return [
    h("div", { class: "panel", id: "rating-total" },
      h("h2", {}, rangeTitle("Rated", range)),
      h("div", { class: "row" }, h("span", { class: "total" }, money(sum, currency)),
        h("span", { class: "muted" }, `${int(byScope.reduce((a, g) => a + g.lines, 0))} rated lines`)),
      note),
    h("div", { class: "grid2" },
      h("div", { class: "panel table-wrap" },
        h("h2", {}, "Rated by scope"),
        byScope.length
          ? h("table", { id: "rated-by-scope" },
            h("thead", {}, h("tr", {}, h("th", {}, scopeCol), h("th", { class: "num" }, "Rated"), h("th", { class: "num" }, "Lines"), h("th", { class: "bar-cell" }))),
            h("tbody", {}, byScope.sort(sort).map((g) => h("tr", { dataset: { group: g.group.account } },
              h("td", {}, name(g.group.account)),
              h("td", { class: "num", dataset: { amount: g.billed_cost } }, money(g.billed_cost, g.currency)),
              h("td", { class: "num" }, int(g.lines)),
              h("td", { class: "bar-cell" }, h("div", { class: "bar rated", dataset: { w: (Math.abs(g.billed_cost) / top).toFixed(3) } }))))))
          : h("p", { class: "muted" }, "Nothing rated in this range.")),
      h("div", { class: "panel table-wrap" },
        h("h2", {}, "Rated by scope and service"),
        byService.length
          ? h("table", { id: "rated-by-service" },
            h("thead", {}, h("tr", {}, h("th", {}, scopeCol), h("th", {}, "Service"), h("th", { class: "num" }, "Rated"), h("th", { class: "num" }, "Lines"))),
            h("tbody", {}, byService.sort(sort).map((g) => h("tr", { dataset: { group: `${g.group.account}/${g.group.service}` } },
              h("td", {}, name(g.group.account)),
              h("td", {}, g.group.service),
              h("td", { class: "num", dataset: { amount: g.billed_cost } }, money(g.billed_cost, g.currency)),
              h("td", { class: "num" }, int(g.lines))))))
          : h("p", { class: "muted" }, "Nothing rated in this range."))),
  ];
}

function disabled() {
  return h("div", { class: "panel empty", id: "rating-off" },
    h("h2", {}, "Rating is not configured on this server"),
    h("p", {}, "The rating job prices usage with rules you write (CloudKitty's hashmap and scripts) and stores what each scope owes as rated cost lines."),
    h("p", {}, "To turn it on, add a ", h("code", {}, "[rating]"), " table to the server's config file, e.g. ",
      h("code", {}, "[rating] rules = \"rating.toml\""), ", and restart the server. See ", h("code", {}, "docs/rating.md"),
      " and ", h("code", {}, "examples/rating/"), "."));
}

export function mount(root, params) {
  let range = rangeOf(params.range);
  let ctrl = null;
  const seg = rangeSeg("rating-range", () => params);
  const body = h("div", { id: "rating-body" });
  root.append(
    h("div", { class: "page-head" }, h("h1", {}, "Rating"), h("span", { class: "spacer" }), seg,
      h("button", { type: "button", class: "ghost", id: "rating-refresh", on: { click: () => load() } }, "Refresh")),
    body);

  async function load() {
    seg.mark(range);
    if (ctrl) ctrl.abort();
    ctrl = new AbortController();
    const signal = ctrl.signal;
    let st, rules, byScope, byService;
    try {
      st = await get("/api/v1/rating/status", {}, { signal });
      if (!st.enabled) {
        seg.hidden = true;
        replace(body, disabled());
        return;
      }
      seg.hidden = false;
      const start = rangeQueryStart(range);
      const ask = (group_by) => get("/api/v1/costs", { source: "rated", group_by, start }, { signal }).then((r) => r.groups);
      [rules, byScope, byService] = await Promise.all([
        get("/api/v1/rating/rules", {}, { signal }), ask("account"), ask("account,service"),
      ]);
    } catch (e) {
      if (e.name !== "AbortError") replace(body, errorBox(e));
      return;
    }
    replace(body,
      h("div", { class: "grid2" }, jobPanel(st), scopesPanel(st)),
      totalsPanel(range, st, byScope, byService),
      h("div", { class: "grid2" }, modulesPanel(rules), servicesPanel(rules)),
      rulesPanel(rules),
      reratesPanel(st));
    for (const bar of body.querySelectorAll(".bar")) bar.style.width = `${Number(bar.dataset.w) * 100}%`;
    body.dataset.loaded = range;
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
