// The rep's live-call screen: who is calling, the call's clock and checklist, the transcript,
// coaching prompts, talk metrics and sentiment; when the call ends, its summary.
// Laid out to work as a 360 px side panel next to a softphone as well as full screen.
import { api, el, fmtMs, liveSocket } from "./api.js";
import { transcriptLines } from "./transcript.js";

const MAX_LINES = 300;       // DOM stays bounded on a one-hour call
export const MAX_VISIBLE_PROMPTS = 3;  // more would push the talk panel off a laptop's screen
const MAX_PROMPTS = 20;      // cards kept (visible or counted)
// A prompt card expires this long (call clock) after it fired; critical ones stay until handled.
const PROMPT_TTL_MS = { info: 60_000, warning: 120_000 };
const SEEN_LIMIT = 5000;
const CHECK_MARK = { done: "✓", missed: "✗", pending: "○" };

export function mountLive(root, me) {
  const state = { callId: null, seen: new Set(), seenOrder: [], clockMs: 0, startedAt: null,
    ended: false, caller: null, checklist: new Map() };
  const status = el("p", { class: "status", role: "status", "aria-live": "polite" }, "Waiting for your next call…");
  const timer = el("span", { class: "call-timer", role: "timer", "aria-label": "Call time" }, "0:00");
  const callInfo = el("div", { class: "call-info caller-card", "aria-label": "Caller" });
  const checklist = el("ul", { class: "checklist", "aria-label": "Call checklist" });
  const endPanel = el("section", { class: "panel call-end", "aria-labelledby": "end-h", hidden: true });
  const transcript = el("div", { class: "transcript", role: "log", "aria-label": "Live transcript", tabindex: "0" });
  const lines = transcriptLines(transcript, { maxLines: MAX_LINES, labelFinals: true });
  const prompts = el("div", { class: "prompts", "aria-live": "assertive", "aria-label": "Coaching prompts" });
  const moreNote = el("p", { class: "more-prompts", hidden: true });
  const talkMeter = meter("Your talk share", "talk-ratio");
  const monoMeter = meter("Longest monologue", "monologue");
  const stats = {
    interruptions: el("dd", {}, "–"), wpm: el("dd", {}, "–"), patience: el("dd", {}, "–"),
  };
  const gauges = { customer: gauge("Customer", "customer"), rep: gauge("You", "rep") };

  root.replaceChildren(
    el("div", { class: "live-head" },
      el("h1", {}, "Live call"), timer, status),
    el("div", { class: "live-strip" }, callInfo, checklist),
    endPanel,
    el("div", { class: "grid-live live-grid" },
      el("section", { class: "panel live-transcript", "aria-labelledby": "t-h" }, el("h2", { id: "t-h" }, "Transcript"), transcript),
      el("section", { class: "panel live-coach", "aria-labelledby": "c-h" }, el("h2", { id: "c-h" }, "Coaching"), prompts, moreNote),
      el("section", { class: "panel live-talk", "aria-labelledby": "k-h" }, el("h2", { id: "k-h" }, "Talk"),
        talkMeter.node, monoMeter.node,
        el("dl", { class: "talk-stats" },
          el("dt", {}, "Interruptions"), stats.interruptions,
          el("dt", {}, "Talk speed"), stats.wpm,
          el("dt", {}, "Patience"), stats.patience)),
      el("section", { class: "panel live-mood", "aria-labelledby": "s-h" }, el("h2", { id: "s-h" }, "Sentiment"),
        gauges.customer.node, gauges.rep.node)));

  function remember(id) {
    if (!id) return false;
    if (state.seen.has(id)) return true;
    state.seen.add(id); state.seenOrder.push(id);
    if (state.seenOrder.length > SEEN_LIMIT) state.seen.delete(state.seenOrder.shift());
    return false;
  }

  // -- the clock --------------------------------------------------------------------------------
  const tick = setInterval(() => {
    if (state.startedAt && !state.ended) timer.textContent = fmtMs(Date.now() - state.startedAt);
  }, 1000);
  function advance(ms) {
    if (typeof ms !== "number" || ms <= state.clockMs) return;
    state.clockMs = ms;
    expirePrompts();
  }

  // -- prompts ----------------------------------------------------------------------------------
  function onPrompt(msg) {
    const p = msg.prompt || msg;
    if (prompts.querySelector(`[data-prompt="${CSS.escape(p.id)}"]`)) return;
    // a checklist item already ticked needs no prompt
    if (state.checklist.get(p.rule_id) === "done") return;
    const card = el("article", { class: `prompt ${p.severity || "info"}`, "data-prompt": p.id,
      "data-rule": p.rule_id || "", "data-at": p.at_ms ?? 0, role: "alert" },
      el("h3", {}, p.title),
      el("p", {}, p.body || ""),
      p.link && /^https?:\/\//.test(p.link) ? el("a", { href: p.link, target: "_blank", rel: "noopener" }, "Open") : null,
      el("button", { class: "dismiss", "aria-label": `Dismiss: ${p.title}`, onclick: () => { card.remove(); layoutPrompts(); } }, "×"));
    prompts.prepend(card);
    while (prompts.children.length > MAX_PROMPTS) prompts.lastElementChild.remove();
    advance(p.at_ms);
    layoutPrompts();
  }

  function expirePrompts() {
    let changed = false;
    for (const card of [...prompts.children]) {
      const ttl = PROMPT_TTL_MS[[...card.classList].find((c) => c in PROMPT_TTL_MS)];
      if (ttl && state.clockMs - Number(card.dataset.at) >= ttl) { card.remove(); changed = true; }
    }
    if (changed) layoutPrompts();
  }

  // Once handled (the checklist item it asked for was said), a card collapses to one line.
  function handled(ruleId) {
    for (const card of prompts.querySelectorAll(`[data-rule="${CSS.escape(ruleId)}"]`)) {
      if (card.classList.contains("handled")) continue;
      card.classList.add("handled");
      card.setAttribute("role", "status");
      card.querySelector("h3").textContent = `✓ ${card.querySelector("h3").textContent}`;
    }
    layoutPrompts();
  }

  // At most MAX_VISIBLE_PROMPTS cards show (unhandled first, newest first); the rest are counted.
  function layoutPrompts() {
    const cards = [...prompts.children];
    const order = [...cards.filter((c) => !c.classList.contains("handled")),
      ...cards.filter((c) => c.classList.contains("handled"))];
    order.forEach((card, i) => { card.hidden = i >= MAX_VISIBLE_PROMPTS; });
    const hidden = Math.max(0, cards.length - MAX_VISIBLE_PROMPTS);
    moreNote.hidden = hidden === 0;
    moreNote.textContent = `+${hidden} more prompt${hidden === 1 ? "" : "s"}`;
  }

  // -- checklist --------------------------------------------------------------------------------
  function onChecklist(msg) {
    advance(msg.at_ms);
    checklist.replaceChildren(...(msg.items || []).map((item) => {
      const before = state.checklist.get(item.id);
      state.checklist.set(item.id, item.status);
      if (item.status === "done" && before !== "done") handled(item.id);
      const when = item.status === "done" && item.done_at_ms != null ? ` at ${fmtMs(item.done_at_ms)}`
        : item.status === "pending" ? ` by ${fmtMs(item.due_ms)}` : "";
      return el("li", { class: `check ${item.status}`, "data-item": item.id,
        "aria-label": `${item.label}: ${item.status}${when}` },
        el("span", { class: "mark", "aria-hidden": "true" }, CHECK_MARK[item.status] || "○"), item.label);
    }));
  }

  // -- talk and sentiment -----------------------------------------------------------------------
  function onMetrics(msg) {
    advance(msg.at_ms);
    const share = msg.talk_ratio && msg.talk_ratio.rep;
    if (typeof share === "number") talkMeter.set(share, `${Math.round(share * 100)} %`, share > 0.65);
    const mono = msg.longest_monologue_ms && msg.longest_monologue_ms.rep;
    if (typeof mono === "number") monoMeter.set(Math.min(1, mono / 120000), fmtMs(mono), mono > 60000);
    const pair = (v, f) => (v ? `You ${f(v.rep)} · Customer ${f(v.customer)}` : "–");
    stats.interruptions.textContent = pair(msg.interruptions, (n) => n ?? 0);
    stats.wpm.textContent = pair(msg.wpm, (n) => `${Math.round(n || 0)} wpm`);
    // patience: how long the rep waits after the customer stops before answering
    stats.patience.textContent = typeof msg.patience_ms === "number" ? `${(msg.patience_ms / 1000).toFixed(1)} s` : "–";
  }

  function onSentiment(msg) {
    advance(msg.at_ms);
    const g = gauges[msg.party];
    if (g) g.set(typeof msg.trend === "number" ? msg.trend : msg.score);
  }

  // -- the call ---------------------------------------------------------------------------------
  async function loadCaller(callId) {
    try {
      const [call, card] = await Promise.all([api(`/calls/${callId}`), api(`/calls/${callId}/caller`)]);
      if (state.callId !== callId) return;
      state.caller = card;
      if (!state.startedAt) state.startedAt = Date.parse(call.started_at || call.created_at) || Date.now();
      callInfo.replaceChildren(...callerCard(call, card));
    } catch (e) { /* the caller card is a nicety; the transcript matters */ }
  }

  function showCall(callId, startedAt) {
    if (state.callId === callId) return;
    Object.assign(state, { callId, clockMs: 0, ended: false, caller: null, startedAt: startedAt || null,
      checklist: new Map() });
    transcript.replaceChildren();
    prompts.replaceChildren();
    checklist.replaceChildren();
    layoutPrompts();
    endPanel.hidden = true;
    endPanel.replaceChildren();
    gauges.customer.reset(); gauges.rep.reset();
    status.textContent = "On a call";
    timer.textContent = "0:00";
    callInfo.replaceChildren(el("p", {}, "Call ", el("code", {}, callId.slice(0, 8))));
    loadCaller(callId);
  }

  async function onSummary(msg) {
    const callId = state.callId;
    const list = (items, cls) => (items || []).length
      ? el("ul", { class: cls }, ...items.map((a) => el("li", {}, a.text, a.due ? ` (${a.due})` : "")))
      : el("p", { class: "status" }, "None.");
    let card = state.caller;
    if (!card) { try { card = await api(`/calls/${callId}/caller`); } catch (e) { card = null; } }
    if (state.callId !== callId) return;
    const review = card && card.may_review === false
      ? el("p", { class: "status" }, "Your organization does not let reps review their calls.")
      : el("a", { class: "review-link", href: `/app/calls/${callId}` }, "Review this call");
    endPanel.replaceChildren(
      el("h2", { id: "end-h" }, "Call summary"),
      el("p", { class: "summary-text" }, msg.text || "No summary."),
      el("h3", {}, "Action items"), list(msg.action_items, "actions"),
      el("h3", {}, "Next steps"), list(msg.next_steps, "next-steps"),
      (msg.checklist_missed || []).length
        ? el("p", { class: "missed" }, `Checklist missed: ${msg.checklist_missed.length}`) : null,
      review);
    endPanel.hidden = false;
  }

  function onEnded(msg) {
    state.ended = true;
    status.textContent = msg.abnormal ? "Call dropped" : "Call ended";
  }

  const socket = liveSocket("/ws/live", {
    onState: (s) => { if (!state.callId || s !== "live") status.textContent = s === "live" ? "Waiting for your next call…" : `Connection: ${s}…`; },
    onMessage: (msg) => {
      if (msg.type === "feed.ready") { if (msg.calls.length && !state.callId) showCall(msg.calls[msg.calls.length - 1]); return; }
      if (remember(msg.id)) return;
      if (msg.call_id && msg.call_id !== state.callId) {
        if (msg.type === "call.started" || !state.callId) showCall(msg.call_id); else return;
      }
      switch (msg.type) {
        case "call.started": if (typeof msg.at === "number") state.startedAt = msg.at * 1000; return;
        case "transcript.partial": advance(msg.end_ms); return lines.show(msg, false);
        case "transcript.final": advance(msg.end_ms); return lines.show(msg, true);
        case "transcript.retracted": return lines.retract(msg);
        case "coaching.prompt": return onPrompt(msg);
        case "insight.metrics": return onMetrics(msg);
        case "insight.sentiment": return onSentiment(msg);
        case "insight.checklist": return onChecklist(msg);
        case "insight.summary": return onSummary(msg);
        case "call.ended": return onEnded(msg);
      }
    },
  });
  return () => { clearInterval(tick); socket.close(); };
}

function callerCard(call, card) {
  const out = [];
  const lead = card && card.lead;
  if (lead) {
    const name = lead.name || "Unnamed lead";
    out.push(el("p", { class: "caller-name" },
      lead.visible ? el("a", { href: `/app/leads/${lead.id}` }, name) : el("strong", {}, name),
      lead.company ? el("span", { class: "company" }, ` · ${lead.company}`) : "", " ",
      el("span", { class: `badge grade-${lead.grade || "none"}` }, `Score ${Math.round(lead.ai_score ?? 0)} · ${lead.grade || "–"}`)));
  } else {
    out.push(el("p", { class: "caller-name" }, el("strong", {}, "Unknown caller"),
      el("span", { class: "company" }, " · no lead with this number")));
  }
  const facts = [el("span", {}, `${call.direction || ""} call`)];
  const deal = card && card.open_deal;
  if (deal) {
    const dealName = `${deal.name} · ${deal.stage.replace(/_/g, " ")}`;
    facts.push(el("span", { class: "deal" }, "Deal: ",
      deal.visible ? el("a", { href: `/app/deals/${deal.id}` }, dealName) : dealName));
  }
  const last = card && card.last_call;
  if (last) {
    const when = `${new Date(last.at).toLocaleDateString()}${last.duration_s != null ? `, ${fmtMs(last.duration_s * 1000)}` : ""}${last.with_you ? " (you)" : ""}`;
    facts.push(el("span", { class: "last-call" }, "Last call: ",
      last.id ? el("a", { href: `/app/calls/${last.id}` }, when) : when));
  } else if (lead) {
    facts.push(el("span", { class: "last-call" }, "First call"));
  }
  out.push(el("p", { class: "caller-facts" }, ...facts));
  return out;
}

function meter(label, id) {
  const value = el("span", {});
  const fill = el("span", { class: "fill", style: { width: "0%" } });
  const bar = el("div", { class: "bar", role: "meter", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "0", "aria-labelledby": `${id}-l` }, fill);
  const node = el("div", { class: "meter" }, el("label", { id: `${id}-l` }, label, value), bar);
  return {
    node,
    set(fraction, text, over) {
      fill.style.width = `${Math.round(fraction * 100)}%`;
      bar.setAttribute("aria-valuenow", String(Math.round(fraction * 100)));
      bar.classList.toggle("over", !!over);
      value.textContent = text;
    },
  };
}

// A party's sentiment, -1..+1, as a labelled bar filled from the middle: red to the left
// (negative), green to the right (positive), with the value and its word beside the label.
function gauge(label, party) {
  const value = el("span", { class: "gauge-value" }, "–");
  const fill = el("span", { class: "gauge-fill" });
  const bar = el("div", { class: "gauge-bar", role: "meter", "aria-valuemin": "-100", "aria-valuemax": "100",
    "aria-valuenow": "0", "aria-label": `${label} sentiment`, "aria-valuetext": "no reading yet" },
  el("span", { class: "gauge-mid", "aria-hidden": "true" }), fill);
  const node = el("div", { class: "gauge neutral", "data-party": party },
    el("div", { class: "gauge-label" }, el("span", {}, label), value), bar);
  return {
    node,
    set(score) {
      const v = Math.max(-1, Math.min(1, score));
      const word = v >= 0.05 ? "positive" : v <= -0.05 ? "negative" : "neutral";
      node.classList.remove("positive", "negative", "neutral");
      node.classList.add(word);
      const half = Math.abs(v) * 50;
      fill.style.left = `${v < 0 ? 50 - half : 50}%`;
      fill.style.width = `${half}%`;
      const text = `${v > 0 ? "+" : ""}${v.toFixed(2)} ${word}`;
      value.textContent = text;
      bar.setAttribute("aria-valuenow", String(Math.round(v * 100)));
      bar.setAttribute("aria-valuetext", text);
    },
    reset() {
      node.classList.remove("positive", "negative"); node.classList.add("neutral");
      fill.style.width = "0%"; value.textContent = "–";
      bar.setAttribute("aria-valuenow", "0"); bar.setAttribute("aria-valuetext", "no reading yet");
    },
  };
}
