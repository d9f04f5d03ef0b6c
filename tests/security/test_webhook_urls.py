"""Outgoing webhooks never reach an inward address, however it is spelt or resolved.

Three guards, each tested: the URL check when an endpoint is saved (every literal spelling),
name resolution when it is saved (a name that resolves inward: 422 at once), and the
dispatcher's resolver at every connection (a name re-pointed inward later: DNS rebinding). The
loopback allowance the other delivery tests use is explicit (``allow_private_urls``) and off by
default, and a test here shows the same receiver IS reached with it, so the refusals are real.
"""

from __future__ import annotations

import socket
import uuid
from datetime import UTC, datetime

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from crm_core.api_context import ApiOptions
from crm_core.webhooks.addresses import NotAnAddress, host_address, is_public_address
from crm_core.webhooks.delivery import ClaimedDelivery, WebhookDispatcher, WebhookOptions
from crm_core.webhooks.endpoints import WebhookUrlError, check_resolved_url, validate_url
from tests.security.unlimited_world import world  # noqa: F401  (the running API, as a fixture here)
from voice_server.settings import load_settings

INWARD_HOSTS = {
    # IPv4 in every inet_aton notation
    "dotted": "127.0.0.1",
    "decimal": "2130706433",
    "octal": "0177.0.0.1",
    "octal, long": "017700000001",
    "hex": "0x7f.1",
    "hex, one part": "0x7f000001",
    "hex, dotted": "0x7f.0x0.0x0.0x1",
    "short": "127.1",
    "short, two parts": "127.0.1",
    "trailing dot": "127.0.0.1.",
    "mixed": "0x7f.0.01",
    "zero": "0",
    "unspecified": "0.0.0.0",
    "private 10": "10.0.0.1",
    "private 10 short": "10.1",
    "private 172": "172.16.5.4",
    "private 192": "192.168.0.1",
    "private 192 decimal": "3232235521",
    "link-local / cloud metadata": "169.254.169.254",
    "metadata decimal": "2852039166",
    "shared address space": "100.64.0.1",
    "multicast": "224.0.0.1",
    "reserved": "240.0.0.1",
    "broadcast": "255.255.255.255",
    "benchmarking": "198.18.0.1",
    "documentation": "192.0.2.1",
    # IPv6
    "v6 loopback": "[::1]",
    "v6 loopback, long": "[0:0:0:0:0:0:0:1]",
    "v6 loopback, zero padded": "[0000:0000:0000:0000:0000:0000:0000:0001]",
    "v6 unspecified": "[::]",
    "v4-mapped": "[::ffff:127.0.0.1]",
    "v4-mapped hex": "[::ffff:7f00:1]",
    "v4-mapped private": "[::ffff:10.0.0.1]",
    "v4-compatible": "[::127.0.0.1]",
    "NAT64 loopback": "[64:ff9b::127.0.0.1]",
    "NAT64 metadata": "[64:ff9b::a9fe:a9fe]",
    "NAT64 local-use": "[64:ff9b:1::a00:1]",
    "6to4 loopback": "[2002:7f00:1::]",
    "6to4 private": "[2002:c0a8:1::1]",
    "teredo": "[2001:0:4136:e378:8000:63bf:80ff:fffe]",
    "unique local": "[fc00::1]",
    "unique local fd": "[fd12:3456::1]",
    "link-local": "[fe80::1]",
    "link-local with zone": "[fe80::1%25eth0]",
    "site-local": "[fec0::1]",
    "v6 multicast": "[ff02::1]",
    "documentation v6": "[2001:db8::1]",
    # names
    "localhost": "localhost",
    "localhost, upper case": "LOCALHOST",
    "localhost, trailing dot": "localhost.",
    "sub.localhost": "api.localhost",
    "mdns": "printer.local",
    "internal": "metadata.google.internal",
    # what the connecting client (yarl: IDNA + NFKC) turns into loopback
    "fullwidth digits": "\uff11\uff12\uff17.\uff10.\uff10.\uff11",
    "ideographic full stops": "127\u30020\u30020\u30021",
    "circled letters": "\u24dbocalhost",
}

PUBLIC_HOSTS = {
    "v4": "8.8.8.8",
    "v4 decimal": "134744072",
    "v6": "[2001:4860:4860::8888]",
    "NAT64 of a public v4": "[64:ff9b::808:808]",
    "6to4 of a public v4": "[2002:808:808::1]",
    "name": "hooks.example.com",
}

on_session_loop = pytest.mark.asyncio(loop_scope="session")

MALFORMED_NUMERIC = ["256.0.0.1", "1.2.3.256", "0x100.1", "08.0.0.1", "4294967296", "[::1::2]"]


@pytest.mark.parametrize("host", INWARD_HOSTS.values(), ids=INWARD_HOSTS.keys())
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_every_spelling_of_an_inward_address_is_refused(scheme, host):
    for url in (f"{scheme}://{host}/hook", f"{scheme}://{host}:8443/hook?x=1"):
        with pytest.raises(WebhookUrlError):
            validate_url(url)
            pytest.fail(f"{url} accepted")
    validate_url(f"{scheme}://{host}/hook", allow_private=True)  # the explicit allowance


@pytest.mark.parametrize("host", PUBLIC_HOSTS.values(), ids=PUBLIC_HOSTS.keys())
def test_public_addresses_and_names_are_accepted(host):
    assert validate_url(f"https://{host}/hook") == f"https://{host}/hook"


@pytest.mark.parametrize("host", MALFORMED_NUMERIC)
def test_numeric_hosts_no_resolver_reads_the_same_way_are_refused(host):
    with pytest.raises(WebhookUrlError):
        validate_url(f"https://{host}/hook")


def test_numeric_spellings_read_as_a_resolver_reads_them():
    # inet_aton is the reference: whatever it makes of a spelling, we make the same
    for spelling in ("2130706433", "0177.0.0.1", "0x7f.1", "127.1", "10.1", "0x7f.0.01", "0"):
        assert str(host_address(spelling)) == socket.inet_ntoa(socket.inet_aton(spelling))
    # the last part's bound: exactly what fits in the bytes the leading parts leave
    for spelling in ("1.16777215", "1.1.65535", "1.1.1.255", "4294967295"):
        assert str(host_address(spelling)) == socket.inet_ntoa(socket.inet_aton(spelling))
    for spelling in ("1.16777216", "1.1.65536", "1.1.1.256", "4294967296"):
        with pytest.raises(OSError):
            socket.inet_aton(spelling)
        with pytest.raises(NotAnAddress):
            host_address(spelling)
    assert not is_public_address("::ffff:169.254.169.254")
    assert is_public_address("2606:4700:4700::1111")


def test_the_loopback_allowance_is_off_by_default():
    assert WebhookOptions().allow_private_urls is False
    assert ApiOptions().webhooks_allow_private_urls is False
    assert load_settings({}).webhooks_allow_private_urls is False


def _inward_name() -> str:
    """A name (not an address, not 'localhost') this machine resolves to a non-public address."""
    name = socket.gethostname()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)}
    except OSError:
        pytest.skip(f"the host name {name!r} does not resolve here")
    if not addresses or any(is_public_address(a) for a in addresses):
        pytest.skip(f"the host name {name!r} resolves to a public address here")
    return name


@on_session_loop
async def test_a_name_resolving_inward_is_refused_when_saved():
    name = _inward_name()
    validate_url(f"https://{name}/hook")  # a plain name: the literal check cannot know
    with pytest.raises(WebhookUrlError, match="resolves to non-public"):
        await check_resolved_url(f"https://{name}/hook")
    await check_resolved_url(f"https://{name}/hook", allow_private=True)
    await check_resolved_url("https://does-not-resolve.invalid/hook")  # left to delivery


@on_session_loop
async def test_the_api_refuses_inward_urls_with_a_422(world):  # noqa: F811
    org = await world.make_org()
    hosts = [
        "2130706433",
        "0x7f.1",
        "[::ffff:127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "\uff11\uff12\uff17.\uff10.\uff10.\uff11",
        _inward_name(),
    ]
    _, created = await world.request(
        "POST", "/api/v1/webhooks", as_=org.admin, json={"url": "https://8.8.8.8/hook"}
    )
    for host in hosts:
        resp, body = await world.request(
            "POST", "/api/v1/webhooks", as_=org.admin, json={"url": f"https://{host}/hook"}
        )
        assert (resp.status, body["error"]["code"]) == (422, "invalid_url"), (host, body)
        resp, body = await world.request(
            "PATCH",
            f"/api/v1/webhooks/{created['id']}",
            as_=org.admin,
            json={"url": f"http://{host}:8080/x"},
        )
        assert (resp.status, body["error"]["code"]) == (422, "invalid_url"), (host, body)


class _Receiver:
    def __init__(self) -> None:
        self.calls = 0
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        self.server = TestServer(app, host="127.0.0.1")

    async def _hook(self, _request: web.Request) -> web.Response:
        self.calls += 1
        return web.Response(status=204)


def _claim(url: str) -> ClaimedDelivery:
    return ClaimedDelivery(
        id=1,
        org_id=str(uuid.uuid4()),
        endpoint_id=str(uuid.uuid4()),
        url=url,
        secret="whsec_x",
        endpoint_active=True,
        event_id=str(uuid.uuid4()),
        event_type="crm.lead.created",
        payload={},
        event_created_at=datetime.now(UTC),
        attempt=1,
    )


@on_session_loop
async def test_delivery_connects_only_to_checked_public_addresses():
    """A URL saved while its name looked public, whose name now resolves inward (rebinding), and
    stored literal spellings: the dispatcher refuses them all and the receiver hears nothing."""
    name = _inward_name()
    receiver = _Receiver()
    await receiver.server.start_server()
    port = receiver.server.port
    strict = WebhookDispatcher(None, WebhookOptions(timeout_s=5))  # type: ignore[arg-type]
    allowing = WebhookDispatcher(None, WebhookOptions(timeout_s=5, allow_private_urls=True))  # type: ignore[arg-type]
    try:
        # the receiver is reachable through the name: only the policy stands in the way
        reached = await allowing.attempt(_claim(f"http://{name}:{port}/hook"))
        assert reached.ok and receiver.calls == 1, reached
        for host in (name, "2130706433", "0x7f.1", "127.1", "[::ffff:127.0.0.1]", "localhost"):
            outcome = await strict.attempt(_claim(f"http://{host}:{port}/hook"))
            assert not outcome.ok, (host, outcome)
            assert "non-public" in outcome.error or "local name" in outcome.error, (host, outcome)
        assert receiver.calls == 1, "a refused delivery reached the receiver"
    finally:
        await strict.close()
        await allowing.close()
        await receiver.server.close()
