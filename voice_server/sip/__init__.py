"""SIP signalling for Coachline's SIP/RTP edge: messages, SDP, digest, peers, transactions, UAS.

The network side (UDP sockets, RTP receivers, CallSessions) lives in
``voice_server.transports.sip``.
"""

from voice_server.sip.application import Admission, CallApplication, CallRejected, IncomingCall
from voice_server.sip.calls import UasOptions
from voice_server.sip.message import SipParseError, SipRequest, SipResponse, parse_message
from voice_server.sip.peers import PeerPolicy
from voice_server.sip.uas import SipUserAgentServer

__all__ = [
    "Admission", "CallApplication", "CallRejected", "IncomingCall", "PeerPolicy",
    "SipParseError", "SipRequest", "SipResponse", "SipUserAgentServer", "UasOptions",
    "parse_message",
]
