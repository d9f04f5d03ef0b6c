"""Prometheus metrics of the carrier edges, registered in the node's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class CarrierMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.rejected_messages = Counter(
            "coachline_carrier_rejected_messages_total",
            "Media-stream messages refused or ignored, by carrier and reason.",
            ["carrier", "reason"],
            registry=registry,
        )
        self.media_frames = Counter(
            "coachline_carrier_media_frames_total",
            "Audio frames handed to call sessions, by carrier and party.",
            ["carrier", "party"],
            registry=registry,
        )
        self.media_gaps = Counter(
            "coachline_carrier_media_gaps_total",
            "Media chunks that never arrived (filled with silence), by carrier and party.",
            ["carrier", "party"],
            registry=registry,
        )
        self.reordered = Counter(
            "coachline_carrier_reordered_chunks_total",
            "Media chunks that arrived out of order and were put back in place.",
            ["carrier"],
            registry=registry,
        )
        self.webhook_rejections = Counter(
            "coachline_carrier_webhook_rejections_total",
            "Carrier webhooks refused (bad or missing signature, bad body), by carrier and hook.",
            ["carrier", "hook"],
            registry=registry,
        )
        self.streams = Counter(
            "coachline_carrier_streams_total",
            "Media streams ended, by carrier and how they ended.",
            ["carrier", "outcome"],
            registry=registry,
        )
        # From a media message's arrival on the socket to its frame reaching the session.
        self.frame_handling = Histogram(
            "coachline_carrier_frame_handling_seconds",
            "Time from a media message's arrival to its AudioFrame reaching the call session.",
            ["carrier"],
            buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1),
            registry=registry,
        )
