"""Every setting of the service, in one place (environment variables prefixed PHQ_)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# comma-separated in the environment (JSON lists work too)
StringList = Annotated[list[str], NoDecode]

REPO_MODEL_STORE = Path(__file__).resolve().parents[1] / "model_store"

PROVIDER_ALIASES = {
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHQ_", extra="ignore")

    # models
    model_store: Path = Field(REPO_MODEL_STORE, description="model repository: <model>/<version>/<files>")
    fusion_version: int | None = Field(None, description="fusion model version to serve; highest when unset")
    providers: StringList = Field(
        ["cuda", "cpu"], description="ONNX Runtime execution providers in order of preference (cuda, cpu, tensorrt)"
    )
    intra_op_threads: int = Field(1, ge=0, description="ONNX Runtime intra-op threads per session (0: ORT default)")
    inter_op_threads: int = Field(1, ge=0, description="ONNX Runtime inter-op threads per session")
    graph_optimization: Literal["disable", "basic", "extended", "all"] = "all"
    cuda_mem_limit_bytes: int = Field(2 << 30, ge=0, description="CUDA arena cap (0: unbounded)")
    cudnn_conv_algo_search: Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"] = Field(
        "HEURISTIC", description="cuDNN convolution algorithm search (run per shape, at warm-up)"
    )
    # micro-batching of fusion runs across requests (app/fusion/batcher.py). Measured on 2 CPU
    # cores, 1 intra-op thread: 3.2 ms per window alone, 2.7 at 2-8 windows a run, 2.8 at 16,
    # 3.0 at 32 and 3.1 at 64; merging two single-window requests saves ~1 ms, so a longer
    # wait would cost a lone request more than batching can save it
    batch_max_windows: int = Field(
        8, ge=1, description="most windows in one fusion session run; longer requests span several runs"
    )
    batch_max_wait_ms: float = Field(
        1.0,
        ge=0,
        description="how long the oldest queued request waits for others to share its fusion run "
        "(0: no batching, each request runs alone at once)",
    )

    # server
    host: str = Field("127.0.0.1", description="address `python -m app` binds (0.0.0.0 in containers)")
    port: int = Field(8000, ge=1, le=65535)
    shutdown_grace_s: float = Field(
        30.0, gt=0, description="on SIGTERM, in-flight requests get this long to finish; new ones are refused"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # preprocessing workers
    workers: int = Field(2, ge=1, description="preprocessing worker processes")
    worker_threads: int = Field(1, ge=1, description="ONNX Runtime threads inside each worker (text encoder)")
    # Address space a worker may map (RLIMIT_AS), measured: warm (text encoder, face models, numba
    # kernels) VmPeak 821 MiB, VmRSS 336 MiB; after a 70 s video VmPeak 1.5 GiB; after 3 h of audio
    # (the longest input cut) VmPeak 3.8 GiB. 6 GiB leaves room for a 3 h video and still stops
    # a decompression bomb before the OOM killer picks a process.
    worker_memory_bytes: int = Field(
        6 << 30, ge=0, description="address-space cap of each worker (0: none); beyond it the request gets 422"
    )

    # backpressure: requests beyond workers + max_waiting_requests get 503 with Retry-After
    max_waiting_requests: int = Field(4, ge=0, description="admitted requests that may wait for a free worker")
    rate_limit_per_minute: int = Field(
        0, ge=0, description="requests per minute per client (API key, else address); 0: off; beyond it 429"
    )

    # access
    api_key_hashes: StringList = Field(
        [], description="sha256 hex digests of the accepted API keys (`python -m app hash-key`); empty: no auth"
    )
    open_health: bool = Field(True, description="/healthz, /readyz and /models need no key")
    open_metrics: bool = Field(True, description="/metrics needs no key")
    cors_origins: StringList = Field([], description="origins allowed by CORS; empty: CORS off")

    # inputs
    spool_dir: Path | None = Field(None, description="where private upload folders are made (tmpfs recommended)")
    max_upload_bytes: int = Field(512 << 20, ge=1, description="per uploaded file")
    max_transcript_bytes: int = Field(2 << 20, ge=1)
    max_media_seconds: float = Field(3 * 3600.0, gt=0, description="longer recordings are cut here, with a warning")
    max_frame_pixels: int = Field(
        3840 * 2160, ge=1, description="video frames larger than this are not decoded (visual branch skipped)"
    )
    max_streams: int = Field(16, ge=1, description="uploads with more streams are refused (415)")
    # live sessions on /stream (README, "Live analysis")
    stream_max_seconds: float = Field(2 * 3600.0, gt=0, description="a /stream session's media may run this long")
    stream_max_frame_bytes: int = Field(1 << 20, ge=64, description="one binary /stream frame (a JPEG, a PCM block)")
    stream_max_fps: float = Field(30.0, gt=0, le=120, description="/stream video frames closer than 1/this are refused")
    stream_idle_timeout_s: float = Field(30.0, gt=0, description="a /stream session with no message this long ends")
    stream_max_ahead_s: float = Field(
        10.0,
        gt=0,
        description="a live /stream session (pace `live`) whose media run this far ahead of the time since `ready` "
        "is closed (4429 stream-too-fast); a `replay` session may send at any speed",
    )
    # evidence the visual branch needs: enough face, and a face that moves. Measured on the test
    # media (H.264, 320x240, 10 Hz): a looped still photo moves its landmarks by 0.0004 and its
    # pose by 0.02 degrees (robust SD), the same photo panned across the frame by 0.006 and 0.3;
    # the synthetic corpus's least mobile person turns the head by >= 1.5 degrees
    min_face_seconds: float = Field(
        30.0, ge=0, description="video with less face found (at the analysed rate) is not used (visual branch)"
    )
    min_face_landmark_motion: float = Field(
        0.002,
        ge=0,
        description="a face whose landmarks move less (robust SD, eye-corner distances) and whose head pose "
        "moves less than min_face_pose_motion_deg does not move like a person: not used",
    )
    min_face_pose_motion_deg: float = Field(0.1, ge=0, description="see min_face_landmark_motion (robust SD, degrees)")
    min_speech_seconds: float = Field(
        30.0, ge=0, description="audio with less participant speech is not used (weight 0 and a warning)"
    )
    min_transcript_words: int = Field(
        25, ge=1, description="participant text with fewer words is not used (weight 0 and a warning)"
    )
    request_timeout_s: float = Field(600.0, gt=0)

    face_backend: Literal["auto", "onnxruntime", "litert"] = Field(
        "auto",
        description="the face models' runtime in the workers: litert (their tflite originals, the faster CPU "
        "backend), onnxruntime (their ONNX conversions; CUDA hosts), auto: litert unless a GPU provider is set",
    )

    visual_split: int = Field(
        2,
        ge=1,
        le=4,
        description="a video of at least 20 s sent while no other request is in flight is analysed in this many "
        "parallel segments (threads of its worker, one set of face models each); 1: never split",
    )

    # the speech stage on recordings without a timed, speaker-labelled transcript (README, "The speech stage")
    speaker_separation: Literal["auto", "off"] = Field(
        "auto", description="auto: find who speaks when in a recording the transcript does not label; off: never"
    )
    speech_recognition: Literal["auto", "off"] = Field(
        "auto", description="auto: the patient's words from the audio when no transcript is sent; off: never"
    )
    transcript_check: Literal["auto", "off"] = Field(
        "auto",
        description="auto: when a transcript comes with audio, hear the patient's first transcript_check_seconds of "
        "speech and leave the transcript out when too few of those words are in it (another session's text); "
        "off: never. Needs speech_recognition",
    )
    transcript_check_seconds: float = Field(
        30.0, ge=5.0, le=300.0, description="seconds of the patient's speech the transcript check hears"
    )
    transcript_check_min_share: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        description="a transcript is left out when a smaller share of the heard words is in it, in runs of two "
        "or more in the same order (30 s of 24 synthetic people: own transcripts 0.49-0.97, another "
        "person's 0.02-0.11; bench.transcript_check)",
    )

    # async jobs (POST /jobs): results live in this process's memory only (docs/jobs.md)
    job_ttl_s: float = Field(
        600.0, gt=0, description="a finished job's result is kept this long, then deleted (GET answers 404)"
    )
    max_jobs: int = Field(
        16,
        ge=1,
        description="jobs held at once: queued, running and finished but not yet expired; beyond it 503. "
        "Each holds its uploads until it is processed",
    )
    job_delete_on_read: bool = Field(
        False, description="delete a finished job's result as soon as it has been read once (a second GET: 404)"
    )
    # several replicas: jobs and rate limits shared in Redis (docs/jobs.md); unset: this process only
    redis_url: str | None = Field(
        None,
        description="redis://, rediss:// or unix:// URL of the Redis that replicas share jobs and rate limits in; "
        "unset: both live in this process",
    )
    redis_prefix: str = Field("phq:", min_length=1, description="key prefix in Redis (one per deployment)")
    redis_timeout_s: float = Field(2.0, gt=0, description="a Redis call that takes longer counts as Redis down")
    job_lease_s: float = Field(
        15.0,
        ge=1,
        description="with Redis: a job whose replica stopped renewing its lease this long reads as failed "
        "(renewed every third of it)",
    )

    # answer
    interval_level: float = Field(0.9, gt=0, lt=1, description="coverage of the total's uncertainty interval")

    @field_validator("providers", "api_key_hashes", "cors_origins", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().startswith("["):
                return json.loads(value)
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("providers")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [p for p in value if p.lower() not in PROVIDER_ALIASES and p not in PROVIDER_ALIASES.values()]
        if unknown:
            raise ValueError(f"unknown execution providers {unknown}; use {sorted(PROVIDER_ALIASES)}")
        if not value:
            raise ValueError("at least one execution provider")
        return value

    @field_validator("api_key_hashes")
    @classmethod
    def _digests(cls, value: list[str]) -> list[str]:
        digests = [v.lower() for v in value]
        if any(len(d) != 64 or not set(d) <= set("0123456789abcdef") for d in digests):
            raise ValueError("api_key_hashes holds sha256 hex digests (64 hex characters), never the keys")
        return digests

    @property
    def provider_names(self) -> list[str]:
        return [PROVIDER_ALIASES.get(p.lower(), p) for p in self.providers]
