// Agents: every registered agent from GET /api/v1/agents with the status the server
// derives from its heartbeats (healthy within 2 intervals, late within 5, offline after),
// refreshed every 15 seconds while the page is open.

import { get } from "./api.js";
import { h, replace, errorBox, int, ago, time } from "./dom.js";

const REFRESH_MS = 15000;

export function mount(root) {
  let ctrl = null;
  let timer = null;
  const counts = h("span", { class: "muted", id: "agent-counts" });
  const err = h("div");
  const body = h("tbody");
  const refreshed = h("span", { class: "muted small" });
  root.append(
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Agents"), counts), h("span", { class: "spacer" }), refreshed,
      h("button", { type: "button", class: "ghost", on: { click: () => load() } }, "Refresh")),
    err,
    h("div", { class: "panel table-wrap" }, h("table", { id: "agents" },
      h("thead", {}, h("tr", {}, ["Agent", "Status", "Last heartbeat", "Host", "Version", "Tasks", "Buffer", "Labels", "Registered"]
        .map((c) => h("th", {}, c)))),
      body)),
  );

  async function load() {
    clearTimeout(timer);
    if (ctrl) ctrl.abort();
    ctrl = new AbortController();
    const items = [];
    try {
      let cursor;
      for (let i = 0; i < 100; i++) {
        const page = await get("/api/v1/agents", { limit: 1000, cursor }, { signal: ctrl.signal });
        items.push(...page.items);
        if (!page.next_cursor) break;
        cursor = page.next_cursor;
      }
    } catch (e) {
      if (e.name === "AbortError") return;
      replace(err, errorBox(e));
      timer = setTimeout(load, REFRESH_MS);
      return;
    }
    replace(err);
    const by = { healthy: 0, late: 0, offline: 0 };
    for (const a of items) by[a.status] = (by[a.status] || 0) + 1;
    counts.textContent = `${int(items.length)} registered · ${int(by.healthy)} healthy · ${int(by.late)} late · ${int(by.offline)} offline`;
    replace(body, items.length ? items.map((a) => h("tr", { dataset: { agent: a.id } },
      h("td", { class: "mono" }, a.id),
      h("td", {}, h("span", { class: `badge ${a.status}` }, a.status)),
      h("td", { title: time(a.last_heartbeat) }, ago(a.last_heartbeat), h("span", { class: "sub" }, `every ${a.heartbeat_interval_s} s`)),
      h("td", {}, a.hostname),
      h("td", {}, a.version),
      h("td", {}, (a.tasks || []).map((t) => h("span", { class: "chip", title: `every ${t.interval_s} s` }, t.name))),
      h("td", { class: "small" }, `${int(a.last_heartbeat_stats.buffered_batches)} buffered`,
        a.last_heartbeat_stats.dropped_batches ? h("span", { class: "sub" }, `${int(a.last_heartbeat_stats.dropped_batches)} dropped`) : null),
      h("td", {}, Object.entries(a.labels || {}).map(([k, v]) => h("span", { class: "chip" }, `${k}=${v}`))),
      h("td", { class: "small", title: time(a.registered_at) }, ago(a.registered_at)),
    )) : h("tr", {}, h("td", { colspan: 9, class: "empty" }, "No agent has registered yet. Agents register when `skymeter run` starts with a server publisher.")));
    refreshed.textContent = `updated ${new Date().toISOString().slice(11, 19)} UTC`;
    timer = setTimeout(load, REFRESH_MS);
  }

  load();
  return {
    update(_p, { reload } = {}) {
      if (reload) load();
    },
    unmount() {
      clearTimeout(timer);
      if (ctrl) ctrl.abort();
    },
  };
}
