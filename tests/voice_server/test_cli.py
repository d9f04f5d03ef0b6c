"""The ``coachline`` command, run as a real process."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

COACHLINE = [sys.executable, "-m", "voice_server.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COACHLINE_")}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_help_lists_the_subcommands():
    out = subprocess.run([*COACHLINE, "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("serve", "migrate", "config"):
        assert command in out


def test_invalid_configuration_exits_2_with_the_reason():
    result = subprocess.run(
        [*COACHLINE, "config"], capture_output=True, text=True, env=_env(COACHLINE_PORT="nope")
    )
    assert result.returncode == 2
    assert "COACHLINE_PORT" in result.stderr and "nope" in result.stderr


def test_migrate_twice_against_a_configured_database(empty_database):
    env = _env(DATABASE_URL=empty_database, COACHLINE_LOG_LEVEL="warning")
    first = subprocess.run([*COACHLINE, "migrate"], capture_output=True, text=True, env=env, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "applied 0001_crm_core" in first.stdout
    second = subprocess.run([*COACHLINE, "migrate"], capture_output=True, text=True, env=env, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stdout


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_serve_starts_its_own_servers_becomes_ready_and_stops_them_on_sigterm(tmp_path: Path):
    port = _free_port()
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [*COACHLINE, "serve", "--port", str(port)],
        env=_env(COACHLINE_DATA_DIR=str(data)),
        # A file, not a pipe: a chatty server must never block on a full pipe buffer.
        stdout=(tmp_path / "serve.log").open("w"), stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/ready")
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        assert status == 200, f"never ready; exit={proc.poll()}\n{(tmp_path / 'serve.log').read_text()[-20000:]}"
        assert (data / "postgres" / "pgdata" / "PG_VERSION").exists()
        assert (data / "redis" / "redis.sock").exists()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        out = (tmp_path / "serve.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    messages = [line["msg"] for line in lines]
    assert any(m.startswith("stopped local PostgreSQL") for m in messages)
    assert any(m.startswith("stopped local Redis") for m in messages)
    assert not (data / "redis" / "redis.sock").exists()
    from storage.local_servers import LocalPostgres

    assert not LocalPostgres(data / "postgres").is_running()


def test_serve_with_urls_set_uses_them_and_starts_no_servers(tmp_path: Path, local_postgres, local_redis):
    port = _free_port()
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [*COACHLINE, "serve", "--port", str(port)],
        env=_env(COACHLINE_DATA_DIR=str(data), DATABASE_URL=local_postgres.dsn, REDIS_URL=local_redis.url),
        # A file, not a pipe: a chatty server must never block on a full pipe buffer.
        stdout=(tmp_path / "serve.log").open("w"), stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120  # a loaded CI machine loads the speech model slowly
        status = None
        while time.monotonic() < deadline and proc.poll() is None and status != 200:
            try:
                status, _ = _get(f"http://127.0.0.1:{port}/ready")
            except OSError:
                time.sleep(0.3)
        if status != 200:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            log = (tmp_path / "serve.log").read_text()[-20000:]
            raise AssertionError(f"not ready (last status {status}); server said:\n{log}")
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        out = (tmp_path / "serve.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert not data.exists(), "a local server was started although URLs were set"
    assert "started local" not in out
    assert local_postgres.is_running() and local_redis.is_running()
