"""How calls reach Coachline: one module per carrier, beside the plumbing they share.

``twilio`` and ``vonage`` (signed webhooks, TwiML/NCCO, media socket, dialer) are
registered in ``carriers.CARRIERS``; ``sip`` (with ``rtp_stream``) is the SIP/RTP
edge over ``voice_server.sip``. Shared: ``carrier_config`` (settings and the
``CarrierEdge`` each setup gets), ``carrier_metrics``, ``media_socket`` (the
WebSocket receive loop) and ``stream_calls`` (binding a stream to its call).
"""
