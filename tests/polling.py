"""Waiting on a condition, never on the clock: poll it until it holds or a deadline passes."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any


async def eventually(condition: Callable[[], Any], timeout_s: float, *, interval_s: float = 0.05,
                     what: str = "the condition") -> Any:
    """Call ``condition()`` (plain or async) until it returns something truthy; return that.

    Raises AssertionError naming ``what`` once ``timeout_s`` has passed without it.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s} s")
        await asyncio.sleep(interval_s)
