"""Prometheus metrics of one node, in a registry of its own (one per app)."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


def _running_tasks() -> int:
    try:
        return len(asyncio.all_tasks())
    except RuntimeError:  # scraped outside the loop (never by /metrics)
        return 0


class NodeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "coachline_http_requests_total",
            "HTTP requests handled, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "coachline_http_request_duration_seconds",
            "Time to handle an HTTP request, by route template.",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.api_in_flight = Gauge(
            "coachline_api_in_flight",
            "CRM API requests being handled now (admission control caps it).",
            registry=self.registry,
        )
        self.api_shed = Counter(
            "coachline_api_shed_total",
            "CRM API requests answered 503 because the node had no free slot in time.",
            registry=self.registry,
        )
        self.live_calls = Gauge(
            "coachline_live_calls",
            "Calls currently being handled by this node.",
            registry=self.registry,
        )
        # Read when scraped: a count that only grows under steady load is a task leak.
        self.asyncio_tasks = Gauge(
            "coachline_asyncio_tasks",
            "asyncio tasks alive in the node's event loop.",
            registry=self.registry,
        )
        self.asyncio_tasks.set_function(_running_tasks)
        self.draining = Gauge(
            "coachline_draining",
            "1 while this node is shutting down and refuses new calls.",
            registry=self.registry,
        )
        # The shared speech model (updated from SpeechModelPool.stats() once a second).
        self.stt_queue_lag = Gauge(
            "coachline_stt_queue_lag_seconds",
            "Age of the oldest decode request waiting for the speech model.",
            registry=self.registry,
        )
        self.stt_pending = Gauge(
            "coachline_stt_pending",
            "Decode requests waiting for the speech model, by kind.",
            ["kind"],
            registry=self.registry,
        )
        self.stt_decoded = Gauge(
            "coachline_stt_decoded",
            "Utterances decoded since start, by kind (final, partial).",
            ["kind"],
            registry=self.registry,
        )
        self.stt_partials_shed = Gauge(
            "coachline_stt_partials_shed",
            "Partial decodes skipped since start because the model was busy (load shedding).",
            registry=self.registry,
        )
        self.stt_busy = Gauge(
            "coachline_stt_busy_seconds",
            "Wall time the speech model has spent decoding since start.",
            registry=self.registry,
        )
        # --- SIP/RTP edge (voice_server/transports/sip.py) ---
        self.sip_rejected = Counter(
            "coachline_sip_malformed_total",
            "Datagrams on the SIP port that were not SIP we could read (answered 400 or dropped).",
            registry=self.registry,
        )
        self.rtp_dropped = Counter(
            "coachline_rtp_dropped_total",
            "RTP datagrams dropped, by reason (malformed, foreign source, unknown payload type).",
            ["reason"],
            registry=self.registry,
        )

    def observe_speech_pool(self, stats) -> None:
        self.stt_queue_lag.set(stats.queue_lag_ms / 1000.0)
        self.stt_pending.labels("final").set(stats.finals_pending)
        self.stt_pending.labels("partial").set(stats.partials_pending)
        self.stt_decoded.labels("final").set(stats.finals_decoded)
        self.stt_decoded.labels("partial").set(stats.partials_decoded)
        self.stt_partials_shed.set(stats.partials_dropped + stats.partials_superseded)
        self.stt_busy.set(stats.busy_seconds)
