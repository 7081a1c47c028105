// Calls to the skymeter REST API on this same server. A server with tokens answers 401
// without one: the first such answer opens the token dialog (once, however many calls
// were waiting), the token is kept in localStorage and every call then sends it as
// `Authorization: Bearer`. A refused saved token is forgotten and asked for again.

const TOKEN_KEY = "skymeter.token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function token() {
  try {
    return localStorage.getItem(TOKEN_KEY) || "";
  } catch {
    return "";
  }
}

function setToken(t) {
  if (t) localStorage.setItem(TOKEN_KEY, t);
  else localStorage.removeItem(TOKEN_KEY);
}

/** `{a: 1, b: "", c: null}` → `?a=1`; empty values are left out, as the API reads them. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === "") continue;
    q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

async function errorOf(resp, what) {
  let code = `http_${resp.status}`;
  let message = `${resp.status} ${resp.statusText}`;
  try {
    const body = await resp.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch {
    // Not an ApiErrorBody (a proxy's page, say): keep the status line.
  }
  return new ApiError(resp.status, code, `${what}: ${message}`);
}

let asking = null;

/**
 * Opens the token dialog and resolves when a token is saved (rejects on cancel). Calls
 * that get a 401 while it is open wait for the same answer.
 */
export function askToken(reason) {
  if (asking) return asking;
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  const cancel = document.getElementById("token-cancel");
  const clear = document.getElementById("token-clear");
  document.getElementById("token-reason").textContent = reason || "";
  input.value = token();
  asking = new Promise((resolve, reject) => {
    const done = (fn, v) => {
      form.removeEventListener("submit", onSubmit);
      cancel.removeEventListener("click", onCancel);
      clear.removeEventListener("click", onClear);
      dialog.removeEventListener("cancel", onCancel);
      if (dialog.open) dialog.close();
      asking = null;
      fn(v);
    };
    const onSubmit = (e) => {
      e.preventDefault();
      const t = input.value.trim();
      if (!t) {
        input.focus();
        return;
      }
      setToken(t);
      done(resolve, t);
    };
    const onCancel = (e) => {
      e.preventDefault();
      done(reject, new ApiError(401, "unauthorized", "no API token given: use the Token button to enter one"));
    };
    const onClear = () => {
      setToken("");
      input.value = "";
      input.focus();
    };
    form.addEventListener("submit", onSubmit);
    cancel.addEventListener("click", onCancel);
    clear.addEventListener("click", onClear);
    dialog.addEventListener("cancel", onCancel);
    dialog.showModal();
    input.focus();
  });
  return asking;
}

/**
 * GET `path` with `params`; resolves to the parsed JSON (or text for non-JSON answers), or
 * with `blob: true` to the body as a Blob (a file to download: a plain link could not
 * send the token). `signal` aborts it when the page that asked is left.
 */
export async function get(path, params, { signal, blob = false } = {}) {
  const url = path + query(params);
  for (let attempt = 0; ; attempt++) {
    const sent = token();
    const headers = { Accept: blob ? "*/*" : "application/json" };
    if (sent) headers.Authorization = `Bearer ${sent}`;
    let resp;
    try {
      resp = await fetch(url, { headers, signal, cache: "no-store" });
    } catch (e) {
      if (e.name === "AbortError") throw e;
      throw new ApiError(0, "network", `GET ${path}: cannot reach the server (${e.message}); is skymeter running?`);
    }
    if (resp.status === 401 && attempt < 5) {
      const err = await errorOf(resp, `GET ${path}`);
      if (token() !== sent) continue; // another call already got a new token
      if (sent) setToken("");
      await askToken(
        sent
          ? `The saved token was refused (${err.message.replace(/^GET [^:]*: /, "")}). Enter a current one.`
          : "This server needs an API token to show its data."
      );
      continue;
    }
    if (!resp.ok) throw await errorOf(resp, `GET ${path}`);
    if (blob) return resp.blob();
    const ct = resp.headers.get("content-type") || "";
    return ct.includes("json") ? resp.json() : resp.text();
  }
}

/**
 * Saves `blob` as a file named `name`, through a temporary object URL: the browser's
 * ordinary download, with no page of its own.
 */
export function saveBlob(blob, name) {
  const href = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = href;
  a.download = name;
  a.hidden = true;
  document.body.appendChild(a);
  a.click();
  a.remove();
  // The download has started from the URL; keep it a moment for slow browsers.
  setTimeout(() => URL.revokeObjectURL(href), 60000);
}

/** A resource key as one path segment (`aws/1/us-east-1/i-1` → `aws%2F1%2Fus-east-1%2Fi-1`). */
export const keyPath = (key) => `/api/v1/resources/${encodeURIComponent(key)}`;
