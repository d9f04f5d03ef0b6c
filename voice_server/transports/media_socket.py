"""The receive loop every carrier media WebSocket shares.

Size limits, idle timeouts and the end of the socket are handled once here;
the protocol (Twilio JSON, Vonage binary L16, …) lives in a ``MediaStream``.

A socket passed the carrier's upgrade check, but it is no call until its stream
is admitted (Twilio's ``start``, Vonage's ``websocket:connected``), which a
carrier does at once: a socket that has not started a call within
``start_timeout_s`` of the upgrade is closed, whatever else it sends, so a
socket that is not a call cannot be held for the (longer) idle timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from aiohttp import WSCloseCode, WSMsgType, web

from storage.errors import is_unavailable

log = logging.getLogger(__name__)


class MessageRejected(ValueError):
    """A media message a stream refuses: ``reason`` is the metric label, ``detail`` the log's."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class MediaStream(Protocol):
    carrier: str
    done: bool  # the protocol said the stream is over (or it must be closed)
    close_code: int

    async def on_text(self, data: str, arrived: float) -> None: ...

    async def on_binary(self, data: bytes, arrived: float) -> None: ...

    def reject(self, reason: str, detail: str = "") -> None: ...

    async def finish(self, outcome: str) -> None: ...


async def serve_media_socket(
    request: web.Request, stream: MediaStream, *, max_message_bytes: int, idle_timeout_s: float,
    start_timeout_s: float,
) -> web.WebSocketResponse:
    """Run ``stream`` over the request's WebSocket until it ends; always finishes the stream."""
    ws = web.WebSocketResponse(max_msg_size=max_message_bytes, autoping=True)
    await ws.prepare(request)
    last_message = [time.perf_counter()]
    idle = _Expiry()
    # One watchdog per socket rather than a timeout per receive: a timeout context on every
    # 20 ms message is a measurable share of the media path's CPU.
    watchdog = asyncio.create_task(
        _watch_idle(ws, stream, last_message, idle, idle_timeout_s, start_timeout_s))
    outcome = "dropped"  # unless the protocol or a clean close says otherwise
    try:
        while True:
            msg = await ws.receive()
            arrived = last_message[0] = time.perf_counter()
            if msg.type == WSMsgType.TEXT:
                await _guarded(stream, stream.on_text(msg.data, arrived))
            elif msg.type == WSMsgType.BINARY:
                await _guarded(stream, stream.on_binary(msg.data, arrived))
            elif msg.type == WSMsgType.ERROR:
                too_big = getattr(msg.data, "code", None) == WSCloseCode.MESSAGE_TOO_BIG
                stream.reject("oversized" if too_big else "protocol_error", str(msg.data))
                outcome = "oversized" if too_big else "protocol_error"
                break
            else:  # CLOSE / CLOSING / CLOSED
                if idle.reason is not None:
                    outcome = idle.reason
                elif msg.type == WSMsgType.CLOSE and msg.data == WSCloseCode.OK:
                    outcome = "closed"
                break
            if stream.done:
                outcome = "completed" if stream.close_code == WSCloseCode.OK else "rejected"
                break
            # the server ended the call (a drain's deadline passed): hang up now
            # rather than take media for a closed call until shutdown cancels the handler.
            session = getattr(stream, "session", None)
            if session is not None and session.ended:
                outcome = "server_shutdown"
                stream.close_code = WSCloseCode.GOING_AWAY
                break
    except asyncio.CancelledError:
        outcome = "server_shutdown"
        raise
    finally:
        watchdog.cancel()
        await stream.finish(outcome)
        if not ws.closed:
            await ws.close(code=stream.close_code)
    return ws


class _Expiry:
    """Which deadline ended the socket: the outcome label, or None."""

    reason: str | None = None


async def _watch_idle(ws: web.WebSocketResponse, stream: MediaStream, last_message: list[float],
                      expiry: _Expiry, timeout_s: float, start_timeout_s: float) -> None:
    opened = time.perf_counter()
    while not ws.closed:
        now = time.perf_counter()
        quiet = now - last_message[0]
        started = getattr(stream, "session", None) is not None
        waited = now - opened
        if not started and waited >= start_timeout_s:
            log.warning("%s media socket started no call within %.1f s; closing it",
                        stream.carrier, waited)
            expiry.reason = "start_timeout"
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"no call started")
            return
        if quiet >= timeout_s:
            log.warning("media stream idle for %.1f s; ending it", quiet)
            expiry.reason = "media_timeout"
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"media timeout")
            return
        left = timeout_s - quiet if started else min(timeout_s - quiet, start_timeout_s - waited)
        step = max((timeout_s if started else min(timeout_s, start_timeout_s)) / 4, 0.05)
        await asyncio.sleep(min(left + 0.01, step))


async def _guarded(stream: MediaStream, handling) -> None:
    # A message we did not foresee must cost that message, never the call or the server.
    try:
        await handling
    except Exception as exc:
        if not is_unavailable(exc):
            log.exception("%s media message handling failed", stream.carrier)
            stream.reject("internal_error")
            return
        # The database (or Redis, or the disk) cannot serve the stream now: the WebSocket's
        # "try again later", as the HTTP routes answer 503.
        log.warning("%s media stream refused, a dependency is unavailable: %s: %s",
                    stream.carrier, type(exc).__name__, exc)
        stream.reject("unavailable")
        stream.done = True
        stream.close_code = WSCloseCode.TRY_AGAIN_LATER
