"""What a Vonage webhook token must hold to vouch for a body, checked without a server: the
signature, an ``iat`` within the age window either way, and the body's SHA-256. The webhook
tests (test_vonage_webhook_binding.py) show the same rules at the HTTP edge, with replays."""

from __future__ import annotations

import hashlib
import uuid

import jwt
import pytest
import redis.asyncio as aioredis

from voice_server.transports.vonage_signature import (
    REPLAY_KEY_PREFIX,
    ReplayGuard,
    ReplayStoreUnavailable,
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
        (
            _bearer(secret="another-secret-of-thirty-two-bytes-or-more"),
            "bad signature|unusable token",
        ),
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


async def test_a_claim_outlives_every_moment_its_token_could_still_pass(redis_url):
    client = aioredis.from_url(redis_url)
    try:
        guard = ReplayGuard(lambda: client, 3600.0)
        claims = {"jti": str(uuid.uuid4()), "iat": 1, "payload_hash": "x"}
        key = await guard.claim(claims)
        # first seen an hour early, it still passes an hour late: two hours, and a second spare
        assert 2 * 3600 * 1000 < await client.pttl(key) <= 2 * 3600 * 1000 + 1000
        with pytest.raises(SignatureRejected, match="replay"):
            await guard.claim(claims)
        await guard.release(key)  # a request we failed to serve: Vonage's retry is accepted
        assert await guard.claim(claims) == key
        await guard.release(key)
    finally:
        await client.aclose()


async def test_a_replay_store_that_does_not_answer_is_unavailable_not_an_error():
    for redis_of in (lambda: None, lambda: aioredis.from_url("redis://127.0.0.1:9/0")):
        guard = ReplayGuard(redis_of, 60.0)
        with pytest.raises(ReplayStoreUnavailable):
            await guard.claim({"jti": "j", "iat": 1, "payload_hash": "x"})
        await guard.release("any")  # nothing to forget: no error either
