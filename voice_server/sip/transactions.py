"""Server transactions over UDP (RFC 3261 §17.2) and the UAS's 2xx retransmission (§13.3.1.4).

A retransmitted request never reaches the UAS core twice: the transaction
layer matches it (§17.2.3: branch, sent-by, method) and answers with the
last response it sent. Final non-2xx INVITE responses are retransmitted
(Timer G) until the ACK arrives or Timer H gives up; 2xx responses are the
UAS core's to retransmit until their ACK (``Retransmission``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from voice_server.sip.addresses import NameAddr, Via
from voice_server.sip.message import SipParseError, SipRequest, SipResponse

log = logging.getLogger(__name__)

MAGIC_COOKIE = "z9hG4bK"
Address = tuple[str, int]
Send = Callable[[bytes, Address], None]


@dataclass(frozen=True, slots=True)
class TimerConfig:
    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    @property
    def timeout(self) -> float:  # Timers B, F, H, J for UDP: 64*T1
        return 64 * self.t1


class TransactionState(Enum):
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(eq=False)
class ServerTransaction:
    key: tuple
    request: SipRequest
    address: Address
    state: TransactionState = TransactionState.TRYING
    last_response: SipResponse | None = None
    _wire: bytes | None = None
    _timers: list[asyncio.TimerHandle] = field(default_factory=list)

    @property
    def is_invite(self) -> bool:
        return self.request.method == "INVITE"

    def cancel_timers(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()


def transaction_key(request: SipRequest) -> tuple:
    """§17.2.3 matching; ACK to a non-2xx matches its INVITE's transaction."""
    vias = request.vias
    if not vias:
        raise SipParseError("no Via")
    top = Via.parse(vias[0])
    method = "INVITE" if request.method == "ACK" else request.method
    if top.branch.startswith(MAGIC_COOKIE):
        return ("3261", top.branch, top.host, top.port or 5060, method)
    # RFC 2543 peers: no unique branch, so match on the dialog-ish identifiers.
    from_tag = NameAddr.parse(request.headers.get("From") or "").tag
    return ("2543", request.call_id, request.cseq.number, from_tag, vias[0], method)


class TransactionLayer:
    def __init__(self, send: Send, timers: TimerConfig | None = None) -> None:
        self._send = send
        self.timers = timers or TimerConfig()
        self._transactions: dict[tuple, ServerTransaction] = {}
        # Called when an INVITE's final non-2xx response never got its ACK (Timer H).
        self.on_timeout: Callable[[ServerTransaction], None] | None = None

    def __len__(self) -> int:
        return len(self._transactions)

    def find(self, key: tuple) -> ServerTransaction | None:
        return self._transactions.get(key)

    def receive(self, request: SipRequest, address: Address) -> ServerTransaction | None:
        """Return a new transaction for the core, or None when the layer absorbed the request.

        An ACK that matches no transaction (the ACK of a 2xx) also returns None
        here; the caller hands it to the dialog layer via ``is_stray_ack``.
        """
        key = transaction_key(request)
        txn = self._transactions.get(key)
        if request.method == "ACK":
            if txn is not None and txn.state is TransactionState.COMPLETED:
                txn.state = TransactionState.CONFIRMED
                txn.cancel_timers()
                self._later(txn, self.timers.t4, lambda: self._terminate(txn))  # Timer I
            return None
        if txn is not None:
            if txn._wire is not None:
                self._send(txn._wire, address)  # retransmission: repeat our last answer
            return None
        txn = ServerTransaction(key, request, address)
        if txn.is_invite:
            txn.state = TransactionState.PROCEEDING
        self._transactions[key] = txn
        return txn

    def is_stray_ack(self, request: SipRequest) -> bool:
        return request.method == "ACK" and self._transactions.get(transaction_key(request)) is None

    def respond(self, txn: ServerTransaction, response: SipResponse) -> None:
        if txn.state in (TransactionState.TERMINATED, TransactionState.COMPLETED,
                         TransactionState.CONFIRMED):
            return  # one final response per transaction
        wire = response.to_bytes()
        txn.last_response = response
        txn._wire = wire
        self._send(wire, txn.address)
        if response.status < 200:
            txn.state = TransactionState.PROCEEDING
            return
        if txn.is_invite and response.status < 300:
            # §17.2.1: a 2xx ends the INVITE transaction; the core retransmits it.
            self._terminate(txn)
            return
        txn.state = TransactionState.COMPLETED
        if txn.is_invite:
            self._retransmit(txn, self.timers.t1)  # Timer G
            self._later(txn, self.timers.timeout, lambda: self._expire(txn))  # Timer H
        else:
            self._later(txn, self.timers.timeout, lambda: self._terminate(txn))  # Timer J

    def _retransmit(self, txn: ServerTransaction, interval: float) -> None:
        def fire() -> None:
            if txn.state is TransactionState.COMPLETED and txn._wire is not None:
                self._send(txn._wire, txn.address)
                self._retransmit(txn, min(2 * interval, self.timers.t2))
        self._later(txn, interval, fire)

    def _later(self, txn: ServerTransaction, delay: float, callback: Callable[[], None]) -> None:
        txn._timers.append(asyncio.get_running_loop().call_later(delay, callback))

    def _expire(self, txn: ServerTransaction) -> None:
        log.info("no ACK for %s response to INVITE %s", txn.last_response and
                 txn.last_response.status, txn.request.call_id)
        self._terminate(txn)
        if self.on_timeout is not None:
            self.on_timeout(txn)

    def _terminate(self, txn: ServerTransaction) -> None:
        txn.state = TransactionState.TERMINATED
        txn.cancel_timers()
        if self._transactions.get(txn.key) is txn:
            del self._transactions[txn.key]

    def discard(self, txn: ServerTransaction) -> None:
        """Forget a transaction the core answered outside it (a retransmitted INVITE)."""
        self._terminate(txn)

    def close(self) -> None:
        for txn in list(self._transactions.values()):
            self._terminate(txn)


class Retransmission:
    """Repeat a datagram at T1, 2T1, … capped at T2 until stopped, for 64*T1 at most.

    The UAS repeats its 2xx to INVITE until the ACK (§13.3.1.4); our own BYE
    is repeated the same way until any response (§17.1.2.2, Timer E/F).
    """

    def __init__(self, send: Send, wire: bytes, address: Address, timers: TimerConfig,
                 on_give_up: Callable[[], None]) -> None:
        self._send = send
        self._wire = wire
        self._address = address
        self._timers = timers
        self._on_give_up = on_give_up
        self._loop = asyncio.get_running_loop()
        self._handle: asyncio.TimerHandle | None = None
        self._deadline = self._loop.call_later(timers.timeout, self._give_up)
        self._schedule(timers.t1)
        self.done = False

    def _schedule(self, interval: float) -> None:
        def fire() -> None:
            self._send(self._wire, self._address)
            self._schedule(min(2 * interval, self._timers.t2))
        self._handle = self._loop.call_later(interval, fire)

    def resend(self) -> None:  # the INVITE itself was retransmitted
        if not self.done:
            self._send(self._wire, self._address)

    def acked(self) -> None:
        self.stop()

    def stop(self) -> None:
        self.done = True
        if self._handle is not None:
            self._handle.cancel()
        self._deadline.cancel()

    def _give_up(self) -> None:
        self.stop()
        self._on_give_up()
