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
    # the data directory keeps the node's id (voice_server/node_identity.py), but no server
    assert not (data / "postgres").exists() and not (data / "redis").exists(), (
        "a local server was started although URLs were set"
    )
    assert "started local" not in out
    assert local_postgres.is_running() and local_redis.is_running()


def _run(*args: str, env: dict[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*COACHLINE, *args], check=False, capture_output=True, text=True, env=env, cwd=cwd,
        timeout=180,
    )


def test_version_is_the_installed_distributions():
    from importlib.metadata import version

    result = subprocess.run([*COACHLINE, "--version"], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"coachline {version('coachline')}"


def _commands(parser) -> dict[str, object]:
    """Every command and sub-command parser, by its words ("recordings new-key")."""
    import argparse

    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                words = f"{parser.prog.removeprefix('coachline').strip()} {name}".strip()
                found[words] = sub
                found.update(_commands(sub))
    return found


def test_every_command_shows_examples_of_itself_in_its_help():
    from voice_server.cli import build_parser

    parser = build_parser()
    commands = _commands(parser)
    assert {"serve", "migrate", "config", "create-admin", "recordings", "recordings new-key",
            "recordings rotate-key", "simulate-call"} <= set(commands)
    for words, sub in {"": parser, **commands}.items():
        text = sub.format_help()
        examples = text.partition("examples:\n")[2]
        assert examples, f"coachline {words} --help has no examples"
        assert f"coachline {words}".strip() in examples, (words, examples)


def test_org_slugs_are_made_from_display_names():
    import pytest

    from crm_core.auth.accounts import InvalidSlug, slug_for

    assert slug_for("Acme") == "acme"
    assert slug_for("  Acme Café & Co. ") == "acme-cafe-co"
    assert slug_for("Zürich Straße GmbH") == "zurich-strae-gmbh"
    assert slug_for("x" * 80 + " y") == "x" * 63
    assert slug_for("a" * 62 + " b") == "a" * 62  # no trailing '-' after cutting
    with pytest.raises(InvalidSlug, match="--slug"):
        slug_for("東京")


def test_create_admin_takes_a_display_name_and_names_its_database(empty_database, local_postgres):
    env = _env(DATABASE_URL=empty_database, COACHLINE_ADMIN_PASSWORD="a long admin password",
               COACHLINE_LOG_LEVEL="warning")
    first = _run("create-admin", "--email", "admin@acme.test", "--org", "Acme", env=env)
    assert first.returncode == 0, first.stderr
    assert "organization 'Acme' (slug acme) (organization created)" in first.stdout
    # which database: the URL's host and database, never the password it carries
    assert f"database: PostgreSQL postgresql://{local_postgres.socket_dir}:" in first.stderr
    assert "(DATABASE_URL)" in first.stderr
    assert local_postgres.password not in first.stdout + first.stderr

    # the same organization by its name in any case, or by its slug: a password reset
    for org in ("ACME", "acme"):
        again = _run("create-admin", "--email", "admin@acme.test", "--org", org, env=env)
        assert again.returncode == 0, again.stderr
        assert "(slug acme)" in again.stdout and "created" not in again.stdout

    # another organization whose name makes the same slug: refused, with the way out
    taken = _run("create-admin", "--email", "boss@acme.test", "--org", "Acme!", env=env)
    assert taken.returncode == 2
    assert "'acme' is taken by 'Acme'" in taken.stderr and "--slug" in taken.stderr
    assert "Traceback" not in taken.stderr
    chosen = _run("create-admin", "--email", "boss@acme.test", "--org", "Acme!",
                  "--slug", "acme-eu", env=env)
    assert chosen.returncode == 0, chosen.stderr
    assert "organization 'Acme!' (slug acme-eu) (organization created)" in chosen.stdout

    bad = _run("create-admin", "--email", "x@acme.test", "--org", "Acme", "--slug", "Acme EU",
               env=env)
    assert bad.returncode == 2 and "lowercase" in bad.stderr and "database:" not in bad.stderr


def test_commands_find_the_embedded_database_as_serve_does(tmp_path: Path):
    # No DATABASE_URL and no COACHLINE_DATA_DIR: .data under the current directory, as
    # `serve` (and scripts/run, which runs it from the checkout) uses.
    env = _env(COACHLINE_ADMIN_PASSWORD="a long admin password", COACHLINE_LOG_LEVEL="warning")
    made = _run("create-admin", "--email", "admin@acme.test", "--org", "Acme", env=env,
                cwd=tmp_path)
    data = tmp_path / ".data"
    assert made.returncode == 0, made.stderr
    assert (
        f"database: embedded PostgreSQL in {data / 'postgres'} (COACHLINE_DATA_DIR unset: .data "
        "in the current directory; none there yet, creating it)" in made.stderr
    )
    assert (data / "postgres" / "pgdata" / "PG_VERSION").is_file()
    assert not (data / "redis").exists(), "a command that needs no Redis started one"
    password = (data / "postgres" / "superuser.password").read_text().strip()

    # the same directory named by COACHLINE_DATA_DIR from elsewhere: the same database
    moved = _run("migrate", env={**env, "COACHLINE_DATA_DIR": str(data)}, cwd=Path("/"))
    assert moved.returncode == 0, moved.stderr
    assert "database is up to date" in moved.stdout
    assert f"database: embedded PostgreSQL in {data / 'postgres'} (COACHLINE_DATA_DIR)" in (
        moved.stderr
    )
    assert password not in made.stdout + made.stderr + moved.stdout + moved.stderr


def test_simulate_call_refuses_what_is_not_a_wav_it_can_play(tmp_path: Path):
    import wave

    mp3 = tmp_path / "call.mp3"
    mp3.write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(400))
    stereo = tmp_path / "stereo.wav"
    with wave.open(str(stereo), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(3200))
    for wav, carrier, said in ((mp3, "twilio", "is not a WAV file"), (mp3, "sip", "is not a WAV"),
                               (stereo, "vonage", "2 channel(s) x 16 bit")):
        result = _run("simulate-call", "--carrier", carrier, "--server", "http://127.0.0.1:9",
                      "--to", "+15550100000", "--rep-wav", str(wav), "--customer-wav", str(wav),
                      env=_env())
        assert result.returncode == 2, (carrier, result.stderr)
        assert str(wav) in result.stderr and said in result.stderr, result.stderr
        assert "16-bit PCM" in result.stderr and "Traceback" not in result.stderr
        assert result.stdout == ""
