"""One video analysed in parallel segments (issue 17, step 3): the sampler's segments are the
whole video's ticks, the joined rows are the one-pass rows (a fresh detection at the cut is
the only difference), a change of person at the cut is still found, and short videos or
videos without a stated duration are not split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.contract import VisualSpec
from app.features.visual.models import FaceModels
from app.features.visual.sampling import VideoSampler, stated_ticks
from app.features.visual.tracking import MIN_SPLIT_S, VisualExtractor
from tests.conftest import MODEL_STORE
from tests.media import face_frames, write_media, write_video

SPEC = VisualSpec()
FPS = 10  # the spec's rate: tick k is frame k
SIZE = (320, 240)


@pytest.fixture(scope="module")
def extractors() -> tuple[VisualExtractor, VisualExtractor]:
    # two sets of sessions: an interpreter serves one thread at a time
    return VisualExtractor(FaceModels(MODEL_STORE), SPEC), VisualExtractor(FaceModels(MODEL_STORE), SPEC)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frames = round(2.5 * MIN_SPLIT_S * FPS)  # long enough for two segments
    return write_video(tmp_path_factory.mktemp("split") / "pan.mp4", face_frames(frames, SIZE, "pan"), FPS)


def test_segments_of_the_sampler_are_the_whole_videos_ticks(long_clip: Path) -> None:
    whole = VideoSampler(long_clip, SPEC.rate_hz)
    everything = list(whole)
    total = stated_ticks(long_clip, SPEC.rate_hz)
    assert total == len(everything) == whole.ticks
    cut = total // 3
    first, last = (
        VideoSampler(long_clip, SPEC.rate_hz, end_tick=cut),
        VideoSampler(long_clip, SPEC.rate_hz, first_tick=cut),
    )
    pieces = [*first, *last]
    assert len(pieces) == len(everything)
    assert all(np.array_equal(a, b) for a, b in zip(pieces, everything, strict=True))
    assert last.duration_s == whole.duration_s and last.ticks == whole.ticks


@pytest.mark.parametrize(("suffix", "codec"), [(".mp4", "libx264"), (".webm", "libvpx-vp9")])
def test_a_later_segment_seeks_to_a_keyframe_and_samples_the_same_pictures(
    tmp_path: Path, suffix: str, codec: str
) -> None:
    fps = 30  # a camera's rate: several decoded frames per tick, ticks between frames
    clip = write_media(
        tmp_path / f"gop{suffix}",
        face_frames(20 * fps, SIZE, "pan"),
        fps,
        [],
        video_codec=codec,
        video_options={"g": str(2 * fps)},  # a keyframe every 2 s
    )
    whole = VideoSampler(clip, SPEC.rate_hz)
    everything = list(whole)
    for cut in (1, 75, 101, len(everything) - 1):
        later = VideoSampler(clip, SPEC.rate_hz, first_tick=cut)
        pieces = list(later)
        assert len(pieces) == len(everything) - cut
        assert all(np.array_equal(a, b) for a, b in zip(pieces, everything[cut:], strict=True))
        assert later.ticks == whole.ticks and later.duration_s == whole.duration_s
        if cut >= 2 * SPEC.rate_hz:
            # it began at the last keyframe before its first tick, not at the start
            assert later.seeked_to_s is not None
            assert cut / SPEC.rate_hz - 2.0 - 0.2 <= later.seeked_to_s <= cut / SPEC.rate_hz
            assert later.decoded_frames < whole.decoded_frames - (cut / SPEC.rate_hz - 2.2) * fps
    assert whole.seeked_to_s is None


def test_a_split_extraction_joins_to_the_one_pass_rows(
    extractors: tuple[VisualExtractor, VisualExtractor], long_clip: Path
) -> None:
    main, partner = extractors
    one = main.extract(long_clip)
    two = main.extract(long_clip, partners=[partner])
    assert one.quality["segments"] == 1 and two.quality["segments"] == 2
    assert two.frames.shape == one.frames.shape and two.duration_s == one.duration_s
    assert (two.valid == one.valid).all() and two.valid.all()
    cut = len(one.valid) // 2
    difference = np.abs(two.frames - one.frames).max(axis=1)
    # the first segment is the one pass, row for row; after the cut the second segment's fresh
    # detection starts the tracker from another crop, and tracking carries that small offset on
    assert difference[:cut].max() == 0.0
    assert difference[cut:].max() <= 0.05 and float(np.median(difference[cut:])) <= 0.01
    assert two.census.faces_seen == one.census.faces_seen
    assert two.quality["redetections"] == one.quality["redetections"]
    assert two.quality["identity_switches"] == one.quality["identity_switches"] == 0


def test_a_change_of_person_at_the_cut_is_still_found(
    extractors: tuple[VisualExtractor, VisualExtractor], tmp_path: Path
) -> None:
    half = round(MIN_SPLIT_S * FPS)
    frames = [*face_frames(half, SIZE, "pan"), *face_frames(half, SIZE, "pan", seed=3, person="hopper")]
    main, partner = extractors
    result = main.extract(write_video(tmp_path / "switch.mp4", frames, FPS), partners=[partner])
    assert result.quality["segments"] == 2
    assert result.quality["identity_switches"] == 1
    assert result.census.identity_switches_s[0] == pytest.approx(half / FPS, abs=1.0)


def test_short_videos_and_videos_without_a_stated_duration_are_not_split(
    extractors: tuple[VisualExtractor, VisualExtractor], tmp_path: Path
) -> None:
    main, partner = extractors
    short = write_video(tmp_path / "short.mp4", face_frames(round(1.5 * MIN_SPLIT_S * FPS), SIZE, "pan"), FPS)
    assert main.extract(short, partners=[partner]).quality["segments"] == 1
    # MPEG-TS has no index: its duration comes from the decoded frames, too late to cut it
    frames = face_frames(round(2.5 * MIN_SPLIT_S * FPS), SIZE, "pan")
    ts = write_media(tmp_path / "clip.ts", frames, FPS, [], video_codec="libx264", container_format="mpegts")
    assert stated_ticks(ts, SPEC.rate_hz) is None
    assert main.extract(ts, partners=[partner]).quality["segments"] == 1
