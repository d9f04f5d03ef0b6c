"""Secrets never printed: ``coachline config``, configuration errors and every log line.

Known secrets are planted (Twilio auth token, Vonage signature secret, recording
key, database/Redis/SIP passwords, API tokens in headers and query strings) and the
real output is captured: the CLI as a process, the log as the node's own logging
configuration writes it while a real aiohttp server refuses malformed requests.
"""

import asyncio
import io
import logging
import subprocess
import sys

import pytest
import pytest_asyncio

from tests.voice_server.carrier_app import (
    TWILIO_TOKEN,
    VONAGE_SECRET,
    start_carrier_app,
    stop_carrier_app,
)
from voice_server.logs import configure_logging
from voice_server.redaction import register_secrets, settings_secrets

COACHLINE = [sys.executable, "-m", "voice_server.cli"]
DB_PASSWORD = "db-pw-Zq8vW3"
REDIS_PASSWORD = "redis-pw-Kp4nX9"
PEER_PASSWORD = "peer-pw-Jt6mR2"
RECORDING_KEY = "UmVjb3JkaW5nS2V5T2ZUaGlydHlUd29CeXRlc0xvbmchIQ=="
SECRETS = {
    "COACHLINE_TWILIO_AUTH_TOKEN": "tw-auth-token-Hf7sD1",
    "COACHLINE_VONAGE_SIGNATURE_SECRET": "vonage-sig-secret-Lw2cB5",
    "COACHLINE_RECORDING_KEY": f"k1:{RECORDING_KEY}",
    "DATABASE_URL": f"postgresql://coachline:{DB_PASSWORD}@db.internal:5432/coachline",
    "REDIS_URL": f"redis://:{REDIS_PASSWORD}@cache.internal:6379/0",
    "COACHLINE_SIP_PEERS": f"10.0.0.0/8,pbx:{PEER_PASSWORD}@192.168.1.0/24",
    "COACHLINE_METRICS_TOKEN": "metrics-token-Vb3qP8",
}
PLANTED = [
    "tw-auth-token-Hf7sD1",
    "vonage-sig-secret-Lw2cB5",
    RECORDING_KEY,
    DB_PASSWORD,
    REDIS_PASSWORD,
    PEER_PASSWORD,
    "metrics-token-Vb3qP8",
]


def _env(**extra: str) -> dict[str, str]:
    import os

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("COACHLINE_") and k not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(extra)
    return env


def test_every_secret_setting_is_planted_in_the_config_test():
    """A new secret setting (SecretStr, or named like one) fails here until the test below plants it."""
    from pydantic import SecretStr

    from voice_server.redaction import _SECRET_SETTING
    from voice_server.settings import Settings

    planted = {name.removeprefix("COACHLINE_").lower() for name in SECRETS}
    secret = {
        name
        for name, info in Settings.model_fields.items()
        if "SecretStr" in str(info.annotation)
        or info.annotation is SecretStr
        or _SECRET_SETTING.search(name)
    }
    assert secret, "no secret settings found: the check itself is broken"
    assert secret <= planted, (
        f"secret settings the config test does not plant: {sorted(secret - planted)}"
    )


def test_coachline_config_masks_every_secret():
    result = subprocess.run(
        [*COACHLINE, "config"],
        capture_output=True,
        text=True,
        env=_env(**SECRETS),
        timeout=60,
        check=True,
    )
    printed = result.stdout + result.stderr
    for secret in PLANTED:
        assert secret not in printed, secret
    lines = dict(line.split(" = ", 1) for line in result.stdout.splitlines() if " = " in line)
    assert lines["twilio_auth_token"] == "<set>"
    assert lines["vonage_signature_secret"] == "<set>"
    assert lines["recording_key"] == "<set>"
    assert lines["metrics_token"] == "<set>"
    # What is not secret stays readable: hosts, users, networks.
    assert lines["database_url"] == "postgresql://coachline:[redacted]@db.internal:5432/coachline"
    assert lines["redis_url"] == "redis://:[redacted]@cache.internal:6379/0"
    assert lines["sip_peers"] == "10.0.0.0/8,pbx:[redacted]@192.168.1.0/24"


def test_a_configuration_error_does_not_echo_a_password():
    result = subprocess.run(
        [*COACHLINE, "config"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(DATABASE_URL=f"mysql://coachline:{DB_PASSWORD}@db.internal/coachline"),
    )
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr and "db.internal" in result.stderr
    assert DB_PASSWORD not in result.stderr + result.stdout


API_TOKEN = "cl_apitoken_Qv3xN8rT1"
QUERY_TOKEN = "cl_querytoken_Ym5kP0wE"
COOKIE = "cl-session-Rt9bC4"


@pytest_asyncio.fixture(loop_scope="session")
async def carrier_app(migrated_database, redis_url):
    ca = await start_carrier_app(migrated_database, redis_url)
    yield ca
    await stop_carrier_app(ca)


async def _raw(host: str, port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(4096), 10)
    finally:
        writer.close()


@pytest.mark.parametrize("fmt", ["json", "text"])
async def test_logs_never_print_tokens_or_configured_secrets(carrier_app, fmt):
    ca = carrier_app
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level, logging.getLogger("aiohttp.access").level, sys.stderr)
    sys.stderr = stream
    try:
        configure_logging("INFO", fmt)
        register_secrets(settings_secrets(ca.settings))
        logging.getLogger("aiohttp.access").setLevel(logging.INFO)  # an operator may turn it on
        host, port = ca.client.server.host, ca.client.server.port
        # Malformed header lines aiohttp refuses (and quotes in its error log).
        await _raw(
            host,
            port,
            b"GET /live?access_token="
            + QUERY_TOKEN.encode()
            + b" HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer "
            + API_TOKEN.encode()
            + b"\x01x\r\n\r\n",
        )
        await _raw(
            host,
            port,
            b"GET /live HTTP/1.1\r\nHost: a\r\nAuthorization " + API_TOKEN.encode() + b"\r\n\r\n",
        )
        await _raw(
            host,
            port,
            b"GET /live?access_token=" + QUERY_TOKEN.encode() + b"\x00 HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        await _raw(
            host,
            port,
            b"GET /live HTTP/1.1\r\nHost: a\r\nCookie: coachline_session="
            + COOKIE.encode()
            + b"\x7f\r\n\r\n",
        )
        # Well-formed requests with credentials in the query string and odd schemes.
        for path in (
            f"/api/v1/calls?access_token={QUERY_TOKEN}",
            f"/live?token={QUERY_TOKEN}&signature={TWILIO_TOKEN}",
        ):
            await ca.client.get(path, headers={"Authorization": f"Token {API_TOKEN}"})
        await ca.client.get("/api/v1/calls", headers={"Authorization": f"Bearer {API_TOKEN}"})
        # Our own code slipping: a configured secret in a message and in a traceback.
        log = logging.getLogger("voice_server.test")
        log.warning("carrier said %s / %s", TWILIO_TOKEN, VONAGE_SECRET)
        try:
            raise ValueError(f"bad key {VONAGE_SECRET}")
        except ValueError:
            log.exception("failed with %s", {"token": TWILIO_TOKEN})
        for handler in logging.getLogger().handlers:
            handler.flush()
    finally:
        root.handlers[:], _, access_level, sys.stderr = saved
        root.setLevel(saved[1])
        logging.getLogger("aiohttp.access").setLevel(access_level)
    printed = stream.getvalue()
    assert "Error handling request" in printed and "[redacted]" in printed
    assert "access_token=[redacted]" in printed  # the access log line, query redacted
    for secret in (API_TOKEN, QUERY_TOKEN, COOKIE, TWILIO_TOKEN, VONAGE_SECRET):
        assert secret not in printed, (secret, printed[:3000])
