// One call's review: recording, transcript, summary, coaching events, who listened; the call
// library's timeline bar and comments (callLibraryPanels, below). The calls list is library.js.
import { api, ApiError, bearer, el, fmtMs, speakerOf } from "./api.js";
import { speakerTimeline } from "./call_timeline.js";
import { commentsPanel } from "./call_comments.js";

// Names of the organization's people, for showing ids as names (a rep may not list users).
let names = null;
async function userNames() {
  if (names) return names;
  try {
    const page = await api("/users", { query: { limit: 100 } });
    names = new Map((page.data || []).map((u) => [u.id, u.name || u.email]));
  } catch (e) { names = new Map(); }
  return names;
}

// Every prompt of a call, page by page (a long call may have more than one page).
async function loadPrompts(callId) {
  const out = [];
  let cursor;
  do {
    const page = await api(`/calls/${callId}/prompts`, { query: { limit: 200, cursor } });
    out.push(...(page.data || []));
    cursor = page.next_cursor;
  } while (cursor);
  return out;
}

export async function mountCallReview(root, callId) {
  let call;
  try {
    call = await api(`/calls/${callId}`);
  } catch (e) {
    root.replaceChildren(el("h1", {}, "Call not found"),
      el("p", {}, e instanceof ApiError && e.status === 404 ? "This call does not exist or is not yours to see." : String(e)));
    return;
  }
  const audio = el("audio", { controls: true, preload: "metadata", "aria-label": "Call recording" });
  // one mark per coaching prompt, placed at its time along the recording.
  const marks = el("div", { class: "prompt-marks", role: "group", "aria-label": "Coaching prompts on the recording" });
  const transcript = el("div", { class: "transcript", role: "list", "aria-label": "Transcript" });
  const timeline = el("ol", { class: "timeline", "aria-label": "Coaching events" });
  const summary = el("div", {});
  const audit = el("tbody");
  root.replaceChildren(
    el("h1", {}, `Call review — ${new Date(call.created_at).toLocaleString()}`),
    el("p", { class: "status" }, `${call.direction} · ${call.status} · ${call.duration_s != null ? fmtMs(call.duration_s * 1000) : ""}`),
    el("div", { class: "grid-live" },
      el("section", { class: "panel" }, el("h2", {}, "Recording"), audio, marks, el("h2", {}, "Transcript"), transcript),
      el("aside", {},
        el("section", { class: "panel" }, el("h2", {}, "Summary"), summary),
        el("section", { class: "panel" }, el("h2", {}, "Coaching events"), timeline),
        el("section", { class: "panel" }, el("h2", {}, "Who listened"),
          el("table", {}, el("thead", {}, el("tr", {}, el("th", {}, "User"), el("th", {}, "When"), el("th", {}, "Outcome"))), audit)))));

  // A player without audio says why (not permitted, recording off, not yet stored, not recorded).
  let playable = null;
  try { playable = await api(`/calls/${callId}/recording/status`); } catch (e) { playable = null; }
  if (playable && !playable.available) {
    audio.hidden = true;
    audio.after(el("p", { class: "no-audio", role: "note", "data-reason": playable.reason }, `No audio: ${playable.message}`));
  } else {
    // <audio> cannot send headers: the recording URL carries the short-lived token.
    audio.src = `/api/v1/calls/${callId}/recording?access_token=${encodeURIComponent(await bearer())}`;
  }

  const segs = await api(`/calls/${callId}/transcript`);
  const lines = (segs.data || segs.segments || []).map((s) => {
    const who = speakerOf(s, { rep: "Rep" });
    const line = el("div", { class: `line ${who.role}`, role: "listitem", "data-start": s.start_ms, "data-end": s.end_ms,
      "data-segment-key": s.segment_key },
      el("div", { class: "who" }, who.name, el("span", { class: "time" }, fmtMs(s.start_ms))),
      el("button", { class: "seek text", "aria-label": `Play from ${fmtMs(s.start_ms)}: ${s.text}`,
        onclick: () => { audio.currentTime = s.start_ms / 1000; audio.play().catch(() => {}); } }, s.text));
    return line;
  });
  transcript.replaceChildren(...lines);
  let current = null;
  audio.addEventListener("timeupdate", () => {
    const t = audio.currentTime * 1000;
    const line = lines.find((l) => t >= Number(l.dataset.start) && t < Number(l.dataset.end) + 300);
    if (line && line !== current) {
      current && current.classList.remove("current");
      line.classList.add("current");
      line.scrollIntoView({ block: "nearest" });
      current = line;
    }
  });

  // the prompts the rep saw (GET /calls/{id}/prompts, stored as they fired), as
  // marks on the recording and entries on the timeline; each names the rep's next words, so a
  // reviewer sees at a glance whether the rep acted on it, and clicking seeks there.
  const moments = [];
  const loaded = { prompts: [] };
  const seek = (ms) => { audio.currentTime = (ms || 0) / 1000; audio.play().catch(() => {}); };
  const promptsLoaded = loadPrompts(callId).then((prompts) => {
    marks.replaceChildren(...prompts.map((p) => el("button", { class: `mark ${p.severity}`, "data-at": p.at_ms,
      title: `${fmtMs(p.at_ms)} ${p.title}`, "aria-label": `Prompt at ${fmtMs(p.at_ms)}: ${p.title}`,
      onclick: () => seek(p.at_ms) })));
    // The bar spans the recording once its length is known; until then, the call's own length.
    const place = () => {
      const known = Number.isFinite(audio.duration) && audio.duration > 0 ? audio.duration * 1000 : 0;
      const span = Math.max(1, known || (call.duration_s || 0) * 1000, ...prompts.map((p) => p.at_ms + 500));
      for (const mark of marks.children) {
        mark.style.left = `${(100 * Number(mark.dataset.at) / span).toFixed(2)}%`;  // CSSOM: the CSP forbids style="…"
      }
    };
    place();
    audio.addEventListener("loadedmetadata", place);
    loaded.prompts = prompts;
    for (const p of prompts) {
      const source = p.segment_key && lines.find((l) => l.dataset.segmentKey === p.segment_key);
      if (source) source.classList.add("prompted");
      const reply = lines.find((l) => l.classList.contains("rep") && Number(l.dataset.start) >= p.at_ms);
      moments.push({ at_ms: p.at_ms, label: `Prompt (${p.severity}): ${p.title}`, prompt: true,
        after: reply ? `Rep next said: “${reply.querySelector(".text").textContent}”` : "The rep did not speak after it." });
    }
  }).catch(() => marks.replaceChildren(el("p", {}, "Coaching prompts could not be loaded.")));
  function renderTimeline() {
    moments.sort((x, y) => x.at_ms - y.at_ms);
    timeline.replaceChildren(...moments.filter((m) => m.at_ms != null).map((m) => el("li", { class: m.prompt ? "prompt-moment" : null },
      el("button", { class: "seek", onclick: () => seek(m.at_ms) }, `${fmtMs(m.at_ms)} — ${m.label}`),
      m.after ? el("div", { class: "after" }, m.after) : null)));
  }

  // The post-call summary is a "call.completed" timeline entry the CRM writes when the call ends
  // (crm_core/calls/summaries.py): summary, action items, and the coaching moments with their times.
  try {
    const page = await api("/activities", { query: { call_id: callId, kind: "call.completed", limit: 1 } });
    const done = (page.data || [])[0];
    if (!done) throw new Error("no summary yet");
    const b = done.body || {};
    const seekTo = (ms) => { audio.currentTime = (ms || 0) / 1000; audio.play().catch(() => {}); };
    const item = (a) => el("li", {}, typeof a === "string" ? a : a.text,
      a.at_ms != null ? [" ", el("button", { class: "seek", "aria-label": `Play from ${fmtMs(a.at_ms)}`, onclick: () => seekTo(a.at_ms) }, fmtMs(a.at_ms))] : null);
    // replaceChildren() turns an array argument into the text "[object …],[object …]": spread lists.
    summary.replaceChildren(el("p", {}, b.summary || "No summary."),
      (b.key_points || []).length ? el("ul", {}, ...b.key_points.map((k) => el("li", {}, k))) : "",
      el("h3", {}, "Action items"),
      (b.action_items || []).length ? el("ul", { class: "actions" }, ...b.action_items.map(item)) : el("p", {}, "None."),
      ...((b.next_steps || []).length
        ? [el("h3", {}, "Next steps"), el("ul", { class: "next-steps" }, ...b.next_steps.map(item))] : []));
    moments.push(
      ...(b.objections || []).map((o) => ({ at_ms: o.at_ms, label: `Objection (${o.category}): ${o.text}` })),
      ...(b.action_items || []).map((a) => ({ at_ms: a.at_ms, label: `Action item: ${a.text}` })));
    if (b.competitors && b.competitors.length) timeline.before(el("p", {}, "Competitors mentioned: ", b.competitors.join(", ")));
  } catch (e) { summary.textContent = "No summary for this call yet."; }
  await promptsLoaded;
  renderTimeline();
  callLibraryPanels(root, { callId, call, audio, lines, segments: segs.data || segs.segments || [],
    prompts: loaded.prompts, moments, seek });

  async function loadAudit() {
    try {
      const rows = await api(`/calls/${callId}/recording/audit`);
      const who = await userNames();
      audit.replaceChildren(...(rows.data || []).map((r) => el("tr", {},
        el("td", {}, who.get(r.actor_id) || r.actor_id || "(not signed in)"), el("td", {}, new Date(r.occurred_at).toLocaleString()), el("td", {}, r.outcome))));
    } catch (e) { audit.replaceChildren(el("tr", {}, el("td", { colspan: "3" }, "Only managers and admins see the audit trail."))); }
  }
  audio.addEventListener("play", () => setTimeout(loadAudit, 500), { once: true });
  await loadAudit();
}

// The call library's parts of the review: the per-speaker timeline bar under the player, the
// comments on moments of the call, and the jump to a moment a search hit named (?t=<ms>&seg=<key>).
function callLibraryPanels(root, { callId, call, audio, lines, segments, prompts, moments, seek }) {
  const comments = commentsPanel({ callId, audio, lines, seek, onChange: (list) => bar.showComments(list) });
  const bar = speakerTimeline({ segments, prompts, moments, audio, seek,
    durationMs: (call.duration_s || 0) * 1000, repName: "Rep" });
  root.querySelector(".prompt-marks").after(bar.node);
  const aside = root.querySelector(".grid-live aside");
  aside.insertBefore(comments.node, aside.children[1] || null);
  comments.load();

  const params = new URLSearchParams(location.search);
  const at = Number(params.get("t"));
  if (params.has("t") && Number.isFinite(at) && at >= 0) {
    const key = params.get("seg");
    const line = (key && lines.find((l) => l.dataset.segmentKey === key))
      || lines.find((l) => at >= Number(l.dataset.start) && at <= Number(l.dataset.end));
    audio.currentTime = at / 1000;  // kept as the start position until the recording loads
    if (line) {
      line.classList.add("jumped", "current");
      line.scrollIntoView({ block: "center" });
      line.querySelector("button.seek")?.focus({ preventScroll: true });
    }
  }
}
