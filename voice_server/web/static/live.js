// The rep's live-call screen: transcript, coaching prompts, sentiment, meters.
import { api, el, fmtMs, liveSocket } from "./api.js";
import { transcriptLines } from "./transcript.js";

const MAX_LINES = 300;       // DOM stays bounded on a one-hour call
const MAX_PROMPTS = 20;
const SEEN_LIMIT = 5000;

export function mountLive(root, me) {
  const state = { callId: null, seen: new Set(), seenOrder: [], trend: { rep: [], customer: [] } };
  const status = el("p", { class: "status", role: "status", "aria-live": "polite" }, "Waiting for your next call…");
  const callInfo = el("div", { class: "call-info" });
  const transcript = el("div", { class: "transcript", role: "log", "aria-label": "Live transcript", tabindex: "0" });
  const lines = transcriptLines(transcript, { maxLines: MAX_LINES, labelFinals: true });
  const prompts = el("div", { class: "prompts", "aria-live": "assertive", "aria-label": "Coaching prompts" });
  const talkMeter = meter("Your talk share", "talk-ratio");
  const monoMeter = meter("Longest monologue", "monologue");
  const sentiment = el("div", { "aria-label": "Sentiment trend" },
    el("h2", {}, "Sentiment"),
    sparkRow("Customer", "customer"), sparkRow("You", "rep"));

  root.replaceChildren(
    el("h1", {}, "Live call"), status, callInfo,
    el("div", { class: "grid-live" },
      el("section", { class: "panel", "aria-labelledby": "t-h" }, el("h2", { id: "t-h" }, "Transcript"), transcript),
      el("aside", { class: "side" },
        el("section", { class: "panel" }, el("h2", {}, "Coaching"), prompts),
        el("section", { class: "panel" }, el("h2", {}, "Talk"), talkMeter.node, monoMeter.node),
        el("section", { class: "panel" }, sentiment))));

  function remember(id) {
    if (!id) return false;
    if (state.seen.has(id)) return true;
    state.seen.add(id); state.seenOrder.push(id);
    if (state.seenOrder.length > SEEN_LIMIT) state.seen.delete(state.seenOrder.shift());
    return false;
  }

  function onPrompt(msg) {
    const p = msg.prompt || msg;
    if (prompts.querySelector(`[data-prompt="${CSS.escape(p.id)}"]`)) return;
    const card = el("article", { class: `prompt ${p.severity || "info"}`, "data-prompt": p.id, role: "alert" },
      el("h3", {}, p.title),
      el("p", {}, p.body || ""),
      el("button", { class: "dismiss", "aria-label": `Dismiss: ${p.title}`, onclick: () => card.remove() }, "×"));
    prompts.prepend(card);
    while (prompts.children.length > MAX_PROMPTS) prompts.lastElementChild.remove();
  }

  function onMetrics(msg) {
    const share = msg.talk_ratio && msg.talk_ratio.rep;
    if (typeof share === "number") talkMeter.set(share, `${Math.round(share * 100)} %`, share > 0.65);
    const mono = msg.longest_monologue_ms && msg.longest_monologue_ms.rep;
    if (typeof mono === "number") monoMeter.set(Math.min(1, mono / 120000), fmtMs(mono), mono > 60000);
  }

  function onSentiment(msg) {
    const series = state.trend[msg.party];
    if (!series) return;
    series.push(msg.score);
    if (series.length > 60) series.shift();
    drawSpark(sentiment.querySelector(`svg[data-party="${msg.party}"]`), series);
  }

  async function showCall(callId) {
    if (state.callId === callId) return;
    state.callId = callId;
    transcript.replaceChildren();
    prompts.replaceChildren();
    state.trend = { rep: [], customer: [] };
    status.textContent = "On a call";
    callInfo.replaceChildren(el("p", {}, "Call ", el("code", {}, callId.slice(0, 8))));
    try {
      const call = await api(`/calls/${callId}`);
      const bits = [el("span", {}, `${call.direction || ""} call`)];
      if (call.lead_id) {
        const lead = await api(`/leads/${call.lead_id}`);
        bits.push(" with ", el("a", { href: `/app/leads/${lead.id}` }, `${lead.first_name || ""} ${lead.last_name || ""}`.trim() || "lead"),
          lead.company ? ` (${lead.company})` : "", " ",
          el("span", { class: `badge grade-${lead.grade}` }, `Score ${Math.round(lead.ai_score ?? 0)} · ${lead.grade || "–"}`));
      }
      if (call.deal_id) bits.push(" · ", el("a", { href: `/app/deals/${call.deal_id}` }, "deal"));
      callInfo.replaceChildren(el("p", {}, ...bits));
    } catch (e) { /* the call card is a nicety; the transcript matters */ }
  }

  const socket = liveSocket("/ws/live", {
    onState: (s) => { if (!state.callId || s !== "live") status.textContent = s === "live" ? "Waiting for your next call…" : `Connection: ${s}…`; },
    onMessage: (msg) => {
      if (msg.type === "feed.ready") { if (msg.calls.length) showCall(msg.calls[msg.calls.length - 1]); return; }
      if (remember(msg.id)) return;
      if (msg.call_id && msg.call_id !== state.callId) {
        if (msg.type === "call.started" || !state.callId) showCall(msg.call_id); else return;
      }
      switch (msg.type) {
        case "transcript.partial": return lines.show(msg, false);
        case "transcript.final": return lines.show(msg, true);
        case "transcript.retracted": return lines.retract(msg);
        case "coaching.prompt": return onPrompt(msg);
        case "insight.metrics": return onMetrics(msg);
        case "insight.sentiment": return onSentiment(msg);
        case "call.ended": status.textContent = msg.abnormal ? "Call dropped" : "Call ended"; return;
      }
    },
  });
  return () => socket.close();
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

function sparkRow(label, party) {
  return el("div", {}, el("div", { class: "status" }, label),
    svgEl({ class: "sparkline", "data-party": party, viewBox: "0 0 100 40", preserveAspectRatio: "none", role: "img", "aria-label": `${label} sentiment` }));
}

// document.createElement("svg") makes an unknown HTML element that never draws: SVG needs its namespace.
function svgEl(attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function drawSpark(svg, series) {
  if (!svg) return;
  const n = series.length;
  const pts = series.map((v, i) => `${n === 1 ? 50 : (i / (n - 1)) * 100},${20 - v * 18}`).join(" ");
  svg.innerHTML = `<line x1="0" y1="20" x2="100" y2="20" stroke="#d0d7de"/><polyline fill="none" stroke="#0b5cad" stroke-width="2" points="${pts}"/>`;
}
