"""A loopback stand-in for the carriers, for tests, demos and load tests.

* ``rest_fake``: a server speaking Twilio's (``Calls.json``) and Vonage's
  (``/v1/calls``, HTTPS) REST wire formats, so the real SDKs can place calls;
* ``media_players``: clients that play WAV audio into our media WebSockets as
  Twilio (two µ-law tracks) or Vonage (one L16 mixed channel) would;
* ``signing``: webhook signatures made exactly as the carriers make them.

It imports nothing of the server; it talks to it over the network.
"""
