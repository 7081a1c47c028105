// The skymeter API docs page: renders the server's OpenAPI document (openapi.json, next to
// this page) with a "Try it" form per endpoint. Self-contained: no libraries, nothing
// loaded from other sites; the server's Content-Security-Policy allows only its own origin.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);

  // Builds an element; children are nodes or strings (always set as text, never as HTML).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    const flat = children.flatMap((c) => (c instanceof NodeList ? Array.from(c) : c));
    for (const c of flat.flat()) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  // Renders `backtick` spans of a description as code.
  function prose(text) {
    const p = el("p", { class: "intro" });
    String(text || "").split(/(`[^`]*`)/).forEach((part) => {
      if (part.startsWith("`") && part.endsWith("`") && part.length > 1) p.append(el("code", {}, part.slice(1, -1)));
      else p.append(part);
    });
    return p;
  }

  const refName = (ref) => decodeURIComponent(ref.split("/").pop().replace(/~1/g, "/").replace(/~0/g, "~"));
  const anchor = (s) => s.replace(/[^A-Za-z0-9_-]/g, "_");

  // A one-line description of a schema's type, with links to component schemas.
  function typeOf(s) {
    if (s === true || s === undefined) return ["any"];
    if (s === false) return ["nothing"];
    if (s.$ref) {
      const name = refName(s.$ref);
      return [el("a", { href: "#schema-" + anchor(name) }, name)];
    }
    const alts = s.anyOf || s.oneOf;
    if (alts) {
      const out = [];
      alts.forEach((a, i) => { if (i) out.push(" | "); out.push(...typeOf(a)); });
      return out;
    }
    if (s.allOf && s.allOf.length === 1) return typeOf(s.allOf[0]);
    if (s.const !== undefined) return [JSON.stringify(s.const)];
    if (s.enum) return [s.enum.map((v) => JSON.stringify(v)).join(" | ")];
    let t = Array.isArray(s.type) ? s.type.join(" | ") : s.type;
    if (t === "array" || (Array.isArray(s.type) && s.type.includes("array"))) {
      if (s.prefixItems) {
        const out = ["["];
        s.prefixItems.forEach((p, i) => { if (i) out.push(", "); out.push(...typeOf(p)); });
        out.push("]");
        return [t.replace("array", ""), ...out].filter((x) => x !== "");
      }
      return [t.replace("array", "array of "), ...typeOf(s.items)];
    }
    if ((t === "object" || !t) && s.additionalProperties && typeof s.additionalProperties === "object") {
      return ["map of ", ...typeOf(s.additionalProperties)];
    }
    if (s.format) t = (t || "") + " (" + s.format + ")";
    return [t || "object"];
  }

  function propertyTable(schema) {
    const props = schema.properties || {};
    const required = new Set(schema.required || []);
    const names = Object.keys(props);
    if (!names.length) return null;
    return el("table", {},
      el("tr", {}, el("th", {}, "field"), el("th", {}, "type"), el("th", {}, "description")),
      names.map((n) => el("tr", {},
        el("td", {}, el("code", {}, n), required.has(n) ? el("span", { class: "req" }, " required") : null),
        el("td", { class: "mono" }, typeOf(props[n])),
        el("td", {}, props[n].description || ""))));
  }

  function renderSchema(name, s) {
    const box = el("div", { class: "schema", id: "schema-" + anchor(name) }, el("h3", {}, name));
    if (s.description) box.append(prose(s.description));
    const table = propertyTable(s);
    if (table) box.append(table);
    for (const key of ["oneOf", "anyOf", "allOf"]) {
      (s[key] || []).forEach((alt, i) => {
        const t = propertyTable(alt);
        box.append(el("p", { class: "muted" }, key + " #" + (i + 1) + ": ", typeOf(alt), alt.description ? " — " + alt.description : ""));
        if (t) box.append(t);
      });
    }
    if (!table && !s.oneOf && !s.anyOf && !s.allOf) box.append(el("p", { class: "mono" }, typeOf(s)));
    return box;
  }

  function renderOperation(path, method, op) {
    const id = "op-" + anchor(op.operationId || method + path);
    const scope = op["x-required-scope"];
    const params = op.parameters || [];
    const inputs = {};
    const body = el("div", { class: "body" });
    if (op.description) body.append(prose(op.description));
    if (params.length) {
      body.append(el("table", {},
        el("tr", {}, el("th", {}, "parameter"), el("th", {}, "in"), el("th", {}, "description"), el("th", {}, "value")),
        params.map((p) => {
          inputs[p.name] = el("input", { "aria-label": p.name, placeholder: p.schema && p.schema.enum ? p.schema.enum.join("|") : "" });
          return el("tr", {},
            el("td", {}, el("code", {}, p.name), p.required ? el("span", { class: "req" }, " required") : null),
            el("td", {}, p.in),
            el("td", {}, prose(p.description).childNodes),
            el("td", {}, inputs[p.name]));
        })));
    }
    let bodyInput = null;
    const rb = op.requestBody;
    if (rb) {
      const media = Object.values(rb.content || {})[0] || {};
      body.append(el("p", {}, el("strong", {}, "Request body: "), typeOf(media.schema || {}), rb.description ? " — " + rb.description : ""));
      bodyInput = el("textarea", { "aria-label": "request body", spellcheck: "false" }, "{}");
      body.append(bodyInput);
    }
    body.append(el("table", {},
      el("tr", {}, el("th", {}, "status"), el("th", {}, "meaning"), el("th", {}, "body")),
      Object.entries(op.responses || {}).map(([code, r]) => {
        const media = r.content ? Object.entries(r.content)[0] : null;
        return el("tr", {}, el("td", { class: "mono" }, code), el("td", {}, prose(r.description).childNodes),
          el("td", { class: "mono" }, media ? [media[0], " ", ...typeOf(media[1].schema || {})] : ""));
      })));
    const out = el("pre", { hidden: true });
    const send = async () => {
      let url = path;
      const query = new URLSearchParams();
      for (const p of params) {
        const v = inputs[p.name].value;
        if (!v) continue;
        if (p.in === "path") url = url.replace("{" + p.name + "}", encodeURIComponent(v));
        else query.append(p.name, v);
      }
      const qs = query.toString();
      const headers = {};
      const token = $("token").value.trim();
      if (token) headers.Authorization = "Bearer " + token;
      const init = { method: method.toUpperCase(), headers };
      if (bodyInput) { headers["Content-Type"] = "application/json"; init.body = bodyInput.value; }
      out.hidden = false;
      out.textContent = init.method + " " + url + (qs ? "?" + qs : "") + " …";
      try {
        // Same origin only: the page is served by the API it documents.
        const resp = await fetch(url.replace(/^\//, "../") + (qs ? "?" + qs : ""), init);
        const text = await resp.text();
        let shown = text;
        try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* not JSON */ }
        out.textContent = resp.status + " " + resp.statusText + "\n\n" + shown;
      } catch (e) {
        out.textContent = "request failed: " + e;
      }
    };
    body.append(el("p", {}, el("button", { type: "button", onclick: send }, "Try it")), out);
    return el("details", { class: "op", id },
      el("summary", {},
        el("span", { class: "method " + method }, method.toUpperCase()),
        el("span", { class: "path" }, path),
        el("span", { class: "summary" }, op.summary || ""),
        el("span", { class: "scope" }, scope ? "scope: " + scope : "public")),
      body);
  }

  function render(doc) {
    $("title").textContent = doc.info.title;
    $("version").textContent = "version " + doc.info.version + " · OpenAPI " + doc.openapi;
    document.title = doc.info.title;
    const main = $("main");
    const nav = $("nav");
    main.replaceChildren(prose(doc.info.description));
    nav.replaceChildren();
    const tags = (doc.tags || []).map((t) => t.name);
    const byTag = new Map(tags.map((t) => [t, []]));
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item)) {
        const tag = (op.tags || ["other"])[0];
        if (!byTag.has(tag)) byTag.set(tag, []);
        byTag.get(tag).push([path, method, op]);
      }
    }
    for (const [tag, ops] of byTag) {
      if (!ops.length) continue;
      const info = (doc.tags || []).find((t) => t.name === tag);
      main.append(el("h2", { id: "tag-" + anchor(tag) }, tag));
      if (info && info.description) main.append(prose(info.description));
      nav.append(el("h3", {}, tag));
      for (const [path, method, op] of ops) {
        const section = renderOperation(path, method, op);
        main.append(section);
        nav.append(el("a", { href: "#" + section.id, onclick: () => { section.open = true; } }, method.toUpperCase() + " " + path));
      }
    }
    const schemas = (doc.components && doc.components.schemas) || {};
    main.append(el("h2", { id: "schemas" }, "Schemas"));
    nav.append(el("h3", {}, "schemas"));
    for (const name of Object.keys(schemas).sort()) {
      main.append(renderSchema(name, schemas[name]));
      nav.append(el("a", { href: "#schema-" + anchor(name) }, name));
    }
    if (location.hash) {
      const target = document.getElementById(location.hash.slice(1));
      if (target) { if (target.tagName === "DETAILS") target.open = true; target.scrollIntoView(); }
    }
  }

  $("token").value = sessionStorage.getItem("skymeter-token") || "";
  $("token").addEventListener("change", () => sessionStorage.setItem("skymeter-token", $("token").value));
  fetch("openapi.json")
    .then((r) => { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
    .then(render)
    .catch((e) => { $("status").textContent = "Could not load openapi.json: " + e; });
})();
