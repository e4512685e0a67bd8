"""Health, readiness, models, metrics and the OpenAPI docs of a real server."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import onnxruntime as ort

from app.model_store import versions
from tests.api.helpers import metric_sample
from tests.api.transcripts import plain
from tests.conftest import FUSION_DIR, FUSION_VERSION, MODEL_STORE


def test_healthz_and_readyz(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "models_loaded": True, "workers_alive": True, "shared_store": "none"}


def test_models_lists_every_fusion_version_and_marks_the_served_one(client: httpx.Client) -> None:
    catalogue = client.get("/models").json()["fusion_versions"]
    assert [entry["version"] for entry in catalogue] == sorted(versions(MODEL_STORE, "fusion"), reverse=True)
    assert [entry["version"] for entry in catalogue if entry["served"]] == [FUSION_VERSION]
    for entry in catalogue:
        assert entry["training_data"] == "synthetic" and entry["clinically_validated"] is False
        assert "error" not in entry


def test_models_shows_the_provider_that_really_runs(client: httpx.Client) -> None:
    body = client.get("/models").json()
    fusion = body["fusion"]
    # what an ORT session with the same request ends up on in this environment
    wanted = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
    reference = ort.InferenceSession(str(FUSION_DIR / "model.onnx"), providers=wanted).get_providers()
    assert fusion["provider"] == reference[0]
    assert fusion["execution_providers"] == reference
    assert fusion["requested_providers"] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    manifest = fusion["manifest"]
    assert manifest["provenance"]["training_data"] == "synthetic"
    assert manifest["provenance"]["clinically_validated"] is False


def test_metrics_show_stage_histograms_after_a_prediction(client: httpx.Client, media: dict) -> None:
    before = client.get("/metrics").text
    path: Path = media["wav"]
    assert client.post("/predict", files={"audio": (path.name, path.read_bytes(), "audio/wav")}).status_code == 200
    after = client.get("/metrics").text
    for stage in ("upload", "decode", "audio", "windows", "inference", "total"):
        grew = metric_sample(after, "phq_stage_seconds_count", stage=stage) - metric_sample(
            before, "phq_stage_seconds_count", stage=stage
        )
        assert grew == 1, stage
    assert metric_sample(after, "phq_predictions_total", outcome="ok") >= 1
    assert metric_sample(after, "phq_request_seconds_count", route="/predict", method="POST") >= 1
    assert metric_sample(after, "phq_requests_in_flight") == 0
    assert re.search(r'^phq_model_info\{.*training_data="synthetic".*\} 1\.0$', after, re.MULTILINE)
    assert re.search(r'^phq_onnx_session_provider\{model="fusion",provider="\w+"\} 1\.0$', after, re.MULTILINE)


def test_metrics_show_fusion_batch_sizes_after_concurrent_predictions(client: httpx.Client) -> None:
    before = client.get("/metrics").text
    with ThreadPoolExecutor(3) as pool:  # concurrent, so their windows may share fusion runs
        statuses = list(
            pool.map(lambda _: client.post("/predict", data={"transcript_text": plain()}).status_code, range(3))
        )
    assert statuses == [200, 200, 200]
    after = client.get("/metrics").text

    def grew(name: str) -> float:
        return metric_sample(after, name) - metric_sample(before, name)

    assert grew("phq_fusion_batch_windows_count") >= 1  # session runs
    assert grew("phq_fusion_batch_windows_sum") >= 3  # at least one window each
    assert grew("phq_fusion_batch_requests_sum") >= 3  # every prediction was in at least one run
    assert metric_sample(after, "phq_fusion_batch_windows_count") > 0
    assert metric_sample(after, "phq_fusion_batch_requests_count") == metric_sample(
        after, "phq_fusion_batch_windows_count"
    )


def test_a_refused_prediction_is_counted_by_outcome(client: httpx.Client) -> None:
    before = metric_sample(client.get("/metrics").text, "phq_predictions_total", outcome="unusable_input")
    assert client.post("/predict", data={"include_timeline": "true"}).status_code == 422
    after = metric_sample(client.get("/metrics").text, "phq_predictions_total", outcome="unusable_input")
    assert after == before + 1


def test_openapi_documents_every_answer_field_with_an_example(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()
    assert "/predict" in spec["paths"]
    schemas = spec["components"]["schemas"]
    for name in ("PredictResponse", "Phq8", "ItemScore", "ModalityReport", "ModalityWeights", "TimelineWindow"):
        for field, prop in schemas[name]["properties"].items():
            documented = "examples" in prop or "description" in prop or "$ref" in prop or "allOf" in prop
            assert documented, f"{name}.{field} has neither example nor description"
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    multipart = body["multipart/form-data"]["schema"]["properties"]
    assert {"video", "audio", "transcript", "transcript_text", "participant_speaker"} <= set(multipart)
    assert all(multipart[name]["format"] == "binary" for name in ("video", "audio", "transcript"))
    assert multipart["include_timeline"]["type"] == "boolean" and multipart["model_version"]["type"] == "integer"
    # urlencoded forms carry the text fields only
    assert set(body["application/x-www-form-urlencoded"]["schema"]["properties"]) == set(multipart) - {
        "video",
        "audio",
        "transcript",
    }
    problem = spec["paths"]["/predict"]["post"]["responses"]["413"]["content"]["application/problem+json"]
    assert problem["schema"]["$ref"] == "#/components/schemas/Problem" and "Problem" in schemas


def test_docs_page_is_served_from_local_assets(client: httpx.Client) -> None:
    response = client.get("/docs")
    assert response.status_code == 200 and "swagger" in response.text.lower()
    assets = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert assets and not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


def test_unknown_route_is_a_problem(client: httpx.Client) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
