"""Call simulators: play calls into a running Coachline server as its carriers would.

* ``carrier``: Twilio and Vonage (signed webhooks, then the media WebSocket),
  plus a loopback fake of their REST APIs for outbound dialing;
* ``sip``: a PBX forking a call to the server over SIPREC (SIP + two RTP streams).

They drive ``coachline simulate-call``, the end-to-end tests and the benchmarks.
"""
