#include "scheduler/http/dashboard_page.h"

namespace kiln::http {
namespace {

// Everything the page needs is in this one string: the scheduler may run
// where no other host is reachable, and a dashboard must not leak its
// viewers to a CDN. Strings from the API are always escaped before they
// reach innerHTML (esc()), since worker, client and job names come from peers.
constexpr std::string_view kPage = R"KILN(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kiln farm</title>
<style>
  :root { --bg:#f6f7f9; --card:#fff; --ink:#1d2330; --dim:#6b7385; --line:#e3e6ec;
          --ok:#2e9d5b; --warn:#d48a00; --bad:#c8372d; --bar:#4b7bec; }
  * { box-sizing: border-box; }
  body { margin:0; font:14px/1.4 system-ui, sans-serif; background:var(--bg); color:var(--ink); }
  header { display:flex; align-items:baseline; gap:16px; padding:12px 20px; background:#1d2330; color:#fff; }
  header h1 { margin:0; font-size:18px; }
  header .meta { color:#b8bfcc; font-size:12px; }
  header #status { margin-left:auto; font-size:12px; }
  header #status.error { color:#ff8a80; }
  main { display:grid; grid-template-columns: 1fr 1fr; gap:16px; padding:16px 20px; }
  section { background:var(--card); border:1px solid var(--line); border-radius:6px; padding:10px 14px; overflow:auto; }
  section.wide { grid-column: 1 / -1; }
  h2 { margin:2px 0 8px; font-size:15px; }
  table { border-collapse:collapse; width:100%; }
  th, td { text-align:left; padding:4px 8px; border-bottom:1px solid var(--line); white-space:nowrap; }
  th { color:var(--dim); font-weight:600; font-size:12px; }
  td.num, th.num { text-align:right; font-variant-numeric: tabular-nums; }
  .tiles { display:flex; flex-wrap:wrap; gap:10px; }
  .tile { background:var(--bg); border-radius:4px; padding:6px 12px; min-width:92px; }
  .tile b { display:block; font-size:20px; }
  .tile span { color:var(--dim); font-size:12px; }
  .badge { display:inline-block; padding:0 6px; border-radius:8px; font-size:12px; color:#fff; background:var(--dim); }
  .badge.ok, .badge.succeeded, .badge.active { background:var(--ok); }
  .badge.low-disk, .badge.stale, .badge.paused, .badge.draining, .badge.queued, .badge.assigned { background:var(--warn); }
  .badge.unhealthy, .badge.failed, .badge.disconnected, .badge.urgent { background:var(--bad); }
  .badge.running { background:var(--bar); }
  .bar { position:relative; width:120px; height:14px; background:var(--line); border-radius:3px; display:inline-block; vertical-align:middle; }
  .bar > i { position:absolute; left:0; top:0; bottom:0; background:var(--bar); border-radius:3px; }
  .bar.disk > i { background:var(--ok); }
  .bar.disk.low > i { background:var(--bad); }
  .bar + small { margin-left:6px; color:var(--dim); }
  .wanted { font-weight:700; }
  .need-more { color:var(--bad); }
  .enough { color:var(--ok); }
  .warnings { margin:8px 0 0; padding:6px 10px 6px 26px; background:#fff4e0; border:1px solid #f0c36d; border-radius:4px; }
  .warnings:empty { display:none; }
  tr.selectable { cursor:pointer; }
  tr.selected { background:#e8eefc; }
  #log { background:#10131a; color:#d7dae0; font:12px/1.35 ui-monospace, monospace; padding:10px; height:300px;
         overflow:auto; white-space:pre-wrap; margin:0; border-radius:4px; }
  .empty { color:var(--dim); font-style:italic; }
  .charts { display:grid; grid-template-columns: repeat(3, 1fr); gap:12px; }
  .chart h3 { margin:0 0 4px; font-size:13px; font-weight:600; }
  .chart svg { width:100%; height:120px; background:var(--bg); border-radius:4px; }
  .chart .legend { font-size:11px; color:var(--dim); }
</style>
</head>
<body>
<header>
  <h1>kiln farm</h1>
  <span class="meta" id="scheduler"></span>
  <span id="status">loading…</span>
</header>
<main>
  <section class="wide"><h2>Jobs</h2><div class="tiles" id="tiles"></div></section>
  <section class="wide"><h2>Pools</h2><div id="pools"></div><ul class="warnings" id="low-disk"></ul></section>
  <section class="wide"><h2>Workers</h2><div id="workers"></div></section>
  <section class="wide"><h2>Last hours <span class="meta" id="history-meta"></span></h2><div class="charts" id="charts"></div></section>
  <section><h2>Queue</h2><div id="queue"></div></section>
  <section><h2>Running</h2><div id="running"></div></section>
  <section class="wide"><h2>Log <span class="meta" id="log-title"></span></h2><pre id="log"></pre></section>
  <section><h2>Recently ended</h2><div id="recent"></div></section>
  <section><h2>Clients</h2><div id="clients"></div></section>
</main>
<script>
"use strict";
const REFRESH_MS = 2000, LOG_POLL_MS = 1000;

function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g,
      c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}
function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let i = 0; n = Number(n) || 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return i === 0 ? n + " B" : n.toFixed(1) + " " + units[i];
}
function secs(s) {
  if (s === null || s === undefined) return "∞";
  s = Math.round(s);
  if (s < 120) return s + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
}
function pct(r) { return r === null || r === undefined ? "–" : Math.round(r * 100) + "%"; }
function bar(ratio, cls, label) {
  const w = ratio === null || ratio === undefined ? 0 : Math.max(0, Math.min(1, ratio)) * 100;
  return `<span class="bar ${cls}"><i style="width:${w.toFixed(1)}%"></i></span><small>${esc(label)}</small>`;
}
function badge(text) { return `<span class="badge ${esc(text)}">${esc(text)}</span>`; }
function table(headers, rows, emptyText) {
  if (!rows.length) return `<p class="empty">${esc(emptyText)}</p>`;
  const head = headers.map(h => h.startsWith("#") ? `<th class="num">${esc(h.slice(1))}</th>` : `<th>${esc(h)}</th>`).join("");
  return `<table><thead><tr>${head}</tr></thead><tbody>${rows.join("")}</tbody></table>`;
}
function ago(ms, now) { return ms > 0 ? secs((now - ms) / 1000) : "–"; }

let selectedJob = null;   // the job whose log is shown
let userSelected = false; // once the user picks a job, keep it
const log = {job: null, offset: 0, complete: false, timer: null};

function renderPools(stats) {
  const rows = stats.pools.map(p => {
    const have = p.workers.accepting;
    const advice = p.workers_wanted > have
        ? `<span class="need-more">add ${p.workers_wanted - have}</span>`
        : `<span class="enough">enough</span>`;
    return `<tr><td>${esc(p.name)}</td>
      <td class="num">${p.queued.total} <small>(${p.queued.urgent} urgent)</small></td>
      <td class="num">${p.running_jobs}</td>
      <td class="num">${secs(p.backlog_seconds)}</td>
      <td class="num">${secs(p.expected_wait_seconds)} / ${secs(p.target_wait_seconds)}</td>
      <td class="num">${p.workers.accepting} / ${p.workers.connected} / ${p.workers.known}</td>
      <td class="num">${p.workers.paused} / ${p.workers.draining}</td>
      <td class="num">${p.capacity_slots}</td>
      <td>${bar(p.cache_hit_rate, "", pct(p.cache_hit_rate))}</td>
      <td class="num"><span class="wanted" id="wanted-${esc(p.name)}">${p.workers_wanted}</span> ${advice}</td></tr>`;
  });
  document.getElementById("pools").innerHTML = table(
      ["pool", "#queued", "#running", "#backlog", "#wait / target", "#workers accepting / connected / known",
       "#paused / draining", "#slots", "cache hits", "#workers wanted"], rows, "no pools yet");
  const warnings = [];
  for (const p of stats.pools) for (const w of p.low_disk_warnings) warnings.push(`<li>${esc(p.name)}: ${esc(w)}</li>`);
  document.getElementById("low-disk").innerHTML = warnings.join("");
}

function renderWorkers(stats) {
  const now = stats.scheduler.now_ms;
  const rows = stats.workers.map(w => {
    const used = w.disk_free_ratio === null ? null : 1 - w.disk_free_ratio;
    return `<tr><td>${esc(w.name)}</td><td>${esc(w.pool)}</td><td>${badge(w.state)}</td><td>${badge(w.health)}</td>
      <td class="num">${w.running_jobs} / ${w.capacity}</td>
      <td>${w.disk_total_bytes ? bar(used, "disk" + (w.low_disk ? " low" : ""), bytes(w.disk_free_bytes) + " free")
                                : `<span class="empty">not reported</span>`}</td>
      <td>${bar(w.cache_hit_rate, "",
          w.cache_hit_rate === null ? "no lookups" : pct(w.cache_hit_rate) + " of " + (w.cache_hits + w.cache_misses))}</td>
      <td class="num">${w.store_items}</td><td class="num">${bytes(w.store_bytes)}</td>
      <td class="num">${ago(w.last_heartbeat_ms, now)}</td></tr>`;
  });
  document.getElementById("workers").innerHTML = table(
      ["worker", "pool", "state", "health", "#running", "disk used", "cache hits", "#store items", "#store",
       "#heartbeat"], rows, "no workers have registered");
}

function renderClients(stats) {
  const rows = stats.clients.map(c => `<tr><td>${esc(c.name)}</td><td class="num">${c.submitted}</td>
      <td class="num">${c.waiting}</td><td class="num">${c.running}</td><td>${bar(c.share, "", pct(c.share))}</td></tr>`);
  document.getElementById("clients").innerHTML =
      table(["client", "#submitted", "#waiting", "#running", "share"], rows, "no clients yet");
}

function renderTiles(stats) {
  const t = stats.totals;
  const states = ["queued", "assigned", "running", "succeeded", "failed", "cancelled"];
  const tiles = states.map(s => [s, stats.jobs_by_state[s] ?? 0]);
  tiles.push(["backlog", secs(t.backlog_seconds)], ["workers wanted", t.workers_wanted],
             ["workers accepting", t.workers_accepting]);
  document.getElementById("tiles").innerHTML =
      tiles.map(([label, n]) => `<div class="tile"><b>${esc(n)}</b><span>${esc(label)}</span></div>`).join("");
}

function jobRow(j, now, columns) {
  const cells = columns.map(c => {
    switch (c) {
      case "id": return `<td>${esc(j.id)}</td>`;
      case "state": return `<td>${badge(j.state)}</td>`;
      case "urgent": return `<td>${j.urgent ? badge("urgent") : ""}</td>`;
      case "waited": return `<td class="num">${ago(j.submitted_at_ms, now)}</td>`;
      case "elapsed": return `<td class="num">${ago(j.started_at_ms, now)}</td>`;
      case "expected": return `<td class="num">${j.expected_seconds === null ? "–" : secs(j.expected_seconds)}</td>`;
      case "error": return `<td>${esc(j.error)}</td>`;
      default: return `<td>${esc(j[c])}</td>`;
    }
  });
  const cls = j.id === selectedJob ? "selectable selected" : "selectable";
  return `<tr class="${cls}" data-job="${esc(j.id)}">${cells.join("")}</tr>`;
}

function renderJobs(active, recent, now) {
  const queued = active.jobs.filter(j => j.state === "queued");
  const running = active.jobs.filter(j => j.state !== "queued");
  document.getElementById("queue").innerHTML = table(["job", "pool", "client", "", "#waiting", "#expected"],
      queued.map(j => jobRow(j, now, ["id", "pool", "client", "urgent", "waited", "expected"])), "the queue is empty");
  document.getElementById("running").innerHTML = table(["job", "state", "worker", "client", "#elapsed", "#expected"],
      running.map(j => jobRow(j, now, ["id", "state", "worker", "client", "elapsed", "expected"])), "nothing is running");
  document.getElementById("recent").innerHTML = table(["job", "state", "worker", "client", "error"],
      recent.jobs.map(j => jobRow(j, now, ["id", "state", "worker", "client", "error"])), "no job has ended yet");
  if (!userSelected && running.length && !running.some(j => j.id === selectedJob)) follow(running[0].id, false);
}

function follow(jobId, byUser) {
  userSelected = userSelected || byUser;
  selectedJob = jobId;
  for (const tr of document.querySelectorAll("tr[data-job]")) tr.classList.toggle("selected", tr.dataset.job === jobId);
  if (log.job === jobId) return;
  clearTimeout(log.timer);
  Object.assign(log, {job: jobId, offset: 0, complete: false});
  document.getElementById("log").textContent = "";
  document.getElementById("log-title").textContent = jobId;
  pollLog();
}

async function pollLog() {
  const job = log.job;
  if (!job || log.complete) return;
  let more = false;
  try {
    const res = await fetch(`/v1/jobs/${encodeURIComponent(job)}/log?offset=${log.offset}`, authHeaders());
    if (job !== log.job) return;  // the user switched jobs meanwhile
    if (!res.ok) {
      const body = await res.json().catch(() => ({}));
      document.getElementById("log-title").textContent = `${job}: ${body.error ? body.error.message : res.status}`;
    } else {
      const text = await res.text();
      if (job !== log.job) return;
      const pre = document.getElementById("log");
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.textContent += text;
      if (atBottom) pre.scrollTop = pre.scrollHeight;
      log.offset = Number(res.headers.get("X-Kiln-Log-Next-Offset")) || log.offset + text.length;
      log.complete = res.headers.get("X-Kiln-Log-Complete") === "true";
      document.getElementById("log-title").textContent =
          `${job} (${res.headers.get("X-Kiln-Job-State") || "?"}${log.complete ? ", complete" : ""})`;
      more = text.length > 0;
    }
  } catch (e) {
    document.getElementById("log-title").textContent = `${job}: ${e}`;
  }
  if (!log.complete && job === log.job) log.timer = setTimeout(pollLog, more ? 0 : LOG_POLL_MS);
}

// A scheduler with --http-token-file wants the token: open the dashboard at
// /#token=TOKEN once; it is kept for this tab only.
(function keepToken() {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    sessionStorage.setItem("kiln-token", decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname);
  }
})();
function authHeaders() {
  const token = sessionStorage.getItem("kiln-token");
  return token ? {headers: {"Authorization": `Bearer ${token}`}} : {};
}

async function getJson(url) {
  const res = await fetch(url, authHeaders());
  if (res.status === 401) throw new Error(`${url}: this scheduler wants its HTTP token: open /#token=TOKEN`);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json();
}

// ---- the last hours: /v1/stats/history as small line charts ----
const COLORS = ["#4b7bec", "#2e9d5b", "#d48a00", "#c8372d", "#8854d0", "#0fb9b1"];
function chart(id, title, series, format) {
  const W = 300, H = 120, P = 4;
  const all = series.flatMap(s => s.points.filter(p => p[1] !== null));
  if (!all.length) {
    return `<div class="chart" id="${id}"><h3>${esc(title)}</h3><p class="empty">no data yet</p></div>`;
  }
  const t0 = Math.min(...all.map(p => p[0])), t1 = Math.max(...all.map(p => p[0]));
  const top = Math.max(...all.map(p => p[1]), 1e-9);
  const x = t => P + (t1 > t0 ? (t - t0) / (t1 - t0) : 1) * (W - 2 * P);
  const y = v => H - P - (v / top) * (H - 2 * P);
  const lines = series.map((s, i) => {
    const pts = s.points.filter(p => p[1] !== null).map(p => `${x(p[0]).toFixed(1)},${y(p[1]).toFixed(1)}`);
    if (!pts.length) return "";
    const [lx, ly] = pts[pts.length - 1].split(",");
    // A dot at the newest point, so that a series of one point shows too.
    return `<polyline fill="none" stroke="${COLORS[i % COLORS.length]}" stroke-width="1.5" ` +
           `data-series="${esc(s.name)}" points="${pts.join(" ")}"></polyline>` +
           `<circle cx="${lx}" cy="${ly}" r="2.5" fill="${COLORS[i % COLORS.length]}"></circle>`;
  }).join("");
  const legend = series.map((s, i) => {
    const last = [...s.points].reverse().find(p => p[1] !== null);
    return `<span style="color:${COLORS[i % COLORS.length]}">■</span> ${esc(s.name)} ${last ? esc(format(last[1])) : "–"}`;
  }).join(" &nbsp; ");
  return `<div class="chart" id="${id}"><h3>${esc(title)}</h3>` +
         `<svg viewBox="0 0 ${W} ${H}" preserveAspectRatio="none">${lines}</svg>` +
         `<div class="legend">${legend} · max ${esc(format(top))}</div></div>`;
}

function renderHistory(h) {
  const pts = h.points;
  const pools = [...new Set(pts.flatMap(p => p.pools.map(q => q.name)))].sort();
  const per = (field) => pools.map(name => ({name, points: pts.map(p => {
    const q = p.pools.find(q => q.name === name);
    return [p.time_ms, q ? q[field] : null];
  })}));
  const sum = (field) => pts.map(p => [p.time_ms, p.pools.reduce((a, q) => a + (q[field] || 0), 0)]);
  const fixed = n => (Math.round(n * 10) / 10).toString();
  document.getElementById("history-meta").textContent =
      `· ${pts.length} points, one every ${secs(h.interval_seconds)}`;
  document.getElementById("charts").innerHTML = [
    chart("chart-queued", "queue depth", per("queued"), fixed),
    chart("chart-throughput", "jobs per minute",
          [{name: "started", points: sum("started_per_minute")}, {name: "finished", points: sum("finished_per_minute")}], fixed),
    chart("chart-wait", "p95 queue wait", per("wait_p95_seconds"), secs),
    chart("chart-cache", "cache hit rate", per("cache_hit_rate"), pct),
    chart("chart-workers", "workers connected", [{name: "workers", points: pts.map(p => [p.time_ms, p.workers_connected])}], fixed),
    chart("chart-disk", "free disk", [{name: "free", points: pts.map(p => [p.time_ms, p.disk_free_bytes])}], bytes),
  ].join("");
}

async function refresh() {
  try {
    const [stats, active, recent] = await Promise.all([
      getJson("/v1/stats"),
      getJson("/v1/jobs?state=queued,assigned,running&limit=0"),
      getJson("/v1/jobs?state=succeeded,failed,cancelled&limit=20"),
    ]);
    const s = stats.scheduler;
    document.getElementById("scheduler").textContent = `scheduler ${s.id} · placement ${s.placement_policy}`;
    renderTiles(stats);
    renderPools(stats);
    renderWorkers(stats);
    renderClients(stats);
    renderJobs(active, recent, s.now_ms);
    try {
      renderHistory(await getJson("/v1/stats/history"));
    } catch (e) {
      document.getElementById("history-meta").textContent = e.message;
    }
    const status = document.getElementById("status");
    status.className = "";
    status.textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    const status = document.getElementById("status");
    status.className = "error";
    status.textContent = "cannot reach the scheduler: " + e.message;
  }
}

document.addEventListener("click", e => {
  const tr = e.target.closest("tr[data-job]");
  if (tr) follow(tr.dataset.job, true);
});
refresh();
setInterval(refresh, REFRESH_MS);
</script>
</body>
</html>
)KILN";

}  // namespace

std::string_view dashboard_html() {
  return kPage;
}

}  // namespace kiln::http
