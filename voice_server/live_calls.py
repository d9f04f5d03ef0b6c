"""The calls this node is handling right now, so it can report and drain them."""

from __future__ import annotations

import asyncio
from typing import Callable


class LiveCalls:
    def __init__(self, on_change: Callable[[int], None] | None = None) -> None:
        self._calls: set[str] = set()
        self._empty = asyncio.Event()
        self._empty.set()
        self._on_change = on_change

    def __len__(self) -> int:
        return len(self._calls)

    def __contains__(self, call_id: str) -> bool:
        return call_id in self._calls

    def add(self, call_id: str) -> None:
        self._calls.add(call_id)
        self._empty.clear()
        self._changed()

    def discard(self, call_id: str) -> None:
        self._calls.discard(call_id)
        if not self._calls:
            self._empty.set()
        self._changed()

    async def wait_empty(self, timeout_s: float) -> bool:
        """Wait until no call is live; False if ``timeout_s`` passed first."""
        try:
            await asyncio.wait_for(self._empty.wait(), timeout_s)
            return True
        except asyncio.TimeoutError:
            return False

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(len(self._calls))
