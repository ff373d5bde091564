// The service graph page: cytoscape.js over /console/graph.json, refreshed every 5 s
// (styles update in place, the layout runs again only when nodes appear), and a node's blast
// radius on click. Timings are kept in window.vigilGraph for tests and benchmarks.
"use strict";

window.vigilGraph = { loads: 0 };

function elements(g) {
  return g.nodes.map(n => ({ group: "nodes", data: {
    id: n.id, label: n.id.replace(/^cgroup\//, ""), health: n.health, kind: n.kind, incidents: n.incidents,
  } })).concat(g.edges.map(e => ({ group: "edges", data: {
    id: e.source + "->" + e.target, source: e.source, target: e.target,
    error_ratio: e.error_ratio, latency: e.p99_ms != null ? e.p99_ms : (e.rtt_ms || 0),
    p99_ms: e.p99_ms, rtt_ms: e.rtt_ms, connections: e.connections,
  } })));
}

const style = [
  { selector: "node", style: {
    "label": "data(label)", "font-size": 9, "width": 18, "height": 18, "background-color": "#27ae60",
    "text-valign": "bottom", "text-margin-y": 3 } },
  { selector: "node[health = 'warning']", style: { "background-color": "#e67e22" } },
  { selector: "node[health = 'critical']", style: { "background-color": "#c0392b" } },
  { selector: "edge", style: {
    "curve-style": "bezier", "target-arrow-shape": "triangle", "arrow-scale": 0.7,
    "line-color": "mapData(error_ratio, 0, 0.2, #95a5a6, #c0392b)",
    "target-arrow-color": "mapData(error_ratio, 0, 0.2, #95a5a6, #c0392b)",
    "width": "mapData(latency, 0, 500, 1, 6)" } },
  { selector: ".faded", style: { "opacity": 0.15 } },
  { selector: ".blast", style: { "border-width": 3, "border-color": "#8e44ad", "line-color": "#8e44ad",
    "target-arrow-color": "#8e44ad" } },
  { selector: ".selected-root", style: { "border-width": 4, "border-color": "#000" } },
];

async function load() {
  const holder = document.getElementById("graph");
  const status = document.getElementById("graph-status");
  const t0 = performance.now();
  let g;
  try {
    const response = await fetch(holder.dataset.src, { credentials: "same-origin" });
    if (response.status === 401) {
      location.href = "/console/login?next=" + encodeURIComponent(location.pathname);
      return;
    }
    if (!response.ok) {
      status.textContent = `the graph could not be read: ${response.status}`;
      return;
    }
    g = await response.json();
  } catch (e) {
    status.textContent = `the graph could not be read: ${e}`;
    return;
  }
  const fetched = performance.now();
  const els = elements(g);
  if (!window.cy) {
    window.cy = cytoscape({ container: holder, elements: els, style, wheelSensitivity: 0.3 });
    window.cy.layout(layoutFor(g.nodes.length)).run();
    window.cy.on("tap", "node", e => blast(e.target.id()).catch(err => {
      document.getElementById("blast").textContent = `blast radius: ${err}`;
    }));
    window.cy.on("tap", e => { if (e.target === window.cy) clearBlast(); });
  } else {
    const cy = window.cy;
    const ids = new Set(els.map(el => el.data.id));
    let added = false;
    cy.batch(() => {
      // What left the graph (its TTL passed) goes; what stays updates in place.
      cy.elements().filter(el => !ids.has(el.id())).remove();
      for (const el of els) {
        const existing = cy.getElementById(el.data.id);
        if (existing.nonempty()) existing.data(el.data); else { cy.add(el); added = true; }
      }
    });
    if (added) cy.layout(layoutFor(cy.nodes().length)).run();
  }
  const drawn = performance.now();
  window.vigilGraph = { loads: window.vigilGraph.loads + 1, nodes: g.nodes.length, edges: g.edges.length,
    fetchMs: fetched - t0, renderMs: drawn - fetched };
  status.textContent = `${g.nodes.length} nodes, ${g.edges.length} edges · drawn in ${Math.round(drawn - t0)} ms`;
}

// The next refresh starts when this one ended, so a slow one never overlaps the next.
async function refresh() {
  await load();
  setTimeout(refresh, 5000);
}

// A force layout reads best; past a few hundred nodes it costs seconds, so rings by degree.
function layoutFor(n) {
  return n <= 150 ? { name: "cose", animate: false, nodeRepulsion: 8000 }
                  : { name: "concentric", animate: false, minNodeSpacing: 6,
                      concentric: node => node.degree(), levelWidth: () => 2 };
}

function clearBlast() {
  window.cy.elements().removeClass("faded blast selected-root");
  document.getElementById("blast").textContent = "";
}

async function blast(id) {
  const response = await fetch("/api/v1/graph/blast-radius/" + id.split("/").map(encodeURIComponent).join("/"),
    { credentials: "same-origin" });
  const box = document.getElementById("blast");
  if (!response.ok) { box.textContent = `blast radius of ${id}: ${response.status}`; return; }
  const b = await response.json();
  const cy = window.cy;
  clearBlast();
  const hit = new Set([id].concat(b.dependents));
  cy.elements().addClass("faded");
  cy.nodes().filter(n => hit.has(n.id())).removeClass("faded").addClass("blast");
  for (const [from, to] of b.edges) cy.getElementById(from + "->" + to).removeClass("faded").addClass("blast");
  cy.getElementById(id).addClass("selected-root");
  box.innerHTML = "";
  const h = document.createElement("h2");
  h.textContent = `Blast radius of ${id}: ${b.dependents.length} dependent(s)`;
  const ul = document.createElement("ul");
  for (const d of b.dependents) { const li = document.createElement("li"); li.textContent = d; ul.appendChild(li); }
  box.append(h, ul);
}

document.addEventListener("DOMContentLoaded", refresh);
