"""HTTP digest authentication as SIP uses it (RFC 3261 §22, RFC 2617, RFC 7616).

Nonces are stateless: ``<issued-at>.<hmac>`` signed with a per-process
secret, so any nonce we did not issue, or one older than ``nonce_ttl_s``,
is refused without a table of outstanding nonces. An expired but
otherwise valid nonce gets a fresh challenge with ``stale=true`` so the
peer retries without asking its user again.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
from dataclasses import dataclass
from enum import Enum

_PARAM_RE = re.compile(r'([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
_ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


class DigestOutcome(Enum):
    OK = "ok"
    MISSING = "missing"  # no credentials: challenge
    STALE = "stale"  # right password, expired nonce: challenge with stale=true
    INVALID = "invalid"  # wrong user, password, realm or a forged nonce


@dataclass(frozen=True, slots=True)
class DigestResult:
    outcome: DigestOutcome
    username: str | None = None


def parse_digest(value: str) -> dict[str, str] | None:
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    return {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
            for m in _PARAM_RE.finditer(rest)}


def _h(algorithm: str, text: str) -> str:
    return _ALGORITHMS[algorithm](text.encode("utf-8")).hexdigest()


def digest_response(*, algorithm: str, username: str, realm: str, password: str, method: str,
                    uri: str, nonce: str, qop: str | None = None, nc: str = "",
                    cnonce: str = "") -> str:
    ha1 = _h(algorithm, f"{username}:{realm}:{password}")
    ha2 = _h(algorithm, f"{method}:{uri}")
    if qop:
        return _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _h(algorithm, f"{ha1}:{nonce}:{ha2}")


class DigestAuthenticator:
    def __init__(self, realm: str, credentials: dict[str, str], *, nonce_ttl_s: float = 300.0,
                 secret: bytes | None = None, clock=time.time) -> None:
        self.realm = realm
        self._credentials = dict(credentials)
        self._ttl = nonce_ttl_s
        self._secret = secret or os.urandom(32)
        self._clock = clock

    def _sign(self, issued: str) -> str:
        return hmac.new(self._secret, issued.encode(), hashlib.sha256).hexdigest()[:32]

    def new_nonce(self) -> str:
        issued = f"{self._clock():.3f}"
        return f"{issued}.{self._sign(issued)}"

    def _nonce_state(self, nonce: str) -> DigestOutcome:
        issued, _, signature = nonce.rpartition(".")
        if not issued or not hmac.compare_digest(signature, self._sign(issued)):
            return DigestOutcome.INVALID
        try:
            age = self._clock() - float(issued)
        except ValueError:
            return DigestOutcome.INVALID
        return DigestOutcome.OK if -5 <= age <= self._ttl else DigestOutcome.STALE

    def challenge(self, *, stale: bool = False, algorithm: str = "MD5") -> str:
        """A ``WWW-Authenticate`` value."""
        value = (f'Digest realm="{self.realm}", nonce="{self.new_nonce()}", '
                 f'algorithm={algorithm}, qop="auth"')
        return value + (", stale=true" if stale else "")

    def verify(self, method: str, authorization: str | None) -> DigestResult:
        if not authorization:
            return DigestResult(DigestOutcome.MISSING)
        params = parse_digest(authorization)
        if params is None:
            return DigestResult(DigestOutcome.INVALID)
        username = params.get("username", "")
        algorithm = params.get("algorithm", "MD5").upper()
        password = self._credentials.get(username)
        needed = ("nonce", "uri", "response")
        if (password is None or algorithm not in _ALGORITHMS or params.get("realm") != self.realm
                or any(k not in params for k in needed)):
            return DigestResult(DigestOutcome.INVALID, username or None)
        qop = params.get("qop")
        if qop not in (None, "auth"):
            return DigestResult(DigestOutcome.INVALID, username)
        if qop and not (params.get("nc") and params.get("cnonce")):
            return DigestResult(DigestOutcome.INVALID, username)
        expected = digest_response(
            algorithm=algorithm, username=username, realm=self.realm, password=password,
            method=method, uri=params["uri"], nonce=params["nonce"], qop=qop,
            nc=params.get("nc", ""), cnonce=params.get("cnonce", ""))
        if not hmac.compare_digest(expected, params["response"].lower()):
            return DigestResult(DigestOutcome.INVALID, username)
        state = self._nonce_state(params["nonce"])
        return DigestResult(state, username)
