"""SIP digest guessing is bounded per source and per user, over real UDP.

Each source is a UDP socket on its own loopback address (127.0.0.N); the digest peer entry
covers all of 127.0.0.0/8. The budgets are small so a handful of wrong guesses spends them.
Nothing waits on a clock: each step waits for the node's answer to one request, and where an
answer must be missing, a second request from the same socket (one that is always answered)
proves the first went unanswered, since the node reads a socket's datagrams in order.
"""

from __future__ import annotations

import asyncio
import uuid

from tests.security.test_sip_reflection import Source
from tests.voice_server.sip_node import REP_DIALLED, sip_node
from voice_server.sip.digest import digest_response
from voice_server.sip.digest_limits import DigestFailures
from voice_server.sip.message import SipResponse, parse_message

USER, PASSWORD = "trunk", "s3cret-trunk"
PEERS = f"{USER}:{PASSWORD}@127.0.0.0/8"


def options(source: Source, authorization: str | None = None) -> bytes:
    n = uuid.uuid4().hex[:12]
    lines = [
        f"OPTIONS sip:{REP_DIALLED}@127.0.0.1 SIP/2.0",
        f"Via: SIP/2.0/UDP {source.ip}:{source.port};branch=z9hG4bK{n};rport",
        f"From: <sip:probe@{source.ip}>;tag=f{n}",
        f"To: <sip:{REP_DIALLED}@127.0.0.1>",
        f"Call-ID: digest-{n}",
        "CSeq: 1 OPTIONS",
        "Max-Forwards: 70",
    ]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def authorization(nonce: str, password: str, user: str = USER) -> str:
    uri = f"sip:{REP_DIALLED}@127.0.0.1"
    response = digest_response(
        algorithm="MD5",
        username=user,
        realm="coachline",
        password=password,
        method="OPTIONS",
        uri=uri,
        nonce=nonce,
        qop="auth",
        nc="00000001",
        cnonce="c0ffee",
    )
    return (
        f'Digest username="{user}", realm="coachline", nonce="{nonce}", uri="{uri}", '
        f'response="{response}", algorithm=MD5, qop=auth, nc=00000001, cnonce="c0ffee"'
    )


async def answer(source: Source, timeout: float = 10.0) -> SipResponse:
    data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(source.sock, 65535), timeout)
    message = parse_message(data)
    assert isinstance(message, SipResponse)
    return message


async def ask(source: Source, authorization_value: str | None = None) -> SipResponse:
    source.send(options(source, authorization_value))
    return await answer(source)


async def challenge(source: Source) -> str:
    got = await ask(source)
    assert got.status == 401, got.status
    return got.headers.get("WWW-Authenticate").split('nonce="')[1].split('"')[0]


async def test_a_source_that_spent_its_guesses_gets_403_not_a_challenge_until_it_refills(
    migrated_database, redis_url
):
    async with sip_node(
        migrated_database,
        redis_url,
        COACHLINE_SIP_PEERS=PEERS,
        COACHLINE_SIP_NON_PEER_POLICY="reject",
        COACHLINE_SIP_NON_PEER_BURST="50",
        COACHLINE_SIP_DIGEST_FAILURES_PER_SOURCE="3",
        COACHLINE_SIP_DIGEST_FAILURES_PER_USER="100",
        COACHLINE_SIP_DIGEST_FAILURE_REFILL_PER_MIN="30",
    ) as node:
        guesser, peer = Source("127.0.0.5", node.port), Source("127.0.0.6", node.port)
        try:
            nonce = await challenge(guesser)
            for guess in ("a", "b", "c"):
                assert (await ask(guesser, authorization(nonce, guess))).status == 401
            # Spent: even the right password is refused unchecked, and no challenge is given.
            assert (await ask(guesser, authorization(nonce, PASSWORD))).status == 403
            assert (await ask(guesser)).status == 403
            # Another source of the same peer entry is not held to the guesser's budget.
            assert (await ask(peer, authorization(await challenge(peer), PASSWORD))).status == 200
            # One unit refills in two seconds: poll until the right password passes again.
            deadline = asyncio.get_running_loop().time() + 15
            while (status := (await ask(guesser, authorization(nonce, PASSWORD))).status) == 403:
                assert asyncio.get_running_loop().time() < deadline, "the budget never refilled"
                await asyncio.sleep(0.1)
            assert status == 200
        finally:
            guesser.close()
            peer.close()


async def test_a_users_budget_holds_across_sources_but_not_for_forged_nonces_or_its_proven_peer(
    migrated_database, redis_url
):
    async with sip_node(
        migrated_database,
        redis_url,
        COACHLINE_SIP_PEERS=PEERS,
        COACHLINE_SIP_DIGEST_FAILURES_PER_SOURCE="2",
        COACHLINE_SIP_DIGEST_FAILURES_PER_USER="3",
        COACHLINE_SIP_DIGEST_FAILURE_REFILL_PER_MIN="0.001",
    ) as node:
        ips = ("127.0.0.10", "127.0.0.12", "127.0.0.13", "127.0.0.20", "127.0.0.21", "127.0.0.22")
        real, lender, borrower, first, second, third = (Source(ip, node.port) for ip in ips)
        try:
            # The real peer proves its password before anyone guesses.
            assert (await ask(real, authorization(await challenge(real), PASSWORD))).status == 200
            # Guesses under a nonce issued to another address are refused unchecked and spend
            # nothing: not the user's budget, not the sending address's.
            lent = await challenge(lender)
            for guess in ("w", "x", "y", "z"):
                assert (await ask(borrower, authorization(lent, guess))).status == 401
            assert (await ask(borrower, authorization(lent, PASSWORD))).status == 401
            # Three real guesses from two sources spend the user's budget of three.
            nonce = await challenge(first)
            for guess in ("a", "b"):
                assert (await ask(first, authorization(nonce, guess))).status == 401
            assert (await ask(second, authorization(await challenge(second), "c"))).status == 401
            # A fresh source is still challenged, but its right password for that user goes
            # unanswered (policy drop): the challenge that answers the next request is the first
            # thing it hears.
            nonce = await challenge(third)
            third.send(options(third, authorization(nonce, PASSWORD)))
            assert (await ask(third)).status == 401
            # The source that proved the password keeps working despite the spent user budget.
            assert (await ask(real, authorization(await challenge(real), PASSWORD))).status == 200
        finally:
            for source in (real, lender, borrower, first, second, third):
                source.close()


def test_an_ipv6_host_cannot_rotate_addresses_within_its_64_to_refill():
    failures = DigestFailures(per_source=2, per_user=100, refill_per_min=0.001)
    failures.failed("2001:db8:1:2::1", None, 0.0)
    failures.failed("2001:db8:1:2::ffff", None, 0.0)
    assert failures.refusal("2001:db8:1:2:abcd::9", None, 1.0) == "source"
    assert failures.refusal("2001:db8:1:3::1", None, 1.0) is None  # another /64
    assert failures.refusal("::ffff:192.0.2.1", None, 1.0) is None
