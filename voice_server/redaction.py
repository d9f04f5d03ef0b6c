"""Keeping secrets out of what the node prints: log lines and ``coachline config``.

Two nets, both applied to every log line (message, traceback and extra fields)
by the formatters in ``voice_server.logs``:

* shapes that carry credentials, whoever wrote the line (aiohttp's own "Error
  handling request" quotes the malformed header line it refused, its access
  log quotes the request line with its query string): ``Authorization`` and
  similar header values, ``Bearer`` tokens, secret-named query parameters
  (``access_token=``, ``signature=`` …) and the password in a URL's userinfo;
* the configured secrets themselves (Twilio auth token, Vonage signature
  secret, recording keys, the database and Redis passwords), registered at
  start-up, wherever they appear.

``masked_settings`` is what ``coachline config`` prints: every setting, secrets
replaced by whether they are set.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

REDACTED = "[redacted]"
MIN_SECRET_CHARS = 6  # shorter values would blank out ordinary words

_SECRET_NAME = (
    r"(?:access_token|token|api_key|apikey|key|secret|signature|sig|password|passwd|pwd|auth|jwt)"
)
_HEADER_NAMES = r"(?:proxy-)?authorization|x-twilio-signature|cookie|set-cookie|x-api-key"
# "Authorization: …" / "authorization=…" anywhere, and a refused header line as aiohttp quotes
# it (b'Authorization SEKRET', with or without the colon).
_HEADER_VALUE = re.compile(rf"(?i)\b({_HEADER_NAMES})(\s*[:=]\s*)[^\r\n'\"]+")
_QUOTED_HEADER = re.compile(rf"(?i)(b['\"]\s*)({_HEADER_NAMES})([^'\"]*)")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s'\",\\]+")
_QUERY_PARAM = re.compile(rf"(?i)([?&;]{_SECRET_NAME}=)[^&\s'\"\\#]*")
_URL_PASSWORD = re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://[^/\s:@'\"]*:)[^@/\s'\"]*@")
# COACHLINE_SIP_PEERS entries "user:password@network"
_PEER_PASSWORD = re.compile(r"(^|,)\s*([^,:@\s]+):([^,@]*)@")

_known_secrets: set[str] = set()


def register_secrets(values: Iterable[str | None]) -> None:
    """Redact these exact values from every log line from now on."""
    for value in values:
        if value and len(value) >= MIN_SECRET_CHARS:
            _known_secrets.add(value)


def redact(text: str) -> str:
    """``text`` with credentials and registered secrets replaced by ``[redacted]``."""
    for secret in sorted(_known_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _HEADER_VALUE.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _QUOTED_HEADER.sub(lambda m: f"{m.group(1)}{m.group(2)} {REDACTED}", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _QUERY_PARAM.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    return _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)


def redact_value(value: Any) -> Any:
    """Strings anywhere inside ``value`` (dicts, lists) redacted; other values as they are."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(v) for v in value]
    return value


# -- settings --------------------------------------------------------------------------

# Settings whose whole value is a secret (paths to secrets are not: they are shown).
_SECRET_SETTING = re.compile(r"(secret|token|password|passwd|(^|_)key)$")


def _url_password(url: str) -> str | None:
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def settings_secrets(settings: Any) -> Iterator[str]:
    """Every secret value a node's settings hold (for ``register_secrets``)."""
    for name, value in settings:
        if isinstance(value, SecretStr):
            raw = value.get_secret_value()
            yield raw
            yield from (part.split(":", 1)[-1] for part in raw.replace("\n", ",").split(","))
        elif isinstance(value, str) and value:
            if _SECRET_SETTING.search(name):
                yield value
            if "://" in value:
                password = _url_password(value)
                if password:
                    yield password
                    yield password.replace("@", "%40")
            if name == "sip_peers":
                yield from (m.group(3) for m in _PEER_PASSWORD.finditer(value))


def masked_setting(name: str, value: Any) -> str:
    """How ``coachline config`` shows one setting."""
    if isinstance(value, SecretStr):
        return "<set>" if value.get_secret_value() else "<unset>"
    if isinstance(value, str) and _SECRET_SETTING.search(name):
        return "<set>" if value else "<unset>"
    text = str(value)
    if name == "sip_peers" and isinstance(value, str):
        text = _PEER_PASSWORD.sub(lambda m: f"{m.group(1)}{m.group(2)}:{REDACTED}@", text)
    return redact(text)


def masked_settings(settings: Any) -> list[tuple[str, str]]:
    return [(name, masked_setting(name, value)) for name, value in settings]
