// The call library (/app/calls): transcript search with highlighted snippets, and the calls list's filters.
// A hit links to the review screen at that moment (/app/calls/{id}?t=<ms>&seg=<segment key>).
import { api, el, fmtMs, speakerOf } from "./api.js";

// Names of the organization's people and teams, for showing ids as names.
async function directory(path) {
  try {
    const page = await api(path, { query: { limit: 100 } });
    return new Map((page.data || []).map((x) => [x.id, x.name || x.email]));
  } catch (e) { return new Map(); }
}

function field(label, input) {
  return el("label", {}, label, input);
}

function choice(name, value, options) {
  return el("select", { name }, ...options.map(([v, text]) => el("option", { value: v, selected: value === v }, text)));
}

// A snippet from its parts: text nodes and <mark> elements, never HTML parsed from the server.
export function snippetNode(parts) {
  return el("span", { class: "snippet" }, ...(parts || []).map((p) => (p.hit ? el("mark", {}, p.text) : p.text)));
}

const SENTIMENT = { negative: { customer_sentiment_below: "-0.2" }, positive: { customer_sentiment_above: "0.2" } };

// The form speaks in days, minutes and words; the API in instants, seconds and filters.
function apiQuery(form) {
  const out = { q: form.q, rep_id: form.rep_id, team_id: form.team_id, status: form.status,
    competitor: form.competitor, keyword: form.keyword, ...(SENTIMENT[form.sentiment] || {}) };
  if (form.from) out.created_after = new Date(form.from + "T00:00:00").toISOString();
  if (form.to) out.created_before = new Date(new Date(form.to + "T00:00:00").getTime() + 86_400_000).toISOString();
  if (form.min_min) out.duration_min_s = String(Math.round(Number(form.min_min) * 60));
  if (form.max_min) out.duration_max_s = String(Math.round(Number(form.max_min) * 60));
  if (form.checklist === "missed") out.checklist_complete = "false";
  if (form.checklist === "complete") out.checklist_complete = "true";
  return out;
}

export async function mountCalls(root) {
  const params = new URLSearchParams(location.search);
  const p = (k) => params.get(k) || "";
  const [who, teams] = await Promise.all([directory("/users"), directory("/teams")]);
  const search = el("input", { type: "search", name: "q", value: p("q"), maxlength: "200",
    placeholder: "a word or \"a phrase\" said on a call" });
  const form = el("form", { class: "filters library", role: "search", "aria-label": "Filter calls" },
    el("label", { class: "q" }, "Search transcripts", search),
    field("Rep", choice("rep_id", p("rep_id"), [["", "Anyone"], ...who])),
    field("Team", choice("team_id", p("team_id"), [["", "Any team"], ...teams])),
    field("From", el("input", { type: "date", name: "from", value: p("from") })),
    field("To", el("input", { type: "date", name: "to", value: p("to") })),
    field("Min length (min)", el("input", { type: "number", name: "min_min", min: "0", step: "0.5", value: p("min_min"), class: "short" })),
    field("Max length (min)", el("input", { type: "number", name: "max_min", min: "0", step: "0.5", value: p("max_min"), class: "short" })),
    field("Competitor heard", el("input", { type: "text", name: "competitor", value: p("competitor"), class: "short" })),
    field("Keyword heard", choice("keyword", p("keyword"), [["", "Any"], ["pricing", "pricing"], ["competitor", "competitor"],
      ["budget", "budget"], ["objection", "objection"], ["next_step", "next step"]])),
    field("Customer sentiment", choice("sentiment", p("sentiment"), [["", "Any"], ["negative", "Negative"], ["positive", "Positive"]])),
    field("Checklist", choice("checklist", p("checklist"), [["", "Any"], ["missed", "Item missed"], ["complete", "Complete"]])),
    field("Outcome", choice("status", p("status"), ["", "completed", "failed", "no-answer", "busy"].map((s) => [s, s || "Any"]))),
    el("button", { class: "primary", type: "submit" }, "Apply"));
  const note = el("p", { class: "status", role: "status", "aria-live": "polite" });
  const body = el("tbody");
  const results = el("table", { class: "library" }, el("caption", { class: "sr-only" }, "Calls"),
    el("thead", {}, el("tr", {}, ...["When", "Rep", "Direction", "Outcome", "Duration", ""].map((h) => el("th", { scope: "col" }, h)))),
    body);
  const pager = el("div", { class: "pager" });
  root.replaceChildren(el("h1", {}, "Calls"), form, note, results, pager);

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams([...new FormData(form)].filter(([, v]) => String(v).trim()));
    history.pushState({}, "", "/app/calls?" + q);
    load(Object.fromEntries(q));
  });

  // One call: its row, and when searching, a row under it with where the words were said.
  function rows(c) {
    const hits = (c.search && c.search.matches) || [];
    const head = el("tr", { "data-call-id": c.id },
      el("td", {}, new Date(c.created_at).toLocaleString()),
      el("td", {}, who.get(c.rep_id) || c.rep_id || "–"),
      el("td", {}, c.direction),
      el("td", {}, c.status + (c.ended_abnormally ? " (dropped)" : "")),
      el("td", {}, c.duration_s != null ? fmtMs(c.duration_s * 1000) : "–"),
      el("td", {}, el("a", { href: `/app/calls/${c.id}` }, "Review")));
    if (!c.search) return [head];
    const n = c.search.matched_segments;
    return [head, el("tr", { class: "snippets-row", "data-call-id": c.id }, el("td", { colspan: "6" },
      el("ul", { class: "snippets", "aria-label": `Where it was said (${n} matching line${n === 1 ? "" : "s"})` },
        ...hits.map((m) => el("li", {},
          el("a", { class: "hit", href: `/app/calls/${c.id}?t=${m.start_ms}&seg=${encodeURIComponent(m.segment_key)}`,
            "aria-label": `Play from ${fmtMs(m.start_ms)}: ${m.snippet.map((x) => x.text).join("")}` },
            el("span", { class: "time" }, fmtMs(m.start_ms)),
            el("span", { class: "who" }, speakerOf(m, { rep: who.get(c.rep_id) || "Rep" }).name),
            snippetNode(m.snippet)))))))];
  }

  async function load(query, cursor) {
    let page;
    try {
      page = await api("/calls", { query: { ...apiQuery(query), cursor, limit: 25 } });
    } catch (e) {
      note.textContent = e.status === 400 ? `Cannot search that: ${e.message}` : String(e.message || e);
      body.replaceChildren();
      pager.replaceChildren();
      return;
    }
    const items = page.data || [];
    note.textContent = query.q ? `${items.length}${page.next_cursor ? "+" : ""} call${items.length === 1 ? " mentions" : "s mention"} “${query.q}”, best match first.`
      : (items.length ? "" : "No calls match these filters.");
    body.replaceChildren(...items.flatMap(rows));
    pager.replaceChildren(page.next_cursor
      ? el("button", { type: "button", onclick: () => load(query, page.next_cursor) }, "Next page") : "");
  }
  await load(Object.fromEntries(params));
}
