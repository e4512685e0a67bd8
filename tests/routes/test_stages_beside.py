"""On an idle server the audio and text stages run while the visual stage does (in process,
real decoding and ONNX Runtime): the interview's answer is the same as with the stages one
after the other, warnings in the same order, and an error beside the visual stage waits for
it, so no thread of the job outlives it."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np
import pytest

from app.config import Settings
from app.errors import ConflictingInputError
from app.model_store import load_fusion
from app.pipeline.extraction import ExtractionJob, ExtractionModels, InputLimits, extract
from tests.conftest import MODEL_STORE
from tests.media import face_frames, speech_signal, write_media
from tests.routes.helpers import TRANSCRIPT

pytestmark = pytest.mark.slow

FPS = 10


@pytest.fixture(scope="module")
def limits() -> InputLimits:
    # a short clip cut at 6 s: both branches say so, and a few seconds of each are enough here
    defaults = InputLimits.from_settings(Settings(providers=["cpu"]))
    return dataclasses.replace(
        defaults,
        max_media_seconds=6.0,
        min_face_seconds=1.0,
        min_face_landmark_motion=0.0,
        min_face_pose_motion_deg=0.0,
        min_speech_seconds=1.0,
    )


@pytest.fixture(scope="module")
def talking_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    speech = speech_signal("I have been sleeping badly and I feel tired most days. " * 2)
    seconds = speech.shape[0] / 16000
    assert seconds > 6.0, "the clip must run past the limit for both branches to be cut"
    frames = face_frames(round(seconds * FPS), (320, 240), "pan")
    return write_media(tmp_path_factory.mktemp("beside") / "talk.mp4", frames, FPS, [speech])


def _job(video: Path, limits: InputLimits, beside: bool, **options) -> ExtractionJob:
    return ExtractionJob(
        features=load_fusion(MODEL_STORE).manifest.features,
        limits=limits,
        video=video,
        transcript=TRANSCRIPT.encode(),
        beside_visual=beside,
        **options,
    )


def _stage_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("visual-stage")]


def test_stages_beside_the_visual_one_give_the_same_windows_reports_and_warnings(
    talking_video: Path, limits: InputLimits, extraction_models: ExtractionModels
) -> None:
    in_turn = extract(_job(talking_video, limits, beside=False), extraction_models)
    beside = extract(_job(talking_video, limits, beside=True), extraction_models)
    assert all(report.used for report in beside.reports.values())
    assert beside.reports == in_turn.reports
    for name in ("visual", "visual_mask", "audio", "audio_mask", "text", "text_mask", "modality_mask", "quality"):
        np.testing.assert_array_equal(getattr(beside.windows, name), getattr(in_turn.windows, name))
    # the visual branch's warning first, as when it ran first
    cut = [w for w in beside.warnings if "cut at 6" in w]
    assert cut == ["the video was cut at 6 s", "the recording was cut at 6 s"]
    assert beside.warnings == in_turn.warnings
    assert {"visual", "decode", "audio", "text"} <= set(beside.timings_ms)
    assert not _stage_threads()


def test_an_error_beside_the_visual_stage_is_raised_after_it_finished(
    talking_video: Path, limits: InputLimits, extraction_models: ExtractionModels
) -> None:
    # the recording has one audio track: a third one is a conflict the audio stage finds
    job = _job(talking_video, limits, beside=True, participant_track=2)
    with pytest.raises(ConflictingInputError, match="participant_track is 3"):
        extract(job, extraction_models)
    assert not _stage_threads()
    # the worker's face models are free again: the next job runs on them at once
    assert extract(_job(talking_video, limits, beside=True), extraction_models).reports["visual"].used
