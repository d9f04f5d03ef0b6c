"""What every carrier module gets: its settings (taken once from the node's) and shared parts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from crm_core.admin.carrier_numbers import rep_for_number
from voice_server.call_session import CallSessions
from voice_server.settings import Settings
from voice_server.transports.carrier_metrics import CarrierMetrics


@dataclass(frozen=True)
class CarrierConfig:
    public_url: str  # scheme://host[:port] carriers reach us at
    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_api_base: str = "https://api.twilio.com"
    twilio_caller_id: str | None = None
    vonage_application_id: str = ""
    vonage_private_key_path: Path | None = None
    vonage_signature_secret: str = ""
    vonage_signature_max_age_s: float = 300.0
    vonage_api_host: str = "api.nexmo.com"
    vonage_number: str | None = None
    carrier_numbers: dict[str, str] = field(default_factory=dict)
    media_max_message_bytes: int = 64 * 1024
    media_idle_timeout_s: float = 30.0
    media_start_timeout_s: float = 5.0

    @classmethod
    def from_settings(cls, s: Settings) -> CarrierConfig:
        return cls(
            public_url=s.public_url.rstrip("/"),
            twilio_account_sid=s.twilio_account_sid,
            twilio_auth_token=s.twilio_auth_token,
            twilio_api_base=s.twilio_api_base,
            twilio_caller_id=s.twilio_caller_id,
            vonage_application_id=s.vonage_application_id,
            vonage_private_key_path=s.vonage_private_key_path,
            vonage_signature_secret=s.vonage_signature_secret,
            vonage_signature_max_age_s=s.vonage_signature_max_age_s,
            vonage_api_host=s.vonage_api_host,
            vonage_number=s.vonage_number,
            carrier_numbers=dict(s.carrier_numbers),
            media_max_message_bytes=s.media_max_message_bytes,
            media_idle_timeout_s=s.media_idle_timeout_s,
            media_start_timeout_s=s.media_start_timeout_s,
        )

    async def rep_for_number(self, conn: asyncpg.Connection, number: str) -> str | None:
        """The rep a call to ``number`` rings: the database's routing table (admins edit it) wins;
        a number it does not list is looked up in COACHLINE_CARRIER_NUMBERS, the bootstrap."""
        routed = await rep_for_number(conn, number)
        if routed is not None:
            return routed
        digits = number.lstrip("+")
        return self.carrier_numbers.get(number) or self.carrier_numbers.get("+" + digits) \
            or self.carrier_numbers.get(digits)

    def url(self, path: str) -> str:
        return self.public_url + path

    def ws_url(self, path: str) -> str:
        parts = urlsplit(self.public_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}{path}"


@dataclass(frozen=True)
class CarrierEdge:
    """What a carrier's ``setup_<carrier>(app, edge)`` wires its routes and dialer to."""

    config: CarrierConfig
    metrics: CarrierMetrics
    pool_of: Callable[[], asyncpg.Pool]  # the live DB pool; raises while it is not open
    sessions: CallSessions
    dialers: dict  # carrier name -> crm_core.calls.dialing.Dialer, filled by the setups
    redis_of: Callable[[], Any] = lambda: None  # the runtime's Redis client; None while closed

    @property
    def media_limits(self) -> dict:
        return {"max_message_bytes": self.config.media_max_message_bytes,
                "idle_timeout_s": self.config.media_idle_timeout_s,
                "start_timeout_s": self.config.media_start_timeout_s}
