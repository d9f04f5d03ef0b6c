"""Token buckets that bound how often the SIP port answers sources it does not trust.

A UDP source address can be forged, so every answer to an untrusted source may land on a
victim: ``SourceBudget`` allows each source ``burst`` answers, refilled at ``per_s``, and all
of them together ``total_per_s`` (so rotating forged addresses gains nothing; None: no total,
for budgets where one source spending must not cost the others). Its table is
bounded too: only sources that have spent tokens are remembered (a full bucket is the
default), at most ``max_sources`` of them, the least recently seen forgotten first. Sans-IO:
the caller passes the clock.
"""

from __future__ import annotations

MAX_SOURCES = 4096


class SourceBudget:
    def __init__(
        self, *, burst: int, per_s: float, total_per_s: float | None, max_sources: int = MAX_SOURCES
    ) -> None:
        if burst < 1 or per_s <= 0 or (total_per_s is not None and total_per_s <= 0) or max_sources < 1:
            raise ValueError("burst, per_s, total_per_s and max_sources must be positive")
        self.burst = float(burst)
        self.per_s = per_s
        self.total_per_s = total_per_s
        # One second's worth of the total rate, and at least one answer.
        self.total_capacity = max(1.0, total_per_s) if total_per_s is not None else 1.0
        self.max_sources = max_sources
        self._total = self.total_capacity
        self._total_at: float | None = None
        self._buckets: dict[str, tuple[float, float]] = {}  # source -> (tokens, last seen)

    def __len__(self) -> int:
        return len(self._buckets)

    def _tokens(self, source: str, now: float) -> float:
        tokens, at = self._buckets.get(source, (self.burst, now))
        return min(self.burst, tokens + max(0.0, now - at) * self.per_s)

    def spent(self, source: str, now: float) -> bool:
        """Whether ``source`` has no unit left at ``now``, spending nothing (the total aside)."""
        return self._tokens(source, now) < 1.0

    def allow(self, source: str, now: float) -> bool:
        """Spend one answer for ``source`` at time ``now`` (seconds); False: stay silent."""
        tokens = self._tokens(source, now)
        self._buckets.pop(source, None)
        if self.total_per_s is None:
            total = self.total_capacity
        else:
            elapsed = 0.0 if self._total_at is None else max(0.0, now - self._total_at)
            total = min(self.total_capacity, self._total + elapsed * self.total_per_s)
        allowed = tokens >= 1.0 and total >= 1.0
        if allowed:
            tokens -= 1.0
            total -= 1.0
        self._total, self._total_at = total, now
        if tokens < self.burst:
            while len(self._buckets) >= self.max_sources:
                del self._buckets[next(iter(self._buckets))]  # the least recently seen
            self._buckets[source] = (tokens, now)  # re-inserted last: most recently seen
        return allowed
