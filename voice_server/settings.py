"""Configuration: environment variables read once into one ``Settings`` object.

Every setting has a safe default for local use. ``DATABASE_URL`` and
``REDIS_URL`` keep their conventional names; everything else is
``COACHLINE_<NAME>``. Invalid values stop the process with a message that
names the variable, the problem and the value.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from voice_server.redaction import masked_setting


class SettingsError(ValueError):
    """The environment holds a value Coachline cannot use."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COACHLINE_", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    # Unset: start a local PostgreSQL / Redis under data_dir.
    database_url: str | None = Field(
        None, validation_alias=AliasChoices("DATABASE_URL", "COACHLINE_DATABASE_URL")
    )
    redis_url: str | None = Field(
        None, validation_alias=AliasChoices("REDIS_URL", "COACHLINE_REDIS_URL")
    )
    data_dir: Path = Path(".data")
    # auto: in-process when the Redis is our own local one (single node),
    # Redis Streams when REDIS_URL points at a shared server.
    event_bus: Literal["auto", "memory", "redis"] = "auto"
    db_pool_min: int = Field(1, ge=0, le=100)
    db_pool_max: int = Field(10, ge=1, le=500)
    # How long one connection attempt / one statement may wait on PostgreSQL before the
    # request that needs it answers 503 (a stalled or lost database).
    db_connect_timeout_s: float = Field(5.0, gt=0, le=300)
    db_command_timeout_s: float = Field(30.0, gt=0, le=3600)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    # How long a stopping node keeps serving live calls before it exits.
    shutdown_grace_s: float = Field(30.0, ge=0, le=3600)
    # live transcription and coaching (speech model from a PyPI package, see docs/speech.md "Speech engine")
    stt_enabled: bool = True
    stt_model: str = "tiny.en"
    # Unset: generated once and kept in <data_dir>/node-id (voice_server/node_identity.py), so a
    # restarted node recognises the rows its previous process left open.
    node_id: str | None = None
    # A node whose heartbeat is this old is dead: any node ends the calls it was carrying.
    node_stale_s: float = Field(30.0, ge=1, le=3600)
    # speech engine (speech): the shared Whisper model and its decode pool (media.stt)
    # stt_model (above): tiny.en | base (extra stt-base) | a CTranslate2 Whisper directory
    stt_device: Literal["cpu", "cuda", "auto"] = "cpu"
    stt_compute_type: str = "int8"  # int8 on CPU; float16 / int8_float16 on a GPU
    # 0: chosen from the cores (media.stt.cpu_parallelism: one single-threaded worker per core,
    # up to 4, on CPU; one worker on a GPU)
    stt_threads: int = Field(0, ge=0, le=256)
    stt_workers: int = Field(0, ge=0, le=16)
    stt_max_batch: int = Field(4, ge=1, le=64)
    # speech tier (voice_server/remote_speech_pool.py): off: decode on this node; auto: send
    # decodes to `coachline speech-worker` processes over Redis while one is alive, else (and on
    # a timeout) decode here; required: always send, load no model here (needs REDIS_URL)
    stt_remote: Literal["off", "auto", "required"] = "off"
    # how long a final may wait on a worker before this node decodes it itself
    stt_remote_timeout_s: float = Field(5.0, gt=0, le=600)
    # browser sessions. Set COACHLINE_COOKIE_SECURE=true when served over TLS
    # (directly or behind a TLS-terminating proxy) so cookies carry the Secure flag.
    cookie_secure: bool = False
    session_ttl_s: int = Field(8 * 3600, ge=300, le=30 * 24 * 3600)
    # Set: /metrics answers only "Authorization: Bearer <token>" (Prometheus' bearer_token).
    # Unset: /metrics is open, for clusters that keep it on an internal network.
    metrics_token: SecretStr | None = None

    # --- API rate limits (crm_core/api/rate_limits.py) and webhooks out
    rate_limit_enabled: bool = True
    rate_limit_anonymous_per_min: int = Field(60, ge=1, le=1_000_000)
    rate_limit_unauthenticated_per_min: int = Field(300, ge=1, le=1_000_000)
    rate_limit_starter_per_min: int = Field(60, ge=1, le=1_000_000)
    rate_limit_professional_per_min: int = Field(300, ge=1, le=1_000_000)
    rate_limit_enterprise_per_min: int = Field(3000, ge=1, le=1_000_000)
    # Each signed-in user's browser requests: a budget of their own, apart from the organisation's.
    rate_limit_interactive_per_min: int = Field(300, ge=1, le=1_000_000)
    rate_limit_trust_forwarded_for: bool = False
    rate_limit_sign_in_failures_per_email_per_min: int = Field(10, ge=1, le=1_000_000)
    # API admission control (voice_server/api_admission.py): requests in flight, then 503
    api_max_in_flight: int = Field(64, ge=1, le=100_000)
    api_max_queue_wait_ms: int = Field(1000, ge=0, le=60_000)
    webhooks_enabled: bool = True
    # Off by default: customer-supplied URLs must not reach our own network (SSRF).
    webhooks_allow_private_urls: bool = False
    webhooks_max_attempts: int = Field(8, ge=1, le=50)
    webhooks_timeout_s: float = Field(10.0, gt=0, le=120)
    # Most rows one CSV export of a list streams (Accept: text/csv or ?format=csv).
    csv_export_max_rows: int = Field(100_000, ge=1, le=10_000_000)
    lead_rescoring_every_s: float = Field(30.0, gt=0, le=86400)

    # --- carriers (Twilio, Vonage, outbound dialing) ---------------------------------
    # The URL carriers use to reach this server (scheme://host[:port], no path). Webhook
    # signatures are computed over it, so behind a proxy it must be the public one.
    public_url: str = "http://127.0.0.1:8080"
    twilio_account_sid: str = "AC00000000000000000000000000000000"
    twilio_auth_token: str = ""
    twilio_api_base: str = "https://api.twilio.com"
    twilio_caller_id: str | None = None  # our number shown to customers on outbound calls
    vonage_application_id: str = ""
    vonage_private_key_path: Path | None = None
    vonage_signature_secret: str = ""
    vonage_signature_max_age_s: float = Field(300.0, gt=0)
    vonage_api_host: str = "api.nexmo.com"  # host[:port]; the SDK always speaks HTTPS
    vonage_number: str | None = None
    # Our carrier numbers -> the rep user id whose phone/SIP address a call to it rings.
    carrier_numbers: dict[str, str] = Field(default_factory=dict)
    media_max_message_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    media_idle_timeout_s: float = Field(30.0, gt=0, le=3600)
    # A media socket that has not started a call (Twilio's start, Vonage's connected) this long
    # after its upgrade is closed: carriers start at once.
    media_start_timeout_s: float = Field(5.0, gt=0, le=3600)
    # --- end carriers ----------------------------------------------------------------
    # --- SIP/RTP edge (voice_server/transports/sip.py) ---
    sip_enabled: bool = False
    sip_host: str = "127.0.0.1"  # where the SIP and RTP sockets bind
    sip_port: int = Field(5060, ge=0, le=65535)  # 0: any free port (tests)
    # The address peers must use (Contact, SDP c=); defaults to sip_host.
    sip_advertised_host: str | None = None
    rtp_port_min: int = Field(20000, ge=1024, le=65534)
    rtp_port_max: int = Field(20999, ge=1025, le=65535)
    # Comma-separated "network" (trusted by IP) or "user:password@network" (IP + digest).
    sip_peers: str = "127.0.0.1/32,::1/128"
    sip_realm: str = "coachline"
    sip_nonce_ttl_s: float = Field(300.0, gt=0, le=86400)
    sip_max_calls: int = Field(500, ge=1, le=100000)
    # Sources no peer entry covers: "drop" (silence) or "reject" (one stateless 403 per request,
    # never retransmitted, never bigger than the request, within the budgets below).
    sip_non_peer_policy: Literal["reject", "drop"] = "drop"
    sip_non_peer_burst: int = Field(3, ge=1, le=1000)  # answers one source may draw at once,
    sip_non_peer_per_s: float = Field(0.1, gt=0, le=1000)  # then this many a second,
    sip_non_peer_total_per_s: float = Field(20.0, gt=0, le=100_000)  # all sources together
    # Failed digest attempts (wrong user or password) one source may make, and all sources
    # together against one configured user; each budget regains this many a minute. Spent:
    # no challenge, answered as a non-peer is (a source that proved the user's password in the
    # last day is not held to that user's budget).
    sip_digest_failures_per_source: int = Field(10, ge=1, le=100_000)
    sip_digest_failures_per_user: int = Field(30, ge=1, le=100_000)
    sip_digest_failure_refill_per_min: float = Field(1.0, gt=0, le=100_000)
    # No RTP for this long (and the call not on hold) ends the call as abnormal.
    rtp_timeout_s: float = Field(30.0, gt=0, le=3600)
    # The org that owns SIP calls whose rep cannot be found (unset: such calls get 404).
    sip_default_org_id: str | None = None

    # --- encrypted call recordings ---
    recording_enabled: bool = True
    # Master keys "id:base64[,id:base64…]" (first = current), or a file of such lines.
    # Neither set: calls are not recorded (a key is never generated beside the data).
    recording_key: SecretStr | None = None
    recording_key_file: Path | None = None
    recording_dir: Path | None = None  # default <data_dir>/recordings
    recording_sample_rate: Literal[8000, 16000] = 8000
    # Seconds of audio per encrypted chunk: a crash loses at most this (plus the jitter window).
    recording_chunk_s: float = Field(2.0, ge=0.1, le=60)
    recording_max_lag_ms: int = Field(500, ge=0, le=10_000)
    # No frame for this long: the silent time is written (jitter tolerated beyond the lag window).
    recording_stall_s: float = Field(2.0, ge=0.2, le=60)
    # A 'recording' row not renewed for this long was left by a dead process.
    recording_stale_s: float = Field(30.0, ge=1, le=3600)
    # Defaults for organizations whose settings do not say (organizations.settings keys
    # recording_retention_days, reps_review_own_recordings). 0 days = keep forever.
    recording_retention_days: int = Field(0, ge=0, le=36500)
    recording_reps_review_own: bool = False
    recording_purge_every_s: float = Field(3600.0, ge=1)
    # speakers: method for recordings after the call: "encoder" (the live speaker encoder
    # with a second pass) or "onnx" (segmentation + CAM++ + clustering on onnxruntime,
    # from the files scripts/build_diarization_models.py writes; encoder if they are missing).
    recording_diarization: Literal["encoder", "onnx"] = "encoder"
    diarization_models_dir: Path | None = None  # default <data_dir>/models/diarization

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if urlsplit(value).scheme not in ("postgres", "postgresql"):
            raise ValueError("must be a postgresql:// URL")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    def model_post_init(self, _context: object) -> None:
        if self.db_pool_min > self.db_pool_max:
            raise ValueError("COACHLINE_DB_POOL_MIN must not exceed COACHLINE_DB_POOL_MAX")
        if self.rtp_port_min >= self.rtp_port_max:  # SIP/RTP edge
            raise ValueError("COACHLINE_RTP_PORT_MIN must be below COACHLINE_RTP_PORT_MAX")
        if self.sip_enabled and self.sip_host in ("0.0.0.0", "::") and not self.sip_advertised_host:
            raise ValueError("COACHLINE_SIP_ADVERTISED_HOST is needed when COACHLINE_SIP_HOST "
                             "binds all addresses (peers must be told where to send)")
        if self.stt_remote == "required" and self.redis_url is None:
            raise ValueError("COACHLINE_STT_REMOTE=required needs REDIS_URL (the speech workers' Redis)")
        from voice_server.sip.peers import PeerSpecError, parse_peers
        try:
            parse_peers(self.sip_peers)
        except PeerSpecError as exc:
            raise ValueError(f"COACHLINE_SIP_PEERS: {exc}") from None

    @property
    def uses_shared_redis(self) -> bool:
        return self.redis_url is not None

    @property
    def event_bus_kind(self) -> Literal["memory", "redis"]:
        if self.event_bus == "auto":
            return "redis" if self.uses_shared_redis else "memory"
        return self.event_bus


_ENV_NAMES = {"database_url": "DATABASE_URL", "redis_url": "REDIS_URL"}


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """Read the settings from ``environ`` (default: the process environment).

    pydantic-settings only reads ``os.environ``, so an explicit ``environ``
    (tests, tools) is swapped in for the duration of the call.
    """
    env = dict(os.environ if environ is None else environ)
    saved = dict(os.environ)
    try:
        if environ is not None:
            os.environ.clear()
            os.environ.update(env)
        return Settings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else ""
            name = field if field.isupper() else _ENV_NAMES.get(field, f"COACHLINE_{field.upper()}")
            shown = err.get("input")
            if isinstance(shown, str):  # never echo a secret, nor a password inside a URL
                shown = masked_setting(field.lower(), shown)
            problems.append(f"{name}: {err['msg']} (got {shown!r})" if field else err["msg"])
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(problems)) from None
    except ValueError as exc:
        raise SettingsError(f"invalid configuration: {exc}") from None
    finally:
        if environ is not None:
            os.environ.clear()
            os.environ.update(saved)
