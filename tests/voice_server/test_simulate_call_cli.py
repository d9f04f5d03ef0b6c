"""``coachline simulate-call`` as a real process against a real server started in the test.

The command plays the call as the carrier would and, with ``--watch``, signs
in as the rep and reports what the server sent back on ``/ws/live``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest

from crm_core.auth.passwords import hash_password
from tests.media.speech_corpus import requires_corpus
from tests.voice_server.carrier_app import (
    OUR_NUMBER,
    PUBLIC_URL,
    TWILIO_TOKEN,
    VONAGE_SECRET,
    stop_carrier_app,
)
from tests.voice_server.sip_node import REP_DIALLED, sip_node
from tests.voice_server.test_coaching_calls import PASSWORD, _coached_server
from voice_server.simulator.carrier.conversation import Turn, build

pytestmark = [requires_corpus, pytest.mark.timeout(600)]

COACHLINE = [sys.executable, "-m", "voice_server.cli", "simulate-call"]
SHORT_CALL = [Turn("rep", "hello", 300), Turn("customer", "conf-full", 1500),
              Turn("rep", "agent-loginok", 3600)]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COACHLINE_")}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env.update({"COACHLINE_LOG_LEVEL": "warning", **extra})
    return env


async def _run(args: list[str], env: dict[str, str], timeout: float = 300) -> tuple[int, str, str]:
    # Not subprocess.run: the server under test runs on this event loop and must keep serving.
    proc = await asyncio.create_subprocess_exec(*COACHLINE, *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode, out.decode(), err.decode()


async def test_twilio_call_reports_transcript_and_prompts(migrated_database, redis_url, tmp_path):
    ca = await _coached_server(migrated_database, redis_url)
    rep_wav, customer_wav = build(SHORT_CALL).write(tmp_path)
    base = str(ca.client.make_url("")).rstrip("/")
    env = _env(COACHLINE_TWILIO_AUTH_TOKEN=TWILIO_TOKEN, COACHLINE_PUBLIC_URL=PUBLIC_URL,
               COACHLINE_CARRIER_NUMBERS=json.dumps({OUR_NUMBER: ca.rep_id}),
               COACHLINE_SIM_PASSWORD=PASSWORD)
    try:
        code, out, err = await _run(["--carrier", "twilio", "--server", base, "--rep-wav", str(rep_wav),
                                     "--customer-wav", str(customer_wav), "--watch",
                                     "--email", "rep@acme.test"], env)
        assert code == 0, err
        # stdout: the report alone; stderr: progress while the call ran (finals, prompts, totals)
        assert len(out.strip().splitlines()) == 1, out
        report = json.loads(out.strip().splitlines()[-1])
        progress = err.splitlines()
        assert any("calling" in line and "twilio" in line for line in progress), err
        assert any(" final " in line and "customer:" in line for line in progress), err
        assert any(" prompt  competitor-battlecard" in line for line in progress), err
        done = [line for line in progress if "done:" in line]
        assert done and f"{len(report['transcript'])} final(s), 1 prompt(s)" in done[-1], err
        row = await ca.call_row(report["call_id"])
        assert row is not None and row["carrier"] == "twilio" and str(row["rep_id"]) == ca.rep_id
        assert report["call_ended"] is True
        parties = {seg["party"] for seg in report["transcript"]}
        assert parties == {"rep", "customer"}, report["transcript"]
        customer = " ".join(s["text"] for s in report["transcript"] if s["party"] == "customer").lower()
        assert "conference" in customer
        assert [p["rule_id"] for p in report["prompts"]] == ["competitor-battlecard"], report["prompts"]
        assert report["summary"]["metrics"]["talk_ms"]["customer"] > 0

        # Vonage: one mixed channel through the answer webhook and its websocket.
        code, out, err = await _run(["--carrier", "vonage", "--server", base, "--rep-wav", str(rep_wav),
                                     "--customer-wav", str(customer_wav), "--fast"],
                                    {**env, "COACHLINE_VONAGE_SIGNATURE_SECRET": VONAGE_SECRET})
        assert code == 0, err
        vonage = json.loads(out.strip().splitlines()[-1])
        assert "calling" in err and "done:" in err and "final(s)" not in err  # not watching
        row = await ca.call_row(vonage["call_id"])
        assert row["carrier"] == "vonage" and str(row["rep_id"]) == ca.rep_id
        assert vonage["messages_sent"] > 100  # 20 ms frames of the whole call

        # Wrong password: a clear error, exit 1, no traceback.
        code, out, err = await _run(["--carrier", "twilio", "--server", base, "--rep-wav", str(rep_wav),
                                     "--customer-wav", str(customer_wav), "--watch", "--email",
                                     "rep@acme.test", "--password", "wrong"], env)
        assert code == 1 and "sign-in" in err and "Traceback" not in err
    finally:
        await stop_carrier_app(ca)


async def test_sip_call_through_the_sip_simulator(migrated_database, redis_url, tmp_path):
    rep_wav, customer_wav = build(SHORT_CALL).write(tmp_path)
    async with sip_node(migrated_database, redis_url, COACHLINE_STT_ENABLED="true") as node:
        digest = await asyncio.to_thread(hash_password, PASSWORD)
        async with node.runtime.pool.acquire() as conn:
            await conn.execute("UPDATE users SET password_hash = $2 WHERE id = $1::uuid", node.rep_id, digest)
        code, out, err = await _run(
            ["--carrier", "sip", "--server", f"127.0.0.1:{node.port}", "--to", REP_DIALLED,
             "--rep-wav", str(rep_wav), "--customer-wav", str(customer_wav), "--codec", "PCMU",
             "--watch", "--http-server", node.http_url, "--email", "alice@acme.test"],
            _env(COACHLINE_SIM_PASSWORD=PASSWORD))
        assert code == 0, err
        report = json.loads(out.strip().splitlines()[-1])
        assert (report["status"], report["bye_status"]) == (200, 200)
        assert report["call_id"] and report["call_ended"] is True
        text = {p: " ".join(s["text"] for s in report["transcript"] if s["party"] == p).lower()
                for p in ("rep", "customer")}
        assert "conference" in text["customer"] and "agent" in text["rep"], text


async def test_bad_arguments_are_clear_errors(tmp_path):
    code, _, err = await _run(["--carrier", "twilio", "--server", "http://127.0.0.1:9",
                               "--rep-wav", str(tmp_path / "missing.wav")], _env())
    assert code == 2 and "not found" in err
    code, _, err = await _run(["--carrier", "sip", "--server", "not-an-address"], _env())
    assert code == 1 and "host:port" in err and "Traceback" not in err
    code, _, err = await _run(["--carrier", "twilio", "--server", "http://127.0.0.1:9"], _env())
    assert code == 1 and "--to" in err  # no number configured or given


async def test_runs_from_the_installed_packages_alone(tmp_path, repo_root):
    # An installed server: the packages only (no scripts/, no tests/), run from elsewhere,
    # with the test extras unimportable. The simulator is there; the server at :9 is not.
    import shutil

    site = tmp_path / "site"
    for package in ("voice_server", "media", "coaching", "storage", "crm_core"):
        shutil.copytree(repo_root / package, site / package, ignore=shutil.ignore_patterns("__pycache__"))
    for extra in ("trustme", "pytest"):
        (site / f"{extra}.py").write_text(f"raise ImportError('{extra} is a test extra')\n")
    proc = await asyncio.create_subprocess_exec(
        *COACHLINE, "--carrier", "twilio", "--server", "http://127.0.0.1:9", "--to", "+15550100000",
        env={**_env(), "PYTHONPATH": str(site)}, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 1, err
    assert b"Traceback" not in err and b"test extra" not in err
