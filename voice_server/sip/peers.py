"""Which SIP peers may send us calls: trunks and PBXs by source IP, optionally with digest.

The spec is a comma-separated list of entries, each either a network
(``10.1.2.0/24``, ``203.0.113.7``) — requests from it are trusted as they
are — or ``user:password@network`` — requests from it must also answer a
digest challenge with those credentials. ``*`` as the network means any
address. A request from an address no entry covers is forbidden (403).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from voice_server.sip.digest import DigestAuthenticator

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class PeerSpecError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class PeerEntry:
    networks: tuple[Network, ...]
    username: str | None = None
    password: str | None = None

    def covers(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(address.version == n.version and address in n for n in self.networks)


def _networks(text: str) -> tuple[Network, ...]:
    if text == "*":
        return (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
    try:
        return (ipaddress.ip_network(text, strict=False),)
    except ValueError:
        raise PeerSpecError(f"not an IP address or network: {text!r}") from None


def parse_peers(spec: str) -> list[PeerEntry]:
    entries = []
    for raw in spec.split(","):
        raw = raw.strip()
        if not raw:
            continue
        creds, at, where = raw.rpartition("@")
        if at:
            user, colon, password = creds.partition(":")
            if not user or not colon or not password:
                raise PeerSpecError(f"expected user:password@network, got {raw!r}")
            entries.append(PeerEntry(_networks(where), user, password))
        else:
            entries.append(PeerEntry(_networks(where)))
    return entries


@dataclass(frozen=True, slots=True)
class PeerDecision:
    allowed: bool
    authenticator: DigestAuthenticator | None = None  # set: the request must pass digest


@dataclass
class PeerPolicy:
    entries: list[PeerEntry]
    realm: str = "coachline"
    nonce_ttl_s: float = 300.0
    _authenticators: dict[tuple[str, ...], DigestAuthenticator] = field(default_factory=dict)

    @classmethod
    def from_spec(cls, spec: str, *, realm: str = "coachline",
                  nonce_ttl_s: float = 300.0) -> PeerPolicy:
        return cls(parse_peers(spec), realm, nonce_ttl_s)

    def decide(self, source_ip: str) -> PeerDecision:
        try:
            address = ipaddress.ip_address(source_ip.split("%")[0])
        except ValueError:
            return PeerDecision(False)
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        matching = [e for e in self.entries if e.covers(address)]
        if not matching:
            return PeerDecision(False)
        if any(e.username is None for e in matching):
            return PeerDecision(True)
        credentials = {e.username: e.password for e in matching if e.username and e.password}
        key = tuple(sorted(f"{u}:{p}" for u, p in credentials.items()))
        if key not in self._authenticators:
            self._authenticators[key] = DigestAuthenticator(
                self.realm, credentials, nonce_ttl_s=self.nonce_ttl_s)
        return PeerDecision(True, self._authenticators[key])
