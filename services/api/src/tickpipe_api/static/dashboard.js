// tickpipe operator dashboard: plain JS, no build step, no external libraries.
"use strict";

const TOKEN_KEY = "tickpipe.token";
const $ = (id) => document.getElementById(id);
const pnlPoints = [];
let source = null;

function token() { return sessionStorage.getItem(TOKEN_KEY); }

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${token()}`, ...(options.headers || {}) };
  return fetch(path, { ...options, headers });
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  if (cls) td.className = cls;
  return td;
}

function fillRows(tbody, rows) {
  tbody.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    tr.append(...cells);
    return tr;
  }));
}

function drawPnl() {
  const canvas = $("pnl-chart");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 24;
  ctx.clearRect(0, 0, w, h);
  if (pnlPoints.length === 0) return;
  const values = pnlPoints.map((p) => p.v);
  let lo = Math.min(0, ...values), hi = Math.max(0, ...values);
  if (hi === lo) { hi += 1; lo -= 1; }
  const t0 = pnlPoints[0].t, t1 = Math.max(pnlPoints[pnlPoints.length - 1].t, t0 + 1);
  const x = (t) => pad + ((t - t0) / (t1 - t0)) * (w - 2 * pad);
  const y = (v) => h - pad - ((v - lo) / (hi - lo)) * (h - 2 * pad);
  ctx.strokeStyle = "#ccd"; ctx.beginPath(); ctx.moveTo(pad, y(0)); ctx.lineTo(w - pad, y(0)); ctx.stroke();
  ctx.strokeStyle = values[values.length - 1] >= 0 ? "#1a7f37" : "#a40e26";
  ctx.lineWidth = 2; ctx.beginPath();
  pnlPoints.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p.v)) : ctx.moveTo(x(p.t), y(p.v))));
  if (pnlPoints.length === 1) ctx.lineTo(w - pad, y(pnlPoints[0].v));
  ctx.stroke();
  ctx.fillStyle = "#667"; ctx.font = "11px sans-serif";
  ctx.fillText(hi.toFixed(2), 2, pad - 6); ctx.fillText(lo.toFixed(2), 2, h - 6);
}

function render(s) {
  if (s.pnl) {
    $("pnl-net").textContent = s.pnl.net;
    $("pnl-detail").textContent = `realized ${s.pnl.realized} · unrealized ${s.pnl.unrealized} · fees ${s.pnl.fees}`;
    const v = Number(s.pnl.net), last = pnlPoints[pnlPoints.length - 1];
    if (!last || last.v !== v) pnlPoints.push({ t: Date.now(), v });
    if (pnlPoints.length > 2000) pnlPoints.shift();
    drawPnl();
  }
  fillRows($("positions"), s.positions.map((p) => [
    cell(p.symbol), cell(p.data.qty), cell(p.data.avg_price), cell(p.data.realized), cell(p.data.unrealized)]));
  fillRows($("signals"), Object.entries(s.signals).map(([k, g]) => [
    cell(k), cell({ 1: "long", 0: "flat", "-1": "short" }[g.direction], { 1: "long", "-1": "short" }[g.direction]),
    cell(Number(g.probability).toFixed(4)), cell(g.price), cell(`${g.strategy_id}/${g.model_version}`)]));
  fillRows($("orders"), s.open_orders.map((o) => [
    cell(o.client_order_id.slice(0, 12)), cell(`${o.exchange}:${o.symbol}`), cell(o.side), cell(o.quantity), cell(o.status)]));
  fillRows($("fills"), s.fills.map((f) => [
    cell(f.client_order_id.slice(0, 12)), cell(`${f.exchange}:${f.symbol}`), cell(f.side), cell(f.last_qty),
    cell(f.last_price), cell(f.fee)]));
  $("rejections").replaceChildren(...Object.entries(s.risk.rejections_by_reason).map(([reason, n]) => {
    const li = document.createElement("li");
    li.dataset.reason = reason;
    li.textContent = `${reason}: ${n}`;
    return li;
  }));
  const kill = $("kill-state");
  kill.textContent = s.risk.kill_switch ? "ENGAGED — new orders rejected" : "released";
  kill.className = s.risk.kill_switch ? "engaged" : "released";
  const paused = (s.risk.controls && s.risk.controls.paused) || [];
  $("paused").textContent = paused.length ? paused.join(", ") : "none";
  fillRows($("health"), s.health.services.map((h) => [
    cell(h.service), cell(h.ready ? "ready" : (h.error || "not ready"), h.ready ? "long" : "short"),
    cell(Object.entries(h.lag).map(([t, n]) => `${t}: ${n}`).join(", ") || "0"),
    cell(h.e2e_latency_s == null ? "–" : `${(h.e2e_latency_s * 1000).toFixed(2)} ms`)]));
}

function connect() {
  // EventSource cannot send headers: the token rides in the query string (see the README).
  source = new EventSource(`/dashboard/stream?access_token=${encodeURIComponent(token())}`);
  source.addEventListener("state", (e) => {
    $("conn").textContent = "live"; $("conn").className = "badge on";
    render(JSON.parse(e.data));
  });
  source.onerror = () => { $("conn").textContent = "reconnecting"; $("conn").className = "badge off"; };
}

async function login(value) {
  sessionStorage.setItem(TOKEN_KEY, value.trim());
  const r = await api("/pnl");
  if (r.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    $("login-error").textContent = "That token was not accepted.";
    return;
  }
  $("login").hidden = true; $("dashboard").hidden = false; $("logout").hidden = false;
  const claims = JSON.parse(atob(value.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
  $("who").textContent = `${claims.sub} (${claims.role})`;
  connect();
}

function confirmKill(engage) {
  const dialog = $("confirm");
  $("confirm-text").textContent = engage ? "Stop all new orders now?" : "Resume trading (release the kill switch)?";
  dialog.returnValue = "";
  dialog.onclose = async () => {
    if (dialog.returnValue !== "confirm") return;
    const r = await api("/control/kill-switch", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ engaged: engage, reason: $("confirm-reason").value || null }),
    });
    const body = await r.json().catch(() => ({}));
    $("control-result").textContent = r.ok
      ? `${body.action} sent (${body.event_id}) by ${body.issued_by}`
      : `refused: ${r.status} ${body.detail || ""}`;
  };
  dialog.showModal();
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", (e) => { e.preventDefault(); login($("token").value); });
  $("kill-button").addEventListener("click", () => confirmKill(true));
  $("resume-button").addEventListener("click", () => confirmKill(false));
  $("logout").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY); if (source) source.close(); location.reload();
  });
  if (token()) login(token());
});
