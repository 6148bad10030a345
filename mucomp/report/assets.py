"""The static report's own style sheet and script, written once into ``DIR/assets/``.

The script has three jobs and no dependency but the plotly.js copied beside it:

- draw every ``div.fig`` from the figure records the page's ``figs/<hash>.js`` files registered
  (``MUCOMP.fig(hash, record)``), with the plotly template named in the record put back from
  ``assets/templates.js`` (one copy per site instead of one per figure);
- sort the experiment table by a column (click its header: ascending, again: descending; missing
  values always last) and filter it (text and method);
- switch the variance view between metrics (one pre-drawn block per metric).

It makes no network request: everything it reads is a local ``<script>`` the page loads, so the
site opens from disk (``file://``, where browsers refuse ``fetch``) as well as from any host.
"""

from __future__ import annotations

CSS = """\
:root { --ink: #111827; --muted: #4b5563; --line: #e5e7eb; --accent: #0f766e; --warn: #b45309; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       background: #fff; }
header.top { background: #f8fafc; border-bottom: 1px solid var(--line); padding: 0.6rem 1.5rem; }
header.top nav { font-size: 0.9rem; color: var(--muted); }
header.top nav a { color: var(--accent); text-decoration: none; }
main { max-width: 1400px; margin: 0 auto; padding: 0.5rem 1.5rem 3rem; }
h1 { font-size: 1.6rem; margin: 0.8rem 0 0.2rem; }
h2 { font-size: 1.25rem; margin: 2rem 0 0.4rem; border-bottom: 1px solid var(--line); padding-bottom: 0.2rem; }
h3 { font-size: 1.05rem; margin: 1.2rem 0 0.3rem; }
p.lead, p.note, .caption { color: var(--muted); }
.caption { font-size: 0.88rem; margin: 0.2rem 0 0.8rem; }
.warning { border-left: 4px solid var(--warn); background: #fffbeb; padding: 0.4rem 0.8rem; margin: 0.6rem 0; }
a { color: var(--accent); }
code { font-size: 0.9em; background: #f3f4f6; padding: 0 0.2em; border-radius: 3px; }
.controls { display: flex; flex-wrap: wrap; gap: 0.6rem 1.2rem; align-items: end; margin: 0.6rem 0; }
.controls label { font-size: 0.85rem; color: var(--muted); display: flex; flex-direction: column; gap: 0.15rem; }
.controls input, .controls select { font: inherit; padding: 0.25rem 0.4rem; border: 1px solid #cbd5e1;
                                    border-radius: 4px; min-width: 12rem; max-width: 20rem; }
.table-wrap { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; }
table { border-collapse: collapse; font-size: 0.82rem; width: 100%; }
th, td { padding: 0.25rem 0.4rem; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; }
td { max-width: 16rem; overflow: hidden; text-overflow: ellipsis; }
td.pairs { max-width: none; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
thead th { background: #f8fafc; position: sticky; top: 0; }
th button.sort { font: inherit; font-weight: 600; background: none; border: 0; padding: 0; cursor: pointer;
                 color: var(--ink); }
th button.sort::after { content: " \\2195"; color: #9ca3af; font-weight: 400; }
th[aria-sort="ascending"] button.sort::after { content: " \\25B2"; color: var(--ink); }
th[aria-sort="descending"] button.sort::after { content: " \\25BC"; color: var(--ink); }
tr.hidden { display: none; }
.legend { margin: 0.4rem 0; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 0.5rem 1.5rem; }
.fig { min-height: 420px; }
.fig .missing, .unavailable { color: var(--muted); font-style: italic; padding: 1rem 0; }
.stats { display: flex; flex-wrap: wrap; gap: 0.3rem 1.4rem; margin: 0.4rem 0; }
.stats div { font-size: 0.85rem; color: var(--muted); }
.stats b { display: block; font-size: 1.2rem; color: var(--ink); }
.metric-block[hidden] { display: none; }
dl.defs dt { font-weight: 600; margin-top: 0.7rem; }
dl.defs dd { margin: 0.1rem 0 0 1rem; color: var(--muted); }
footer { color: var(--muted); font-size: 0.8rem; border-top: 1px solid var(--line); margin-top: 3rem;
         padding: 0.8rem 1.5rem; }
"""

JS = """\
"use strict";
// mucomp static report: draws the figures, sorts and filters the table, switches the variance metric.
window.MUCOMP = window.MUCOMP || { figs: {}, templates: {} };
MUCOMP.fig = function (key, record) { MUCOMP.figs[key] = record; };

MUCOMP.plotConfig = {
  displaylogo: false, responsive: true, showLink: false, showSendToCloud: false, showEditInChartStudio: false,
  modeBarButtonsToRemove: ["sendDataToCloud", "select2d", "lasso2d"]
};

MUCOMP.draw = function (div) {
  var record = MUCOMP.figs[div.getAttribute("data-fig")];
  if (!record || typeof Plotly === "undefined") {
    div.setAttribute("data-state", "missing");
    var note = document.createElement("p");
    note.className = "missing";
    note.textContent = "This figure's data file did not load.";
    div.appendChild(note);
    return Promise.resolve();
  }
  var layout = record.layout || {};
  if (record.template && MUCOMP.templates[record.template]) { layout.template = MUCOMP.templates[record.template]; }
  return Plotly.newPlot(div, record.data || [], layout, MUCOMP.plotConfig).then(function () {
    div.setAttribute("data-state", "drawn");
  });
};

MUCOMP.drawAll = function () {
  var divs = Array.prototype.slice.call(document.querySelectorAll("div.fig[data-fig]"));
  // One after another: the page stays responsive and every figure gets its final width.
  return divs.reduce(function (done, div) { return done.then(function () { return MUCOMP.draw(div); }); },
                     Promise.resolve()).then(function () { document.body.setAttribute("data-figures", "drawn"); });
};

// --- the experiment table ---------------------------------------------------------------------
MUCOMP.sortKey = function (cell, numeric) {
  var raw = cell.getAttribute("data-v");
  if (raw === null) { raw = cell.textContent.trim(); }
  if (raw === "") { return null; }
  if (numeric) { var x = parseFloat(raw); return isNaN(x) ? null : x; }
  return raw.toLowerCase();
};

MUCOMP.sortTable = function (table, column, descending) {
  var body = table.tBodies[0];
  var header = table.tHead.rows[0].cells[column];
  var numeric = header.classList.contains("num");
  var rows = Array.prototype.slice.call(body.rows).map(function (row, position) {
    return { row: row, key: MUCOMP.sortKey(row.cells[column], numeric), position: position };
  });
  rows.sort(function (a, b) {
    if (a.key === null || b.key === null) {  // missing values last, whatever the direction
      return (a.key === null) - (b.key === null) || a.position - b.position;
    }
    var order = a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
    return (descending ? -order : order) || a.position - b.position;  // stable
  });
  rows.forEach(function (item) { body.appendChild(item.row); });
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell) { cell.removeAttribute("aria-sort"); });
  header.setAttribute("aria-sort", descending ? "descending" : "ascending");
};

MUCOMP.filterTable = function (table) {
  var text = document.getElementById("table-filter");
  var method = document.getElementById("method-filter");
  var query = text ? text.value.trim().toLowerCase() : "";
  var wanted = method ? method.value : "";
  var shown = 0;
  Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
    var keep = (!query || row.textContent.toLowerCase().indexOf(query) >= 0) &&
               (!wanted || row.getAttribute("data-method") === wanted);
    row.classList.toggle("hidden", !keep);
    shown += keep ? 1 : 0;
  });
  var count = document.getElementById("table-count");
  if (count) { count.textContent = shown + " of " + table.tBodies[0].rows.length + " experiments shown"; }
};

MUCOMP.setupTable = function (table) {
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell, column) {
    var button = cell.querySelector("button.sort");
    if (!button) { return; }
    button.addEventListener("click", function () {
      MUCOMP.sortTable(table, column, cell.getAttribute("aria-sort") === "ascending");
    });
  });
  ["table-filter", "method-filter"].forEach(function (id) {
    var control = document.getElementById(id);
    if (control) { control.addEventListener("input", function () { MUCOMP.filterTable(table); }); }
  });
  MUCOMP.filterTable(table);
};

// --- the variance view: one pre-drawn block per metric -----------------------------------------
MUCOMP.setupMetricSwitch = function (select) {
  var show = function () {
    document.querySelectorAll(".metric-block").forEach(function (block) {
      var on = block.getAttribute("data-metric") === select.value;
      block.hidden = !on;
      if (on) { block.querySelectorAll("div.fig[data-state=drawn]").forEach(function (div) { Plotly.Plots.resize(div); }); }
    });
  };
  select.addEventListener("change", show);
  return show;
};

document.addEventListener("DOMContentLoaded", function () {
  var table = document.getElementById("experiments");
  if (table) { MUCOMP.setupTable(table); }
  var select = document.getElementById("variance-metric");
  var show = select ? MUCOMP.setupMetricSwitch(select) : null;
  // Draw while every block is visible (a hidden div has no width), then hide the other metrics.
  MUCOMP.drawAll().then(function () { if (show) { show(); } });
});
"""
