"""Which network addresses webhooks may reach: every spelling of an inward address refused.

A URL host can name loopback or a private network in many more ways than ``127.0.0.1``:
the inet_aton forms every resolver accepts (``2130706433``, ``0x7f.1``, ``0177.0.0.1``,
``127.1``), IPv6 spellings (``[::1]``, ``[0:0:0:0:0:0:0:1]``, ``[::ffff:127.0.0.1]``), IPv6
prefixes that carry an IPv4 address inside (NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``,
Teredo, IPv4-compatible ``::a.b.c.d``), link-local with a zone (``fe80::1%eth0``), and names
that resolve inward. ``host_address`` reads a host the way a resolver would, and
``is_public_ip`` is true only for a global unicast address with nothing inward embedded.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
# inet_aton parts: decimal, octal (leading 0) or hex (0x); a host made only of these is an address
_NUMERIC_PART = re.compile(r"^(0[xX][0-9a-fA-F]*|[0-9]+)$")
LOCAL_NAME_SUFFIXES = (".localhost", ".local", ".internal", ".localdomain", ".home.arpa")


class NotAnAddress(ValueError):
    """The host looks numeric but is no address a resolver would accept either."""


def _ipv4_numeric(host: str) -> ipaddress.IPv4Address | None:
    """``host`` read as inet_aton reads it (1 to 4 parts, each decimal, octal or hex), or None
    when it is not numeric at all. A numeric host out of range raises ``NotAnAddress``."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMERIC_PART.match(p) for p in parts):
        return None
    values = []
    for part in parts:
        if part[:2].lower() == "0x":
            values.append(int(part[2:] or "0", 16))
        elif len(part) > 1 and part.startswith("0"):
            if not set(part) <= set("01234567"):
                raise NotAnAddress(f"{host!r} is not a valid address")
            values.append(int(part, 8))
        else:
            values.append(int(part))
    *leading, last = values
    if any(v > 255 for v in leading) or last >= 256 ** (4 - len(leading)):
        raise NotAnAddress(f"{host!r} is not a valid address")
    number = last
    for i, v in enumerate(leading):
        number |= v << (8 * (3 - i))
    return ipaddress.IPv4Address(number)


def host_address(host: str) -> IPAddress | None:
    """The address a URL host spells (brackets, zone and trailing dot removed), or None for a name."""
    host = host.strip().strip("[]").rstrip(".").lower()
    host = host.split("%", 1)[0]  # the zone of a link-local address; the address decides
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise NotAnAddress(f"{host!r} is not a valid IPv6 address") from None
    return _ipv4_numeric(host)


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address hands traffic to (mapped, compatible, NAT64, 6to4, Teredo)."""
    found = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip in _IPV4_COMPATIBLE or ip in _NAT64_WELL_KNOWN or ip in _NAT64_LOCAL:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    return found


def is_public_ip(ip: IPAddress) -> bool:
    """True for a global unicast address that embeds no inward IPv4 address."""
    # NAT64's well-known prefix is global to ``ipaddress``; its embedded IPv4 address decides below
    nat64 = isinstance(ip, ipaddress.IPv6Address) and ip in _NAT64_WELL_KNOWN
    if not nat64 and (not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_link_local):
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_site_local:  # deprecated fec0::/10, still routed inside some networks
            return False
        return all(is_public_ip(v4) for v4 in embedded_ipv4(ip))
    return True


def is_public_address(address: str) -> bool:
    """``is_public_ip`` of an address as text (any spelling ``host_address`` reads); False for
    text that is no address."""
    try:
        ip = host_address(address)
    except NotAnAddress:
        return False
    return ip is not None and is_public_ip(ip)


def is_local_name(host: str) -> bool:
    name = host.strip().rstrip(".").lower()
    return name == "localhost" or name.endswith(LOCAL_NAME_SUFFIXES)


async def inward_addresses(host: str, port: int, *, timeout_s: float = 5.0) -> list[str]:
    """The non-public addresses ``host`` resolves to now; [] when none (or it does not resolve,
    which delivery, resolving again, will find out)."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout_s
        )
    except (TimeoutError, OSError, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos if not is_public_address(str(info[4][0]))})
