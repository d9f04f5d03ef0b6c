// The app shell: navigation and a tiny path router over /app/*.
import { el } from "./api.js";
import { mountLive } from "./live.js";
import { mountFloor } from "./floor.js";
import { mountCallReview } from "./review.js";
import { mountCalls } from "./library.js";
import { mountDeal, mountDeals, mountLead, mountLeads } from "./crm.js";
import { mountAdmin } from "./admin.js";
import { mountAnalytics, mountAnalyticsCalls } from "./analytics.js";

const me = JSON.parse(document.getElementById("me").textContent);
const main = document.querySelector("main");
let unmount = null;

const routes = [
  [/^\/app\/?$/, () => (me.role === "rep" ? mountLive(main, me) : mountCalls(main))],
  [/^\/app\/live$/, () => mountLive(main, me)],
  [/^\/app\/floor\/?$/, () => mountFloor(main, me)],
  [/^\/app\/calls$/, () => mountCalls(main)],
  [/^\/app\/calls\/([\w-]+)$/, (id) => mountCallReview(main, id)],
  [/^\/app\/leads$/, () => mountLeads(main)],
  [/^\/app\/leads\/([\w-]+)$/, (id) => mountLead(main, id)],
  [/^\/app\/deals$/, () => mountDeals(main)],
  [/^\/app\/deals\/([\w-]+)$/, (id) => mountDeal(main, id)],
  [/^\/app\/admin(?:\/(\w+))?\/?$/, (tab) => mountAdmin(main, me, tab)],
  [/^\/app\/analytics\/?$/, () => mountAnalytics(main, me)],
  [/^\/app\/analytics\/calls$/, () => mountAnalyticsCalls(main)],
];

async function render() {
  if (typeof unmount === "function") unmount();
  unmount = null;
  for (const a of document.querySelectorAll("header.top nav a")) {
    a.toggleAttribute("aria-current", location.pathname.startsWith(a.getAttribute("href")));
    if (a.hasAttribute("aria-current")) a.setAttribute("aria-current", "page");
  }
  for (const [re, mount] of routes) {
    const m = location.pathname.match(re);
    if (m) {
      try { unmount = await mount(...m.slice(1)); }
      catch (e) { main.replaceChildren(el("h1", {}, "Something went wrong"), el("p", { class: "error" }, String(e.message || e))); }
      return;
    }
  }
  main.replaceChildren(el("h1", {}, "Not found"));
}

document.addEventListener("click", (ev) => {
  const a = ev.target.closest("a[href^='/app']");
  if (!a || ev.metaKey || ev.ctrlKey || ev.shiftKey) return;
  ev.preventDefault();
  history.pushState({}, "", a.getAttribute("href"));
  render();
});
window.addEventListener("popstate", render);
render();

document.getElementById("signout")?.addEventListener("click", async () => {
  const m = document.cookie.match(/(?:^|; )coachline_csrf=([^;]+)/);
  await fetch("/auth/logout", {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRF-Token": m ? decodeURIComponent(m[1]) : "" },
  }).catch(() => null);
  window.location.assign("/login");
});
