"""Every setting of the service, in one place (environment variables prefixed PHQ_)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    providers: list[str] = Field(
        ["cuda", "cpu"], description="ONNX Runtime execution providers in order of preference (cuda, cpu, tensorrt)"
    )
    intra_op_threads: int = Field(1, ge=0, description="ONNX Runtime intra-op threads per session (0: ORT default)")
    inter_op_threads: int = Field(1, ge=0, description="ONNX Runtime inter-op threads per session")
    graph_optimization: Literal["disable", "basic", "extended", "all"] = "all"
    cuda_mem_limit_bytes: int = Field(2 << 30, ge=0, description="CUDA arena cap (0: unbounded)")

    # preprocessing workers
    workers: int = Field(2, ge=1, description="preprocessing worker processes")
    worker_threads: int = Field(1, ge=1, description="ONNX Runtime threads inside each worker (text encoder)")

    # inputs
    spool_dir: Path | None = Field(None, description="where private upload folders are made (tmpfs recommended)")
    max_upload_bytes: int = Field(512 << 20, ge=1, description="per uploaded file")
    max_transcript_bytes: int = Field(2 << 20, ge=1)
    max_media_seconds: float = Field(3 * 3600.0, gt=0, description="longer recordings are cut here, with a warning")
    min_speech_seconds: float = Field(
        30.0, ge=0, description="audio with less participant speech is not used (weight 0 and a warning)"
    )
    request_timeout_s: float = Field(600.0, gt=0)

    # answer
    interval_level: float = Field(0.9, gt=0, lt=1, description="coverage of the total's uncertainty interval")

    @field_validator("providers", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip().startswith("["):
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

    @property
    def provider_names(self) -> list[str]:
        return [PROVIDER_ALIASES.get(p.lower(), p) for p in self.providers]
