"""Budgets of failed digest attempts, so nobody can guess a SIP peer's password at line speed.

Every wrong guess (``DigestResult.guessed``: a password compared under a nonce issued to that
very source) spends one unit of its source's budget and, when it names a configured user,
one of that user's. A source whose budget is spent, or any source trying a user whose budget
is spent, gets no challenge and no password check until a unit has refilled: not even the
right password passes then, so a guess can never be confirmed while the budget is spent.

A source is its IPv4 address or its IPv6 /64 (one host commonly holds a whole /64). The
user's budget bounds guessing spread over many sources; since anyone who can reach the port
may spend it, a source that proved the user's password lately (``PROVEN_S``) is not held to
it, so guessers cannot lock the real peer out (they cannot use its address either: the
nonces it was sent are good only from there, and forging its address does not show a forger
the challenge). Sans-IO: the caller passes the clock.
"""

from __future__ import annotations

import ipaddress

from voice_server.sip.source_limits import MAX_SOURCES, SourceBudget

PROVEN_S = 24 * 3600.0


def source_key(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class DigestFailures:
    def __init__(
        self,
        *,
        per_source: int,
        per_user: int,
        refill_per_min: float,
        max_sources: int = MAX_SOURCES,
    ) -> None:
        per_s = refill_per_min / 60.0
        self.sources = SourceBudget(
            burst=per_source, per_s=per_s, total_per_s=None, max_sources=max_sources
        )
        self.users = SourceBudget(
            burst=per_user, per_s=per_s, total_per_s=None, max_sources=max_sources
        )
        self.max_proven = max_sources
        self._proven: dict[tuple[str, str], float] = {}  # (user, source) -> last success

    def refusal(self, source: str, user: str | None, now: float) -> str | None:
        """Why an attempt from ``source`` naming ``user`` (a configured user, or None) must not
        be checked now: "source" or "user"; None when it may be."""
        key = source_key(source)
        if self.sources.spent(key, now):
            return "source"
        if user is not None and self.users.spent(user, now) and not self._is_proven(user, key, now):
            return "user"
        return None

    def failed(self, source: str, user: str | None, now: float) -> None:
        self.sources.allow(source_key(source), now)
        if user is not None:
            self.users.allow(user, now)

    def succeeded(self, source: str, user: str, now: float) -> None:
        key = (user, source_key(source))
        self._proven.pop(key, None)
        while len(self._proven) >= self.max_proven:
            del self._proven[next(iter(self._proven))]  # the longest unproven
        self._proven[key] = now

    def _is_proven(self, user: str, key: str, now: float) -> bool:
        at = self._proven.get((user, key))
        return at is not None and now - at <= PROVEN_S
