"""SIP addresses: URIs, name-addrs (From/To/Contact) and Via values (RFC 3261 §19, §20.42)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from voice_server.sip.message import SipParseError

_URI_RE = re.compile(
    r"^(?P<scheme>sips?|tel):(?:(?P<user>[^@;?]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^:;?>]+)"
    r"(?::(?P<port>[0-9]{1,5}))?(?P<params>;[^?]*)?(?:\?.*)?$",
    re.IGNORECASE,
)
_VIA_RE = re.compile(
    r"^SIP\s*/\s*2\.0\s*/\s*(?P<transport>[A-Za-z]+)\s+(?P<host>\[[0-9A-Fa-f:.]+\]|[^:;\s]+)"
    r"(?:\s*:\s*(?P<port>[0-9]{1,5}))?\s*(?P<params>;.*)?$",
)


def _params(raw: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for piece in (raw or "").split(";"):
        piece = piece.strip()
        if piece:
            key, _, value = piece.partition("=")
            out[key.strip().lower()] = value.strip()
    return out


@dataclass(frozen=True, slots=True)
class SipUri:
    scheme: str
    user: str | None
    host: str
    port: int | None = None
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> SipUri:
        match = _URI_RE.match(text.strip())
        if not match:
            raise SipParseError(f"bad URI {text[:80]!r}")
        port = int(match["port"]) if match["port"] else None
        if port is not None and not 0 < port < 65536:
            raise SipParseError(f"bad port in URI {text[:80]!r}")
        return cls(match["scheme"].lower(), match["user"], match["host"].lower(), port,
                   _params(match["params"]))

    def __str__(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        params = "".join(f";{k}={v}" if v else f";{k}" for k, v in self.params.items())
        return f"{self.scheme}:{user}{self.host}{port}{params}"


@dataclass(frozen=True, slots=True)
class NameAddr:
    """``"Display" <sip:user@host>;tag=abc`` — a From, To or Contact value."""

    uri: SipUri
    display: str = ""
    params: dict[str, str] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag") or None

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        text = text.strip()
        if "<" in text:
            display, _, rest = text.partition("<")
            uri_text, closed, params = rest.partition(">")
            if not closed:
                raise SipParseError(f"unclosed <> in {text[:80]!r}")
            return cls(SipUri.parse(uri_text), display.strip().strip('"'), _params(params))
        # addr-spec form: URI params and header params are indistinguishable, so
        # RFC 3261 §20 says the params belong to the header.
        uri_text, _, params = text.partition(";")
        return cls(SipUri.parse(uri_text), "", _params(params))


@dataclass(frozen=True, slots=True)
class Via:
    transport: str
    host: str
    port: int | None
    params: dict[str, str]

    @property
    def branch(self) -> str:
        return self.params.get("branch", "")

    @classmethod
    def parse(cls, text: str) -> Via:
        match = _VIA_RE.match(text.strip())
        if not match:
            raise SipParseError(f"bad Via {text[:80]!r}")
        return cls(match["transport"].upper(), match["host"].lower(),
                   int(match["port"]) if match["port"] else None, _params(match["params"]))


def with_received(via_text: str, source_ip: str, source_port: int) -> str:
    """The top Via as RFC 3261 §18.2.1 / RFC 3581 want it echoed back: received= and rport=."""
    via = Via.parse(via_text)
    out = via_text
    if via.host.strip("[]") != source_ip and "received" not in via.params:
        out += f";received={source_ip}"
    if "rport" in via.params and not via.params["rport"]:
        out = re.sub(r";\s*rport(?=;|$)", f";rport={source_port}", out, count=1)
    return out
