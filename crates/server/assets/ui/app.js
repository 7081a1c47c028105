// The app shell: hash routing between the pages, the health badge and the token button.
//
// Routes: #/inventory?filters, #/resource/<key>?range=6h, #/costs?range=30d,
// #/savings?filters&finding=<id>, #/rating?range=30d, #/agents.
// A page module exports `mount(root, params, arg) → {update(params), unmount()}`; moving
// within a page (a filter, a range) calls `update`, so inputs keep their focus.

import { askToken } from "./api.js";
import { errorBox, replace } from "./dom.js";
import { parseHash } from "./nav.js";
import * as inventory from "./inventory.js";
import * as resource from "./resource.js";
import * as costs from "./costs.js";
import * as savings from "./savings.js";
import * as rating from "./rating.js";
import * as agents from "./agents.js";

const PAGES = { inventory, resource, costs, savings, rating, agents };
const main = document.getElementById("main");
let current = null; // {name, arg, page}

function route() {
  const { name, arg, params } = parseHash(location.hash);
  for (const a of document.querySelectorAll("nav a")) {
    const on = a.dataset.nav === name || (name === "resource" && a.dataset.nav === "inventory");
    a.classList.toggle("active", on);
  }
  if (current && current.name === name && current.arg === arg) {
    current.page.update(params);
    return;
  }
  if (current) current.page.unmount();
  current = null;
  const mod = PAGES[name];
  if (!mod) {
    replace(main, errorBox(new Error(`No page "${name}". Go to the inventory: #/inventory`)));
    return;
  }
  main.replaceChildren();
  window.scrollTo(0, 0);
  current = { name, arg, page: mod.mount(main, params, arg) };
}

async function health() {
  const el = document.getElementById("health");
  try {
    const resp = await fetch("/health", { cache: "no-store" });
    const body = await resp.json();
    el.className = `health ${body.status === "ok" ? "ok" : "bad"}`;
    el.textContent = `${body.status} · v${body.version}`;
    el.title = `GET /health: storage ${body.storage}`;
  } catch (e) {
    el.className = "health bad";
    el.textContent = "unreachable";
    el.title = String(e);
  }
}

document.getElementById("token-button").addEventListener("click", async () => {
  try {
    await askToken("Enter the token this browser sends to the server.");
    // Show the data the new token may see.
    if (current) current.page.update(parseHash(location.hash).params, { reload: true });
  } catch {
    // Cancelled: nothing changes.
  }
});

window.addEventListener("hashchange", route);
if (!location.hash) history.replaceState(null, "", "#/inventory");
route();
health();
setInterval(health, 30000);
