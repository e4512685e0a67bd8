"""An idle server gives one interview both cores: its video is analysed in two parallel
segments (the answer's inputs.visual.quality.segments says so), and a request that comes
while another is in flight is analysed in one pass."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from app.model_store import load_fusion
from app.pipeline.extraction import ExtractionModels
from app.runtime import RuntimeConfig
from tests.api.helpers import valid_answer
from tests.conftest import MODEL_STORE
from tests.media import face_frames, write_video
from tests.routes.conftest import in_process
from tests.routes.helpers import TRANSCRIPT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def split_client(spool: Path) -> Iterator[TestClient]:
    features = load_fusion(MODEL_STORE).manifest.features
    models = ExtractionModels.load(MODEL_STORE, features, RuntimeConfig(face_model_sets=2))
    models.warm()
    settings = Settings(spool_dir=spool, providers=["cpu"], visual_split=2)
    with TestClient(create_app(settings, services=in_process(models))) as client:
        yield client


def _post(client: TestClient, video: bytes):
    response = client.post(
        "/predict",
        files={"video": ("face.mp4", video, "video/mp4")},
        data={"transcript_text": TRANSCRIPT, "include_timeline": "false"},
    )
    assert response.status_code == 200, response.text
    return valid_answer(response.json(), used={"visual", "text"})


def test_an_idle_server_splits_the_video_and_a_busy_one_does_not(split_client: TestClient, tmp_path: Path) -> None:
    video = write_video(tmp_path / "face.mp4", face_frames(400, (320, 240), "pan"), 10).read_bytes()  # 40 s
    alone = _post(split_client, video)
    assert alone.inputs.visual.quality["segments"] == 2
    # another request holding an admission slot: this one gets one core's worth
    with split_client.app.state.services.admission.ticket():
        busy = _post(split_client, video)
    assert busy.inputs.visual.quality["segments"] == 1
    assert abs(alone.phq8.total - busy.phq8.total) <= 0.1
    assert alone.inputs.visual.quality["face_seconds"] == busy.inputs.visual.quality["face_seconds"]
