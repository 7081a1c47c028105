// The location of the app in its URL hash: `#/page/arg?params`.

/** `#/resource/aws%2F1%2Fr%2Fi-1?range=6h` → {name: "resource", arg: "aws/1/r/i-1", params} */
export function parseHash(hash) {
  const raw = hash.replace(/^#\/?/, "");
  const qi = raw.indexOf("?");
  const path = qi < 0 ? raw : raw.slice(0, qi);
  const params = Object.fromEntries(new URLSearchParams(qi < 0 ? "" : raw.slice(qi + 1)));
  const slash = path.indexOf("/");
  const name = (slash < 0 ? path : path.slice(0, slash)) || "inventory";
  const arg = slash < 0 ? "" : decodeURIComponent(path.slice(slash + 1));
  return { name, arg, params };
}

/** The hash of a page: `link("resource", key, {range: "6h"})`. Empty params are left out. */
export function link(name, arg, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") q.set(k, v);
  }
  const qs = q.toString();
  return `#/${name}${arg ? `/${encodeURIComponent(arg)}` : ""}${qs ? `?${qs}` : ""}`;
}

/**
 * Sets the current page's parameters. `push` adds a history entry (a page of results, a
 * range); without it the entry is replaced (each keystroke of a filter).
 */
export function setParams(params, { push = false } = {}) {
  const { name, arg } = parseHash(location.hash);
  const target = link(name, arg, params);
  if (target === location.hash) return;
  if (push) location.hash = target;
  else location.replace(target);
}
