// The Gemini batches page's script (page.html), served as a file: its Content-Security-Policy allows
// no inline script. It asks the API named by the page (data-api) as the signed-in user (the UI's
// cookie) and builds the page with textContent only, so no value is read as HTML.
"use strict";
const el = (tag, text, attrs = {}) => {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
};
const when = (seconds) => seconds ? new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 19) : "";
const usd = new Intl.NumberFormat("en-US", {style: "currency", currency: "USD", minimumFractionDigits: 2,
                                            maximumFractionDigits: 4});
const dollars = (value) => value === null || value === undefined ? "" : usd.format(value);
const count = new Intl.NumberFormat("en-US");
const number = (value) => value === null || value === undefined ? "" : count.format(value);
const enc = encodeURIComponent;

// Opened as the "Gemini batch" tab of a DAG run or task instance, the address names it
// (plugins/plugin.py): the page shows that batch alone, without the filters and chart.
// A placeholder the UI had no value for stays as it is ("{MAP_INDEX}" of an unmapped task): left out.
const SCOPE = new URLSearchParams([...new URLSearchParams(location.search)]
  .filter(([name, value]) => ["dag_id", "run_id", "task_id", "map_index"].includes(name) && value &&
                             !/^\{[A-Z_]+\}$/.test(value)));
const SCOPED = SCOPE.has("run_id");
if (SCOPE.has("task_id") && !SCOPE.has("map_index")) SCOPE.set("map_index", "-1");
if (SCOPED) {
  document.body.classList.add("scoped");
  document.querySelector("h1").textContent = SCOPE.has("task_id") ? "Gemini batch of this task" : "Gemini batches of this run";
  SCOPE.set("days", "366");  // the run's record, however old
}

// The Airflow UI's look. Inside the UI (its frame, same origin), the page takes the colours the UI
// shows now, light or dark and any AIRFLOW__API__THEME brand colours: the UI's semantic colour
// tokens (Chakra UI's CSS variables on its root, whose class says "dark" or "light"), followed as
// they change. Opened alone, it keeps the mode the UI stored (next-themes' "theme"), or the system's.
const UI_COLOURS = {text: "fg", muted: "fg-muted", line: "border", background: "bg", accent: "brand-solid",
                    "accent-soft": "brand-muted", danger: "fg-error"};

function uiRoot() {
  try { return parent !== window ? parent.document.documentElement : null; } catch { return null; }
}

function applyTheme() {
  const root = uiRoot();
  const stored = localStorage.getItem("theme");
  const dark = root && /\b(dark|light)\b/.test(root.className) ? root.classList.contains("dark")
    : stored === "dark" || (stored !== "light" && matchMedia("(prefers-color-scheme: dark)").matches);
  document.documentElement.dataset.theme = dark ? "dark" : "light";
  const ui = root ? getComputedStyle(root) : null;
  for (const [ours, theirs] of Object.entries(UI_COLOURS)) {
    const value = ui ? ui.getPropertyValue(`--chakra-colors-${theirs}`).trim() : "";
    // CSSOM properties: allowed by the page's Content-Security-Policy, where a style attribute is not
    if (value) document.documentElement.style.setProperty(`--${ours}`, value);
    else document.documentElement.style.removeProperty(`--${ours}`);
  }
}
applyTheme();
if (uiRoot()) new MutationObserver(applyTheme).observe(uiRoot(), {attributes: true, attributeFilter: ["class", "style"]});
addEventListener("storage", applyTheme);
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", applyTheme);

function taskLink(row) {
  let href = `/dags/${enc(row.dag_id)}/runs/${enc(row.run_id)}/tasks/${enc(row.task_id)}`;
  if (row.map_index >= 0) href += `/mapped/${row.map_index}`;
  const cell = el("td");
  const submitted = row.submitted_by ? `${row.submitted_by} → ` : "";  // submitted by one task, landed by this one
  cell.append(el("a", `${row.dag_id} / ${submitted}${row.task_id}${row.map_index >= 0 ? ` [${row.map_index}]` : ""}`,
                 {href, target: "_top", "data-test": "task"}));
  cell.append(el("div", row.run_id, {class: "note"}));
  return cell;
}

function progressCell(row) {
  const cell = el("td", null, {"data-test": "progress"});
  for (const job of row.jobs) {
    const progress = job.progress;
    if (!progress) continue;
    if (progress.error) { cell.append(el("div", `${job.name}: not reachable (${progress.error})`)); continue; }
    const done = progress.succeeded + progress.failed;
    cell.append(el("div", `${progress.state.replace("JOB_STATE_", "")} ${number(done)}/${number(progress.requests)} ` +
                          `(${progress.percent}%), ${number(progress.failed)} failed, ${number(progress.pending)} pending`,
                   {"data-test": "done", "data-done": done}));
    const bar = el("div", null, {class: "bar"});
    const part = el("span");
    part.style.width = `${progress.percent}%`;  // a CSSOM property: allowed, where a style attribute is not
    bar.append(part);
    cell.append(bar);
  }
  return cell;
}

function rowsCell(row) {
  if (row.withheld) return el("td", row.withheld, {class: "withheld", "data-test": "rows"});
  if (!row.counts) return el("td");
  const parts = Object.entries(row.counts).filter(([, n]) => n).map(([status, n]) => `${number(n)} ${status}`);
  const reused = row.reused ? ` (${number(row.reused)} reused)` : "";
  return el("td", `${number(row.rows)}: ${parts.join(", ")}${reused}`, {"data-test": "rows"});
}

function render(data) {
  const totals = document.getElementById("totals");
  totals.replaceChildren();
  for (const [label, value] of [["Tasks", number(data.totals.records)], ["Rows", number(data.totals.rows)],
                                ["Tokens", number(data.totals.tokens)], ["Cost", dollars(data.totals.cost_usd)],
                                ["Saved by reuse", dollars(data.totals.saved_cost_usd)],
                                ["Jobs in flight", number(data.totals.jobs_in_flight)]]) {
    const box = el("div", label, {"data-test": `total-${label.toLowerCase().replaceAll(" ", "-")}`});
    box.prepend(el("b", value));
    totals.append(box);
  }
  const chart = document.getElementById("chart");
  chart.replaceChildren();
  const highest = Math.max(...data.cost_per_day.map((d) => d.cost_usd), 0);
  const most = highest || 1;
  document.getElementById("chart-most").textContent = `highest ${dollars(highest)}`;
  for (const [i, anchor] of [[0, "start"], [data.cost_per_day.length - 1, "end"]]) {
    const label = document.createElementNS("http://www.w3.org/2000/svg", "text");
    for (const [name, value] of Object.entries({x: anchor === "start" ? 2 : i * 20 + 18, y: 96,
                                                "text-anchor": anchor, "font-size": 10})) {
      label.setAttribute(name, value);
    }
    label.textContent = data.cost_per_day[i].day;
    chart.append(label);
  }
  data.cost_per_day.forEach((day, i) => {
    const height = Math.round(70 * day.cost_usd / most);
    const bar = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    for (const [name, value] of Object.entries({x: i * 20 + 2, y: 80 - height, width: 16, height})) {
      bar.setAttribute(name, value);
    }
    const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = `${day.day}: ${dollars(day.cost_usd)}`;
    bar.append(title);
    chart.append(bar);
  });
  const body = document.getElementById("rows");
  body.replaceChildren();
  for (const row of data.rows) {
    const tr = el("tr", null, {"data-test": "batch"});
    const estimate = `est. ${dollars(row.estimated_cost_usd)}`;
    const saved = row.saved_cost_usd ? `, saved ${dollars(row.saved_cost_usd)}` : "";
    const cost = row.withheld ? "" : row.cost_usd !== null ? dollars(row.cost_usd) + saved : estimate;
    const jobs = el("td", null, {class: "wrap"});
    for (const job of row.jobs) {
      jobs.append(job.valid ? el("div", job.name) : el("div", `${job.name} (invalid job name)`, {class: "invalid"}));
    }
    // The server sends only the console addresses the provider builds; an https: one, whatever happens.
    if (/^https:\/\//.test(row.link || "")) {
      jobs.append(el("a", "console", {href: row.link, target: "_blank", rel: "noopener"}));
    }
    const waited = row.submitted_at ? ((row.landed_at || Date.now() / 1000) - row.submitted_at) : null;
    tr.append(taskLink(row), el("td", row.model), el("td", row.state, {"data-test": "state"}), progressCell(row),
              el("td", when(row.submitted_at)),
              el("td", row.landed_at ? when(row.landed_at) : (waited ? `waiting ${Math.round(waited)} s` : "")),
              rowsCell(row), el("td", cost, {"data-test": "cost"}), el("td", row.output_path, {class: "wrap"}), jobs);
    body.append(tr);
  }
}

let refresh = 15;  // seconds; the server says how long it keeps a job's progress

async function load() {
  const query = SCOPED ? SCOPE
    : new URLSearchParams([...new FormData(document.getElementById("filters"))].filter(([, v]) => v));
  const error = document.getElementById("error");
  try {
    const answer = await fetch(`${document.body.dataset.api}?${query}`, {credentials: "same-origin"});
    if (!answer.ok) {
      const detail = (await answer.json()).detail;  // a list of what is wrong with each parameter, for a 422
      throw new Error(`${answer.status}: ${Array.isArray(detail) ? detail.map((d) => d.msg).join("; ") : detail}`);
    }
    const data = await answer.json();
    render(data);
    error.textContent = "";
    document.getElementById("empty").textContent =
      SCOPED && !data.rows.length ? "No Gemini batch job was recorded here." : "";
    refresh = Math.max(1, data.refresh_seconds || refresh);
    document.body.dataset.loaded = String(Date.now());
  } catch (failure) {
    error.textContent = `Could not load the batches (${failure.message}).`;
  }
}

document.getElementById("filters").addEventListener("submit", (event) => { event.preventDefault(); load(); });
(async function every() { await load(); setTimeout(every, refresh * 1000); })();
