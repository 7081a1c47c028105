// DOM building and number / time formatting shared by the pages. Elements are built with
// `h()` rather than HTML strings, so resource names and tags from the API are always
// text, never markup.

/** `h("a", {href: "#/x", class: "y", on: {click: f}}, "text", child, [more])` */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "on") {
      for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    } else if (k === "dataset") {
      Object.assign(el.dataset, v);
    } else if (k === "class") {
      el.className = v;
    } else if (k === "value" || k === "checked" || k === "disabled" || k === "selected") {
      el[k] = v;
    } else {
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** An SVG element (SVG needs its namespace; attributes are set as given). */
export const SVG_NS = "http://www.w3.org/2000/svg";
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function errorBox(err) {
  return h("div", { class: "error", role: "alert" }, err && err.message ? err.message : String(err));
}

const intFmt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
export const int = (n) => intFmt.format(n);

/** A number with about 3 significant digits, never in exponent form. */
export function num(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  const digits = a >= 100 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
  return v.toLocaleString("en-US", { maximumFractionDigits: digits });
}

/** SI-scaled (k, M, G, T): network and disk rates are read in powers of ten. */
function si(v, suffix) {
  const a = Math.abs(v);
  const steps = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];
  for (const [f, p] of steps) if (a >= f) return `${num(v / f)} ${p}${suffix}`;
  return `${num(v)} ${suffix}`;
}

/** A value in a skymeter unit (`percent`, `bytes/s`, `count/s`, `usd`, …). */
export function unitValue(v, unit) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  switch (unit) {
    case "percent": return `${num(v)} %`;
    case "bytes": return si(v, "B");
    case "bytes/s": return si(v, "B/s");
    case "bits/s": return si(v, "bit/s");
    case "count/s": return si(v, "/s").replace(" /s", "/s");
    case "count": return si(v, "").trim();
    case "ms": return `${num(v)} ms`;
    case "s": return `${num(v)} s`;
    case "usd": return money(v, "USD");
    default: return unit ? `${num(v)} ${unit}` : num(v);
  }
}

const moneyFmts = new Map();
/** `$1,234.56`; the currency comes from the cost group. */
export function money(v, currency) {
  const c = currency || "USD";
  let f = moneyFmts.get(c);
  if (!f) {
    try {
      f = new Intl.NumberFormat("en-US", { style: "currency", currency: c });
    } catch {
      f = { format: (x) => `${x.toFixed(2)} ${c}` };
    }
    moneyFmts.set(c, f);
  }
  return f.format(v);
}

/** `2026-11-22 10:04:05 UTC`: the API speaks UTC, and so do the pages. */
export function time(t) {
  const d = t instanceof Date ? t : new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC").replace(/Z$/, " UTC");
}

/** `3 min ago`, `in 2 h` */
export function ago(t, now = Date.now()) {
  const d = (now - new Date(t).getTime()) / 1000;
  const a = Math.abs(d);
  let text;
  if (a < 5) return "just now";
  if (a < 90) text = `${Math.round(a)} s`;
  else if (a < 5400) text = `${Math.round(a / 60)} min`;
  else if (a < 129600) text = `${Math.round(a / 3600)} h`;
  else text = `${Math.round(a / 86400)} d`;
  return d >= 0 ? `${text} ago` : `in ${text}`;
}

/** Seconds as `45 s`, `13 min`, `2 h 13 min`, `3 d 4 h`: a lag or a period, two units at most. */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  const sign = seconds < 0 ? "-" : "";
  let s = Math.round(Math.abs(seconds));
  if (s < 60) return `${sign}${s} s`;
  const units = [[86400, "d"], [3600, "h"], [60, "min"]];
  const parts = [];
  for (const [n, u] of units) {
    if (s >= n || parts.length) {
      const q = Math.floor(s / n);
      s -= q * n;
      if (q || !parts.length) parts.push(`${q} ${u}`);
      if (parts.length === 2) break;
    }
  }
  return sign + parts.join(" ");
}

/** `{a: {b: 1}}` → `[["a.b", 1]]`, for attributes and the monitoring summary. */
export function flatten(obj, prefix = "", out = []) {
  for (const [k, v] of Object.entries(obj || {})) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v && typeof v === "object" && !Array.isArray(v)) flatten(v, key, out);
    else out.push([key, v]);
  }
  return out;
}

/** A value of an attribute or history change as text. */
export function show(v) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

/** Runs `fn` once input has been quiet for `ms`. */
export function debounce(fn, ms) {
  let t;
  return (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
}
