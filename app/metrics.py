"""Every Prometheus metric of the service, in one place.

A fresh registry per app (tests build several apps in one process). No label carries
user data: routes are route templates, outcomes and stages are fixed vocabularies.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

# queued: jobs only, the wait between their upload and their processing
STAGES = (
    "upload",
    "queued",
    "probe",
    "transcript",
    "decode",
    "speech",
    "separation",
    "recognition",
    "visual",
    "audio",
    "text",
    "windows",
    "inference",
    "total",
)
OUTCOMES = ("ok", "client_error", "unusable_input", "unsupported_media", "too_large", "timeout", "error")
REJECTIONS = ("unauthorized", "rate_limited", "overloaded", "jobs_full")
WORKER_EVENTS = ("timeout", "crash", "memory-limit", "cancelled")
JOB_STATUSES = ("queued", "running", "done", "failed", "cancelled")
JOB_OUTCOMES = ("done", "failed", "cancelled")
SHARED_PARTS = ("jobs", "rate_limits")  # what lives in the shared store (Redis) when one is set

# request latency spans milliseconds (health) to minutes (long interviews)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.request_seconds = Histogram(
            "phq_request_seconds",
            "HTTP request latency by route template and method",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests_total = Counter(
            "phq_requests_total",
            "HTTP requests by route template, method and status code",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "phq_stage_seconds",
            "Time per prediction stage (/predict and jobs; queued: jobs only)",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions_total = Counter(
            "phq_predictions_total",
            "Predictions by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.modality_used_total = Counter(
            "phq_modality_used_total",
            "Predictions that used each modality",
            ["modality"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "phq_requests_in_flight",
            "Predictions being processed now",
            registry=self.registry,
        )
        self.waiting = Gauge(
            "phq_requests_waiting",
            "Admitted predictions waiting for a free preprocessing worker",
            registry=self.registry,
        )
        self.stream_sessions = Gauge(
            "phq_stream_sessions_active",
            "Live /stream sessions open now",
            registry=self.registry,
        )
        self.stream_frames_total = Counter(
            "phq_stream_frames_total",
            "Messages with media received on /stream, by kind (audio, video, transcript)",
            ["kind"],
            registry=self.registry,
        )
        self.stream_estimate_lag = Histogram(
            "phq_stream_estimate_lag_seconds",
            "From the media an estimate covers being in to its estimate sent (/stream processing lag)",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
            registry=self.registry,
        )
        self.rejected_total = Counter(
            "phq_rejected_total",
            "Predictions refused before their upload was read, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.worker_replacements_total = Counter(
            "phq_worker_replacements_total",
            "Preprocessing workers killed or lost and replaced, by cause",
            ["cause"],
            registry=self.registry,
        )
        self.windows_per_request = Histogram(
            "phq_windows_per_request",
            "Fusion windows per prediction",
            buckets=(1, 2, 3, 5, 8, 13, 21, 34, 55, 89),
            registry=self.registry,
        )
        # dynamic batching: how full the fusion session runs are (app/fusion/batcher.py)
        self.fusion_batch_windows = Histogram(
            "phq_fusion_batch_windows",
            "Windows per fusion session run (requests' windows merged by the batcher)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.fusion_batch_requests = Histogram(
            "phq_fusion_batch_requests",
            "Requests whose windows shared one fusion session run",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32),
            registry=self.registry,
        )
        self.jobs = Gauge(
            "phq_jobs_held",
            "Async jobs held by this process, by status (finished ones until they expire or are read)",
            ["status"],
            registry=self.registry,
        )
        self.jobs_total = Counter(
            "phq_jobs_total",
            "Async jobs whose processing ended, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self.shared_store_errors_total = Counter(
            "phq_shared_store_errors_total",
            "Calls to the shared store (Redis) that got no answer, by what they were for",
            ["part"],
            registry=self.registry,
        )
        self.model_info = Info(
            "phq_model",
            "Served fusion model",
            registry=self.registry,
        )
        self.session_provider = Gauge(
            "phq_onnx_session_provider",
            "1 for the provider each model session really runs on (ONNX Runtime; LiteRT for the face models)",
            ["model", "provider"],
            registry=self.registry,
        )
        for stage in STAGES:
            self.stage_seconds.labels(stage=stage)
        for outcome in OUTCOMES:
            self.predictions_total.labels(outcome=outcome)
        for reason in REJECTIONS:
            self.rejected_total.labels(reason=reason)
        for cause in WORKER_EVENTS:
            self.worker_replacements_total.labels(cause=cause)
        for status in JOB_STATUSES:
            self.jobs.labels(status=status)
        for outcome in JOB_OUTCOMES:
            self.jobs_total.labels(outcome=outcome)
        for part in SHARED_PARTS:
            self.shared_store_errors_total.labels(part=part)
