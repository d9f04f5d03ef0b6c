"""The UAS side of a SIP dialog (RFC 3261 §12): identity, CSeq order, route set, our own BYE."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from enum import Enum

from voice_server.sip.addresses import NameAddr
from voice_server.sip.message import Headers, SipRequest, split_header_values
from voice_server.sip.transactions import MAGIC_COOKIE, Address


class DialogState(Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


def new_tag() -> str:
    return secrets.token_hex(8)


def new_branch() -> str:
    return MAGIC_COOKIE + secrets.token_hex(10)


@dataclass(eq=False)
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_party: str  # the INVITE's To value, with our tag
    remote_party: str  # the INVITE's From value
    remote_target: str  # the peer's Contact URI, where in-dialog requests go
    route_set: list[str]
    remote_cseq: int
    remote_address: Address
    local_cseq: int = 0
    state: DialogState = DialogState.EARLY
    extra: dict = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def from_invite(cls, invite: SipRequest, local_tag: str, address: Address) -> Dialog:
        remote = NameAddr.parse(invite.headers.get("From") or "")
        contact_raw = invite.headers.get("Contact")
        target = (str(NameAddr.parse(split_header_values(contact_raw)[0]).uri)
                  if contact_raw else str(remote.uri))
        # §12.1.1: the UAS keeps Record-Route in the order received.
        routes = [r for raw in invite.headers.get_all("Record-Route")
                  for r in split_header_values(raw)]
        to = invite.headers.get("To") or ""
        return cls(
            call_id=invite.call_id, local_tag=local_tag, remote_tag=remote.tag or "",
            local_party=f"{to};tag={local_tag}", remote_party=invite.headers.get("From") or "",
            remote_target=target, route_set=routes, remote_cseq=invite.cseq.number,
            remote_address=address,
        )

    def accept_cseq(self, request: SipRequest) -> bool:
        """§12.2.2: in-dialog requests must arrive in CSeq order (ACK and CANCEL excepted)."""
        number = request.cseq.number
        if request.method in ("ACK", "CANCEL"):
            return True
        if number <= self.remote_cseq:
            return False
        self.remote_cseq = number
        return True

    def request(self, method: str, via_host: str, via_port: int) -> SipRequest:
        """A new in-dialog request from us (we only ever send BYE)."""
        self.local_cseq += 1
        headers = Headers()
        headers.add("Via", f"SIP/2.0/UDP {via_host}:{via_port};rport;branch={new_branch()}")
        headers.add("Max-Forwards", "70")
        headers.add("From", self.local_party)
        headers.add("To", self.remote_party)
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{self.local_cseq} {method}")
        uri = self.remote_target
        routes = list(self.route_set)
        if routes and ";lr" not in routes[0]:
            # Strict router (§12.2.1.1): it becomes the Request-URI; the target goes last.
            uri = NameAddr.parse(routes.pop(0)).uri.__str__()
            routes.append(f"<{self.remote_target}>")
        for route in routes:
            headers.add("Route", route)
        return SipRequest(headers, b"", method=method, uri=uri)
