// A live transcript in a container: one line per track and segment, partials replaced by the
// final, kept in call-clock order and bounded. Shared by the rep's live screen and the floor's
// listen-in panel.
import { el, fmtMs, speakerOf } from "./api.js";

export function transcriptLines(container, { maxLines, rep = "You", labelFinals = false }) {
  const keyOf = (msg) => `${msg.party}:${msg.segment_id}`;
  const find = (msg) => container.querySelector(`[data-key="${CSS.escape(keyOf(msg))}"]`);

  // A line is keyed by its track and segment (stable); who spoke it is shown from the latest
  // message that names a speaker, so a mixed-track line moves from "Speaker" to the party the
  // server settles on.
  function lineFor(msg) {
    let line = find(msg);
    if (!line) {
      line = el("div", { class: "line", "data-key": keyOf(msg), "data-start": msg.start_ms },
        el("div", { class: "who" }, el("span", { class: "name" }), el("span", { class: "time" }, fmtMs(msg.start_ms))),
        el("div", { class: "text" }));
      // keep lines in call-clock order even when the two parties' finals interleave
      const later = [...container.children].find((n) => Number(n.dataset.start) > msg.start_ms);
      container.insertBefore(line, later || null);
      while (container.children.length > maxLines) container.firstElementChild.remove();
    }
    return line;
  }

  function labelLine(line, msg, final) {
    const who = speakerOf(msg, { rep });
    // An unlabelled partial never erases a speaker already named; the final always decides.
    if (!final && !who.known && line.dataset.speaker) return;
    line.dataset.speaker = who.known ? (msg.speaker || msg.party) : "";
    line.classList.remove("rep", "customer", "mixed");
    line.classList.add(who.role);
    line.querySelector(".who .name").textContent = who.name;
  }

  return {
    show(msg, final) {
      const atBottom = container.scrollHeight - container.scrollTop - container.clientHeight < 40;
      const line = lineFor(msg);
      if (!final && line.dataset.final) return;  // a late partial never undoes the final
      labelLine(line, msg, final);
      line.classList.toggle("partial", !final);
      if (final) line.dataset.final = "1";
      line.querySelector(".text").textContent = msg.text;
      if (final && labelFinals) {
        line.setAttribute("aria-label", `${line.querySelector(".who .name").textContent}: ${msg.text}`);
      }
      if (atBottom) container.scrollTop = container.scrollHeight;
    },
    retract(msg) {
      const gone = find(msg);
      if (gone) gone.remove();
    },
  };
}
