// Leads and deals: lists and details with scores, grades and predictions.
import { api, el } from "./api.js";

export async function mountLeads(root) {
  const body = el("tbody");
  const pager = el("div", { class: "pager" });
  root.replaceChildren(el("h1", {}, "Leads"),
    el("table", {}, el("thead", {}, el("tr", {}, ...["Name", "Company", "Status", "Score", "Grade"].map((h) => el("th", { scope: "col" }, h)))), body),
    pager);
  async function load(cursor) {
    const page = await api("/leads", { query: { cursor, limit: 25, sort: "-ai_score" } });
    body.replaceChildren(...page.data.map((l) => el("tr", {},
      el("td", {}, el("a", { href: `/app/leads/${l.id}` }, `${l.first_name || ""} ${l.last_name || ""}`.trim() || l.email || l.id)),
      el("td", {}, l.company || ""), el("td", {}, l.status),
      el("td", {}, l.ai_score != null ? Math.round(l.ai_score) : "–"),
      el("td", {}, el("span", { class: `badge grade-${l.grade}` }, l.grade || "–")))));
    pager.replaceChildren(page.next_cursor ? el("button", { onclick: () => load(page.next_cursor) }, "Next page") : "");
  }
  await load();
}

export async function mountLead(root, id) {
  const lead = await api(`/leads/${id}`);
  const factors = lead.score_reasons || [];
  root.replaceChildren(
    el("h1", {}, `${lead.first_name || ""} ${lead.last_name || ""}`.trim() || "Lead"),
    el("p", {}, `${lead.title || ""} ${lead.company ? "at " + lead.company : ""}`),
    el("section", { class: "panel" },
      el("h2", {}, "Why this grade"),
      el("p", {}, "Score ", el("strong", {}, lead.ai_score != null ? Math.round(lead.ai_score) : "–"), " · grade ",
        el("span", { class: `badge grade-${lead.grade}` }, lead.grade || "–")),
      el("ul", {}, ...factors.map((f) => el("li", {}, typeof f === "string" ? f : `${f.label || f.name}: ${f.effect ?? f.impact ?? ""}`)))),
    el("p", {}, el("a", { href: "/app/leads" }, "All leads")));
}

export async function mountDeals(root) {
  const page = await api("/deals", { query: { limit: 50 } });
  root.replaceChildren(el("h1", {}, "Deals"),
    el("table", {}, el("thead", {}, el("tr", {}, ...["Deal", "Stage", "Value", "Expected close"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ...page.data.map((d) => el("tr", {},
        el("td", {}, el("a", { href: `/app/deals/${d.id}` }, d.name)), el("td", {}, d.stage),
        el("td", {}, `${d.value} ${d.currency}`), el("td", {}, d.expected_close || "–"))))));
}

export async function mountDeal(root, id) {
  const deal = await api(`/deals/${id}`);
  const prediction = el("div", {}, el("button", { class: "primary", onclick: predict }, "Predict"));
  async function predict() {
    const p = await api(`/deals/${id}/predict`, { method: "POST" });
    prediction.replaceChildren(
      el("p", {}, "Win probability ", el("strong", {}, `${Math.round(p.win_probability * 100)} %`),
        p.predicted_close ? ` · close by ${p.predicted_close}` : ""),
      el("ul", { class: "reasons" }, ...(p.reasons || []).map((r) => el("li", {}, r))),
      (p.risk_flags || []).length ? el("p", {}, "Risks: ", p.risk_flags.map((f) => f.replaceAll("_", " ")).join(", ")) : "");
  }
  root.replaceChildren(el("h1", {}, deal.name),
    el("p", {}, `${deal.stage} · ${deal.value} ${deal.currency}`),
    el("section", { class: "panel" }, el("h2", {}, "Prediction"), prediction),
    el("p", {}, el("a", { href: "/app/deals" }, "All deals")));
}
