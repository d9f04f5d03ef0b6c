// Comments on moments of a call: a manager's coaching note to the rep (the rep sees it, and may
// answer). Each is pinned to a time on the call clock; its author may delete it.
import { api, el, fmtMs } from "./api.js";

const me = JSON.parse(document.getElementById("me")?.textContent || "{}");

async function userNames() {
  try {
    const page = await api("/users", { query: { limit: 100 } });
    return new Map((page.data || []).map((u) => [u.id, u.name || u.email]));
  } catch (e) { return new Map(); }
}

export function commentsPanel({ callId, audio, lines, seek, onChange }) {
  const list = el("ol", { class: "comments", "aria-label": "Comments" });
  const at = el("span", { class: "at" }, "0:00");
  const text = el("textarea", { name: "body", rows: "2", maxlength: "2000", required: true,
    "aria-label": "Comment", placeholder: "What should the rep do differently here?" });
  const error = el("p", { class: "error", role: "alert", hidden: true });
  const form = el("form", { class: "comment-form", "aria-label": "Comment on this moment" },
    el("label", {}, "Comment at ", at, text), error,
    el("button", { class: "primary", type: "submit" }, "Add comment"));
  const node = el("section", { class: "panel comments-panel" }, el("h2", {}, "Comments"), list, form);
  let names = new Map();
  const nowMs = () => Math.max(0, Math.round((audio.currentTime || 0) * 1000));
  const showAt = () => { at.textContent = fmtMs(nowMs()); };
  audio.addEventListener("timeupdate", showAt);
  audio.addEventListener("seeked", showAt);

  function render(items) {
    list.replaceChildren(...items.map((c) => el("li", { "data-comment-id": c.id },
      el("button", { type: "button", class: "seek", "aria-label": `Play from ${fmtMs(c.at_ms)}`, onclick: () => seek(c.at_ms) },
        fmtMs(c.at_ms)),
      el("strong", {}, names.get(c.author_id) || (c.author_id ? "Someone" : "A former user")),
      el("p", { class: "body" }, c.body),
      c.author_id === me.user_id
        ? el("button", { type: "button", class: "link", onclick: () => remove(c) }, "Delete") : null)));
    if (!items.length) list.append(el("li", { class: "empty" }, "No comments yet."));
    onChange && onChange(items);
  }

  async function load() {
    try {
      names = await userNames();
      const items = [];
      let cursor;
      do {
        const page = await api(`/calls/${callId}/comments`, { query: { limit: 200, cursor } });
        items.push(...(page.data || []));
        cursor = page.next_cursor;
      } while (cursor);
      render(items);
    } catch (e) { list.replaceChildren(el("li", {}, "Comments could not be loaded.")); }
  }

  async function remove(c) {
    try { await api(`/calls/${callId}/comments/${c.id}`, { method: "DELETE" }); }
    catch (e) { error.textContent = e.message; error.hidden = false; }
    await load();
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const atMs = nowMs();
    const line = lines.find((l) => atMs >= Number(l.dataset.start) && atMs <= Number(l.dataset.end));
    error.hidden = true;
    try {
      await api(`/calls/${callId}/comments`, { method: "POST",
        body: { at_ms: atMs, segment_key: line ? line.dataset.segmentKey : null, body: text.value } });
      text.value = "";
    } catch (e) { error.textContent = e.message; error.hidden = false; return; }
    await load();
  });
  showAt();
  return { node, load };
}
