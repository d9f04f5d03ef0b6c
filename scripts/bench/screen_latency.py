"""Speech to screen: how long after the triggering audio ends do the words and the prompt show?

A real node (create_app, local PostgreSQL + Redis, the real speech model) and
headless Chromium signed in as a rep on the live screen. Each call plays real
8 kHz telephone speech (µ-law round trip) at real time as the customer; the
speech contains "conference", which the organization's rules make a
competitor mention. In the page a MutationObserver (injected by the browser,
not served by the app) stamps the wall clock when the first transcript line
with the word appears (partial or final), when its final appears, and when the
coaching prompt card appears. Latency = stamp − wall time the utterance's last
audio frame was pushed. Product promise: ≤ 2000 ms at p95.

    python scripts/bench/screen_latency.py [--quick] [--calls N]

Last line of output: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from aiohttp.test_utils import TestServer

from media.frames import Party
from storage.database import connect
from storage.keys import new_master_key
from storage.local_servers import LocalPostgres, LocalRedis
from storage.migrations import apply_migrations
from tests.browser.world import CHROMIUM, Site, make_org, sign_in, telephone_frames
from tests.media.speech_corpus import load_clip
from voice_server.app import create_app
from voice_server.runtime import Runtime
from voice_server.settings import load_settings

_STAMPS = """
(() => {
  window.__stamps = {};
  const stamp = (k) => { if (!(k in window.__stamps)) window.__stamps[k] = performance.timeOrigin + performance.now(); };
  new MutationObserver(() => {
    for (const line of document.querySelectorAll('.transcript .line')) {
      if (!/conference/i.test(line.textContent)) continue;
      stamp('shown');
      if (!line.classList.contains('partial')) stamp('final');
    }
    if (document.querySelector('.prompts .prompt')) stamp('prompt');
  }).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
})();
"""
CLIP = "conf-full"  # "that conference is full."


async def one_call(site: Site, page) -> dict[str, float]:
    await page.evaluate("() => { window.__stamps = {}; }")
    call_id = await site.new_call(site.org.rep)
    session = await site.open_call(call_id, site.org.rep)
    speech_ms = len(load_clip(CLIP)) // 8
    loop = asyncio.get_running_loop()
    started = loop.time()
    audio_end_wall = None
    for frame in telephone_frames([CLIP], Party.CUSTOMER, tail_ms=3000):
        delay = started + frame.timestamp_ms / 1000 - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        session.push_audio(frame)
        if audio_end_wall is None and frame.timestamp_ms + 20 >= speech_ms:
            audio_end_wall = time.time() * 1000
    deadline = loop.time() + 30
    stamps: dict = {}
    while loop.time() < deadline:
        stamps = await page.evaluate("() => window.__stamps")
        if {"shown", "final", "prompt"} <= stamps.keys():
            break
        await asyncio.sleep(0.1)
    await site.close_call(call_id)
    return {k: stamps[k] - audio_end_wall for k in ("shown", "final", "prompt") if k in stamps}


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)


async def main(calls: int) -> dict:
    from playwright.async_api import async_playwright

    work = Path(tempfile.mkdtemp(prefix="screen-latency-"))
    pg = LocalPostgres(work / "pg").start()
    rd = LocalRedis(work / "redis").start()
    try:
        conn = await connect(pg.dsn)
        try:
            await apply_migrations(conn)
            org = await make_org(conn)
        finally:
            await conn.close()
        settings = load_settings({"DATABASE_URL": pg.dsn, "REDIS_URL": rd.url,
                                  "COACHLINE_DATA_DIR": str(work / "data"),
                                  "COACHLINE_RECORDING_KEY": f"k1:{new_master_key()}",
                                  "COACHLINE_LOG_LEVEL": "WARNING", "COACHLINE_LOG_FORMAT": "text"})
        runtime = await Runtime(settings).start()
        app = create_app(settings, runtime)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        site = Site(str(server.make_url("")).rstrip("/"), app, org)
        results = []
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
                context = await browser.new_context()
                context.set_default_timeout(30_000)
                await context.add_init_script(_STAMPS)
                page = await sign_in(context, site, org.rep_email, "/app/live")
                await page.wait_for_selector("text=Waiting for your next call")
                for _ in range(calls + 1):  # the first call warms the model up and is not counted
                    results.append(await one_call(site, page))
                await browser.close()
        finally:
            await server.close()
            await runtime.close()
    finally:
        rd.stop()
        pg.stop()
    measured = results[1:]
    out = {"bench": "screen_latency", "calls": len(measured)}
    for key, name in (("shown", "transcript_shown_ms"), ("final", "transcript_final_ms"),
                      ("prompt", "prompt_ms")):
        values = [r[key] for r in measured if key in r]
        out[f"{name}_p50"] = pct(values, 0.5)
        out[f"{name}_p95"] = pct(values, 0.95)
        out[f"{name}_missed"] = len(measured) - len(values)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 calls (under a minute)")
    parser.add_argument("--calls", type=int, default=None)
    args = parser.parse_args()
    calls = args.calls or (3 if args.quick else 20)
    print(json.dumps(asyncio.run(main(calls))))
