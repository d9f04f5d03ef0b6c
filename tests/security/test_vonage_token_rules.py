"""What a Vonage webhook token must hold to vouch for a body, checked without a server: the
signature, an ``iat`` within the age window either way, and the body's SHA-256. The webhook
tests (test_vonage_webhook_binding.py) show the same rules at the HTTP edge, with replays."""

from __future__ import annotations

import hashlib

import jwt
import pytest

from voice_server.transports.vonage_signature import (
    REPLAY_KEY_PREFIX,
    SignatureRejected,
    replay_key,
    verify_signed_webhook,
)

SECRET = "vonage-signature-secret-for-the-tests-here"
NOW = 1_700_000_000.0
BODY = b'{"uuid": "abc", "status": "answered"}'


def _bearer(secret: str = SECRET, **claims) -> str:
    base = {"iat": int(NOW), "jti": "j-1", "payload_hash": hashlib.sha256(BODY).hexdigest()}
    token = jwt.encode({**base, **claims}, secret, algorithm="HS256")
    return f"Bearer {token}"


def _verify(authorization, body=BODY, secret=SECRET, now=NOW):
    return verify_signed_webhook(secret, authorization, body, 60.0, now=now)


def test_a_token_vouches_for_the_body_it_hashes_within_the_age_window_either_way():
    for skew in (-60.0, 0.0, 60.0):
        assert _verify(_bearer(), now=NOW + skew)["jti"] == "j-1"
    upper = _bearer(payload_hash=hashlib.sha256(BODY).hexdigest().upper())
    assert _verify(upper)["iat"] == int(NOW)  # the hash's case is not part of it
    empty = _bearer(payload_hash=hashlib.sha256(b"").hexdigest())
    assert _verify(empty, body=b"")["iat"] == int(NOW)


@pytest.mark.parametrize(
    ("authorization", "why"),
    [
        (None, "no bearer token"),
        ("", "no bearer token"),
        ("Basic abc", "no bearer token"),
        ("bearer " + _bearer().removeprefix("Bearer "), "no bearer token"),
        (_bearer(secret="another-secret-of-thirty-two-bytes-or-more"), "bad signature|unusable token"),
        ("Bearer not.a.jwt", "unusable token"),
        (_bearer(iat=True), "without iat"),
        (_bearer(iat="1700000000"), "without iat"),
        (_bearer(iat=int(NOW) - 61), "too old"),
        (_bearer(iat=int(NOW) + 61), "from the future"),
        (_bearer(payload_hash=None), "without payload_hash"),
        (_bearer(payload_hash=123), "without payload_hash"),
        (_bearer(payload_hash=hashlib.sha256(b"").hexdigest()), "does not match"),
    ],
)
def test_a_token_that_does_not_vouch_is_refused_for_its_reason(authorization, why):
    with pytest.raises(SignatureRejected, match=why):
        _verify(authorization)


def test_no_secret_configured_accepts_nothing():
    with pytest.raises(SignatureRejected, match="no signature secret"):
        _verify(_bearer(), secret="")


def test_a_replay_is_keyed_by_jti_else_by_iat_and_body_hash():
    digest = hashlib.sha256(BODY).hexdigest()

    def key(identity: str) -> str:
        return REPLAY_KEY_PREFIX + hashlib.sha256(identity.encode()).hexdigest()

    assert replay_key({"jti": "j-1", "iat": 1, "payload_hash": digest}) == key("jti:j-1")
    for jti in (None, "", 7):
        claims = {"jti": jti, "iat": 1, "payload_hash": digest}
        assert replay_key(claims) == key(f"iat:1:{digest}")
    assert REPLAY_KEY_PREFIX == "coachline:vonage:webhook-token:"
