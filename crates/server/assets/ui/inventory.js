// Inventory: one page of resources at a time from GET /api/v1/resources, with its
// filters, sort and cursor kept in the URL. The server filters, sorts and pages, so the
// page costs the same with ten resources or a hundred thousand.

import { get } from "./api.js";
import { h, replace, errorBox, int, ago, time, debounce } from "./dom.js";
import { link, setParams } from "./nav.js";

const FILTERS = [
  ["provider", "Provider", "aws, gcp, azure, host…"],
  ["account", "Account", "account / project / subscription"],
  ["region", "Region", "us-east-1…"],
  ["kind", "Kind", "compute.instance…"],
  ["tag", "Tags", "env=prod, team=web"],
  ["q", "Search", "name or id contains…"],
];
const SIZES = [50, 100, 250, 500, 1000];
const COLUMNS = [
  { label: "Name", sort: "name" },
  { label: "Provider", sort: "key", title: "Sorts by key: provider / account / region / id" },
  { label: "Account" },
  { label: "Region" },
  { label: "Kind", sort: "kind" },
  { label: "Type" },
  { label: "Tags" },
  { label: "First seen", sort: "first_seen" },
  { label: "Last seen", sort: "last_seen" },
];

/** `env=prod, team=web` → {"tag.env": "prod", "tag.team": "web"}; null when malformed. */
export function tagParams(text) {
  const out = {};
  for (const part of (text || "").split(",")) {
    const p = part.trim();
    if (!p) continue;
    const eq = p.indexOf("=");
    if (eq <= 0) return null;
    out[`tag.${p.slice(0, eq).trim()}`] = p.slice(eq + 1).trim();
  }
  return out;
}

export function mount(root, params) {
  let state = { ...params };
  let stack = []; // cursors of the pages before this one, for "Previous"
  let signature = null;
  let ctrl = null;
  let firstRender = true;
  const seen = { provider: new Set(["aws", "gcp", "azure", "host"]), account: new Set(), region: new Set(), kind: new Set() };

  const inputs = {};
  const lists = {};
  const onInput = debounce(() => {
    const next = { ...state, cursor: "", page: "" };
    for (const [k] of FILTERS) next[k] = inputs[k].value.trim();
    setParams(next);
  }, 250);
  const filterBox = h("div", { class: "filters" }, FILTERS.map(([k, label, ph]) => {
    lists[k] = seen[k] ? h("datalist", { id: `dl-${k}` }) : null;
    inputs[k] = h("input", {
      name: k, type: k === "q" ? "search" : "text", placeholder: ph, autocomplete: "off",
      list: lists[k] ? `dl-${k}` : null, on: { input: onInput },
    });
    return h("label", {}, label, inputs[k], lists[k]);
  }));
  const size = h("select", {
    name: "limit", title: "Rows per page",
    on: { change: () => setParams({ ...state, limit: size.value, cursor: "", page: "" }) },
  }, SIZES.map((n) => h("option", { value: String(n) }, `${n} per page`)));
  const total = h("span", { class: "muted", id: "inventory-total" });
  const status = h("span", { class: "muted", id: "inventory-range" });
  const err = h("div");
  const head = h("thead");
  const body = h("tbody");
  const prev = h("button", { type: "button", class: "ghost", id: "prev-page", on: { click: () => previous() } }, "← Previous");
  const next = h("button", { type: "button", class: "ghost", id: "next-page", on: { click: () => forward() } }, "Next →");
  let nextCursor = null;

  root.append(
    h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Inventory"), total)),
    h("div", { class: "panel" },
      filterBox,
      err,
      h("div", { class: "table-wrap" }, h("table", { id: "inventory" }, head, body)),
      h("div", { class: "pager" }, prev, next, status, h("span", { class: "spacer" }), size)),
  );

  // The store's total, from the server's own metrics; a token without access to them
  // simply leaves it out.
  get("/metrics").then((text) => {
    const m = /^skymeter_store_resources (\d+)/m.exec(text);
    if (m) total.textContent = `${int(Number(m[1]))} resources in the store`;
  }).catch(() => {});

  function sortOf() {
    const s = state.sort || "key";
    return s.startsWith("-") ? [s.slice(1), true] : [s, false];
  }

  function renderHead() {
    const [field, desc] = sortOf();
    replace(head, h("tr", {}, COLUMNS.map((c) => {
      if (!c.sort) return h("th", {}, c.label);
      const on = c.sort === field;
      return h("th", {
        class: "sortable", title: c.title || `Sort by ${c.label.toLowerCase()}`, dataset: { sort: c.sort },
        "aria-sort": on ? (desc ? "descending" : "ascending") : "none",
        on: {
          click: () => {
            const sort = on && !desc ? `-${c.sort}` : c.sort;
            setParams({ ...state, sort: sort === "key" ? "" : sort, cursor: "", page: "" }, { push: true });
          },
        },
      }, c.label, h("span", { class: "arrow" }, on ? (desc ? "▼" : "▲") : ""));
    })));
  }

  function row(r) {
    const tags = Object.entries(r.tags || {});
    return h("tr", { dataset: { key: r.key } },
      h("td", {}, h("a", { href: link("resource", r.key) }, r.name || r.id), h("span", { class: "sub mono", title: r.id }, r.id)),
      h("td", {}, r.provider),
      h("td", { class: "mono" }, r.account),
      h("td", {}, r.region),
      h("td", {}, r.kind),
      h("td", { class: "muted small" }, r.native_type),
      h("td", {}, tags.slice(0, 3).map(([k, v]) => h("button", {
        type: "button", class: "chip", title: `Filter on ${k}=${v}`,
        on: { click: () => addTag(k, v) },
      }, `${k}=${v}`)), tags.length > 3 ? h("span", { class: "muted small", title: tags.map(([k, v]) => `${k}=${v}`).join("\n") }, `+${tags.length - 3}`) : null),
      h("td", { class: "small", title: time(r.first_seen) }, ago(r.first_seen)),
      h("td", { class: "small", title: time(r.last_seen) }, ago(r.last_seen)),
    );
  }

  function addTag(k, v) {
    const cur = (state.tag || "").split(",").map((x) => x.trim()).filter(Boolean);
    if (!cur.includes(`${k}=${v}`)) cur.push(`${k}=${v}`);
    setParams({ ...state, tag: cur.join(", "), cursor: "", page: "" }, { push: true });
  }

  function previous() {
    // After a reload the cursors before this page are gone: go back to the first page.
    const cursor = stack.length ? stack[stack.length - 1] : "";
    const page = stack.length ? Number(state.page || 1) - 1 : 1;
    stack = stack.slice(0, -1);
    setParams({ ...state, cursor, page: page > 1 ? page : "" }, { push: true });
  }

  function forward() {
    if (!nextCursor) return;
    stack.push(state.cursor || "");
    setParams({ ...state, cursor: nextCursor, page: Number(state.page || 1) + 1 }, { push: true });
  }

  async function load() {
    const tags = tagParams(state.tag);
    if (tags === null) {
      replace(err, errorBox(new Error(`Tags: write KEY=VALUE pairs separated by commas (got "${state.tag}")`)));
      return;
    }
    const sig = JSON.stringify({ ...state, cursor: undefined, page: undefined });
    if (sig !== signature) {
      // New filters or order: the cursors of the old listing mean nothing now.
      if (signature !== null && (state.cursor || state.page)) {
        setParams({ ...state, cursor: "", page: "" });
        return;
      }
      signature = sig;
      stack = [];
    }
    const limit = Number(state.limit) || 100;
    if (ctrl) ctrl.abort();
    ctrl = new AbortController();
    status.textContent = "Loading…";
    let page;
    try {
      page = await get("/api/v1/resources", {
        provider: state.provider, account: state.account, region: state.region, kind: state.kind,
        q: state.q, sort: state.sort, limit, cursor: state.cursor, ...tags,
      }, { signal: ctrl.signal });
    } catch (e) {
      if (e.name === "AbortError") return;
      replace(err, errorBox(e));
      replace(body);
      status.textContent = "";
      return;
    }
    replace(err);
    const frag = document.createDocumentFragment();
    for (const r of page.items) {
      frag.appendChild(row(r));
      for (const k of ["provider", "account", "region", "kind"]) if (r[k]) seen[k].add(r[k]);
    }
    if (!page.items.length) {
      frag.appendChild(h("tr", {}, h("td", { colspan: COLUMNS.length, class: "empty" },
        state.cursor ? "No more resources." : "No resources match these filters.")));
    }
    body.replaceChildren(frag);
    for (const [k, dl] of Object.entries(lists)) {
      if (dl) replace(dl, [...seen[k]].sort().slice(0, 200).map((v) => h("option", { value: v })));
    }
    nextCursor = page.next_cursor || null;
    const n = Number(state.page || 1);
    const first = (n - 1) * limit + 1;
    const last = (n - 1) * limit + page.items.length;
    status.textContent = page.items.length
      ? `Page ${int(n)} · rows ${int(first)}–${int(last)}${nextCursor ? "" : ` of ${int(last)}`}`
      : `Page ${int(n)}`;
    prev.disabled = n <= 1 && !state.cursor;
    next.disabled = !nextCursor;
    if (firstRender) {
      firstRender = false;
      performance.mark("skymeter:inventory:first-page");
    }
  }

  function update(params) {
    state = { ...params };
    for (const [k] of FILTERS) {
      // Leave the field being typed in alone; its value is already what the URL says.
      if (document.activeElement !== inputs[k]) inputs[k].value = state[k] || "";
    }
    size.value = String(Number(state.limit) || 100);
    renderHead();
    load();
  }

  update(params);
  return {
    update,
    unmount() {
      if (ctrl) ctrl.abort();
    },
  };
}
