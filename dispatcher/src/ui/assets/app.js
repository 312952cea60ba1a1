// The console's only script: draws the overview from its one live feed (GET /ui/live, SSE)
// and shows a chat task's output as it streams (GET /ui/tasks/{id}/stream). No library.
"use strict";

function el(tag, text, attrs) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function taskLink(id) {
  return el("a", id, { href: "/ui/tasks/" + encodeURIComponent(id), class: "task" });
}

function drawQueues(queues) {
  const t = el("table", undefined, { id: "queues-table" });
  const head = ["queue", "state", "waiting", "running", "delayed", "dead", "succeeded", "oldest pending ms"];
  const tr = el("tr");
  head.forEach((h) => tr.appendChild(el("th", h)));
  t.appendChild(el("thead")).appendChild(tr);
  const body = t.appendChild(el("tbody"));
  for (const q of queues) {
    const r = el("tr", undefined, { "data-queue": q.queue });
    const name = el("td");
    name.appendChild(el("a", q.queue, { href: "/ui/queues/" + q.queue }));
    r.appendChild(name);
    const state = q.paused ? "paused" : "running";
    r.appendChild(el("td", state, { class: state }));
    [q.waiting, q.pending, q.delayed, q.dead, (q.counts || {}).succeeded || 0, q.oldest_pending_ms]
      .forEach((n) => r.appendChild(el("td", n)));
    body.appendChild(r);
  }
  const box = document.getElementById("queues");
  box.replaceChildren(t);
}

function drawChart(series) {
  const w = 360, h = 110, n = series.length || 1;
  const maxN = Math.max(1, ...series.map((b) => b.finished));
  const maxL = Math.max(1, ...series.map((b) => b.p50_ms || 0));
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", w); svg.setAttribute("height", h); svg.setAttribute("id", "chart-svg");
  const bw = w / n;
  series.forEach((b, i) => {
    const bh = (b.finished / maxN) * (h - 20);
    const r = document.createElementNS(ns, "rect");
    r.setAttribute("x", i * bw + 2); r.setAttribute("y", h - bh);
    r.setAttribute("width", bw - 4); r.setAttribute("height", bh); r.setAttribute("fill", "#6ea8fe");
    const tip = document.createElementNS(ns, "title");
    tip.textContent = b.finished + " finished, p50 " + (b.p50_ms ?? "–") + " ms";
    r.appendChild(tip);
    svg.appendChild(r);
  });
  const pts = series.map((b, i) => (i * bw + bw / 2) + "," + (h - ((b.p50_ms || 0) / maxL) * (h - 20))).join(" ");
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", pts); line.setAttribute("fill", "none");
  line.setAttribute("stroke", "#d9534f"); line.setAttribute("stroke-width", "2");
  svg.appendChild(line);
  document.getElementById("chart").replaceChildren(svg);
}

function drawSnapshot(s) {
  drawQueues(s.queues);
  drawChart(s.series);
  const m = s.last_minute, lat = m.latency_ms;
  document.getElementById("rate").textContent =
    m.finished + " finished in the last minute (" + m.throughput_per_s.toFixed(2) + "/s; bars, per 5 s)" +
    (lat ? " · latency p50 " + lat.p50 + " ms, p95 " + lat.p95 + " ms (line)" : "");
  const sum = s.workers.summary;
  document.getElementById("workers").textContent =
    sum.total + " workers: " + sum.idle + " idle, " + sum.busy + " busy, " + sum.draining + " draining, " + sum.offline + " offline";
  const running = document.getElementById("running");
  const items = [];
  for (const w of s.workers.workers) {
    for (const id of w.current_tasks) {
      const li = el("li", undefined, { "data-task": id });
      li.appendChild(taskLink(id));
      li.appendChild(document.createTextNode(" on " + w.id));
      items.push(li);
    }
  }
  running.replaceChildren(...items);
}

function overview() {
  const feed = new EventSource("/ui/live");
  feed.addEventListener("snapshot", (e) => drawSnapshot(JSON.parse(e.data)));
  feed.addEventListener("finished", (e) => {
    const f = JSON.parse(e.data);
    const li = el("li", undefined, { "data-task": f.id });
    li.appendChild(taskLink(f.id));
    li.appendChild(document.createTextNode(" " + f.state));
    const list = document.getElementById("finished");
    list.prepend(li);
    while (list.children.length > 50) list.lastChild.remove();
  });
}

function output(pre) {
  const state = document.getElementById("output-state");
  const src = new EventSource(pre.dataset.stream);
  src.addEventListener("start", () => { state.textContent = "streaming…"; });
  src.addEventListener("delta", (e) => { pre.textContent += JSON.parse(e.data).text; state.textContent = "streaming…"; });
  src.addEventListener("restart", () => { pre.textContent = ""; state.textContent = "a new attempt began"; });
  src.addEventListener("done", () => { state.textContent = "done"; src.close(); });
  src.addEventListener("error", (e) => {
    if (e.data) state.textContent = "ended: " + JSON.parse(e.data).error.message;
    else state.textContent = "stream closed";
    src.close();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  if (document.getElementById("queues")) overview();
  const pre = document.getElementById("output");
  if (pre && pre.dataset.stream) output(pre);
});
