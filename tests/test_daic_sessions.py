"""Corpus sessions -> serve-time feature tracks, on a fake corpus written in the official formats."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from app.contract import ACTION_UNITS, FeatureSpec, VisualSpec
from app.features import audio as audio_features
from app.features.text import TextEncoder
from app.features.visual.space import euler_angles, normalise_face
from tests import fake_daic
from training.daic.mapping import serve_face_model
from training.daic.sessions import (
    CORPUS_DAIC_WOZ,
    CORPUS_EDAIC,
    CorpusError,
    detect_corpus,
    load_corpus,
)

ROOT = Path(__file__).resolve().parents[1]
ENCODER_DIR = ROOT / "model_store" / "text_encoder" / "1"
FEATURES = FeatureSpec()
LANDMARK_FREE = FeatureSpec(visual=VisualSpec(profile="gaze_pose_v1"))


@pytest.fixture(scope="module")
def daic_root(tmp_path_factory) -> Path:
    return fake_daic.write_daic_woz_corpus(tmp_path_factory.mktemp("daic-woz"))


@pytest.fixture(scope="module")
def edaic_root(tmp_path_factory) -> Path:
    return fake_daic.write_edaic_corpus(tmp_path_factory.mktemp("e-daic"))


@pytest.fixture(scope="module")
def daic(daic_root: Path, tmp_path_factory):
    return load_corpus(daic_root, FEATURES, ENCODER_DIR, tmp_path_factory.mktemp("cache"), workers=1)


@pytest.fixture(scope="module")
def edaic(edaic_root: Path, tmp_path_factory):
    return load_corpus(edaic_root, LANDMARK_FREE, ENCODER_DIR, tmp_path_factory.mktemp("cache"), workers=1)


def _session(corpus, participant: int):
    (session,) = [s for s in corpus.sessions if s.participant_id == participant]
    return session


def test_the_corpus_kind_is_told_from_the_layout(daic_root: Path, edaic_root: Path, tmp_path: Path) -> None:
    assert detect_corpus(daic_root) == CORPUS_DAIC_WOZ
    assert detect_corpus(edaic_root) == CORPUS_EDAIC
    with pytest.raises(CorpusError, match="neither DAIC-WOZ"):
        detect_corpus(tmp_path)


def test_excluded_and_missing_sessions_are_left_out_with_the_reason(daic) -> None:
    assert daic.kind == CORPUS_DAIC_WOZ
    assert "excluded" in daic.skipped[342]
    assert "not found" in daic.skipped[305]
    expected = {s.participant_id for s in fake_daic.DAIC_WOZ_SESSIONS if s.write_folder}
    assert {s.participant_id for s in daic.sessions} == expected


def test_labels_keep_items_where_the_split_has_them(daic, edaic) -> None:
    assert _session(daic, 302).items.tolist() == list(fake_daic.items_for(14))
    test = _session(daic, 308)
    assert test.split == "test" and test.items is None and test.total == 11
    assert _session(edaic, 604).items is None and _session(edaic, 604).total == 6


def test_landmarks_are_the_written_points_through_the_serve_time_normalisation(daic) -> None:
    session = _session(daic, 301)
    move = fake_daic.motion(len(session.visual.frames) / FEATURES.visual.rate_hz, 301)
    names = FEATURES.visual.channel_names
    for tick in (0, 7, 33, 150):
        row = 3 * tick  # 30 fps rows, 10 Hz ticks
        expected, _, roll = normalise_face(move.points2d[row], np.zeros((2, 2)))
        frame = session.visual.frames[tick]
        np.testing.assert_allclose(frame[: 68 * 2], expected.reshape(-1), atol=2e-4)
        assert frame[names.index("roll")] == pytest.approx(roll, abs=1e-3)
        assert frame[names.index("valid")] == 1.0


def test_yaw_and_pitch_are_the_pose_file_in_the_served_convention(daic) -> None:
    session = _session(daic, 302)
    move = fake_daic.motion(len(session.visual.frames) / FEATURES.visual.rate_hz, 302)
    names = FEATURES.visual.channel_names
    offset = serve_face_model().pitch_offset_rad
    for tick in (1, 40, 120):
        yaw, pitch, _ = euler_angles(Rotation.from_euler("XYZ", move.euler[3 * tick]).as_matrix())
        frame = session.visual.frames[tick]
        assert frame[names.index("yaw")] == pytest.approx(yaw, abs=1e-3)
        assert frame[names.index("pitch")] == pytest.approx(pitch + offset, abs=1e-3)


def test_the_gaze_proxy_follows_the_written_gaze(daic) -> None:
    session = _session(daic, 303)
    move = fake_daic.motion(len(session.visual.frames) / FEATURES.visual.rate_hz, 303)
    names = FEATURES.visual.channel_names
    valid = session.visual.valid
    rows = 3 * np.flatnonzero(valid)
    for channel, axis in (("iris1_dx", 0), ("iris2_dx", 0), ("iris1_dy", 1)):
        proxy = session.visual.frames[valid, names.index(channel)]
        written = move.head_gaze[rows, 0, axis]
        assert np.corrcoef(proxy, written)[0, 1] > 0.95


def test_failed_tracker_frames_are_invalid_and_zero(daic) -> None:
    session = _session(daic, 306)
    failed_ticks = np.arange(20, 25)  # rows 60-74 failed
    assert not session.visual.valid[failed_ticks].any()
    assert np.all(session.visual.frames[failed_ticks] == 0)
    assert session.visual.confidence[failed_ticks].max() == 0
    assert session.visual.valid[:20].all() and session.visual.valid[25:40].all()


def _participant_seconds(root: Path, participant: int, skip_scrubbed: bool) -> float:
    talk = fake_daic.interview(participant)
    rows = talk.participant_rows()
    return sum(b - a for k, (a, b, _, _) in enumerate(rows) if not (skip_scrubbed and k == fake_daic.SCRUBBED_ANSWER))


def test_audio_is_the_participants_turns_without_the_scrubbed_one(daic, daic_root: Path) -> None:
    session = _session(daic, 307)
    seconds = _participant_seconds(daic_root, 307, skip_scrubbed=True)
    expected_frames = 1 + round(seconds * FEATURES.audio.sample_rate) // FEATURES.audio.hop_length
    assert abs(session.audio.frames.shape[0] - expected_frames) <= 2
    # and exactly what the serve-time path makes of those turns
    talk = fake_daic.interview(307)
    turns = [(a, b) for k, (a, b, _, _) in enumerate(talk.participant_rows()) if k != fake_daic.SCRUBBED_ANSWER]
    signal = audio_features.decode_audio(daic_root / "307_P" / "307_AUDIO.wav", FEATURES.audio.sample_rate)
    served = audio_features.audio_features(
        audio_features.keep_segments(signal, FEATURES.audio.sample_rate, turns), FEATURES.audio
    )
    np.testing.assert_allclose(session.audio.frames, served.frames, atol=2e-3)  # cached as float16
    assert session.audio.speech.mean() > 0.5


def test_text_is_the_participants_utterances_on_the_session_clock(daic) -> None:
    session = _session(daic, 301)
    rows = fake_daic.interview(301).participant_rows()
    np.testing.assert_allclose(session.text.start_s, [a for a, _, _, _ in rows])
    cleaned = [text.replace("scrubbed_entry ", "") for _, _, _, text in rows]
    expected = TextEncoder(ENCODER_DIR).embed(cleaned)
    np.testing.assert_allclose(session.text.embeddings, expected, atol=2e-3)  # cached as float16
    assert session.text.word_counts.tolist() == [len(t.split()) for t in cleaned]


def test_edaic_frames_have_no_landmarks_and_carry_pose_and_gaze(edaic) -> None:
    session = _session(edaic, 601)
    names = LANDMARK_FREE.visual.channel_names
    assert session.visual.frames.shape[1] == len(names) == 8
    move = fake_daic.motion(len(session.visual.frames) / LANDMARK_FREE.visual.rate_hz, 601)
    valid = session.visual.valid
    ticks = np.flatnonzero(valid)
    yaw = session.visual.frames[valid, names.index("yaw")]
    expected_yaw = [euler_angles(Rotation.from_euler("XYZ", move.euler[3 * t]).as_matrix())[0] for t in ticks]
    np.testing.assert_allclose(yaw, expected_yaw, atol=1e-3)
    roll = session.visual.frames[valid, names.index("roll")]
    assert np.corrcoef(roll, move.euler[3 * ticks, 2])[0, 1] > 0.95  # the eye line follows Rz (yaw mixes in)
    # world gaze was written; the proxy follows the head-space gaze it came from
    proxy = session.visual.frames[valid, names.index("iris1_dx")]
    assert np.corrcoef(proxy, move.head_gaze[3 * ticks, 0, 0])[0, 1] > 0.95


def test_edaic_audio_and_text_come_from_the_asr_segments(edaic, edaic_root: Path) -> None:
    session = _session(edaic, 600)
    assert session.text.embeddings.shape[0] == len(fake_daic.ANSWERS) - 1  # ASR has no scrubbed turn
    seconds = _participant_seconds(edaic_root, 600, skip_scrubbed=True)
    expected_frames = 1 + round(seconds * FEATURES.audio.sample_rate) // FEATURES.audio.hop_length
    assert abs(session.audio.frames.shape[0] - expected_frames) <= 2


def test_edaic_action_unit_profile_reads_the_csv_values(edaic_root: Path, tmp_path: Path) -> None:
    spec = FeatureSpec(visual=VisualSpec(profile="gaze_pose_aus_v1"))
    corpus = load_corpus(edaic_root, spec, ENCODER_DIR, tmp_path, workers=1)
    session = _session(corpus, 605)
    names = spec.visual.channel_names
    rng = np.random.default_rng(605)  # the writer's AU draw, column by column
    n = len(fake_daic.motion(len(fake_daic.interview(605).signal) / fake_daic.SAMPLE_RATE, 605).euler)
    written = {name: rng.uniform(0, 2, n) for name in ACTION_UNITS}
    valid = session.visual.valid
    ticks = np.flatnonzero(valid)
    np.testing.assert_allclose(
        session.visual.frames[valid, names.index("AU12_r")], written["AU12_r"][3 * ticks], atol=1e-3
    )


def test_edaic_cannot_fill_the_landmark_profile(edaic_root: Path, tmp_path: Path) -> None:
    corpus = load_corpus(edaic_root, FEATURES, ENCODER_DIR, tmp_path, workers=1)
    assert not corpus.sessions
    assert all("no facial landmarks" in reason and "gaze_pose_v1" in reason for reason in corpus.skipped.values())


def test_the_cache_is_reused_and_a_changed_session_is_rebuilt(daic_root: Path, tmp_path: Path) -> None:
    load_corpus(daic_root, FEATURES, ENCODER_DIR, tmp_path, workers=1)
    cached = {p.name: p.stat().st_mtime_ns for p in tmp_path.rglob("*.npz")}
    load_corpus(daic_root, FEATURES, ENCODER_DIR, tmp_path, workers=1)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.rglob("*.npz")} == cached
    transcript = daic_root / "301_P" / "301_TRANSCRIPT.csv"
    stat = transcript.stat()
    os.utime(transcript, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    load_corpus(daic_root, FEATURES, ENCODER_DIR, tmp_path, workers=1)
    names = {p.name for p in tmp_path.rglob("*.npz")}
    assert len(names - set(cached)) == 1 and next(iter(names - set(cached))).startswith("301-")


def test_items_that_contradict_the_total_are_dropped_with_a_note(tmp_path: Path) -> None:
    sessions = (
        fake_daic.FakeSession(311, "train", (3, 3, 3, 3, 0, 0, 0, 0), 10),  # items sum to 12
        fake_daic.FakeSession(312, "dev", fake_daic.items_for(6), 6),
    )
    root = fake_daic.write_daic_woz_corpus(tmp_path / "corpus", sessions)
    corpus = load_corpus(root, FEATURES, ENCODER_DIR, tmp_path / "cache", workers=1)
    contradicted = _session(corpus, 311)
    assert contradicted.items is None and contradicted.total == 10
    assert corpus.label_notes == {311: "items sum to 12 but PHQ8_Score is 10; trained on the score only"}
    assert _session(corpus, 312).items is not None


def test_a_transcript_running_past_its_audio_leaves_the_session_out(tmp_path: Path) -> None:
    sessions = (fake_daic.FakeSession(321, "train", fake_daic.items_for(4), 4),)
    root = fake_daic.write_daic_woz_corpus(tmp_path / "corpus", sessions)
    transcript = root / "321_P" / "321_TRANSCRIPT.csv"
    lines = transcript.read_text().splitlines()
    shifted = [lines[0]]
    for line in lines[1:]:  # the transcript of a recording that started 30 s earlier
        start, stop, rest = line.split("\t", 2)
        shifted.append(f"{float(start) + 30:.3f}\t{float(stop) + 30:.3f}\t{rest}")
    transcript.write_text("\n".join(shifted) + "\n")
    corpus = load_corpus(root, FEATURES, ENCODER_DIR, tmp_path / "cache", workers=1)
    assert not corpus.sessions
    assert "past the end of the" in corpus.skipped[321] and "out of sync" in corpus.skipped[321]
