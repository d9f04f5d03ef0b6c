"""SDP (RFC 4566) and the offer/answer model (RFC 3264) for a listening endpoint.

Coachline only receives media: for each audio stream of an offer it picks
G.711 (PCMU or PCMA, in the offerer's order of preference) plus
telephone-event (RFC 4733) when offered, and answers ``recvonly`` or
``inactive``. Streams it cannot take are refused with port 0, as RFC 3264
§6 asks, so the answer always has as many m-lines as the offer.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field

from voice_server.sip.message import is_digits

MAX_SDP_BYTES = 16_384
MAX_MEDIA = 8

# Static payload types (RFC 3551) we can decode, by encoding name.
G711 = {"PCMU": 0, "PCMA": 8}
_STATIC = {0: ("PCMU", 8000), 8: ("PCMA", 8000)}
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


class SdpError(ValueError):
    """The body is not valid SDP (→ 400)."""


class SdpNegotiationError(ValueError):
    """Valid SDP, but nothing in it we can receive (→ 488)."""


@dataclass(slots=True)
class MediaDescription:
    media: str
    port: int
    proto: str
    formats: list[str]
    connection: str | None = None
    rtpmap: dict[int, tuple[str, int]] = field(default_factory=dict)
    fmtp: dict[int, str] = field(default_factory=dict)
    direction: str | None = None
    label: str | None = None
    attributes: list[tuple[str, str]] = field(default_factory=list)

    def encoding(self, pt: int) -> tuple[str, int] | None:
        if pt in self.rtpmap:
            return self.rtpmap[pt]
        return _STATIC.get(pt)


@dataclass(slots=True)
class SessionDescription:
    origin: str
    connection: str | None
    media: list[MediaDescription]
    direction: str = "sendrecv"

    def connection_for(self, m: MediaDescription) -> str | None:
        return m.connection or self.connection

    def direction_of(self, m: MediaDescription) -> str:
        return m.direction or self.direction


def _connection_address(value: str) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"bad c= line {value!r}")
    address = parts[2].split("/")[0]
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise SdpError(f"c= address is not an IP address: {address!r}") from None
    return address


def parse_sdp(body: bytes) -> SessionDescription:
    if len(body) > MAX_SDP_BYTES:
        raise SdpError("SDP too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SdpError("SDP is not UTF-8") from None
    lines = [line.rstrip("\r") for line in text.split("\n") if line.strip()]
    if not lines or lines[0].strip() != "v=0":
        raise SdpError("SDP must start with v=0")
    origin = ""
    connection: str | None = None
    session_direction = "sendrecv"
    media: list[MediaDescription] = []
    for line in lines[1:]:
        if len(line) < 2 or line[1] != "=":
            raise SdpError(f"bad SDP line {line[:60]!r}")
        kind, value = line[0], line[2:].strip()
        current = media[-1] if media else None
        if kind == "o":
            origin = value
        elif kind == "c":
            address = _connection_address(value)
            if current is None:
                connection = address
            else:
                current.connection = address
        elif kind == "m":
            parts = value.split()
            if len(parts) < 4:
                raise SdpError(f"bad m= line {value!r}")
            port_text = parts[1].split("/")[0]
            if not is_digits(port_text) or int(port_text) > 65535:
                raise SdpError(f"bad m= port {parts[1]!r}")
            if len(media) >= MAX_MEDIA:
                raise SdpError("too many media streams")
            media.append(MediaDescription(parts[0].lower(), int(port_text), parts[2], parts[3:]))
        elif kind == "a":
            name, _, arg = value.partition(":")
            name = name.strip().lower()
            if name in DIRECTIONS:
                if current is None:
                    session_direction = name
                else:
                    current.direction = name
                continue
            if current is None:
                continue
            current.attributes.append((name, arg))
            if name == "rtpmap":
                pt_text, _, enc = arg.partition(" ")
                enc_parts = enc.strip().split("/")
                if is_digits(pt_text) and len(enc_parts) >= 2 and is_digits(enc_parts[1]):
                    current.rtpmap[int(pt_text)] = (enc_parts[0].upper(), int(enc_parts[1]))
            elif name == "fmtp":
                pt_text, _, params = arg.partition(" ")
                if is_digits(pt_text):
                    current.fmtp[int(pt_text)] = params.strip()
            elif name == "label":
                current.label = arg.strip()
    if not origin:
        raise SdpError("SDP has no o= line")
    return SessionDescription(origin, connection, media, session_direction)


@dataclass(frozen=True, slots=True)
class NegotiatedStream:
    """One accepted audio stream: where its RTP comes from and how to read it."""

    index: int  # position of the m-line in the offer
    local_port: int
    remote_ip: str | None  # None when the offer says "no address yet" (0.0.0.0)
    remote_port: int
    codec: str  # "PCMU" | "PCMA"
    payload_type: int
    dtmf_payload_type: int | None
    remote_sends: bool
    label: str | None


@dataclass(frozen=True, slots=True)
class Answer:
    sdp: bytes
    streams: list[NegotiatedStream]

    @property
    def on_hold(self) -> bool:
        return not any(s.remote_sends for s in self.streams)


def _choose_codec(m: MediaDescription) -> tuple[str, int] | None:
    for fmt in m.formats:
        if not is_digits(fmt):
            continue
        pt = int(fmt)
        enc = m.encoding(pt)
        if enc and enc[0] in G711 and enc[1] == 8000:
            return enc[0], pt
    return None


def _choose_dtmf(m: MediaDescription) -> int | None:
    for fmt in m.formats:
        if is_digits(fmt):
            enc = m.rtpmap.get(int(fmt))
            if enc and enc[0] == "TELEPHONE-EVENT" and enc[1] == 8000:
                return int(fmt)
    return None


def receivable_streams(offer: SessionDescription) -> list[MediaDescription]:
    """The offer's audio streams we can take (G.711 over RTP/AVP, port not 0), in order;
    ``negotiate`` gives the ports it is handed to exactly these, in this order."""
    return [m for m in offer.media
            if m.media == "audio" and m.port and "RTP/AVP" in m.proto.upper() and _choose_codec(m)]


def _answer_direction(offered: str) -> str:
    # We never send media: sendrecv/sendonly offers get recvonly, the rest inactive.
    return "recvonly" if offered in ("sendrecv", "sendonly") else "inactive"


def negotiate(offer: SessionDescription, local_ip: str, ports: list[int], *,
              session_id: int | None = None, version: int = 1,
              audio_streams: int = 1) -> Answer:
    """Answer ``offer``, taking at most ``audio_streams`` audio streams on ``ports`` (in order)."""
    session_id = session_id or int(time.time())
    ip_kind = "IP6" if ":" in local_ip else "IP4"
    lines = ["v=0", f"o=coachline {session_id} {version} IN {ip_kind} {local_ip}", "s=coachline",
             f"c=IN {ip_kind} {local_ip}", "t=0 0"]
    streams: list[NegotiatedStream] = []
    free_ports = list(ports)
    for index, m in enumerate(offer.media):
        codec = _choose_codec(m) if m.media == "audio" and "RTP/AVP" in m.proto.upper() else None
        if codec is None or m.port == 0 or not free_ports or len(streams) >= audio_streams:
            lines.append(f"m={m.media} 0 {m.proto} {' '.join(m.formats)}")
            continue
        name, pt = codec
        dtmf_pt = _choose_dtmf(m)
        port = free_ports.pop(0)
        fmts = [str(pt)] + ([str(dtmf_pt)] if dtmf_pt is not None else [])
        offered_direction = offer.direction_of(m)
        lines.append(f"m=audio {port} RTP/AVP {' '.join(fmts)}")
        lines.append(f"a=rtpmap:{pt} {name}/8000")
        if dtmf_pt is not None:
            lines.append(f"a=rtpmap:{dtmf_pt} telephone-event/8000")
            lines.append(f"a=fmtp:{dtmf_pt} 0-16")
        lines.append("a=ptime:20")
        if m.label:
            lines.append(f"a=label:{m.label}")
        lines.append(f"a={_answer_direction(offered_direction)}")
        remote_ip = offer.connection_for(m)
        if remote_ip in ("0.0.0.0", "::"):  # RFC 3264 §8.4 old-style hold
            remote_ip = None
        streams.append(NegotiatedStream(
            index=index, local_port=port, remote_ip=remote_ip, remote_port=m.port, codec=name,
            payload_type=pt, dtmf_payload_type=dtmf_pt,
            remote_sends=offered_direction in ("sendrecv", "sendonly") and remote_ip is not None,
            label=m.label,
        ))
    if not streams:
        raise SdpNegotiationError("no PCMU/PCMA audio stream in the offer")
    return Answer(("\r\n".join(lines) + "\r\n").encode(), streams)
