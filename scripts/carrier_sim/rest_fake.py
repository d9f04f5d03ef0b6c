"""A loopback fake of the carriers' REST APIs, for the real twilio and vonage SDKs.

Twilio: ``POST /2010-04-01/Accounts/{sid}/Calls.json`` (form body, HTTP Basic
with the account SID and auth token) answers 201 with a call resource, as
``api.twilio.com`` does. Point the SDK at it with ``client.api.base_url``.

Vonage: ``POST /v1/calls`` (JSON body, ``Authorization: Bearer`` an RS256 JWT
naming the application) answers 201 with ``uuid``/``status``/``direction``/
``conversation_uuid``. The vonage SDK only speaks HTTPS, so this side serves
TLS with a throwaway CA (trustme); point the SDK at ``vonage_host`` and
``REQUESTS_CA_BUNDLE`` at ``ca_path``.

Every call created is recorded (``twilio_calls``, ``vonage_calls``) for tests, and every
create request, refused or not, is counted (``requests_received``).
"""

from __future__ import annotations

import base64
import ssl
import tempfile
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import jwt
import trustme
from aiohttp import web


@dataclass
class TwilioAccount:
    sid: str = "AC" + "0" * 32
    auth_token: str = "sim-auth-token"


@dataclass
class CarrierRestFake:
    twilio: TwilioAccount = field(default_factory=TwilioAccount)
    vonage_application_id: str = "00000000-0000-4000-8000-000000000000"
    vonage_public_key: bytes | None = None  # PEM; when set, request JWTs must verify with it
    twilio_calls: list[dict] = field(default_factory=list)
    vonage_calls: list[dict] = field(default_factory=list)
    requests_received: int = 0
    twilio_base: str = ""
    vonage_host: str = ""
    ca_path: str = ""
    _runner: web.AppRunner | None = None
    _tmp: tempfile.TemporaryDirectory | None = None

    async def __aenter__(self) -> CarrierRestFake:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Calls.json", self._twilio_create)
        app.router.add_post("/v1/calls", self._vonage_create)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        http = web.TCPSite(self._runner, "127.0.0.1", 0)
        await http.start()
        self.twilio_base = f"http://127.0.0.1:{_port(http)}"
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        self._tmp = tempfile.TemporaryDirectory(prefix="carrier-fake-")
        self.ca_path = str(Path(self._tmp.name) / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_path)
        https = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context)
        await https.start()
        self.vonage_host = f"127.0.0.1:{_port(https)}"
        return self

    async def __aexit__(self, *exc) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._tmp is not None:
            self._tmp.cleanup()

    async def _twilio_create(self, request: web.Request) -> web.Response:
        self.requests_received += 1
        sid = request.match_info["sid"]
        expected = "Basic " + base64.b64encode(
            f"{self.twilio.sid}:{self.twilio.auth_token}".encode()).decode()
        if sid != self.twilio.sid or request.headers.get("Authorization") != expected:
            return _twilio_error(401, 20003, "Authenticate")
        form = await request.post()
        params = {k: form.getall(k) if len(form.getall(k)) > 1 else form[k] for k in set(form.keys())}
        if "To" not in params or "From" not in params or not ({"Twiml", "Url"} & set(params)):
            return _twilio_error(400, 21205, "To, From and Twiml or Url are required")
        call_sid = "CA" + uuid.uuid4().hex
        self.twilio_calls.append({"sid": call_sid, **params})
        return web.json_response(
            {
                "sid": call_sid, "account_sid": sid, "to": params["To"], "from": params["From"],
                "status": "queued", "direction": "outbound-api", "api_version": "2010-04-01",
                "uri": f"/2010-04-01/Accounts/{sid}/Calls/{call_sid}.json",
            },
            status=201,
        )

    async def _vonage_create(self, request: web.Request) -> web.Response:
        self.requests_received += 1
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ")
        try:
            if self.vonage_public_key is not None:
                claims = jwt.decode(token, self.vonage_public_key, algorithms=["RS256"])
            else:
                claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            return web.json_response({"title": "Unauthorized", "detail": str(exc)}, status=401)
        if claims.get("application_id") != self.vonage_application_id:
            return web.json_response({"title": "Unauthorized"}, status=401)
        body = await request.json()
        if not body.get("to") or not (body.get("ncco") or body.get("answer_url")):
            return web.json_response({"title": "Bad Request"}, status=400)
        call_uuid = str(uuid.uuid4())
        self.vonage_calls.append({"uuid": call_uuid, **body})
        return web.json_response(
            {"uuid": call_uuid, "status": "started", "direction": "outbound",
             "conversation_uuid": "CON-" + str(uuid.uuid4())},
            status=201,
        )


def stream_from_twiml(twiml: str) -> tuple[str, dict[str, str], str | None]:
    """What a Twilio call would do with our TwiML: the stream URL, its parameters, the dial target."""
    root = ET.fromstring(twiml)
    stream = root.find("./Start/Stream")
    if stream is None:
        raise ValueError("TwiML has no <Start><Stream>")
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    dial = root.find("./Dial")
    target = None
    if dial is not None and len(dial):
        target = (dial[0].text or "").strip()
    return stream.get("url"), params, target


def _twilio_error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
         "status": status},
        status=status,
    )


def _port(site: web.TCPSite) -> int:
    return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
