// A small client for Coachline's REST API and live feed, used by every screen.
// The page is signed in with an HttpOnly session cookie; API calls carry a
// short-lived bearer token that the server issues for that session.

let token = null;
let tokenExpiresAt = 0;

function csrfToken() {
  const m = document.cookie.match(/(?:^|; )coachline_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

export async function bearer() {
  if (token && Date.now() < tokenExpiresAt - 30_000) return token;
  const resp = await fetch("/auth/token", {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRF-Token": csrfToken() },
  });
  if (resp.status === 401) {
    window.location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
    throw new Error("signed out");
  }
  if (!resp.ok) throw new Error("could not get an API token: " + resp.status);
  const body = await resp.json();
  token = body.token;
  tokenExpiresAt = Date.now() + body.expires_in * 1000;
  return token;
}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || "HTTP " + status);
    this.status = status;
    this.body = body;
  }
}

// A 429 is refused before anything runs, so sending the request again is safe (POSTs too):
// wait as long as the server asks (Retry-After), say so on screen, and try again.
const MAX_RETRIES = 6;
const MAX_WAIT_MS = 60_000;
let waiting = 0;
let busyNote = null;

function retryDelayMs(resp, attempt) {
  const header = resp.headers.get("Retry-After");
  let ms = NaN;
  if (header && /^\d+$/.test(header.trim())) ms = Number(header) * 1000;
  else if (header) ms = Date.parse(header) - Date.now();
  if (!Number.isFinite(ms) || ms < 0) ms = 1000 * 2 ** attempt;
  // a little spread, so tabs refused together do not all come back in the same instant
  return Math.min(MAX_WAIT_MS, ms) + Math.floor(Math.random() * 250);
}

function showBusy(ms) {
  waiting += 1;
  if (!busyNote) {
    busyNote = document.createElement("p");
    busyNote.className = "busy";
    busyNote.setAttribute("role", "status");
    busyNote.setAttribute("aria-live", "polite");
  }
  busyNote.textContent = `The server is busy, retrying in ${Math.ceil(ms / 1000)} s…`;
  if (!busyNote.isConnected) document.body.prepend(busyNote);
}

function doneBusy() {
  waiting = Math.max(0, waiting - 1);
  if (waiting === 0 && busyNote) busyNote.remove();
}

export async function api(path, { method = "GET", body, query } = {}) {
  const url = new URL("/api/v1" + path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  }
  for (let attempt = 0; ; attempt++) {
    const headers = { Authorization: "Bearer " + (await bearer()) };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (resp.status === 429 && attempt < MAX_RETRIES) {
      const ms = retryDelayMs(resp, attempt);
      showBusy(ms);
      try { await new Promise((resolve) => setTimeout(resolve, ms)); } finally { doneBusy(); }
      continue;
    }
    const data = resp.status === 204 ? null : await resp.json().catch(() => null);
    if (!resp.ok) throw new ApiError(resp.status, data);
    return data;
  }
}

// A WebSocket that reconnects by itself with backoff; onMessage gets parsed JSON.
export function liveSocket(path, { onMessage, onState }) {
  let ws = null;
  let closedByUs = false;
  let attempt = 0;
  async function connect() {
    onState && onState(attempt === 0 ? "connecting" : "reconnecting");
    let t;
    try { t = await bearer(); } catch (e) { return retry(); }
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${proto}//${location.host}${path}?access_token=${encodeURIComponent(t)}`);
    ws.onopen = () => { attempt = 0; onState && onState("live"); };
    ws.onmessage = (ev) => { try { onMessage(JSON.parse(ev.data)); } catch (e) { console.error(e); } };
    ws.onclose = () => { if (!closedByUs) retry(); };
  }
  function retry() {
    attempt += 1;
    onState && onState("reconnecting");
    setTimeout(connect, Math.min(10_000, 250 * 2 ** Math.min(attempt, 6)));
  }
  connect();
  return { close() { closedByUs = true; ws && ws.close(); } };
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    // The CSP (style-src 'self') drops style="…" attributes; CSSOM properties are allowed.
    else if (k === "style") Object.assign(node.style, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// Who spoke a transcript segment. On a two-track call that is the track's party; on a mixed
// track (Vonage, a bridge) it is the server's speaker label, which can change from one partial
// to the next and is settled by the final: "rep", "customer", "speaker_N", or "mixed" (unknown).
export function speakerOf(seg, { rep = "You" } = {}) {
  const who = seg.speaker || seg.party;
  if (who === "rep") return { role: "rep", name: rep, known: true };
  if (who === "customer") return { role: "customer", name: "Customer", known: true };
  const n = /^speaker_(\d+)$/.exec(who || "");
  return { role: "mixed", name: n ? `Speaker ${n[1]}` : "Speaker", known: !!n };
}

export function fmtMs(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}
