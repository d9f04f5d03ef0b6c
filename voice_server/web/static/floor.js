// The manager's live floor: every call in progress of their teams (an admin's: the whole
// organization), updating live from /ws/floor; open one to follow its transcript and prompts,
// read-only, through the call's own feed (/ws/calls/{id}).
import { el, fmtMs, liveSocket } from "./api.js";
import { transcriptLines } from "./transcript.js";

const MAX_LINES = 300;   // the open call's DOM stays bounded on a one-hour call
const MAX_PROMPTS = 20;

export function mountFloor(root, me) {
  if (me.role !== "manager" && me.role !== "admin") {
    root.replaceChildren(el("h1", {}, "Live floor"),
      el("p", {}, "The live floor is for managers and admins. ", el("a", { href: "/app/live" }, "Your live call")));
    return null;
  }
  const calls = new Map();  // call_id -> { card, row, cells, startedAt, sentiment }
  let listening = null;     // { callId, socket }

  const status = el("p", { class: "status", role: "status", "aria-live": "polite" }, "Connecting…");
  const empty = el("p", { class: "floor-empty" }, "No calls in progress right now.");
  const list = el("ul", { class: "floor-calls", "aria-labelledby": "floor-h" });
  const detail = el("section", { class: "panel floor-detail", "aria-labelledby": "listen-h", hidden: true });
  root.replaceChildren(
    el("h1", {}, "Live floor"), status,
    el("div", { class: "grid-floor" },
      el("section", { class: "panel" }, el("h2", { id: "floor-h" }, "Calls in progress"), empty, list),
      detail));

  function caller(card) {
    if (card.lead_name) return card.company ? `${card.lead_name} (${card.company})` : card.lead_name;
    return card.customer_number || "Unknown caller";
  }

  function cell(label, ...value) {
    return el("div", { class: "floor-cell" }, el("span", { class: "floor-label" }, label),
      el("span", { class: "floor-value" }, ...value));
  }

  function addCall(card) {
    const known = calls.get(card.call_id);
    const startedAt = performance.now() - card.elapsed_ms;
    if (known) { known.card = card; known.startedAt = startedAt; return; }
    const duration = el("span", { class: "duration" }, fmtMs(card.elapsed_ms));
    const talkFill = el("span", { class: "fill", style: { width: "0%" } });
    const talkText = el("span", { class: "talk-text" }, "–");
    const talk = el("span", { class: "mini-meter" },
      el("span", { class: "bar", role: "meter", "aria-label": "Rep's talk share", "aria-valuemin": "0",
        "aria-valuemax": "100", "aria-valuenow": "0" }, talkFill), talkText);
    const sentiment = el("span", { class: "sentiments" }, "–");
    const prompt = el("span", { class: "last-prompt" }, "none yet");
    const listen = el("button", { type: "button", class: "primary listen",
      "aria-label": `Listen in: ${card.rep_name || "rep"} with ${caller(card)}`,
      onclick: () => openCall(card.call_id) }, "Listen in");
    const row = el("li", { class: "floor-call", "data-call": card.call_id },
      el("div", { class: "floor-who" },
        el("strong", { class: "rep" }, card.rep_name || "Unassigned"),
        card.team_name ? el("span", { class: "badge" }, card.team_name) : null,
        el("span", { class: "caller" }, caller(card))),
      cell("Duration", duration), cell("Talk share", talk), cell("Sentiment", sentiment),
      cell("Last prompt", prompt), listen);
    calls.set(card.call_id, { card, row, startedAt, duration, talkFill, talkText, talk, sentiment,
      prompt, moods: {} });
    list.append(row);
    showCount();
  }

  function removeCall(callId) {
    const call = calls.get(callId);
    if (!call) return;
    call.row.remove();
    calls.delete(callId);
    showCount();
  }

  function showCount() {
    empty.hidden = calls.size > 0;
    status.textContent = calls.size === 1 ? "1 call in progress" : `${calls.size} calls in progress`;
  }

  function onMetrics(call, msg) {
    const share = msg.talk_ratio && msg.talk_ratio.rep;
    if (typeof share !== "number") return;
    const pct = Math.round(share * 100);
    call.talkFill.style.width = `${pct}%`;
    call.talk.querySelector(".bar").setAttribute("aria-valuenow", String(pct));
    call.talk.classList.toggle("over", share > 0.65);
    call.talkText.textContent = `${pct} %`;
  }

  function onSentiment(call, msg) {
    if (msg.party !== "rep" && msg.party !== "customer") return;
    call.moods[msg.party] = msg;
    const chips = ["customer", "rep"].filter((p) => call.moods[p]).map((p) => {
      const m = call.moods[p];
      const score = m.score ?? 0;
      return el("span", { class: `mood ${m.label}` },
        `${p === "rep" ? "Rep" : "Customer"}: ${m.label} (${score >= 0 ? "+" : ""}${score.toFixed(1)})`);
    });
    call.sentiment.replaceChildren(...chips);
  }

  function onPrompt(call, msg) {
    const p = msg.prompt || msg;
    call.prompt.replaceChildren(el("span", { class: `sev ${p.severity || "info"}` }, p.title),
      el("span", { class: "time" }, ` at ${fmtMs(p.at_ms || 0)}`));
  }

  const tick = setInterval(() => {
    const now = performance.now();
    for (const call of calls.values()) call.duration.textContent = fmtMs(now - call.startedAt);
  }, 1000);

  const floor = liveSocket("/ws/floor", {
    onState: (s) => { if (s !== "live") status.textContent = `Connection: ${s}…`; },
    onMessage: (msg) => {
      if (msg.type === "feed.ready") {
        // after a reconnect, calls that ended meanwhile are not listed again
        for (const id of [...calls.keys()]) if (!msg.calls.includes(id)) removeCall(id);
        return showCount();
      }
      if (msg.type === "floor.call") return addCall(msg.card);
      const call = calls.get(msg.call_id);
      if (!call) return;
      switch (msg.type) {
        case "insight.metrics": return onMetrics(call, msg);
        case "insight.sentiment": return onSentiment(call, msg);
        case "coaching.prompt": return onPrompt(call, msg);
        case "call.ended": return removeCall(msg.call_id);
      }
    },
  });

  function openCall(callId) {
    const call = calls.get(callId);
    if (!call) return;
    if (listening) listening.socket.close();
    for (const r of list.children) r.classList.toggle("selected", r.dataset.call === callId);
    const repName = call.card.rep_name || "Rep";
    const state = el("p", { class: "status", role: "status", "aria-live": "polite" }, "Connecting…");
    const transcript = el("div", { class: "transcript", role: "log", "aria-label": "Transcript", tabindex: "0" });
    const prompts = el("div", { class: "prompts", "aria-label": "Coaching prompts" });
    const close = el("button", { type: "button", class: "close", onclick: closeCall }, "Stop listening");
    detail.replaceChildren(
      el("div", { class: "floor-detail-head" },
        el("h2", { id: "listen-h" }, `${repName} · ${caller(call.card)}`), close),
      el("p", { class: "status" }, "Listening in, read-only: the rep's screen does not change."),
      state,
      el("h3", {}, "Prompts"), prompts,
      el("h3", {}, "Transcript"), transcript);
    detail.hidden = false;
    const seen = new Set();

    const lines = transcriptLines(transcript, { maxLines: MAX_LINES, rep: repName });

    function addPrompt(msg) {
      const p = msg.prompt || msg;
      if (prompts.querySelector(`[data-prompt="${CSS.escape(p.id || "")}"]`)) return;
      prompts.prepend(el("article", { class: `prompt ${p.severity || "info"}`, "data-prompt": p.id || "" },
        el("h3", {}, p.title), el("p", {}, p.body || ""),
        el("p", { class: "status" }, `at ${fmtMs(p.at_ms || 0)}`)));
      while (prompts.children.length > MAX_PROMPTS) prompts.lastElementChild.remove();
    }

    const socket = liveSocket(`/ws/calls/${encodeURIComponent(callId)}`, {
      onState: (s) => { if (!state.dataset.ended) state.textContent = s === "live" ? "Live" : `Connection: ${s}…`; },
      onMessage: (msg) => {
        if (msg.type === "feed.ready" || (msg.id && seen.has(msg.id))) return;
        if (msg.id) seen.add(msg.id);
        switch (msg.type) {
          case "transcript.partial": return lines.show(msg, false);
          case "transcript.final": return lines.show(msg, true);
          case "transcript.retracted": return lines.retract(msg);
          case "coaching.prompt": return addPrompt(msg);
          case "call.ended":
            state.dataset.ended = "1";
            state.replaceChildren(msg.abnormal ? "Call dropped. " : "Call ended. ",
              el("a", { href: `/app/calls/${callId}` }, "Review the call"));
            socket.close();
            return;
        }
      },
    });
    listening = { callId, socket };
    if (window.matchMedia("(max-width: 900px)").matches) detail.scrollIntoView({ block: "start" });
  }

  function closeCall() {
    if (listening) listening.socket.close();
    listening = null;
    detail.hidden = true;
    detail.replaceChildren();
    for (const r of list.children) r.classList.remove("selected");
  }

  return () => { clearInterval(tick); floor.close(); if (listening) listening.socket.close(); };
}
