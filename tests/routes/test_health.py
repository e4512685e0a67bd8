"""/healthz, /readyz, /models, /metrics and /openapi.json in process."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.model_store import FACE_MODELS
from app.runtime import LITERT, litert_available
from tests.api.helpers import metric_sample
from tests.conftest import FUSION_VERSION


def test_alive_and_ready(app_client: TestClient) -> None:
    assert app_client.get("/healthz").json() == {"status": "ok"}
    ready = app_client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "models_loaded": True, "workers_alive": True, "shared_store": "none"}


def test_models_names_every_model_and_the_provider_it_really_runs_on(app_client: TestClient) -> None:
    models = app_client.get("/models").json()
    assert models["fusion"]["version"] == FUSION_VERSION
    assert models["fusion"]["provider"] == "CPUExecutionProvider"
    assert [v["version"] for v in models["fusion_versions"] if v["served"]] == [FUSION_VERSION]
    assert set(models["face_models"]) == set(FACE_MODELS)
    # on this CPU-only host with LiteRT installed, auto runs the face models' tflite originals in it
    expected = {"backend": "litert", "file": "model.tflite", "execution_providers": [LITERT]}
    if not litert_available():
        expected = {"backend": "onnxruntime", "file": "model.onnx", "execution_providers": ["CPUExecutionProvider"]}
    for name, version in FACE_MODELS.items():
        entry = models["face_models"][name]
        assert entry == {"path": f"{name}/{version}", "setting": "auto", **expected}
    assert models["text_encoder"]["path"] == "text_encoder/1"


def test_the_provider_metric_covers_every_session(app_client: TestClient) -> None:
    metrics = app_client.get("/metrics").text
    for model in ("fusion", "text_encoder"):
        assert metric_sample(metrics, "phq_onnx_session_provider", model=model, provider="CPUExecutionProvider") == 1.0
    face_provider = LITERT if litert_available() else "CPUExecutionProvider"
    for model in FACE_MODELS:
        assert metric_sample(metrics, "phq_onnx_session_provider", model=model, provider=face_provider) == 1.0


def test_the_openapi_document_describes_the_form_and_its_problems(app_client: TestClient) -> None:
    spec = app_client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert {"video", "audio", "transcript", "transcript_text", "participant_speaker"} <= set(body["properties"])
    assert "Problem" in spec["components"]["schemas"]
