"""Carrier webhooks (Twilio, Vonage), outbound dialing and the edge's wiring into the app."""

from voice_server.carriers.edge import (
    CARRIER_CONFIG,
    CARRIER_METRICS,
    DIALERS,
    place_outbound_call,
    setup_carriers,
)

__all__ = ["CARRIER_CONFIG", "CARRIER_METRICS", "DIALERS", "place_outbound_call", "setup_carriers"]
