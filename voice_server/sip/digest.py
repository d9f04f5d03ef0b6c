"""HTTP digest authentication as SIP uses it (RFC 3261 §22, RFC 2617, RFC 7616).

Nonces are stateless: ``<issued-at>.<hmac>`` signed with a per-process
secret, so any nonce we did not issue, or one older than ``nonce_ttl_s``,
is refused without a table of outstanding nonces. An expired but
otherwise valid nonce gets a fresh challenge with ``stale=true`` so the
peer retries without asking its user again.

The signature also covers the source address the challenge went to, so a nonce is good only
from there. A UDP source can be forged, but a forger never sees the challenges sent to the
address it forges: an attempt carrying a nonce that address was not given is refused before
any password is compared and is not a guess (``DigestResult.guessed``), so nobody can spend
another address's budget of failed attempts (``voice_server.sip.digest_limits``).
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
    # A password was compared, under a nonce issued to this very source: a real guess.
    guessed: bool = False


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

    def _sign(self, issued: str, source: str) -> str:
        return hmac.new(self._secret, f"{issued}|{source}".encode(), hashlib.sha256).hexdigest()[:32]

    def new_nonce(self, source: str = "") -> str:
        issued = f"{self._clock():.3f}"
        return f"{issued}.{self._sign(issued, source)}"

    def _issued_to(self, nonce: str, source: str) -> bool:
        issued, _, signature = nonce.rpartition(".")
        return bool(issued) and hmac.compare_digest(signature, self._sign(issued, source))

    def _nonce_age_state(self, nonce: str) -> DigestOutcome:
        try:
            age = self._clock() - float(nonce.rpartition(".")[0])
        except ValueError:
            return DigestOutcome.INVALID
        return DigestOutcome.OK if -5 <= age <= self._ttl else DigestOutcome.STALE

    def knows(self, username: str | None) -> bool:
        return username is not None and username in self._credentials

    def challenge(self, *, stale: bool = False, algorithm: str = "MD5", source: str = "") -> str:
        """A ``WWW-Authenticate`` value whose nonce is good only from ``source``."""
        value = (f'Digest realm="{self.realm}", nonce="{self.new_nonce(source)}", '
                 f'algorithm={algorithm}, qop="auth"')
        return value + (", stale=true" if stale else "")

    def verify(self, method: str, authorization: str | None, source: str = "") -> DigestResult:
        """Check ``authorization`` from ``source`` (the address its challenge went to)."""
        if not authorization:
            return DigestResult(DigestOutcome.MISSING)
        params = parse_digest(authorization)
        if params is None:
            return DigestResult(DigestOutcome.INVALID)
        username = params.get("username", "")
        algorithm = params.get("algorithm", "MD5").upper()
        password = self._credentials.get(username)
        needed = ("nonce", "uri", "response")
        if any(k not in params for k in needed) or not self._issued_to(params["nonce"], source):
            return DigestResult(DigestOutcome.INVALID, username or None)  # no password compared
        # From here on the attempt is a guess: a name and password tried under our nonce.
        if password is None or algorithm not in _ALGORITHMS or params.get("realm") != self.realm:
            return DigestResult(DigestOutcome.INVALID, username or None, guessed=True)
        qop = params.get("qop")
        if qop not in (None, "auth"):
            return DigestResult(DigestOutcome.INVALID, username, guessed=True)
        if qop and not (params.get("nc") and params.get("cnonce")):
            return DigestResult(DigestOutcome.INVALID, username, guessed=True)
        expected = digest_response(
            algorithm=algorithm, username=username, realm=self.realm, password=password,
            method=method, uri=params["uri"], nonce=params["nonce"], qop=qop,
            nc=params.get("nc", ""), cnonce=params.get("cnonce", ""))
        if not hmac.compare_digest(expected, params["response"].lower()):
            return DigestResult(DigestOutcome.INVALID, username, guessed=True)
        return DigestResult(self._nonce_age_state(params["nonce"]), username)
