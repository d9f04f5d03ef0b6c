"""One warning when live events start failing to publish and one when they flow again.

While the event bus (Redis) is down every live event of every call fails to publish; a
traceback per event would bury the log. ``PublishOutage`` is shared by the node's call
sessions: the first failure logs one warning, the rest are counted, and the first success
after them logs one warning with the count of events dropped. A failure that does not mean
"unavailable" (``storage.errors.is_unavailable``) is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging

from storage.errors import is_unavailable

log = logging.getLogger(__name__)


class PublishOutage:
    def __init__(self) -> None:
        self.dropped = 0  # events lost in the outage under way (0: none under way)

    def failed(self, event_type: str, exc: BaseException) -> None:
        if not is_unavailable(exc):
            log.error("could not publish %s", event_type, exc_info=exc)
            return
        self.dropped += 1
        if self.dropped == 1:
            log.warning(
                "event bus unavailable (%s): live events are dropped until it is back",
                type(exc).__name__,
            )

    def succeeded(self) -> None:
        if self.dropped:
            log.warning(
                "event bus back: %d live event(s) were dropped while it was unavailable",
                self.dropped,
            )
            self.dropped = 0
