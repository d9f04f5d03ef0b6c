"""What media nodes and speech workers exchange over Redis Streams (the speech tier).

One request stream shared by every worker through a consumer group, one reply
stream per media node, and a heartbeat key per worker. Audio travels as int16
bytes (half the size of float32, and what the carriers sent anyway); the rest
of a request is a small JSON object.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np

from media.stt.engine import DecodedWord, DecodeRequest, DecodeResult

REQUESTS = "coachline:speech:requests"
GROUP = "speech-workers"
REPLIES_PREFIX = "coachline:speech:replies:"
WORKER_PREFIX = "coachline:speech:worker:"
ALIVE = "coachline:speech:alive"  # set by every worker with a short TTL
HEARTBEAT_TTL_S = 3
# a reply stream whose node stopped reading goes away on its own
REPLIES_TTL_S = 120
REPLIES_MAXLEN = 10_000
REQUESTS_MAXLEN = 100_000

# node ids become part of a Redis key: keep them to a plain, bounded alphabet
_NODE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
MAX_AUDIO_BYTES = 2 * 16000 * 120  # two minutes of 16 kHz int16: more than any utterance


class WireError(ValueError):
    """A malformed speech-tier message (dropped and acknowledged, never retried)."""


def replies_key(node_id: str) -> str:
    if not isinstance(node_id, str) or not _NODE_ID.fullmatch(node_id):
        shown = node_id[:64] if isinstance(node_id, str) else type(node_id).__name__
        raise WireError(f"bad node id {shown!r}")  # bounded: it came off the wire
    return REPLIES_PREFIX + node_id


@dataclass(frozen=True, slots=True)
class WireRequest:
    request_id: str
    node_id: str
    stream_id: str
    final: bool
    deadline_ms: int  # wall clock (ms since the epoch); a partial past it is dropped unheard
    request: DecodeRequest


def to_int16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 32767 / 32768) * 32768).astype("<i2").tobytes()


def encode_request(req: WireRequest) -> dict[str, bytes | str]:
    r = req.request
    meta = {
        "id": req.request_id,
        "node": req.node_id,
        "stream": req.stream_id,
        "final": req.final,
        "deadline_ms": req.deadline_ms,
        "prompt": r.prompt,
        "hotwords": r.hotwords,
        "prefix": r.prefix,
        "word_timestamps": r.word_timestamps,
    }
    return {"meta": json.dumps(meta), "audio": to_int16(r.audio)}


def _opt_str(meta: dict, name: str) -> str | None:
    value = meta.get(name)
    if value is not None and not isinstance(value, str):
        raise WireError(f"{name} must be a string")
    return value


def decode_request(fields: dict[bytes, bytes]) -> WireRequest:
    try:
        meta = json.loads(fields[b"meta"])
        audio = fields[b"audio"]
        if not isinstance(meta, dict) or len(audio) % 2 or len(audio) > MAX_AUDIO_BYTES:
            raise WireError("bad request shape")
        request_id, node_id, stream_id = meta["id"], meta["node"], meta["stream"]
        if not all(isinstance(v, str) and 0 < len(v) <= 256 for v in (request_id, stream_id)):
            raise WireError("bad request or stream id")
        replies_key(node_id)
        deadline = meta["deadline_ms"]
        if not isinstance(deadline, int) or isinstance(deadline, bool):
            raise WireError("bad deadline")
        pcm = np.frombuffer(audio, dtype="<i2").astype(np.float32) / 32768.0
        request = DecodeRequest(
            pcm,
            prompt=_opt_str(meta, "prompt"),
            hotwords=_opt_str(meta, "hotwords"),
            prefix=_opt_str(meta, "prefix"),
            word_timestamps=bool(meta.get("word_timestamps", True)),
        )
        return WireRequest(request_id, node_id, stream_id, bool(meta["final"]), deadline, request)
    except WireError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"malformed speech request: {exc.__class__.__name__}") from None


def encode_reply(
    request_id: str, result: DecodeResult | None, worker_ms: float, error: str | None = None
) -> dict[str, str]:
    body: dict = {"id": request_id, "worker_ms": round(worker_ms, 3)}
    if error is not None:
        body["error"] = error
    elif result is not None:
        body["result"] = {
            "text": result.text,
            "words": [[w.text, w.start_s, w.end_s, w.probability] for w in result.words],
            "avg_logprob": result.avg_logprob,
            "no_speech_prob": result.no_speech_prob,
        }
    return {"reply": json.dumps(body)}


@dataclass(frozen=True, slots=True)
class WireReply:
    request_id: str
    result: DecodeResult | None  # None: a partial the worker dropped (too old or superseded)
    worker_ms: float  # from the worker reading the request to its reply: queue wait + decode
    error: str | None


def decode_reply(fields: dict[bytes, bytes]) -> WireReply:
    try:
        body = json.loads(fields[b"reply"])
        result = None
        if "result" in body:
            r = body["result"]
            words = tuple(
                DecodedWord(str(t), float(s), float(e), float(p)) for t, s, e, p in r["words"]
            )
            result = DecodeResult(
                str(r["text"]), words, float(r["avg_logprob"]), float(r["no_speech_prob"])
            )
        return WireReply(str(body["id"]), result, float(body["worker_ms"]), body.get("error"))
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"malformed speech reply: {exc.__class__.__name__}") from None
