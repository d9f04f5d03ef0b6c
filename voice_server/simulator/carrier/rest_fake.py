"""A loopback fake of the carriers' REST APIs, for the real twilio and vonage SDKs.

Twilio: ``POST /2010-04-01/Accounts/{sid}/Calls.json`` (form body, HTTP Basic
with the account SID and auth token) answers 201 with a call resource, as
``api.twilio.com`` does. Point the SDK at it with ``client.api.base_url``.

Vonage: ``POST /v1/calls`` (JSON body, ``Authorization: Bearer`` an RS256 JWT
naming the application) answers 201 with ``uuid``/``status``/``direction``/
``conversation_uuid``. The vonage SDK only speaks HTTPS, so this side serves
TLS with a throwaway CA made for each run (``loopback_tls``); point the SDK at
``vonage_host`` and ``REQUESTS_CA_BUNDLE`` at ``ca_path``.

Every call created is recorded (``twilio_calls``, ``vonage_calls``) for tests, and every
create request, refused or not, is counted (``requests_received``).
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import ssl
import tempfile
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


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

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Calls.json", self._twilio_create)
        app.router.add_post("/v1/calls", self._vonage_create)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        http = web.TCPSite(self._runner, "127.0.0.1", 0)
        await http.start()
        self.twilio_base = f"http://127.0.0.1:{_port(http)}"
        self._tmp = tempfile.TemporaryDirectory(prefix="carrier-fake-")
        context, self.ca_path = loopback_tls(Path(self._tmp.name))
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


def loopback_tls(folder: Path) -> tuple[ssl.SSLContext, str]:
    """A server TLS context for 127.0.0.1/localhost, signed by a CA made just now.

    Writes the CA certificate (for clients to trust), the server's certificate
    chain and its key into ``folder``; returns the context and the CA file's path.
    """
    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=1))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "coachline carrier fake CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_path = folder / "ca.pem"
    ca_path.write_bytes(ca_cert.public_bytes(pem))
    chain_path = folder / "server.pem"
    chain_path.write_bytes(cert.public_bytes(pem) + ca_cert.public_bytes(pem))
    key_path = folder / "server.key"
    key_path.write_bytes(
        key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(chain_path, key_path)
    return context, str(ca_path)
