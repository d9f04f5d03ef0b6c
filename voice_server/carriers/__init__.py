"""Carrier webhooks (Twilio, Vonage), outbound dialing and the edge's wiring into the app.

Public surface: ``voice_server.carriers.edge`` (``setup_carriers``,
``place_outbound_call``, ``DIALERS``). It is not re-exported here because the
media transports import this package's metrics and records.
"""
