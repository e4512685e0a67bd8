"""A live session's video tracked as it comes (issue 18): each tick gets the picture the final
answer's decoding of the recorded file gives it, parts hand out every tick once and in order,
waiting pictures are capped, no face for 10 s is warned about once per episode, and the
tracked parts join to exactly the one-pass rows of the recorded video."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from app.contract import FeatureSpec
from app.features.visual.models import FaceModels
from app.features.visual.sampling import VideoSampler
from app.features.visual.tracking import VisualExtractor
from app.pipeline.extraction import LiveVideoJob, track_live_video
from app.stream.live_video import LiveVideo
from app.stream.monitor import NO_FACE, FaceMonitor
from app.stream.protocol import ConfigMessage
from app.stream.recording import StreamLimits, StreamRecording
from tests.conftest import MODEL_STORE
from tests.media import face_frames

FEATURES = FeatureSpec()
RATE = FEATURES.visual.rate_hz
LIMITS = StreamLimits(
    max_seconds=3600,
    max_frame_bytes=1 << 20,
    max_fps=120,
    max_file_bytes=1 << 30,
    max_transcript_bytes=1 << 20,
    max_frame_pixels=1 << 24,
    idle_timeout_s=30,
    max_ahead_s=10.0,
)


def _jpeg(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


def _coded(k: int) -> bytes:
    """A flat picture whose colour says ``k`` (red and green steps survive JPEG)."""
    return _jpeg(np.full((48, 64, 3), (10 + 10 * (k % 24), 10 + 10 * (k // 24), 128), np.uint8))


def _code(rgb: np.ndarray) -> int:
    red, green = float(rgb[..., 0].mean()), float(rgb[..., 1].mean())
    return round((red - 10) / 10) + 24 * round((green - 10) / 10)


def _record(folder: Path, times: list[float], pictures: list[bytes]) -> tuple[Path, list[float]]:
    """The pictures as a session records them; the video file and the times it holds."""
    recording = StreamRecording(folder, ConfigMessage(type="config", video={}), LIMITS)
    recorded = [recording.add_video(t, p) for t, p in zip(times, pictures, strict=True)]
    recording.close()
    return folder / "stream-video.mkv", recorded


def test_each_tick_gets_the_picture_the_recorded_files_sampler_gives_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    # a camera's irregular clock: 4 to 30 pictures a second, not starting at 0
    times = list(0.37 + np.cumsum(rng.uniform(1 / 30, 1 / 4, size=150)))
    pictures = [_coded(k) for k in range(len(times))]
    video, recorded = _record(tmp_path, times, pictures)
    live = LiveVideo(RATE, part_s=3600)  # no part is due: every decided tick waits
    for time_s, picture in zip(recorded, pictures, strict=True):
        live.add(time_s, picture)
    first_tick, decided, resume = live.next_part()
    assert (first_tick, resume) == (0, None)
    by_identity = {id(p): k for k, p in enumerate(pictures)}
    live_codes = [by_identity[id(p)] for p in decided]
    sampled = [_code(rgb) for rgb in VideoSampler(video, RATE) if rgb is not None]
    # the ticks after the last picture are decided only at the end (the final answer's part)
    assert len(decided) >= len(sampled) - 3
    assert live_codes == sampled[: len(decided)]
    assert len(set(live_codes)) < len(pictures)  # some pictures owned no tick, some several


def test_parts_hand_out_every_tick_once_in_order() -> None:
    live = LiveVideo(10.0, part_s=1.0)
    pictures = [b"picture %d" % k for k in range(35)]
    parts = []
    for k, picture in enumerate(pictures):
        live.add(k / 10, picture)
        if live.ready():
            parts.append(live.next_part())
    assert [first for first, _, _ in parts] == [0, 10, 20]
    assert [pictures for _, pictures, _ in parts] == [
        tuple(pictures[:10]),
        tuple(pictures[10:20]),
        tuple(pictures[20:30]),
    ]
    assert not live.ready() and live.ready(now=True)  # ticks 30-33 wait for the next part
    assert live.decided_ticks == 34


def test_pictures_waiting_for_a_worker_are_capped() -> None:
    live = LiveVideo(10.0, part_s=3600, max_waiting_bytes=1000)
    for k in range(12):
        live.add(k / 10, bytes(100))
    assert live.stopped is not None and "fell behind" in live.stopped
    assert not live.ready(now=True) and live.next_part()[1] == ()


def test_no_face_for_ten_seconds_is_warned_about_once_per_episode() -> None:
    monitor = FaceMonitor(10.0)
    assert monitor.feed([True] * 50 + [False] * 99) == []
    assert monitor.feed([False]) == [NO_FACE]
    assert monitor.feed([False] * 300) == []
    assert monitor.feed([True] + [False] * 100) == [NO_FACE]  # a new episode after the face came back


@pytest.fixture(scope="module")
def face_models() -> FaceModels:
    return FaceModels(MODEL_STORE)


def test_tracked_parts_join_to_the_one_pass_rows_of_the_recorded_video(face_models: FaceModels, tmp_path: Path) -> None:
    pictures = [_jpeg(rgb) for rgb in face_frames(250, (320, 240), "pan")]
    video, recorded = _record(tmp_path, [k / 10 for k in range(len(pictures))], pictures)
    live = LiveVideo(RATE)
    for time_s, picture in zip(recorded, pictures, strict=True):
        live.add(time_s, picture)
        if live.ready():
            live.tracked(track_live_video(LiveVideoJob(FEATURES, *live.next_part()), face_models))
    assert len(live.segments) == 24 and live.tracked_s == 24.0  # 1-s parts; the last second waits
    extractor = VisualExtractor(face_models, FEATURES.visual)
    joined = extractor.join(live.segments, live.tracked_s)
    one = extractor.extract(video)
    ticks = len(joined.valid)
    assert ticks == 240 and joined.valid.all() and (one.valid[:ticks] == joined.valid).all()
    # the same JPEGs through the same decoder, and each part resumes the tracker where the last
    # one left it: the one pass over the recorded file, row for row
    assert np.array_equal(joined.frames, one.frames[:ticks])
    assert np.array_equal(joined.landmarks_px, one.landmarks_px[:ticks], equal_nan=True)
    assert joined.census.faces_seen == one.census.faces_seen[: len(joined.census.faces_seen)]
    assert joined.quality["identity_switches"] == one.quality["identity_switches"] == 0


def test_the_final_answer_tracks_only_the_rest_and_gets_the_one_pass(face_models: FaceModels, tmp_path: Path) -> None:
    pictures = [_jpeg(rgb) for rgb in face_frames(200, (320, 240), "rotate")]
    video, recorded = _record(tmp_path, [k / 10 for k in range(len(pictures))], pictures)
    live = LiveVideo(RATE)
    for time_s, picture in zip(recorded[:130], pictures[:130], strict=True):  # the call ends later
        live.add(time_s, picture)
        if live.ready():
            live.tracked(track_live_video(LiveVideoJob(FEATURES, *live.next_part()), face_models))
    assert live.tracked_s == 12.0
    extractor = VisualExtractor(face_models, FEATURES.visual)
    final = extractor.extract_rest(video, live.segments)
    one = extractor.extract(video)
    assert np.array_equal(final.frames, one.frames) and np.array_equal(final.valid, one.valid)
    assert final.duration_s == one.duration_s and final.quality == one.quality
    assert final.census == one.census
