"""A ``coachline serve`` that cannot start leaves nothing behind and says why.

Bad settings (a malformed recording key, an unknown speech model, an unreadable
key file) stop the process with exit code 2 naming the variable before any
local server starts or any migration runs; a failure later in start-up still
stops the local PostgreSQL/Redis it had started.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.security.test_embedded_servers import _wait_gone

COACHLINE = [sys.executable, "-m", "voice_server.cli", "serve"]
REPO_ROOT = Path(__file__).resolve().parents[2]


def _serve(tmp_path: Path, timeout_s: float = 180, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("COACHLINE_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    clean.update(
        {
            "COACHLINE_DATA_DIR": str(tmp_path / "data"),
            "COACHLINE_LOG_FORMAT": "text",
            "COACHLINE_STT_ENABLED": "false",
            "PYTHONPATH": str(REPO_ROOT),
        },
        **env,
    )
    return subprocess.run(
        [*COACHLINE, "--port", str(_free_port())],
        capture_output=True,
        check=False,
        text=True,
        env=clean,
        cwd=REPO_ROOT,
        timeout=timeout_s,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"COACHLINE_RECORDING_KEY": "k1:not-base64!"}, "COACHLINE_RECORDING_KEY"),
        ({"COACHLINE_RECORDING_KEY_FILE": "/nonexistent/keys"}, "COACHLINE_RECORDING_KEY_FILE"),
        (
            {"COACHLINE_STT_ENABLED": "true", "COACHLINE_STT_MODEL": "/nonexistent/model"},
            "COACHLINE_STT_MODEL",
        ),
        (
            {"COACHLINE_VONAGE_PRIVATE_KEY_PATH": "/nonexistent/private.key"},
            "COACHLINE_VONAGE_PRIVATE_KEY_PATH",
        ),
    ],
)
def test_a_bad_setting_exits_2_naming_it_before_starting_or_migrating_anything(
    tmp_path, env, variable
):
    result = _serve(tmp_path, timeout_s=120, **env)
    assert result.returncode == 2, result.stderr[-3000:]
    assert variable in result.stderr, result.stderr[-3000:]
    # nothing was started, so nothing was migrated and nothing can be left running
    assert not (tmp_path / "data" / "postgres").exists(), result.stderr[-3000:]
    assert not (tmp_path / "data" / "redis").exists()
    assert "k1:not-base64!" not in result.stderr  # the key's value is never echoed


def test_a_failure_after_the_local_servers_started_stops_them(tmp_path):
    """The SIP port is taken: start-up fails after PostgreSQL/Redis are up and migrated."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        result = _serve(
            tmp_path, COACHLINE_SIP_ENABLED="true", COACHLINE_SIP_PORT=str(taken.getsockname()[1])
        )
    assert result.returncode != 0
    assert "started local PostgreSQL" in result.stderr, result.stderr[-3000:]
    assert "stopped local PostgreSQL" in result.stderr, result.stderr[-3000:]
    assert "stopped local Redis" in result.stderr, result.stderr[-3000:]
    left = _wait_gone(tmp_path / "data")
    assert left == [], f"left running after a failed start: {left}"
