// A small SVG line chart: up to a few series over time, y axis from zero with round
// ticks, x axis in UTC, gaps where buckets are missing, and a hover cursor that shows the
// values at the nearest time. It redraws itself when its box changes width.
//
// Each series' path carries `data-series` and `data-points` (how many points it drew),
// which is what the browser tests check against the API.

import { h, s, replace } from "./dom.js";

const HEIGHT = 220;
const M = { top: 10, right: 14, bottom: 24 };
const MIN = 60e3, HOUR = 3600e3, DAY = 86400e3;
const X_STEPS = [MIN, 2 * MIN, 5 * MIN, 10 * MIN, 15 * MIN, 30 * MIN, HOUR, 2 * HOUR, 3 * HOUR,
  6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY];

/** About `count` round tick values covering [lo, hi]. */
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((st) => st >= raw) || 10 * mag;
  const start = Math.floor(lo / step) * step;
  const ticks = [];
  for (let v = start; v <= hi + step * 1e-9; v += step) ticks.push(Math.round(v / step) * step);
  if (ticks[ticks.length - 1] < hi) ticks.push(ticks[ticks.length - 1] + step);
  return ticks;
}

const pad2 = (n) => String(n).padStart(2, "0");
/** A tick's label: the date at midnight when the axis spans days, else the time of day. */
function timeLabel(t, stepMs, spanMs) {
  const d = new Date(t);
  if (stepMs >= DAY || (spanMs > DAY && t % DAY === 0)) return `${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())}`;
  return `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}`;
}
function tipTime(t, day) {
  const iso = new Date(t).toISOString();
  return day ? iso.slice(0, 10) : `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}

/**
 * Draws into `box` (its content is replaced).
 * opts: series [{name, points: [[ms, value]]}], x0/x1 (ms), step (ms; a larger gap breaks
 * the line), format (value → text), days (x in whole days).
 */
export function lineChart(box, opts) {
  box.classList.add("chart");
  const draw = () => render(box, opts);
  draw();
  let width = box.clientWidth;
  const ro = new ResizeObserver(() => {
    if (!box.isConnected) return ro.disconnect();
    if (Math.abs(box.clientWidth - width) > 2) {
      width = box.clientWidth;
      draw();
    }
  });
  ro.observe(box);
}

function render(box, { series, x0, x1, step, format, days }) {
  const W = Math.max(box.clientWidth || 600, 240);
  const all = series.flatMap((sr) => sr.points.map((p) => p[1]));
  let lo = Math.min(0, ...all);
  let hi = Math.max(...all, 0);
  if (hi === lo) hi = lo + 1;
  const yt = niceTicks(lo, hi, 4);
  lo = Math.min(lo, yt[0]);
  hi = yt[yt.length - 1];
  const labels = yt.map((v) => format(v));
  const left = Math.max(...labels.map((l) => l.length)) * 6.4 + 12;
  const pw = W - left - M.right;
  const ph = HEIGHT - M.top - M.bottom;
  const x = (t) => left + ((t - x0) / (x1 - x0)) * pw;
  const y = (v) => M.top + ph - ((v - lo) / (hi - lo)) * ph;

  const svg = s("svg", { viewBox: `0 0 ${W} ${HEIGHT}`, role: "img", "data-chart": "" });
  const grid = s("g", { class: "grid" });
  const axis = s("g", { class: "axis" });
  yt.forEach((v, i) => {
    grid.appendChild(s("line", { x1: left, x2: left + pw, y1: y(v), y2: y(v) }));
    axis.appendChild(s("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end" }, labels[i]));
  });
  const span = x1 - x0;
  const xStep = X_STEPS.find((st) => span / st <= Math.max(2, pw / 90)) || X_STEPS[X_STEPS.length - 1];
  for (let t = Math.ceil(x0 / xStep) * xStep; t <= x1; t += xStep) {
    axis.appendChild(s("line", { class: "base", x1: x(t), x2: x(t), y1: M.top + ph, y2: M.top + ph + 4 }));
    axis.appendChild(s("text", { x: x(t), y: HEIGHT - 6, "text-anchor": "middle" }, timeLabel(t, days ? DAY : xStep, span)));
  }
  axis.appendChild(s("line", { class: "base", x1: left, x2: left + pw, y1: M.top + ph, y2: M.top + ph }));
  svg.append(grid, axis);

  const gap = step ? step * 1.5 : Infinity;
  series.forEach((sr, i) => {
    let d = "";
    let prev = null;
    for (const [t, v] of sr.points) {
      d += `${prev === null || t - prev > gap ? "M" : "L"}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      prev = t;
    }
    svg.appendChild(s("path", { class: `line s${i}`, d, "data-series": sr.name, "data-points": sr.points.length }));
  });

  // Hover: the nearest time that any series has, its values, a cursor line and dots.
  const times = [...new Set(series.flatMap((sr) => sr.points.map((p) => p[0])))].sort((a, b) => a - b);
  const byTime = series.map((sr) => new Map(sr.points));
  const cursor = s("line", { class: "cursor", y1: M.top, y2: M.top + ph, visibility: "hidden" });
  const dots = series.map((_, i) => s("circle", { class: `s${i}`, r: 3.5, visibility: "hidden" }));
  const area = s("rect", { class: "hover-area", x: left, y: M.top, width: pw, height: ph });
  svg.append(cursor, ...dots, area);
  const tip = h("div", { class: "tip", hidden: true });

  const hide = () => {
    tip.hidden = true;
    cursor.setAttribute("visibility", "hidden");
    dots.forEach((c) => c.setAttribute("visibility", "hidden"));
  };
  area.addEventListener("mouseleave", hide);
  area.addEventListener("mousemove", (ev) => {
    if (!times.length) return;
    const r = svg.getBoundingClientRect();
    const px = ((ev.clientX - r.left) / r.width) * W;
    const t = x0 + ((px - left) / pw) * (x1 - x0);
    let a = 0, b = times.length - 1;
    while (b - a > 1) {
      const m = (a + b) >> 1;
      if (times[m] < t) a = m; else b = m;
    }
    const near = Math.abs(times[a] - t) <= Math.abs(times[b] - t) ? times[a] : times[b];
    const cx = x(near);
    cursor.setAttribute("x1", cx);
    cursor.setAttribute("x2", cx);
    cursor.setAttribute("visibility", "visible");
    const rows = [h("div", { class: "muted" }, tipTime(near, days))];
    series.forEach((sr, i) => {
      const v = byTime[i].get(near);
      if (v === undefined) {
        dots[i].setAttribute("visibility", "hidden");
        return;
      }
      dots[i].setAttribute("cx", cx);
      dots[i].setAttribute("cy", y(v));
      dots[i].setAttribute("visibility", "visible");
      rows.push(h("div", { dataset: { series: sr.name } }, h("b", { class: `legend-dot s${i}` }, sr.name), " ", format(v)));
    });
    replace(tip, rows);
    tip.hidden = false;
    const scale = r.width / W;
    const tx = cx * scale;
    tip.style.left = `${tx + 12 + tip.offsetWidth > r.width ? tx - tip.offsetWidth - 12 : tx + 12}px`;
    tip.style.top = `${M.top * scale}px`;
  });

  replace(box, svg, tip);
}

/** The legend above a chart: one swatch per series. */
export function legend(names) {
  return h("div", { class: "legend" }, names.map((n, i) => h("span", { class: `s${i}` }, n)));
}
