// The review screen's timeline bar: one lane per speaker (who spoke when), and a lane of marks
// (coaching prompts, keywords and objections heard, comments). Everything on it seeks the player.
import { el, fmtMs, speakerOf } from "./api.js";

const pct = (ms, span) => `${(100 * ms / span).toFixed(3)}%`;

export function speakerTimeline({ segments, prompts, moments, audio, seek, durationMs }) {
  const lanes = new Map();
  for (const s of segments) {
    const who = speakerOf(s, { rep: "Rep" });
    if (!lanes.has(who.name)) lanes.set(who.name, { who, turns: [] });
    lanes.get(who.name).turns.push(s);
  }
  const track = (label, cls) => el("div", { class: `track ${cls || ""}`, role: "group", "aria-label": label });
  const laneNodes = [...lanes.values()].map(({ who, turns }) => {
    const t = track(`${who.name} spoke`);
    t.append(...turns.map((s) => el("button", { type: "button", class: `turn ${who.role}`,
      "data-at": s.start_ms, "data-end": s.end_ms, title: `${who.name} ${fmtMs(s.start_ms)}–${fmtMs(s.end_ms)}`,
      "aria-label": `${who.name} from ${fmtMs(s.start_ms)} to ${fmtMs(s.end_ms)}`, onclick: () => seek(s.start_ms) })));
    return el("div", { class: "lane" }, el("span", { class: `lane-name ${who.role}` }, who.name), t);
  });
  const markTrack = track("Prompts, keywords and comments");
  const mark = (at, cls, label) => el("button", { type: "button", class: `tl-mark ${cls}`, "data-at": at,
    title: `${fmtMs(at)} ${label}`, "aria-label": `${label} at ${fmtMs(at)}`, onclick: () => seek(at) });
  const fixed = [
    ...(prompts || []).map((p) => mark(p.at_ms, `prompt ${p.severity} ${p.kind === "keyword" ? "keyword" : ""}`,
      `${p.kind === "keyword" ? "Keyword" : "Prompt"}: ${p.title}`)),
    ...(moments || []).filter((m) => !m.prompt && m.at_ms != null && m.label.startsWith("Objection"))
      .map((m) => mark(m.at_ms, "keyword objection", m.label)),
  ];
  let commentMarks = [];
  const playhead = el("div", { class: "playhead", "aria-hidden": "true" });
  const node = el("section", { class: "speaker-timeline", "aria-label": "Who spoke when" },
    ...laneNodes,
    el("div", { class: "lane" }, el("span", { class: "lane-name" }, "Marks"), markTrack),
    el("p", { class: "legend" }, el("span", { class: "key" }, "prompt"), el("span", { class: "key key-keyword" }, "keyword / objection"),
      el("span", { class: "key key-comment" }, "comment")));
  if (laneNodes.length) laneNodes[0].querySelector(".track").append(playhead);

  // The bar spans the recording once its length is known; until then, the call's own length.
  function place() {
    const known = Number.isFinite(audio.duration) && audio.duration > 0 ? audio.duration * 1000 : 0;
    const ends = segments.map((s) => s.end_ms);
    const span = Math.max(1, known || durationMs || 0, ...ends, ...fixed.map((m) => Number(m.dataset.at) + 500));
    for (const b of node.querySelectorAll("[data-at]")) {
      b.style.left = pct(Number(b.dataset.at), span);  // CSSOM: the CSP forbids style="…"
      if (b.dataset.end) b.style.width = pct(Math.max(Number(b.dataset.end) - Number(b.dataset.at), 150), span);
    }
    node.dataset.spanMs = String(Math.round(span));
  }
  function render() {
    markTrack.replaceChildren(...fixed, ...commentMarks);
    place();
  }
  render();
  audio.addEventListener("loadedmetadata", place);
  audio.addEventListener("timeupdate", () => {
    const span = Number(node.dataset.spanMs) || 1;
    playhead.style.left = pct(audio.currentTime * 1000, span);
  });
  return {
    node,
    showComments(list) {
      commentMarks = list.map((c) => mark(c.at_ms, "comment", `Comment: ${c.body}`));
      render();
    },
  };
}
