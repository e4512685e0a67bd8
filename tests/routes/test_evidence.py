"""What is not evidence is not scored: the visual branch needs enough face, and a face that moves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.config import Settings
from app.features.visual.space import FULL_DIM, face_motion
from tests.api.helpers import valid_answer
from tests.media import face_frames, write_video
from tests.routes.helpers import TRANSCRIPT

pytestmark = pytest.mark.usefixtures("no_leftovers")
FPS = 10
SETTINGS = Settings()


def _post(client: TestClient, video: Path) -> dict:
    files = {"video": ("v.mp4", video.read_bytes(), "video/mp4"), "transcript": ("t.txt", TRANSCRIPT.encode())}
    response = client.post("/predict", files=files)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_looped_still_photo_is_not_used_for_the_visual_branch(app_client: TestClient, tmp_path: Path) -> None:
    still = next(face_frames(1, motion="still"))
    video = write_video(tmp_path / "still.mp4", [still] * (40 * FPS), FPS)
    answer = valid_answer(_post(app_client, video), used={"text"})
    visual = answer.inputs.visual
    assert visual.reason == "the face does not move (a still picture is not evidence)"
    assert visual.quality["face_found_ratio"] > 0.9 and visual.quality["face_seconds"] >= 36
    assert visual.quality["landmark_motion"] < SETTINGS.min_face_landmark_motion
    assert visual.quality["pose_motion_deg"] < SETTINGS.min_face_pose_motion_deg
    assert any("the face does not move" in w for w in answer.warnings)


def test_too_little_face_is_not_used_and_says_how_much_there_was(app_client: TestClient, tmp_path: Path) -> None:
    video = write_video(tmp_path / "short.mp4", face_frames(6 * FPS), FPS)
    visual = valid_answer(_post(app_client, video), used={"text"}).inputs.visual
    assert visual.reason == "only 6.0 s of face were found; at least 30 s are needed"
    assert visual.quality["face_seconds"] == pytest.approx(6.0, abs=0.2)


def test_a_moving_face_long_enough_is_used(app_client: TestClient, tmp_path: Path) -> None:
    video = write_video(tmp_path / "moving.mp4", face_frames(35 * FPS), FPS)
    visual = valid_answer(_post(app_client, video), used={"visual", "text"}).inputs.visual
    assert visual.quality["face_seconds"] >= SETTINGS.min_face_seconds
    assert visual.quality["landmark_motion"] >= SETTINGS.min_face_landmark_motion


def test_face_motion_sees_talking_and_turning_and_ignores_a_few_glitches() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(0.0, 0.3, FULL_DIM)
    still = np.tile(base, (300, 1)) + rng.normal(0.0, 1e-5, (300, FULL_DIM))
    still[::50] += rng.normal(0.0, 0.2, (6, FULL_DIM))  # six tracking glitches
    valid = np.ones(300, bool)
    landmarks, pose = face_motion(still, valid)
    assert landmarks < 1e-4 and pose < 0.01
    talking = still.copy()
    talking[:, 2 * 48 : 2 * 68] += 0.05 * np.sin(np.arange(300) / 3.0)[:, None]  # the mouth, iBUG 48-67
    assert face_motion(talking, valid)[0] > 0.02
    turning = still.copy()
    turning[:, FULL_DIM - 4] += np.radians(5.0) * np.sin(np.arange(300) / 20.0)  # yaw
    assert face_motion(turning, valid)[1] > 2.0
    assert face_motion(talking, np.zeros(300, bool)) == (0.0, 0.0)
