// The admin screens: people, teams, API tokens, the coaching rule set, settings, carrier numbers.
// Everything goes through the same /api/v1 operations scripts use; errors show the API's message
// and, for a bad field, where it is.
import { api, el } from "./api.js";

const TABS = [
  ["users", "People"], ["rules", "Coaching rules"], ["settings", "Settings"],
  ["numbers", "Carrier numbers"], ["tokens", "API tokens"],
];

function problem(e) {
  const details = e.body && e.body.error && e.body.error.details;
  const where = Array.isArray(details)
    ? details.map((d) => `${(d.loc || []).join(".")}: ${d.message}`).join("; ") : "";
  return where ? `${e.message} (${where})` : e.message || String(e);
}

function notice(box, text, ok = false) {
  box.replaceChildren(text ? el("p", { class: ok ? "ok" : "error", role: ok ? "status" : "alert" }, text) : "");
}

function field(label, input) {
  return el("label", {}, el("span", {}, label), input);
}

async function allUsers() {
  return (await api("/users", { query: { limit: 200, sort: "name" } })).data;
}

// --- people and teams ------------------------------------------------------------------------

async function usersTab(root) {
  const [users, teams] = await Promise.all([allUsers(), api("/teams", { query: { limit: 200 } }).then((p) => p.data)]);
  const teamName = Object.fromEntries(teams.map((t) => [t.id, t.name]));
  const status = el("div");
  const teamOptions = () => [el("option", { value: "" }, "No team"), ...teams.map((t) => el("option", { value: t.id }, t.name))];
  const rows = users.map((u) => {
    const role = el("select", { "aria-label": `Role of ${u.name}`, disabled: !u.is_active }, ...["rep", "manager", "admin"].map((r) => el("option", { value: r, selected: r === u.role }, r)));
    role.addEventListener("change", async () => {
      try { await api(`/users/${u.id}`, { method: "PATCH", body: { role: role.value } }); notice(status, `${u.name} is now ${role.value}.`, true); }
      catch (e) { notice(status, problem(e)); role.value = u.role; }
    });
    const off = u.is_active ? el("button", { type: "button", onclick: async () => {
      try { await api(`/users/${u.id}`, { method: "DELETE" }); await usersTab(root); }
      catch (e) { notice(status, problem(e)); }
    } }, "Deactivate") : el("span", { class: "badge" }, "deactivated");
    return el("tr", {}, el("td", {}, u.name, el("span", { class: "sub" }, u.email)), el("td", {}, role),
      el("td", {}, teamName[u.team_id] || "–"), el("td", {}, u.territory || "–"),
      el("td", {}, u.sip_uri || u.phone || "–"), el("td", {}, off));
  });
  const form = el("form", { class: "admin-form", id: "new-user" },
    field("Name", el("input", { name: "name", required: true, maxlength: 200 })),
    field("Email", el("input", { name: "email", type: "email", required: true })),
    field("Role", el("select", { name: "role" }, ...["rep", "manager", "admin"].map((r) => el("option", { value: r }, r)))),
    field("Team", el("select", { name: "team_id" }, ...teamOptions())),
    field("Territory", el("input", { name: "territory", maxlength: 200 })),
    field("Phone (routing)", el("input", { name: "phone", placeholder: "+14155550123" })),
    field("SIP URI (routing)", el("input", { name: "sip_uri", placeholder: "sip:rita@pbx.example.com" })),
    field("Password (optional)", el("input", { name: "password", type: "password", minlength: 10, autocomplete: "new-password" })),
    el("button", { class: "primary", type: "submit" }, "Add user"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = Object.fromEntries([...new FormData(form)].filter(([, v]) => v !== ""));
    try { await api("/users", { method: "POST", body }); await usersTab(root); notice(root.querySelector(".tab-status"), `${body.name} added.`, true); }
    catch (e) { notice(status, problem(e)); }
  });
  const teamForm = el("form", { class: "admin-form inline" },
    field("New team", el("input", { name: "name", required: true, maxlength: 120 })),
    el("button", { type: "submit" }, "Add team"));
  teamForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try { await api("/teams", { method: "POST", body: { name: teamForm.name.value } }); await usersTab(root); }
    catch (e) { notice(status, problem(e)); }
  });
  root.replaceChildren(el("div", { class: "tab-status" }), status,
    el("div", { class: "table-wrap" }, el("table", {}, el("thead", {}, el("tr", {}, ...["Name", "Role", "Team", "Territory", "Rings at", ""].map((h) => el("th", { scope: "col" }, h)))), el("tbody", {}, ...rows))),
    el("section", { class: "panel" }, el("h2", {}, "Add a user"), form),
    el("section", { class: "panel" }, el("h2", {}, "Teams"), el("p", {}, teams.map((t) => t.name).join(", ") || "No teams yet."), teamForm));
}

// --- coaching rules ----------------------------------------------------------------------------

async function rulesTab(root) {
  const [current, versions] = await Promise.all([api("/coaching-rules"), api("/coaching-rules/versions")]);
  const status = el("div");
  const editor = el("textarea", { id: "rules-json", rows: 16, spellcheck: "false", "aria-label": "Rule set (JSON)" });
  editor.value = JSON.stringify(current.rules, null, 2);
  function parsed() {
    try { return JSON.parse(editor.value || "{}"); }
    catch (e) { notice(status, `The rule set is not valid JSON: ${e.message}`); return null; }
  }
  async function save() {
    const rules = parsed();
    if (!rules) return;
    try {
      const saved = await api("/coaching-rules", { method: "PUT", body: { rules, note: note.value || undefined } });
      await rulesTab(root);
      notice(root.querySelector(".tab-status"), `Saved as version ${saved.version}; calls under way use it within seconds.`, true);
    } catch (e) { notice(status, problem(e)); }
  }
  const note = el("input", { name: "note", maxlength: 500, placeholder: "What changed" });
  // a battle card: a competitor's name and what to say, added to the JSON above
  const card = el("form", { class: "admin-form", id: "battle-card" },
    field("Competitor", el("input", { name: "competitor", required: true })),
    field("Card title", el("input", { name: "title", required: true })),
    field("What to say", el("input", { name: "body", required: true })),
    el("button", { type: "submit" }, "Add to the rule set"));
  card.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const rules = parsed();
    if (!rules) return;
    const name = card.competitor.value.trim();
    const id = "card-" + name.toLowerCase().replace(/[^a-z0-9]+/g, "-");
    rules.keywords = rules.keywords || {};
    rules.keywords[id] = { phrases: [name], parties: ["customer"] };
    rules.rules = (rules.rules || []).filter((r) => r.id !== id);
    rules.rules.push({ id, trigger: "keyword", category: id, party: "customer", severity: "warning", title: card.title.value, body: card.body.value });
    editor.value = JSON.stringify(rules, null, 2);
    notice(status, "Added to the editor: save to put it in force.", true);
  });
  const sentence = el("input", { id: "preview-text", name: "text", required: true, maxlength: 2000, placeholder: "Honestly, Acme quoted us less." });
  const party = el("select", { name: "party" }, el("option", { value: "customer" }, "customer"), el("option", { value: "rep" }, "rep"));
  const results = el("div", { id: "preview-results", "aria-live": "polite" });
  const preview = el("form", { class: "admin-form inline", id: "preview" }, field("Sentence", sentence), field("Said by", party), el("button", { type: "submit" }, "Preview"));
  preview.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const rules = parsed();
    if (!rules) return;
    try {
      const r = await api("/coaching-rules/preview", { method: "POST", body: { text: sentence.value, party: party.value, rules } });
      results.replaceChildren(
        r.prompts.length ? el("ul", { class: "prompts" }, ...r.prompts.map((p) => el("li", { class: `prompt ${p.severity}` }, el("h3", {}, p.title), el("p", {}, p.body), el("p", { class: "sub" }, `rule ${p.rule_id}`)))) : el("p", {}, "No prompt fires."),
        r.keywords.length ? el("p", { class: "sub" }, "Keywords: ", r.keywords.map((k) => `${k.category} (${k.matched})`).join(", ")) : "");
      notice(status, "");
    } catch (e) { notice(status, problem(e)); }
  });
  const history = el("ol", { class: "versions", reversed: true }, ...versions.data.map((v) => el("li", {},
    `Version ${v.version}`, v.note ? ` · ${v.note}` : "", ` · ${new Date(v.created_at).toLocaleString()}`,
    v.version === current.version ? el("span", { class: "badge" }, "in force") : el("button", { type: "button", onclick: async () => {
      try { const r = await api(`/coaching-rules/versions/${v.id}/restore`, { method: "POST" }); await rulesTab(root); notice(root.querySelector(".tab-status"), `Rolled back: version ${r.version} has version ${v.version}'s rules.`, true); }
      catch (e) { notice(status, problem(e)); }
    } }, "Roll back to this"))));
  root.replaceChildren(el("div", { class: "tab-status" }), status,
    el("section", { class: "panel" }, el("h2", {}, `Rule set${current.version ? ` (version ${current.version})` : " (the defaults)"}`),
      el("p", { class: "sub" }, "An override of the default rules: keywords, rules, disable_rules, fillers, options."),
      editor, el("div", { class: "admin-form inline" }, field("Note", note), el("button", { class: "primary", type: "button", id: "save-rules", onclick: save }, "Save"))),
    el("section", { class: "panel" }, el("h2", {}, "Battle card"), card),
    el("section", { class: "panel" }, el("h2", {}, "Try a sentence"), preview, results),
    el("section", { class: "panel" }, el("h2", {}, "History"), versions.data.length ? history : el("p", {}, "Never saved.")));
}

// --- settings ----------------------------------------------------------------------------------

const SETTINGS = [
  ["recording_enabled", "Record calls", "bool"],
  ["recording_retention_days", "Keep recordings (days; 0: always; empty: the server's default)", "int"],
  ["reps_review_own_recordings", "Reps may play back their own recordings", "bool"],
  ["reps_review_own_calls", "Reps may review their own calls", "bool"],
  ["keep_raw_transcripts", "Also keep the unredacted transcript", "bool"],
  ["plan", "Plan", ["starter", "professional", "enterprise"]],
  ["rate_limit_per_min", "API requests per minute (empty: the plan's)", "int"],
];

async function settingsTab(root) {
  const org = await api("/organization");
  const s = org.settings;
  const status = el("div");
  const inputs = {};
  const form = el("form", { class: "admin-form", id: "settings" }, ...SETTINGS.map(([key, label, kind]) => {
    let input;
    if (kind === "bool") input = el("input", { type: "checkbox", name: key, checked: s[key] });
    else if (kind === "int") input = el("input", { type: "number", name: key, min: key === "rate_limit_per_min" ? 1 : 0, value: s[key] ?? "" });
    else input = el("select", { name: key }, ...kind.map((v) => el("option", { value: v, selected: v === s[key] }, v)));
    inputs[key] = [input, kind];
    return field(label, input);
  }),
  field("SIP peers (JSON)", inputs.sip = el("textarea", { name: "sip_peers", rows: 3, spellcheck: "false" })),
  el("button", { class: "primary", type: "submit" }, "Save settings"));
  inputs.sip.value = JSON.stringify(s.sip_peers);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = {};
    for (const [key, [input, kind]] of Object.entries(inputs)) {
      if (key === "sip") continue;
      body[key] = kind === "bool" ? input.checked : kind === "int" ? (input.value === "" ? null : Number(input.value)) : input.value;
    }
    try { body.sip_peers = JSON.parse(inputs.sip.value || "[]"); }
    catch (e) { notice(status, `SIP peers are not valid JSON: ${e.message}`); return; }
    try { await api("/organization", { method: "PATCH", body }); notice(status, "Settings saved.", true); }
    catch (e) { notice(status, problem(e)); }
  });
  root.replaceChildren(status, el("section", { class: "panel" }, el("h2", {}, org.name), form));
}

// --- carrier numbers ---------------------------------------------------------------------------

async function numbersTab(root) {
  const [numbers, users] = await Promise.all([api("/carrier-numbers"), allUsers()]);
  const status = el("div");
  const form = el("form", { class: "admin-form inline", id: "map-number" },
    field("Number", el("input", { name: "number", required: true, placeholder: "+14155550123" })),
    field("Rings", el("select", { name: "user_id" }, ...users.filter((u) => u.is_active).map((u) => el("option", { value: u.id }, `${u.name} (${u.role})`)))),
    el("button", { class: "primary", type: "submit" }, "Map number"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try { await api("/carrier-numbers", { method: "POST", body: { number: form.number.value, user_id: form.user_id.value } }); await numbersTab(root); }
    catch (e) { notice(status, problem(e)); }
  });
  root.replaceChildren(status,
    el("p", { class: "sub" }, "Calls to these numbers ring the rep named. Numbers only in COACHLINE_CARRIER_NUMBERS still route; a number listed here wins."),
    el("div", { class: "table-wrap" }, el("table", { id: "numbers" }, el("thead", {}, el("tr", {}, ...["Number", "Rings", ""].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, ...numbers.data.map((n) => el("tr", {}, el("td", {}, n.number), el("td", {}, n.user_name || n.user_id),
        el("td", {}, el("button", { type: "button", onclick: async () => {
          try { await api(`/carrier-numbers/${n.id}`, { method: "DELETE" }); await numbersTab(root); } catch (e) { notice(status, problem(e)); }
        } }, "Remove"))))))),
    el("section", { class: "panel" }, el("h2", {}, "Route a number"), form));
}

// --- API tokens --------------------------------------------------------------------------------

async function tokensTab(root) {
  const [tokens, users] = await Promise.all([api("/api-tokens", { query: { limit: 200 } }), allUsers()]);
  const who = Object.fromEntries(users.map((u) => [u.id, u.name]));
  const status = el("div");
  const secret = el("div", { "aria-live": "polite" });
  const form = el("form", { class: "admin-form inline", id: "new-token" },
    field("Name", el("input", { name: "name", required: true, maxlength: 120 })),
    field("Scopes", el("input", { name: "scopes", value: "read", required: true })),
    el("button", { class: "primary", type: "submit" }, "Create token"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const scopes = form.scopes.value.split(/[\s,]+/).filter(Boolean);
    try {
      const t = await api("/api-tokens", { method: "POST", body: { name: form.name.value, scopes } });
      await tokensTab(root);
      root.querySelector(".token-secret").replaceChildren(el("p", { class: "ok", role: "status" }, "Copy it now, it is shown once: ", el("code", {}, t.token)));
    } catch (e) { notice(status, problem(e)); }
  });
  const rows = tokens.data.map((t) => el("tr", { "data-token": t.name }, el("td", {}, t.name, el("span", { class: "sub" }, t.token_prefix + "…")),
    el("td", {}, who[t.user_id] || t.user_id), el("td", {}, t.scopes.join(" ")),
    el("td", {}, t.last_used_at ? new Date(t.last_used_at).toLocaleString() : "never"),
    el("td", {}, t.revoked_at ? el("span", { class: "badge" }, "revoked") : el("button", { type: "button", onclick: async () => {
      try { await api(`/api-tokens/${t.id}`, { method: "DELETE" }); await tokensTab(root); } catch (e) { notice(status, problem(e)); }
    } }, "Revoke"))));
  secret.className = "token-secret";
  root.replaceChildren(status, secret,
    el("div", { class: "table-wrap" }, el("table", {}, el("thead", {}, el("tr", {}, ...["Name", "User", "Scopes", "Last used", ""].map((h) => el("th", { scope: "col" }, h)))), el("tbody", {}, ...rows))),
    el("section", { class: "panel" }, el("h2", {}, "New token"), form));
}

const MOUNT = { users: usersTab, rules: rulesTab, settings: settingsTab, numbers: numbersTab, tokens: tokensTab };

export async function mountAdmin(root, me, tab = "users") {
  if (me.role !== "admin") {
    root.replaceChildren(el("h1", {}, "Admin"), el("p", {}, "Only admins configure the organization."));
    return;
  }
  if (!MOUNT[tab]) tab = "users";
  const body = el("div", { id: "admin-body" });
  const nav = el("nav", { class: "tabs", "aria-label": "Admin sections" }, ...TABS.map(([key, label]) =>
    el("a", { href: `/app/admin/${key}`, "aria-current": key === tab ? "page" : null }, label)));
  root.replaceChildren(el("h1", {}, "Admin"), nav, body);
  try { await MOUNT[tab](body); }
  catch (e) { body.replaceChildren(el("p", { class: "error", role: "alert" }, problem(e))); }
}
