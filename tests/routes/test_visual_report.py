"""The visual report extraction builds (in process, real decoding and ONNX Runtime): the applied
rotation, the faces the detector saw and which one was analysed, and identity switches."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.answer.schema import ModalityReport
from app.config import Settings
from app.model_store import load_fusion
from app.pipeline.extraction import ExtractionJob, ExtractionModels, InputLimits, extract
from tests.conftest import MODEL_STORE
from tests.media import face_frames, head_image, write_video

FPS = 10
SIZE = (400, 300)


@pytest.fixture(scope="module")
def limits() -> InputLimits:
    # short clips: a few seconds of face are enough here, and a moving face is not the point
    defaults = InputLimits.from_settings(Settings(providers=["cpu"]))
    return dataclasses.replace(
        defaults, min_face_seconds=1.0, min_face_landmark_motion=0.0, min_face_pose_motion_deg=0.0
    )


def _visual(video: Path, limits: InputLimits, models: ExtractionModels) -> tuple[ModalityReport, list[str]]:
    job = ExtractionJob(features=load_fusion(MODEL_STORE).manifest.features, limits=limits, video=video)
    extracted = extract(job, models)
    return extracted.reports["visual"], extracted.warnings


def _beside(background: np.ndarray, person: str, height: int, x0: int) -> np.ndarray:
    frame = background.copy()
    head = head_image(person)
    width = round(head.shape[1] * height / head.shape[0])
    y0 = SIZE[1] // 2 - height // 2
    frame[y0 : y0 + height, x0 : x0 + width] = cv2.resize(head, (width, height), interpolation=cv2.INTER_AREA)
    return frame


def test_one_face_has_no_face_selection_and_an_upright_video_no_rotation(
    tmp_path: Path, limits: InputLimits, extraction_models: ExtractionModels
) -> None:
    video = write_video(tmp_path / "one.mp4", face_frames(30, (320, 240), "pan"), FPS)
    report, warnings = _visual(video, limits, extraction_models)
    assert report.used and report.selections == []
    assert report.quality["faces_max"] == 1 and report.quality["multiple_faces_share"] == 0
    assert report.quality["identity_switches"] == 0 and report.quality["rotation_deg"] == 0
    assert not any("face" in w for w in warnings)


def test_a_rotated_video_reports_the_turn_it_was_given(
    tmp_path: Path, limits: InputLimits, extraction_models: ExtractionModels
) -> None:
    sideways = [np.rot90(f, 1) for f in face_frames(30, (240, 320), "pan")]
    video = write_video(tmp_path / "phone.mp4", sideways, FPS, display_rotation=-90)
    report, _ = _visual(video, limits, extraction_models)
    assert report.used and report.quality["rotation_deg"] == -90 and report.quality["face_found_ratio"] == 1.0


def test_a_second_face_in_view_is_reported_as_a_candidate_and_warned(
    tmp_path: Path, limits: InputLimits, extraction_models: ExtractionModels
) -> None:
    background = np.full((SIZE[1], SIZE[0], 3), 120, np.uint8)
    alone = _beside(background, "astronaut", 200, 40)
    together = _beside(alone, "hopper", 100, 260)
    # 3 s together, then 3 s alone: a second face half of the time
    video = write_video(tmp_path / "two.mp4", [together] * 30 + [alone] * 30, FPS)
    report, warnings = _visual(video, limits, extraction_models)
    assert report.used
    assert report.quality["faces_max"] == 2 and report.quality["multiple_faces_share"] == 0.5
    (selection,) = report.selections
    assert selection.kind == "face" and selection.confident
    assert "largest, most central" in selection.rule
    assert [(c.name, c.chosen, c.seconds) for c in selection.candidates] == [
        ("face 1 (largest, most central)", True, 6.0),
        ("face 2", False, 3.0),
    ]
    assert any("more than one face was in view for about 50 %" in w for w in warnings)
    assert not any("changed person" in w for w in warnings)


def test_the_analysed_face_changing_person_is_counted_warned_and_makes_the_choice_unsure(
    tmp_path: Path, limits: InputLimits, extraction_models: ExtractionModels
) -> None:
    background = np.full((SIZE[1], SIZE[0], 3), 120, np.uint8)
    both = _beside(_beside(background, "astronaut", 200, 40), "hopper", 100, 260)
    hopper_only = _beside(background, "hopper", 100, 260)
    video = write_video(tmp_path / "switch.mp4", [both] * 30 + [hopper_only] * 30, FPS)
    report, warnings = _visual(video, limits, extraction_models)
    assert report.quality["identity_switches"] == 1 and report.quality["tracking_losses"] == 1
    (selection,) = report.selections
    assert not selection.confident
    assert [w for w in warnings if "changed person" in w] == [
        "the analysed face changed person at about 3 s; the features mix more than one person"
    ]
