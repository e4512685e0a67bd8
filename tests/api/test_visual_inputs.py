"""The visual inputs a real uvicorn server reports: a phone video's display matrix (the rotated
file answers as the same picture stored upright, not as the sideways picture without the
flag), several faces in view, and the analysed face changing person."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest

from app.answer.schema import PredictResponse
from tests.api.helpers import valid_answer

pytestmark = pytest.mark.usefixtures("no_leftovers")

FPS = 10
SECONDS = 34  # past the 30 s of face the visual branch needs
PORTRAIT = (240, 320)  # width, height: a phone held upright


@pytest.fixture(scope="module")
def phone_videos(tmp_path_factory) -> dict[str, Path]:
    from tests.media import face_frames, write_video

    folder = tmp_path_factory.mktemp("rotation")
    pictures = list(face_frames(SECONDS * FPS, PORTRAIT, "pan"))
    # how a phone stores it: the sensor's landscape picture (turned counter-clockwise here) and a
    # display matrix of -90 degrees (turn it clockwise to show it)
    sideways = [np.rot90(p, 1) for p in pictures]
    return {
        "upright": write_video(folder / "upright.mp4", pictures, FPS),
        "rotated": write_video(folder / "rotated.mp4", sideways, FPS, display_rotation=-90),
        "sideways": write_video(folder / "sideways.mp4", sideways, FPS),
    }


def _predict(client: httpx.Client, video: Path) -> PredictResponse:
    response = client.post("/predict", files={"video": (video.name, video.read_bytes(), "video/mp4")})
    assert response.status_code == 200, response.text
    return valid_answer(response.json(), used={"visual"})


def test_a_display_matrix_is_honoured_before_the_face_is_analysed(client: httpx.Client, phone_videos: dict) -> None:
    answers = {name: _predict(client, path) for name, path in phone_videos.items()}
    upright, rotated, sideways = answers["upright"], answers["rotated"], answers["sideways"]
    assert rotated.inputs.visual.quality["rotation_deg"] == -90
    assert upright.inputs.visual.quality["rotation_deg"] == 0 == sideways.inputs.visual.quality["rotation_deg"]

    # the same picture after the turn: the same face figures and the same estimate, up to what
    # H.264 loses differently in the two orientations (measured: totals 2.163 and 2.162; the
    # landmark motion, a robust SD of small moves, 0.0044 and 0.0048; the sideways file 1.455)
    for key in ("face_found_ratio", "face_seconds", "mean_face_size"):
        assert rotated.inputs.visual.quality[key] == pytest.approx(upright.inputs.visual.quality[key], abs=0.005), key
    assert rotated.inputs.visual.quality["landmark_motion"] == pytest.approx(
        upright.inputs.visual.quality["landmark_motion"], abs=0.001
    )
    assert abs(rotated.phq8.total - upright.phq8.total) < 1e-2
    for a, b in zip(rotated.phq8.items, upright.phq8.items, strict=True):
        assert abs(a.score - b.score) < 1e-2, a.item

    # the sideways picture (no flag) is a head lying on its side: 90 degrees of roll
    assert sideways.inputs.visual.quality["mean_face_size"] > upright.inputs.visual.quality["mean_face_size"] + 0.05
    assert abs(sideways.phq8.total - upright.phq8.total) > 0.2


def test_two_people_one_of_whom_leaves_are_reported_on_the_wire(client: httpx.Client, tmp_path: Path) -> None:
    import cv2

    from tests.media import head_image, write_video

    def placed(frame: np.ndarray, person: str, height: int, x0: int, y0: int) -> np.ndarray:
        head = head_image(person)
        width = round(head.shape[1] * height / head.shape[0])
        frame[y0 : y0 + height, x0 : x0 + width] = cv2.resize(head, (width, height), interpolation=cv2.INTER_AREA)
        return frame

    frames = []
    for i in range(SECONDS * FPS):
        frame = np.full((300, 400, 3), 120, np.uint8)
        shift = round(20 * np.sin(i / 15))  # a moving scene: a still picture is not evidence
        if i < SECONDS * FPS // 2:  # the astronaut, larger and nearer the centre, for the first half
            placed(frame, "astronaut", 200, 40 + shift, 50)
        frames.append(placed(frame, "hopper", 100, 270 + shift, 100))
    video = write_video(tmp_path / "two_people.mp4", frames, FPS)
    response = client.post("/predict", files={"video": (video.name, video.read_bytes(), "video/mp4")})
    assert response.status_code == 200, response.text
    body = response.json()
    answer = valid_answer(body, used={"visual"})
    quality = answer.inputs.visual.quality
    assert quality["faces_max"] == 2 and quality["multiple_faces_share"] == pytest.approx(0.5, abs=0.03)
    assert quality["identity_switches"] == 1 and quality["tracking_losses"] >= 1
    (selection,) = body["inputs"]["visual"]["selections"]
    assert selection["kind"] == "face" and selection["confident"] is False
    assert [c["name"] for c in selection["candidates"]] == ["face 1 (largest, most central)", "face 2"]
    assert [c["chosen"] for c in selection["candidates"]] == [True, False]
    assert any(w.startswith("more than one face was in view for about 5") for w in answer.warnings)
    switches = [w for w in answer.warnings if "changed person" in w]
    assert switches == ["the analysed face changed person at about 17 s; the features mix more than one person"]
