"""Shared fixtures: the repository's model store and the shipped fusion model."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from app.contract import FusionManifest
from app.model_store import versions

ROOT = Path(__file__).resolve().parents[1]
MODEL_STORE = ROOT / "model_store"
# the version the server serves by default: the highest in the store
FUSION_VERSION = max(versions(MODEL_STORE, "fusion"))
FUSION_DIR = MODEL_STORE / "fusion" / str(FUSION_VERSION)
TEXT_ENCODER_DIR = MODEL_STORE / "text_encoder" / "1"

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (install the `train` extra)")


@pytest.fixture(scope="session")
def fusion_manifest() -> FusionManifest:
    return FusionManifest.load(FUSION_DIR / "manifest.json")


@pytest.fixture(scope="session")
def fusion_session(fusion_manifest: FusionManifest):
    import onnxruntime as ort

    return ort.InferenceSession(str(FUSION_DIR / fusion_manifest.model_file), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="session")
def redis_session_server():
    """One real redis-server for the in-process tests (tests/redis_server.py)."""
    from tests.redis_server import running_redis

    with running_redis() as server:
        yield server


@pytest.fixture()
def redis_server(redis_session_server):
    """The session's redis-server, emptied for this test."""
    with redis_session_server.client() as client:
        client.flushall()
    return redis_session_server
