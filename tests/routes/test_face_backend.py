"""The answer does not depend on the face models' runtime: the same interview video through
the app with the face models in LiteRT (auto on this CPU host) and in ONNX Runtime moves the
total by at most 0.1 (issue 17's parity bound)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.model_store import load_fusion
from app.pipeline.extraction import ExtractionModels
from app.runtime import RuntimeConfig, litert_available
from tests.api.helpers import valid_answer
from tests.conftest import MODEL_STORE
from tests.media import talking_head
from tests.routes.conftest import in_process
from tests.routes.helpers import TRANSCRIPT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not litert_available(), reason="ai-edge-litert is not installed (gpu extra)"),
]


@pytest.fixture(scope="module")
def onnx_client(spool: Path) -> Iterator[TestClient]:
    features = load_fusion(MODEL_STORE).manifest.features
    models = ExtractionModels.load(MODEL_STORE, features, RuntimeConfig(tflite_backend="onnxruntime"))
    models.warm()
    settings = Settings(spool_dir=spool, providers=["cpu"], face_backend="onnxruntime")
    with TestClient(create_app(settings, services=in_process(models))) as client:
        yield client


def test_the_same_interview_scores_the_same_on_either_face_backend(
    app_client: TestClient, onnx_client: TestClient, tmp_path: Path
) -> None:
    assert app_client.get("/models").json()["face_models"]["face_landmarks"]["backend"] == "litert"
    assert onnx_client.get("/models").json()["face_models"]["face_landmarks"]["backend"] == "onnxruntime"
    # 40 s of a moving face with its own speech track, and the transcript
    video = talking_head(tmp_path / "talk.mp4", " ".join([TRANSCRIPT] * 2), fps=10).read_bytes()
    answers = []
    for client in (app_client, onnx_client):
        response = client.post(
            "/predict",
            files={"video": ("talk.mp4", video, "video/mp4")},
            data={"transcript_text": TRANSCRIPT, "include_timeline": "false"},
        )
        assert response.status_code == 200, response.text
        answers.append(valid_answer(response.json(), used={"visual", "audio", "text"}))
    lite, onnx = answers
    assert lite.inputs.visual.duration_s == onnx.inputs.visual.duration_s
    assert abs(lite.phq8.total - onnx.phq8.total) <= 0.1, (lite.phq8.total, onnx.phq8.total)
    assert abs(lite.attention.modalities.visual - onnx.attention.modalities.visual) <= 0.02
