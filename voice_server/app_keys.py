"""Typed keys for what the aiohttp application holds."""

from __future__ import annotations

import asyncio

from aiohttp import web

from voice_server.call_session import CallSessions
from voice_server.live_calls import LiveCalls
from voice_server.live_feed import LiveFeedHub
from voice_server.metrics import NodeMetrics
from voice_server.runtime import Runtime
from voice_server.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
RUNTIME = web.AppKey("runtime", Runtime)
METRICS = web.AppKey("metrics", NodeMetrics)
LIVE_CALLS = web.AppKey("live_calls", LiveCalls)
DRAINING = web.AppKey("draining", asyncio.Event)
CALL_SESSIONS = web.AppKey("call_sessions", CallSessions)
LIVE_FEED = web.AppKey("live_feed", LiveFeedHub)

# SIP/RTP edge (present only when COACHLINE_SIP_ENABLED); typed loosely to keep
# app_keys free of the transport's imports.
SIP_EDGE = web.AppKey("sip_edge", object)
