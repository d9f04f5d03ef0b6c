"""The README's first run, as a person does it: `coachline demo` on a fresh data directory, then
the printed rep signs in with Chromium and watches a coached call.

The demo runs as its own process (`python -m voice_server.cli demo`, what `./scripts/run demo`
execs once the packages are installed), with its own embedded PostgreSQL and Redis. The time
from starting the process to the first prompt on the rep's screen is printed (docs/quick-start
figures); it is never asserted.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.browser.world import CHROMIUM
from tests.polling import eventually
from tests.voice_server.coachline_nodes import free_port

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 240.0  # a fresh database and the speech model on a busy 2-core machine
CREDENTIAL = re.compile(r"^\s+(\S+@\S+)\s+password (\S+)\s+\((.*)\)$")


class DemoProcess:
    """`coachline demo` with its stdout read line by line as it comes."""

    def __init__(self, data_dir: Path, port: int, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COACHLINE_")}
        env.update(COACHLINE_DATA_DIR=str(data_dir), PYTHONPATH=str(ROOT),
                   COACHLINE_LOG_FORMAT="text")
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        self.log = data_dir.parent / f"{data_dir.name}-stderr.log"
        with open(self.log, "ab") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "voice_server.cli", "demo", "--port", str(port), *args],
                cwd=data_dir.parent, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def credentials(self) -> dict[str, tuple[str, str]]:
        """role note -> (email, password), from the welcome text."""
        found = {}
        for line in self.lines:
            m = CREDENTIAL.match(line)
            if m:
                found[m.group(3)] = (m.group(1), m.group(2))
        return found

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # Ctrl-C, as the operator stops it
            try:
                return self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait(30)

    def stderr_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def run_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COACHLINE_")}
    env.update(COACHLINE_DATA_DIR=str(data_dir), PYTHONPATH=str(ROOT))
    env.pop("DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "voice_server.cli", *args], check=False,
                          cwd=data_dir.parent,
                          env=env, capture_output=True, text=True, timeout=120)


async def test_first_run_demo_shows_a_rep_a_coached_live_call(chromium, browser_context, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (scripts/apt-test.txt)")
    data_dir = tmp_path / "data"
    port = free_port()
    started = time.monotonic()
    demo = DemoProcess(data_dir, port, "--gap", "600")
    page = None
    try:
        await eventually(lambda: "rep, takes the demo calls" in demo.credentials()
                         or demo.process.poll() is not None, START_TIMEOUT_S, interval_s=0.2,
                         what="the demo's welcome text")
        assert demo.process.poll() is None, demo.stderr_tail()
        email, password = demo.credentials()["rep, takes the demo calls"]
        assert f"http://127.0.0.1:{port}/login" in "\n".join(demo.lines)

        page = await browser_context.new_page()
        await page.goto(f"http://127.0.0.1:{port}/login?next=/app/live")
        await page.get_by_label("Email").fill(email)
        await page.get_by_label("Password").fill(password)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", name="Live call")).to_be_visible()
        # the demo's call is live on the rep's screen, with the customer's words and a prompt
        await expect(page.locator(".transcript .line.customer").first).to_be_visible(timeout=120_000)
        prompt = page.locator(".prompts .prompt").first
        await expect(prompt).to_be_visible(timeout=120_000)
        elapsed = time.monotonic() - started
        print(f"\ncoachline demo: process start to first prompt on the rep's screen: {elapsed:.1f} s "
              f"(prompt: {await prompt.inner_text()!r})")
        await expect(page.locator(".prompts .prompt").filter(has_text="Dialpad").first).to_be_visible()
        # secrets are printed once to the terminal, never logged
        assert password not in demo.stderr_tail()
    finally:
        if page is not None:  # before the server goes: its reconnecting socket would log errors
            await page.close()
        code = demo.stop()
    assert code == 0, demo.stderr_tail()
    assert password not in (data_dir.parent / "data-stderr.log").read_text(errors="replace")

    # Wiping the demo takes its organization and its call's recording with it.
    recordings = list((data_dir / "recordings").rglob("*.clrec"))
    assert recordings, "the demo call was recorded"
    reset = run_cli(data_dir, "demo", "--reset")
    assert reset.returncode == 0, reset.stderr
    assert "demo organization deleted with 1 recording(s)" in reset.stdout
    assert not [p for p in recordings if p.exists()]
    again = run_cli(data_dir, "demo", "--reset")
    assert "nothing to delete" in again.stdout
