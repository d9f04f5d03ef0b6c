// Team analytics: figures per rep or team over a period, weekly trend charts, and the calls
// behind every number (/app/analytics/calls?...). Charts use Chart.js served from /vendor/.
import { api, el, fmtMs } from "./api.js";

const pct = (v) => (v == null ? "–" : `${Math.round(v * 100)} %`);
const num = (v) => (v == null ? "–" : String(v));
const signed = (v) => (v == null ? "–" : (v > 0 ? "+" : "") + v.toFixed(2));
// minutes:seconds, or hours:minutes:seconds once the sum passes an hour
const ms = (v) => {
  if (v == null) return "–";
  const s = Math.round(v / 1000);
  if (s < 3600) return fmtMs(v);
  return `${Math.floor(s / 3600)}:${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
};

function isoDay(d) { return d.toISOString().slice(0, 10); }

function period(params) {
  const to = params.get("to") || isoDay(new Date());
  const from = params.get("from") || isoDay(new Date(Date.parse(to) - 83 * 86400000));
  return { from, to };
}

// [heading, drill-down metric, cell text]
const COLUMNS = [
  ["Calls", "calls", (r) => num(r.calls)],
  ["Talk time", "talk_time", (r) => ms(r.talk_ms)],
  ["Talk share", "talk_time", (r) => pct(r.talk_share)],
  ["Longest monologue (avg)", "calls", (r) => ms(r.longest_monologue_ms)],
  ["Interruptions", "interruptions", (r) => num(r.interruptions)],
  ["Questions", "questions", (r) => num(r.questions)],
  ["Patience", "patience", (r) => (r.patience_ms == null ? "–" : `${(r.patience_ms / 1000).toFixed(1)} s`)],
  ["Customer sentiment", "negative_sentiment", (r) => signed(r.customer_sentiment)],
  ["Prompts followed", "prompts_not_followed", (r) => `${r.prompts_followed} / ${r.prompts_fired}`],
  ["Checklist", "checklist_missed", (r) => pct(r.checklist_completion)],
  ["Competitors", "competitors", (r) => num(r.calls_with_competitors)],
  ["Objections", "objections", (r) => num(r.calls_with_objections)],
];

function drillHref(base, metric, extra = {}) {
  const q = new URLSearchParams({ ...base, metric, ...extra });
  return `/app/analytics/calls?${q}`;
}

function figuresRow(label, row, base) {
  return el("tr", {},
    el("th", { scope: "row" }, label),
    ...COLUMNS.map(([heading, metric, cell]) =>
      el("td", { "data-col": heading }, el("a", { href: drillHref(base, metric) }, cell(row)))));
}

let chartLib = null;
function loadChartJs() {
  if (window.Chart) return Promise.resolve(window.Chart);
  if (!chartLib) {
    chartLib = new Promise((resolve) => {
      const s = el("script", { src: "/vendor/chart.min.js" });
      s.addEventListener("load", () => resolve(window.Chart || null));
      s.addEventListener("error", () => resolve(null));
      document.head.append(s);
    });
  }
  return chartLib;
}

function chartBox(title, id) {
  return el("figure", { class: "panel chart" }, el("figcaption", {}, title),
    el("div", { class: "chart-area" }, el("canvas", { id, role: "img", "aria-label": title })));
}

async function drawTrends(weeks, boxes) {
  const Chart = await loadChartJs();
  if (!Chart) {
    for (const box of boxes) box.append(el("p", { class: "status" }, "Charts are unavailable: Chart.js is not installed on this server."));
    return [];
  }
  const labels = weeks.map((w) => w.week);
  const common = { responsive: true, maintainAspectRatio: false, animation: false,
    plugins: { legend: { position: "bottom" } } };
  const line = (label, data, color) => ({ label, data, borderColor: color, backgroundColor: color, tension: 0.2, spanGaps: true });
  const charts = [
    new Chart(boxes[0].querySelector("canvas"), { type: "bar",
      options: { ...common, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
      data: { labels, datasets: [{ label: "Calls", data: weeks.map((w) => w.calls), backgroundColor: "#0b5cad" }] } }),
    new Chart(boxes[1].querySelector("canvas"), { type: "line",
      options: { ...common, scales: { y: { min: 0, max: 100, ticks: { callback: (v) => `${v} %` } } } },
      data: { labels, datasets: [
        line("Talk share", weeks.map((w) => (w.talk_share == null ? null : Math.round(w.talk_share * 100))), "#0b5cad"),
        line("Prompts followed", weeks.map((w) => (w.follow_rate == null ? null : Math.round(w.follow_rate * 100))), "#1a7f37"),
        line("Checklist", weeks.map((w) => (w.checklist_completion == null ? null : Math.round(w.checklist_completion * 100))), "#9a6700"),
      ] } }),
    new Chart(boxes[2].querySelector("canvas"), { type: "line",
      options: { ...common, scales: { y: { min: -1, max: 1 } } },
      data: { labels, datasets: [line("Customer sentiment", weeks.map((w) => w.customer_sentiment), "#7a3e00")] } }),
  ];
  return charts;
}

export async function mountAnalytics(root, me) {
  const params = new URLSearchParams(location.search);
  const { from, to } = period(params);
  const group = me.role === "rep" ? "rep" : (params.get("group") || "rep");
  const form = el("form", { class: "filters", "aria-label": "Period" },
    el("label", {}, "From", el("input", { type: "date", name: "from", value: from, required: true })),
    el("label", {}, "To", el("input", { type: "date", name: "to", value: to, required: true })),
    me.role === "rep" ? "" : el("label", {}, "Rows",
      el("select", { name: "group" },
        el("option", { value: "rep", selected: group === "rep" }, "Per rep"),
        el("option", { value: "team", selected: group === "team" }, "Per team"))),
    el("button", { type: "submit", class: "primary" }, "Show"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams(new FormData(form));
    history.pushState({}, "", `/app/analytics?${q}`);
    window.dispatchEvent(new PopStateEvent("popstate"));
  });
  const status = el("p", { class: "status", role: "status" }, "Loading…");
  root.replaceChildren(el("h1", {}, "Team analytics"), form, status);

  let body;
  try {
    body = await api("/analytics/team", { query: { from, to, group } });
  } catch (e) {
    status.textContent = e.message;
    status.className = "error";
    return null;
  }
  const base = { from, to };
  const rows = body.data.map((r) => {
    const scope = group === "team" ? (r.id ? { team_id: r.id } : {}) : { rep_id: r.id };
    return figuresRow(r.name, r, { ...base, ...scope });
  });
  const table = el("table", { class: "figures", id: "figures" },
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, group === "team" ? "Team" : "Rep"),
      ...COLUMNS.map(([h]) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...rows),
    el("tfoot", {}, figuresRow("All", body.total, base)));
  const heard = (title, items, key) => el("section", { class: "panel heard" }, el("h2", {}, title),
    items.length ? el("ul", {}, ...items.map((h) => el("li", {},
      el("a", { href: drillHref(base, key, { [key === "competitors" ? "competitor" : "objection"]: h.name }) },
        h.name.replace(/^objection_/, "").replaceAll("_", " ")), ` · ${h.calls} ${h.calls === 1 ? "call" : "calls"}`)))
      : el("p", { class: "status" }, "None heard."));
  const boxes = [chartBox("Calls per week", "chart-calls"), chartBox("Talk share, prompts followed, checklist (%)", "chart-shares"),
    chartBox("Customer sentiment", "chart-sentiment")];
  status.textContent = `${from} to ${to} · ${body.total.calls} calls`;
  root.append(
    el("div", { class: "table-scroll" }, table),
    el("div", { class: "grid-heard" }, heard("Competitors heard", body.competitors, "competitors"),
      heard("Objections heard", body.objections, "objections")),
    el("h2", { class: "trends-title" }, "Weekly trends"),
    el("div", { class: "grid-charts" }, ...boxes));
  const trends = await api("/analytics/team/trends", { query: { from, to } });
  const charts = await drawTrends(trends.data, boxes);
  return () => charts.forEach((c) => c.destroy());
}

export async function mountAnalyticsCalls(root) {
  const params = new URLSearchParams(location.search);
  const query = {};
  for (const k of ["from", "to", "team_id", "rep_id", "metric", "competitor", "objection"]) {
    if (params.get(k)) query[k] = params.get(k);
  }
  const body = el("tbody");
  const pager = el("div", { class: "pager" });
  const back = new URLSearchParams({ from: query.from || "", to: query.to || "" });
  root.replaceChildren(el("h1", {}, "Calls behind the figure"),
    el("p", { class: "status" }, `${(query.metric || "calls").replaceAll("_", " ")}`,
      query.competitor ? ` · ${query.competitor}` : "", query.objection ? ` · ${query.objection}` : "",
      ` · ${query.from || ""} to ${query.to || ""} · `, el("a", { href: `/app/analytics?${back}` }, "Back to analytics")),
    el("div", { class: "table-scroll" }, el("table", { id: "drill-calls" },
      el("thead", {}, el("tr", {}, ...["Call", "Rep", "Length", "Talk share", "Questions", "Prompts followed", "Competitors"]
        .map((h) => el("th", { scope: "col" }, h)))), body)),
    pager);
  async function load(cursor) {
    const page = await api("/analytics/team/calls", { query: { ...query, cursor, limit: 50 } });
    body.append(...page.data.map((c) => {
      const talk = c.rep_talk_ms + c.customer_talk_ms;
      return el("tr", { "data-call": c.id },
        el("td", {}, el("a", { href: `/app/calls/${c.id}` }, new Date(c.started_at).toLocaleString())),
        el("td", {}, c.rep_name || "–"), el("td", {}, fmtMs(c.duration_ms)),
        el("td", {}, talk ? pct(c.rep_talk_ms / talk) : "–"), el("td", {}, String(c.rep_questions)),
        el("td", {}, `${c.prompts_followed ?? "–"} / ${c.prompts_fired}`), el("td", {}, c.competitors.join(", ") || "–"));
    }));
    if (!body.children.length) body.append(el("tr", {}, el("td", { colspan: 7 }, "No calls.")));
    pager.replaceChildren(page.next_cursor ? el("button", { type: "button", onclick: () => load(page.next_cursor) }, "More calls") : "");
  }
  await load();
  return null;
}
