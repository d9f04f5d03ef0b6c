"""SIP messages (RFC 3261 §7): parse one datagram, serialize one response or request.

Parsing is strict about what it must understand and bounded in what it
accepts, because every byte here comes from the network: a datagram over
``MAX_MESSAGE_BYTES``, too many headers, a header line that never ends, or
a ``Content-Length`` that disagrees with the datagram raises
``SipParseError`` and never anything else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_MESSAGE_BYTES = 65_535  # one UDP datagram
MAX_HEADERS = 128
MAX_HEADER_LINE = 8_192
MAX_BODY_BYTES = 32_768

# RFC 3261 §7.3.3 compact forms, expanded on parse so lookups use one name.
_COMPACT = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length",
    "c": "Content-Type", "f": "From", "s": "Subject", "k": "Supported", "t": "To",
    "v": "Via", "o": "Event", "r": "Refer-To", "u": "Allow-Events",
}
_CANONICAL = {name.lower(): name for name in (
    "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Max-Forwards", "Content-Type",
    "Content-Length", "Record-Route", "Route", "Allow", "Accept", "Supported", "Require",
    "Authorization", "WWW-Authenticate", "Proxy-Authorization", "Proxy-Authenticate",
    "User-Agent", "Server", "Retry-After", "Unsupported", "Subject", "Content-Disposition",
)}
_TOKEN_RE = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]+$")
_REQUEST_LINE_RE = re.compile(r"^([A-Za-z0-9.!%*_+`'~-]+) (\S+) SIP/2\.0$")
_STATUS_LINE_RE = re.compile(r"^SIP/2\.0 ([1-6][0-9]{2}) ?(.*)$")
_REQUIRED_IN_REQUESTS = ("Via", "From", "To", "Call-ID", "CSeq")

REASONS = {
    100: "Trying", 180: "Ringing", 200: "OK", 400: "Bad Request", 401: "Unauthorized",
    403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
    413: "Request Entity Too Large", 415: "Unsupported Media Type", 420: "Bad Extension",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    491: "Request Pending", 500: "Server Internal Error", 501: "Not Implemented",
    503: "Service Unavailable",
}


class SipParseError(ValueError):
    """A datagram is not a SIP message we can process.

    ``status`` is the response a request deserves (400, 413, …) when enough
    of it was read to answer; the caller decides whether it can answer.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def is_digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also takes "²" (which ``int`` refuses) and "١٢"."""
    return text.isascii() and text.isdigit()


def canonical_name(name: str) -> str:
    lowered = name.lower()
    if lowered in _COMPACT:
        return _COMPACT[lowered]
    return _CANONICAL.get(lowered) or "-".join(part.capitalize() for part in name.split("-"))


@dataclass(slots=True)
class Headers:
    """Ordered SIP header fields; names compare case-insensitively, repeats are kept."""

    items: list[tuple[str, str]] = field(default_factory=list)

    def get(self, name: str, default: str | None = None) -> str | None:
        wanted = canonical_name(name)
        for key, value in self.items:
            if key == wanted:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        wanted = canonical_name(name)
        return [value for key, value in self.items if key == wanted]

    def add(self, name: str, value: str) -> None:
        self.items.append((canonical_name(name), value))

    def set(self, name: str, value: str) -> None:
        self.remove(name)
        self.add(name, value)

    def remove(self, name: str) -> None:
        wanted = canonical_name(name)
        self.items = [(k, v) for k, v in self.items if k != wanted]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None


@dataclass(frozen=True, slots=True)
class CSeq:
    number: int
    method: str


def split_header_values(value: str) -> list[str]:
    """Split a comma-separated header (Via, Contact, Route) outside quotes and <>."""
    parts: list[str] = []
    depth = 0
    quoted = False
    start = 0
    for i, ch in enumerate(value):
        if ch == '"' and (i == 0 or value[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and not quoted and depth == 0:
            parts.append(value[start:i].strip())
            start = i + 1
    parts.append(value[start:].strip())
    return [p for p in parts if p]


@dataclass(slots=True)
class SipMessage:
    headers: Headers
    body: bytes

    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    @property
    def cseq(self) -> CSeq:
        raw = self.headers.get("CSeq") or ""
        parts = raw.split()
        if len(parts) != 2 or not is_digits(parts[0]) or not _TOKEN_RE.match(parts[1]):
            raise SipParseError(f"bad CSeq {raw!r}")
        number = int(parts[0])
        if number >= 2**31:
            raise SipParseError(f"CSeq number out of range {raw!r}")
        return CSeq(number, parts[1].upper())

    @property
    def vias(self) -> list[str]:
        return [v for raw in self.headers.get_all("Via") for v in split_header_values(raw)]

    @property
    def content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def _head_bytes(self, start_line: str) -> bytes:
        lines = [start_line]
        lines += [f"{k}: {v}" for k, v in self.headers.items if k != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


@dataclass(slots=True)
class SipRequest(SipMessage):
    method: str = ""
    uri: str = ""

    def to_bytes(self) -> bytes:
        return self._head_bytes(f"{self.method} {self.uri} SIP/2.0") + self.body


@dataclass(slots=True)
class SipResponse(SipMessage):
    status: int = 200
    reason: str = ""

    def to_bytes(self) -> bytes:
        reason = self.reason or REASONS.get(self.status, "")
        return self._head_bytes(f"SIP/2.0 {self.status} {reason}") + self.body


def _read_headers(lines: list[str]) -> Headers:
    headers = Headers()
    for line in lines:
        if len(line) > MAX_HEADER_LINE:
            raise SipParseError("header line too long", 400)
        if line[:1] in (" ", "\t"):  # folded continuation (RFC 3261 §7.3.1)
            if not headers.items:
                raise SipParseError("continuation line before any header")
            name, value = headers.items[-1]
            headers.items[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        name = name.strip()
        if not sep or not name or not _TOKEN_RE.match(name):
            raise SipParseError(f"malformed header line {line[:60]!r}")
        headers.add(name, value.strip())
        if len(headers.items) > MAX_HEADERS:
            raise SipParseError("too many headers")
    return headers


def parse_message(data: bytes) -> SipRequest | SipResponse:
    """Parse one datagram into a request or a response, or raise ``SipParseError``."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipParseError("message too large", 413)
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        # Some senders use bare LF; accept it only if the whole head does.
        head, sep, body = data.partition(b"\n\n")
        if not sep:
            raise SipParseError("no end of headers (truncated message?)")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipParseError("headers are not UTF-8") from None
    lines = text.replace("\r\n", "\n").split("\n")
    start = lines[0].strip()
    headers = _read_headers(lines[1:])

    length_raw = headers.get("Content-Length")
    if length_raw is not None:
        if not is_digits(length_raw) or len(length_raw) > 9:
            raise SipParseError(f"bad Content-Length {length_raw[:20]!r}")
        length = int(length_raw)
        if length > len(body):
            raise SipParseError(f"Content-Length {length} exceeds the {len(body)} bytes received")
        if length > MAX_BODY_BYTES:
            raise SipParseError("body too large", 413)
        body = body[:length]  # RFC 3261 §18.3: extra bytes after the body are discarded
    elif len(body) > MAX_BODY_BYTES:
        raise SipParseError("body too large", 413)

    if match := _STATUS_LINE_RE.match(start):
        message: SipRequest | SipResponse = SipResponse(
            headers, body, status=int(match.group(1)), reason=match.group(2))
    elif match := _REQUEST_LINE_RE.match(start):
        message = SipRequest(headers, body, method=match.group(1).upper(), uri=match.group(2))
        missing = [name for name in _REQUIRED_IN_REQUESTS if name not in headers]
        if missing:
            raise SipParseError(f"missing header(s): {', '.join(missing)}")
        if message.cseq.method != message.method and not (
            message.method == "ACK" and message.cseq.method == "ACK"
        ):
            raise SipParseError("CSeq method does not match the request method")
        mf = headers.get("Max-Forwards")
        if mf is not None and (not is_digits(mf) or int(mf) > 255):
            raise SipParseError(f"bad Max-Forwards {mf!r}")
    else:
        raise SipParseError(f"not a SIP start line: {start[:60]!r}")
    return message


def response_to(request: SipRequest, status: int, reason: str = "", *,
                to_tag: str | None = None, body: bytes = b"",
                content_type: str | None = None,
                extra: list[tuple[str, str]] | None = None) -> SipResponse:
    """Build a response that copies Via, From, To, Call-ID and CSeq (RFC 3261 §8.2.6.2)."""
    headers = Headers()
    for via in request.headers.get_all("Via"):
        headers.add("Via", via)
    headers.add("From", request.headers.get("From") or "")
    to = request.headers.get("To") or ""
    if to_tag and status != 100 and ";tag=" not in to.replace(" ", "").lower():
        to = f"{to};tag={to_tag}"
    headers.add("To", to)
    headers.add("Call-ID", request.call_id)
    headers.add("CSeq", request.headers.get("CSeq") or "")
    for rr in request.headers.get_all("Record-Route"):
        if 100 < status < 300:
            headers.add("Record-Route", rr)
    for name, value in extra or []:
        headers.add(name, value)
    if content_type:
        headers.add("Content-Type", content_type)
    return SipResponse(headers, body, status=status, reason=reason or REASONS.get(status, ""))
