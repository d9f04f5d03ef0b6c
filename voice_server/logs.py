"""Structured logging: one JSON object per line, with the request and call ids.

Every line passes through ``voice_server.redaction``: credentials and the configured
secrets never reach the log, whoever wrote the line. A request aiohttp cannot parse (a
client's mistake or a scanner's probe, not ours) is one warning line without a traceback
(``MalformedRequestFilter``). The ids live in context variables, so every log line written while handling a
request or a call carries them without being passed around.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar

from aiohttp.http_exceptions import HttpProcessingError

from voice_server.redaction import redact, redact_value

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
call_id_var: ContextVar[str | None] = ContextVar("call_id", default=None)

_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        call_id = call_id_var.get()
        if call_id:
            entry["call_id"] = call_id
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = redact_value(value)
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exc"] = redact(record.exc_text)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = redact(super().format(record))
        ids = [f"{k}={v}" for k, v in (("request", request_id_var.get()), ("call", call_id_var.get())) if v]
        return f"{line} [{' '.join(ids)}]" if ids else line


class MalformedRequestFilter(logging.Filter):
    """aiohttp logs every request it cannot parse as "Error handling request" at ERROR with a
    traceback; on a public port that is a line per probe. Such a record becomes one WARNING
    line naming the client and the parse error (redacted before it is shortened, so no
    secret is cut into a prefix that escapes redaction); other errors pass unchanged."""

    MAX_REASON = 300

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and str(record.msg).startswith("Error handling request"):
            remote = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            reason = redact(" ".join(str(exc).split()))[: self.MAX_REASON]
            record.msg = "Error handling request from %s: malformed request refused: %s"
            record.args = (remote, reason)
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log duplicates our request metrics; keep it at warning.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    server = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, MalformedRequestFilter) for f in server.filters):
        server.addFilter(MalformedRequestFilter())
