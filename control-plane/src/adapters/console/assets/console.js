// Vigil console: ages in the reader's clock, live regions over server-sent events, charts
// (uPlot), and the messages of htmx requests (an approval's refusal says why).
"use strict";

function age(ms) {
  const d = (Date.now() - ms) / 1000;
  const s = Math.abs(d);
  const text = s < 60 ? `${Math.round(s)} s`
    : s < 3600 ? `${Math.round(s / 60)} min`
    : s < 86400 ? `${(s / 3600).toFixed(1)} h`
    : `${Math.round(s / 86400)} d`;
  return d >= 0 ? `${text} ago` : `in ${text}`;
}

function ages(root) {
  for (const t of root.querySelectorAll("time[data-ms]")) {
    t.dataset.age = age(Number(t.dataset.ms));
  }
}

function flash(text, bad) {
  const f = document.getElementById("flash");
  if (!f) return;
  f.textContent = text;
  f.className = bad ? "flash bad" : "flash good";
}

function drawCharts(root) {
  if (typeof uPlot === "undefined") return;
  for (const fig of root.querySelectorAll("figure[data-chart]:not(.drawn)")) {
    const c = JSON.parse(fig.dataset.chart);
    const colors = ["#c0392b", "#2471a3", "#7d3c98", "#1e8449", "#b9770e"];
    const series = [{}].concat(c.series.map((s, i) => ({
      label: s.label, stroke: colors[i % colors.length], width: 1.5,
      dash: s.label === "baseline median" ? [4, 4] : undefined,
    })));
    const marker = {
      hooks: {
        draw: [u => {
          const x = u.valToPos(c.marker, "x", true);
          const ctx = u.ctx;
          ctx.save();
          ctx.strokeStyle = "#888";
          ctx.setLineDash([2, 3]);
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
          ctx.restore();
        }],
      },
    };
    const width = Math.max(260, fig.clientWidth || 360);
    charts.set(fig, new uPlot({ width, height: 150, series, plugins: [marker], legend: { show: true } },
      [c.x].concat(c.series.map(s => s.values)), fig));
    fig.classList.add("drawn");
  }
}

// Each drawn chart's uPlot, destroyed before its region is replaced (uPlot keeps listeners).
const charts = new Map();

function dropCharts(root) {
  for (const fig of root.querySelectorAll("figure.drawn")) {
    const plot = charts.get(fig);
    if (plot) plot.destroy();
    charts.delete(fig);
  }
}

// A stream that fails may mean the sign-in ended: ask, and go to the sign-in if so.
async function checkSignedIn() {
  try {
    const r = await fetch("/api/v1/whoami", { credentials: "same-origin" });
    if (r.status === 401) {
      location.href = "/console/login?next=" + encodeURIComponent(location.pathname + location.search);
    }
  } catch (_) { /* the control plane is away; EventSource keeps trying */ }
}

function live(region) {
  const source = new EventSource(region.dataset.live);
  source.addEventListener("changed", e => {
    dropCharts(region);
    region.innerHTML = e.data;
    region.dataset.version = e.lastEventId;
    region.dataset.updates = String(Number(region.dataset.updates || 0) + 1);
    if (typeof htmx !== "undefined") htmx.process(region);
    ages(region);
    drawCharts(region);
  });
  source.onopen = () => region.classList.remove("stale");
  source.onerror = () => {
    region.classList.add("stale");
    checkSignedIn();
  };
}

document.addEventListener("DOMContentLoaded", () => {
  ages(document);
  drawCharts(document);
  for (const r of document.querySelectorAll("[data-live]")) live(r);
  for (const s of document.querySelectorAll("[data-autosubmit]")) {
    s.addEventListener("change", () => s.form.requestSubmit());
  }
  setInterval(() => ages(document), 10000);
  document.body.addEventListener("htmx:responseError", e => {
    let message = `${e.detail.xhr.status}`;
    try { message += ": " + JSON.parse(e.detail.xhr.responseText).error; } catch (_) { /* not JSON */ }
    flash(message, true);
    if (e.detail.xhr.status === 401) checkSignedIn();
  });
  document.body.addEventListener("htmx:afterRequest", e => {
    if (e.detail.successful && e.detail.requestConfig.verb === "post") {
      const done = { approve: "Approved", deny: "Denied" }[e.detail.pathInfo.requestPath.split("/").pop()];
      flash((done || "Done") + ": the page updates as it runs", false);
    }
  });
});
