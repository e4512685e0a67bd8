"""The serve-time face extractor on generated media: geometry, tracking, sampling, quality."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.contract import VisualSpec
from app.features.visual.detection import ANCHORS, Detection, decode_detections, primary_face, weighted_nms
from app.features.visual.geometry import Roi, crop, roi_from_detection, to_image
from app.features.visual.ibug68 import EYES, MOUTH
from app.features.visual.identity import SAME_PERSON, Appearance, appearance, comparable, similarity
from app.features.visual.models import FaceModels
from app.features.visual.pose import head_pose, similarity_fit
from app.features.visual.sampling import VideoSampler, quarter_turns, upright
from app.features.visual.space import euler_angles, rotation_matrix
from app.features.visual.tracking import NOTE_CLOSE_CALL, VisualExtractor, identity_note, several_faces_note
from tests.conftest import MODEL_STORE
from tests.media import FACE_CROP, PEOPLE, _pose, face_frames, head_image, write_video
from training.synth.face import load_canonical_face

SPEC = VisualSpec()
YAW, PITCH, ROLL = (SPEC.channel_names.index(name) for name in ("yaw", "pitch", "roll"))
SIZE = (320, 240)
FPS = 10  # as the spec's rate: tick k is frame k
N = 40
NOSE_TIP = 30

MODELS_BUILT = all(
    (MODEL_STORE / name / "1" / "model.onnx").is_file()
    for name in ("face_detector", "face_landmarks", "iris_landmarks")
)
needs_models = pytest.mark.skipif(
    not MODELS_BUILT, reason="face models not built (python -m training.build_face_models)"
)


@pytest.fixture(scope="module")
def extractor() -> VisualExtractor:
    return VisualExtractor(FaceModels(MODEL_STORE), SPEC)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("visual")
    return {
        "pan": write_video(folder / "pan.mp4", face_frames(N, SIZE, "pan"), FPS),
        "zoom": write_video(folder / "zoom.webm", face_frames(N, SIZE, "zoom", seed=1), FPS),
        "rotate": write_video(folder / "rotate.mp4", face_frames(N, SIZE, "rotate", seed=2), FPS),
    }


@pytest.fixture(scope="module")
def results(extractor: VisualExtractor, clips: dict[str, Path]) -> dict:
    return {name: extractor.extract(path) for name, path in clips.items()}


def _expected_pose(index: int, motion: str) -> tuple[float, float, float, float]:
    return _pose(motion, index / (N - 1), SIZE)


# ------------------------------------------------------------------------------ pure geometry


def test_anchors_follow_the_two_grids() -> None:
    assert ANCHORS.shape == (896, 2)
    np.testing.assert_allclose(ANCHORS[:2], [[0.5 / 16, 0.5 / 16]] * 2)  # stride 8: 16x16 cells, 2 each
    np.testing.assert_allclose(ANCHORS[2], [1.5 / 16, 0.5 / 16])
    np.testing.assert_allclose(ANCHORS[512:518], [[0.5 / 8, 0.5 / 8]] * 6)  # stride 16: 8x8 cells, 6 each
    np.testing.assert_allclose(ANCHORS[-1], [7.5 / 8, 7.5 / 8])


def test_decode_places_boxes_and_keypoints_relative_to_their_anchor() -> None:
    raw = np.zeros((896, 16))
    logits = np.full(896, -10.0)
    anchor = 600
    raw[anchor, :4] = [6.4, -12.8, 32.0, 25.6]  # centre shift (0.05, -0.1), size (0.25, 0.2)
    raw[anchor, 4:6] = [12.8, 0.0]  # first keypoint 0.1 right of the anchor
    logits[anchor] = 2.0
    boxes, keypoints, scores = decode_detections(raw, logits)
    assert len(scores) == 1 and scores[0] == pytest.approx(1.0 / (1.0 + math.exp(-2.0)))
    centre = ANCHORS[anchor] + [0.05, -0.1]
    half = np.array([0.125, 0.1])
    np.testing.assert_allclose(boxes[0], np.concatenate([centre - half, centre + half]))
    np.testing.assert_allclose(keypoints[0, 0], ANCHORS[anchor] + [0.1, 0.0])
    np.testing.assert_allclose(keypoints[0, 1], ANCHORS[anchor])


def test_weighted_nms_merges_overlaps_and_keeps_separate_faces() -> None:
    boxes = np.array([[0.1, 0.1, 0.3, 0.3], [0.12, 0.1, 0.32, 0.3], [0.6, 0.6, 0.8, 0.8]])
    keypoints = np.zeros((3, 6, 2))
    keypoints[:, 0] = [[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]
    scores = np.array([0.9, 0.6, 0.7])
    merged, merged_kp, merged_scores = weighted_nms(boxes, keypoints, scores)
    assert len(merged) == 2
    np.testing.assert_allclose(merged_scores, [0.9, 0.7])
    np.testing.assert_allclose(merged[0], (0.9 * boxes[0] + 0.6 * boxes[1]) / 1.5)
    np.testing.assert_allclose(merged_kp[0, 0], [0.4, 0.4])
    np.testing.assert_allclose(merged[1], boxes[2])


def test_primary_face_prefers_the_large_central_one() -> None:
    def det(x0: float, y0: float, side: float) -> Detection:
        return Detection(np.array([x0, y0, x0 + side, y0 + side]), np.zeros((6, 2)), 0.9)

    small_central, large_off = det(300, 220, 40), det(40, 40, 160)
    assert primary_face([small_central, large_off], (640, 480)) == 1
    assert primary_face([det(40, 40, 80), det(280, 200, 80)], (640, 480)) == 1  # same size: the central one


def test_crop_and_its_affine_agree_also_when_rotated_and_flipped() -> None:
    image = np.zeros((120, 160, 3), dtype=np.uint8)
    image[60:64, 100:104] = 255  # a bright square centred on (102, 62)
    for flip in (False, True):
        roi = Roi(centre=np.array([90.0, 55.0]), side=50.0, angle=math.radians(25.0))
        patch, affine = crop(image, roi, 64, flip=flip)
        rows, cols = np.nonzero(patch[..., 0] > 0.5)
        found = to_image(np.array([[cols.mean() + 0.5, rows.mean() + 0.5]]), affine)[0]
        np.testing.assert_allclose(found, [102.0, 62.0], atol=0.5)


def test_similarity_fit_recovers_scale_rotation_and_euler_angles() -> None:
    rng = np.random.default_rng(0)
    source = rng.normal(size=(50, 3))
    angles = (0.3, -0.2, 0.15)
    target = 2.5 * source @ rotation_matrix(*angles).T + [1.0, -2.0, 3.0]
    scale, rotation, shift = similarity_fit(source, target)
    assert scale == pytest.approx(2.5)
    np.testing.assert_allclose(euler_angles(rotation), angles, atol=1e-9)
    np.testing.assert_allclose(shift, [1.0, -2.0, 3.0], atol=1e-9)


def test_head_pose_uses_the_synthetic_generators_convention() -> None:
    # the generator turns the canonical face by rotation_matrix(yaw, pitch, roll) and keeps
    # x, y as the image; a mesh posed that way must read back the same angles
    canonical = load_canonical_face()
    mesh = np.asarray(
        json.loads((MODEL_STORE / "face_geometry" / "1" / "canonical_face.json").read_text())["mesh_points"]
    )
    yaw, pitch = math.radians(20.0), math.radians(-10.0)
    posed = 30.0 * mesh @ rotation_matrix(yaw, pitch, 0.05).T + [320.0, 240.0, 0.0]
    np.testing.assert_allclose(head_pose(posed, mesh), (yaw, pitch, 0.05), atol=1e-9)
    # positive yaw turns the nose tip (closest to the camera) toward image left
    nose = canonical.points[NOSE_TIP] @ rotation_matrix(yaw, 0.0, 0.0).T
    assert nose[0] < canonical.points[NOSE_TIP, 0]


# ------------------------------------------------------------------------------ sampling


def test_sampler_takes_the_frame_nearest_each_tick(tmp_path: Path) -> None:
    fps, n = 25, 60  # 2.4 s; frame i shows grey level 4 * i
    frames = [np.full((64, 64, 3), 4 * i, dtype=np.uint8) for i in range(n)]
    path = write_video(tmp_path / "ramp.mp4", frames, fps)
    sampler = VideoSampler(path, SPEC.rate_hz)
    picked = [round(float(f.mean()) / 4.0) for f in sampler]
    assert sampler.ticks == len(picked) == round(n / fps * SPEC.rate_hz)
    assert sampler.duration_s == pytest.approx(n / fps, abs=1.0 / fps)
    for tick, index in enumerate(picked):
        assert abs(index - tick * fps / SPEC.rate_hz) <= 0.5 + 1e-9, (tick, index)

    short = VideoSampler(path, SPEC.rate_hz, max_seconds=1.0)
    assert len(list(short)) == round(1.0 * SPEC.rate_hz) and short.cut


def test_quarter_turns_follow_ffmpegs_counter_clockwise_convention() -> None:
    angles = (0, 90, -90, 180, -180, 270, 89.6, -44.0, math.nan)
    assert [quarter_turns(d) for d in angles] == [0, 1, 3, 2, 2, 3, 1, 0, 0]
    picture = np.zeros((4, 6, 3), np.uint8)
    picture[0, 0] = 255  # a marker in the top left corner
    turned = upright(picture, 90)  # counter-clockwise: the top left corner goes to the bottom left
    assert turned.shape == (6, 4, 3) and turned[-1, 0, 0] == 255 and turned.flags.c_contiguous
    assert upright(picture, -90)[0, -1, 0] == 255  # clockwise: to the top right
    assert upright(picture, 180)[-1, -1, 0] == 255
    assert upright(picture, 0) is picture


# how a portrait picture is stored sideways, and the display rotation that shows it upright again
SIDEWAYS = {
    "minus90.mp4": (1, {"display_rotation": -90}),  # stored turned counter-clockwise, shown turned clockwise
    "plus90.webm": (-1, {"display_rotation": 90}),
    "upside_down.mp4": (2, {"display_rotation": 180}),
    "tag90.mkv": (1, {"rotate_tag": "90"}),  # a legacy rotate tag counts clockwise degrees
}
PORTRAIT = (240, 320)  # width, height of the upright picture, as a phone held upright films


@pytest.mark.parametrize("name", sorted(SIDEWAYS))
def test_sampler_turns_the_picture_as_the_display_matrix_says(tmp_path: Path, name: str) -> None:
    turns, flag = SIDEWAYS[name]
    pictures = list(face_frames(8, PORTRAIT, "pan"))
    stored = write_video(tmp_path / name, [np.rot90(p, turns) for p in pictures], FPS, **flag)
    reference = write_video(tmp_path / "upright.mp4", pictures, FPS)
    sampler = VideoSampler(stored, SPEC.rate_hz)
    shown, seen = list(sampler), list(VideoSampler(reference, SPEC.rate_hz))
    assert sampler.rotation_deg == {1: -90, -1: 90, 2: 180}[turns]
    assert all(f.shape == (PORTRAIT[1], PORTRAIT[0], 3) for f in shown)
    # the same picture up to the codecs' loss (a wrong turn differs by tens of grey levels)
    differences = [np.abs(a.astype(np.int16) - b.astype(np.int16)).mean() for a, b in zip(shown, seen, strict=True)]
    assert max(differences) < 3.0, differences
    # without the flag the same stored picture stays as stored
    plain = write_video(tmp_path / ("plain" + Path(name).suffix), [np.rot90(p, turns) for p in pictures], FPS)
    unflagged = VideoSampler(plain, SPEC.rate_hz)
    assert all(f.shape == np.rot90(pictures[0], turns).shape for f in unflagged) and unflagged.rotation_deg == 0


# ------------------------------------------------------------------------------ the models on video


@needs_models
def test_rows_match_duration_and_layout(results: dict, clips: dict[str, Path]) -> None:
    for name, result in results.items():
        assert result.duration_s == pytest.approx(N / FPS, abs=1.0 / FPS), name
        assert result.frames.shape == (round(result.duration_s * SPEC.rate_hz), SPEC.dim), name
        assert result.frames.dtype == np.float32 and result.valid.shape == result.confidence.shape
        assert result.valid.all(), name
        assert (result.confidence > 0.9).all(), name
        np.testing.assert_allclose(result.frames[:, 2 * 36 : 2 * 36 + 2], [[-0.5, 0.0]] * N, atol=1e-5)


@needs_models
def test_landmarks_follow_a_pan(results: dict) -> None:
    result = results["pan"]
    centres = np.array([_expected_pose(i, "pan")[:2] for i in range(N)])
    offsets = result.landmarks_px.mean(axis=1) - centres  # the face's place on the moving head: constant
    assert np.abs(offsets - np.median(offsets, axis=0)).max() < 3.0
    travelled = result.landmarks_px[-1].mean(axis=0) - result.landmarks_px[0].mean(axis=0)
    assert travelled[0] == pytest.approx(0.3 * SIZE[0], abs=3.0)
    assert result.quality["tracking_losses"] == 0 and result.quality["redetections"] == 0


@needs_models
def test_eyes_above_nose_above_mouth(results: dict) -> None:
    points = results["pan"].landmarks_px
    assert (points[:, list(EYES), 1].max(axis=1) < points[:, NOSE_TIP, 1]).all()
    assert (points[:, NOSE_TIP, 1] < points[:, list(MOUTH), 1].min(axis=1)).all()


@needs_models
def test_zoom_scales_the_inter_ocular_distance(results: dict) -> None:
    result = results["zoom"]
    ocular = np.linalg.norm(result.landmarks_px[:, 45] - result.landmarks_px[:, 36], axis=1)
    heights = np.array([_expected_pose(i, "zoom")[2] for i in range(N)])
    np.testing.assert_allclose(ocular / ocular[0], heights / heights[0], rtol=0.05)
    sizes = [results["zoom"].quality["mean_face_size"], results["pan"].quality["mean_face_size"]]
    assert all(0.2 < size < 0.8 for size in sizes)  # the head is 0.6 of the frame, hair included
    assert results["zoom"].quality["tracking_losses"] == 0


@needs_models
def test_in_plane_rotation_shows_up_as_roll(results: dict) -> None:
    result = results["rotate"]
    angles = np.radians([_expected_pose(i, "rotate")[3] for i in range(N)])
    roll = result.frames[:, ROLL].astype(np.float64)
    # skimage's rotation turns +x toward +y (image y down), as the eye-line angle does
    np.testing.assert_allclose(roll - roll[0], angles - angles[0], atol=math.radians(3.0))
    assert result.quality["tracking_losses"] == 0 and result.quality["redetections"] == 0


@needs_models
def test_cut_to_no_face_is_invalid_and_tracking_recovers(extractor: VisualExtractor, tmp_path: Path) -> None:
    frames = [
        *face_frames(20, SIZE, "still"),
        *face_frames(15, SIZE, face=False),
        *face_frames(20, SIZE, "pan", seed=3),
    ]
    result = extractor.extract(write_video(tmp_path / "cut.webm", frames, FPS))
    expected = np.r_[np.ones(20, bool), np.zeros(15, bool), np.ones(20, bool)]
    np.testing.assert_array_equal(result.valid, expected)
    assert not result.frames[~expected].any() and not result.confidence[~expected].any()
    assert (result.frames[expected, -1] == 1.0).all()
    assert result.quality["face_found_ratio"] == pytest.approx(40 / 55)
    assert result.quality["tracking_losses"] == 1 and result.quality["redetections"] == 1
    assert np.isnan(result.landmarks_px[~expected]).all()
    assert result.quality["identity_switches"] == 0  # the same person came back
    assert not any("changed person" in note for note in result.notes)


@needs_models
def test_mirrored_face_mirrors_roll_and_keeps_pose_near_the_2d_fit(extractor: VisualExtractor) -> None:
    from skimage import data

    image = data.astronaut()
    upright, mirrored = extractor.extract_frames([image]), extractor.extract_frames([image[:, ::-1].copy()])
    assert upright.valid.all() and mirrored.valid.all()
    assert abs(upright.frames[0, ROLL]) > math.radians(1.5)  # the astronaut's head is a little tilted
    assert mirrored.frames[0, ROLL] == pytest.approx(-upright.frames[0, ROLL], abs=math.radians(1.5))
    # the 3D mesh fit and a weak-perspective fit of the 68 points (as tests/test_synth_face) agree
    model = load_canonical_face().points
    for result in (upright, mirrored):
        source, target = model - model.mean(axis=0), result.landmarks_px[0] - result.landmarks_px[0].mean(axis=0)
        u, _, vt = np.linalg.svd(np.linalg.lstsq(source, target, rcond=None)[0].T, full_matrices=False)
        rows = u @ vt
        fitted = euler_angles(np.vstack([rows, np.cross(rows[0], rows[1])]))
        assert abs(fitted[0] - result.frames[0, YAW]) < math.radians(5.0)
        assert abs(fitted[1] - result.frames[0, PITCH]) < math.radians(6.0)


@needs_models
def test_mesh_depth_points_away_from_the_camera(extractor: VisualExtractor) -> None:
    from skimage import data

    image = data.astronaut()
    face = extractor.detect(image)[0]
    mesh = extractor.observe(image, roi_from_detection(face)).mesh
    assert mesh[4, 2] < mesh[234, 2] and mesh[4, 2] < mesh[454, 2]  # nose tip nearer than the cheek edges


@needs_models
def test_several_faces_the_largest_central_one_is_analysed(extractor: VisualExtractor) -> None:
    from skimage import data

    head = data.astronaut()[FACE_CROP]  # 170 x 210
    canvas = np.full((300, 400, 3), 120, dtype=np.uint8)
    canvas[52:250, 80:240] = cv2.resize(head, (160, 198), interpolation=cv2.INTER_AREA)  # left of centre
    canvas[5:153, 275:395] = cv2.resize(head, (120, 148), interpolation=cv2.INTER_AREA)  # top right corner
    result = extractor.extract_frames([canvas.copy() for _ in range(3)])
    assert result.valid.all()
    assert result.quality["multiple_faces_frames"] >= 1
    assert several_faces_note(1.0) in result.notes
    assert result.quality["faces_max"] == 2 and result.quality["multiple_faces_share"] == 1.0
    centre = result.landmarks_px.mean(axis=1)
    assert ((centre[:, 0] > 80) & (centre[:, 0] < 240) & (centre[:, 1] > 52) & (centre[:, 1] < 250)).all()


@needs_models
def test_a_rotated_phone_video_gives_the_upright_features_and_a_sideways_one_does_not(
    extractor: VisualExtractor, tmp_path: Path
) -> None:
    pictures = list(face_frames(N, PORTRAIT, "pan"))
    upright_clip = extractor.extract(write_video(tmp_path / "upright.mp4", pictures, FPS))
    sideways = [np.rot90(p, 1) for p in pictures]
    rotated = extractor.extract(write_video(tmp_path / "rotated.mp4", sideways, FPS, display_rotation=-90))
    unflagged = extractor.extract(write_video(tmp_path / "sideways.mp4", sideways, FPS))
    assert upright_clip.valid.all() and rotated.valid.all()
    assert rotated.quality["rotation_deg"] == -90 and upright_clip.quality["rotation_deg"] == 0
    # measured: 0.017 at most (H.264 of the turned picture loses other details); the sideways one: ~pi/2 of roll
    assert np.abs(rotated.frames - upright_clip.frames).max() < 0.05
    assert rotated.quality["mean_face_size"] == pytest.approx(upright_clip.quality["mean_face_size"], abs=0.005)
    assert unflagged.quality["rotation_deg"] == 0
    roll_gap = np.abs(unflagged.frames[unflagged.valid, ROLL] - upright_clip.frames[unflagged.valid, ROLL])
    assert not unflagged.valid.any() or np.median(roll_gap) > math.radians(60)


@needs_models
def test_no_face_at_all(extractor: VisualExtractor) -> None:
    result = extractor.extract_frames(list(face_frames(5, SIZE, face=False)))
    assert not result.valid.any() and not result.frames.any()
    assert result.quality["face_found_ratio"] == 0.0 and result.quality["mean_face_size"] == 0.0
    assert any("no face" in note for note in result.notes)


@needs_models
def test_a_sudden_jump_is_followed_on_the_same_frame(extractor: VisualExtractor) -> None:
    from skimage import data

    head = data.astronaut()[FACE_CROP][:210]

    def placed(x: int) -> np.ndarray:
        canvas = np.full((240, 320, 3), 120, dtype=np.uint8)
        canvas[30:240, x : x + head.shape[1]] = head
        return canvas

    # 70 px is half the tracked crop: the mesh alone would report a fraction of it
    result = extractor.extract_frames([placed(10) for _ in range(3)] + [placed(80) for _ in range(3)])
    centres = result.landmarks_px.mean(axis=1)[:, 0]
    np.testing.assert_allclose(centres[3:] - centres[0], 70.0, atol=3.0)
    assert result.quality["tracking_losses"] == 0


# ------------------------------------------------------------------------------ faces and persons


def _analysed(extractor: VisualExtractor, image: np.ndarray) -> Appearance:
    observation = extractor.observe(image, roi_from_detection(extractor.detect(image)[0]))
    return appearance(image, observation.mesh, observation.yaw, observation.pitch)


@needs_models
def test_the_appearance_descriptor_tells_the_two_test_people_apart(extractor: VisualExtractor) -> None:
    people = {
        person: [
            _analysed(extractor, frame)
            for k, motion in enumerate(("pan", "zoom", "rotate"))
            for frame in itertools.islice(face_frames(10, SIZE, motion, seed=k, person=person), 0, 10, 3)
        ]
        for person in PEOPLE
    }
    same = [similarity(a, b) for views in people.values() for a, b in itertools.combinations(views, 2)]
    other = [similarity(a, b) for a in people["astronaut"] for b in people["hopper"]]
    # measured (the identity module's docstring): same 0.85-1.00, other 0.22-0.40
    assert min(same) > SAME_PERSON + 0.1 and max(other) < SAME_PERSON - 0.15, (min(same), max(other))
    # lighting, blur and a mirrored camera are not another person
    base = next(face_frames(1, SIZE, "still"))
    reference = _analysed(extractor, base)
    for variant in (
        np.clip(255 * (base / 255.0) ** 2, 0, 255).astype(np.uint8),
        (base * 0.4).astype(np.uint8),
        cv2.GaussianBlur(base, (0, 0), 2.0),
        np.ascontiguousarray(base[:, ::-1]),
    ):
        assert similarity(reference, _analysed(extractor, variant)) > SAME_PERSON + 0.2


def test_appearances_at_different_head_poses_are_not_compared() -> None:
    thumb = np.zeros(16 * 16, np.float32)
    front, turned = Appearance(thumb, 0.0, 0.0), Appearance(thumb, math.radians(25), 0.0)
    assert comparable(front, Appearance(thumb, math.radians(10), math.radians(-10)))
    assert not comparable(front, turned) and not comparable(front, Appearance(thumb, 0.0, math.radians(20)))


@needs_models
@pytest.mark.parametrize("gap", [15, 0])
def test_another_person_after_the_face_was_lost_or_at_a_cut_is_an_identity_switch(
    extractor: VisualExtractor, tmp_path: Path, gap: int
) -> None:
    frames = [
        *face_frames(25, SIZE, "still"),
        *face_frames(gap, SIZE, face=False),
        *face_frames(25, SIZE, "pan", seed=3, person="hopper"),
    ]
    result = extractor.extract(write_video(tmp_path / "switch.mp4", frames, FPS))
    assert result.valid.sum() == 50
    assert result.quality["identity_switches"] == 1
    assert result.quality["tracking_losses"] == (1 if gap else 0)  # a hard cut keeps the tracker on a face
    switch_s = result.census.identity_switches_s[0]
    # found at the re-acquisition, or at the next once-a-second census pass after a cut
    assert (25 + gap) / FPS <= switch_s <= (25 + gap) / FPS + 1.0
    assert identity_note([switch_s]) in result.notes
    assert f"at about {switch_s:.0f} s" in identity_note([switch_s])


def test_identity_notes_name_the_first_three_times() -> None:
    assert identity_note([12.0]).startswith("the analysed face changed person at about 12 s;")
    assert "at about 3 s, 12 s and 40 s (and 2 more times)" in identity_note([3.0, 12.0, 40.0, 50.0, 61.0])


def _two_faces(left: str, right: str, left_height: int, right_height: int) -> np.ndarray:
    canvas = np.full((300, 400, 3), 120, dtype=np.uint8)
    for person, height, x0 in ((left, left_height, 20), (right, right_height, 220)):
        head = head_image(person)
        width = round(head.shape[1] * height / head.shape[0])
        y0 = 150 - height // 2
        canvas[y0 : y0 + height, x0 : x0 + width] = cv2.resize(head, (width, height), interpolation=cv2.INTER_AREA)
    return canvas


@needs_models
def test_faces_are_counted_per_census_pass_and_the_analysed_one_is_ranked(extractor: VisualExtractor) -> None:
    two = _two_faces("astronaut", "hopper", 200, 100)
    one = np.full_like(two, 120)
    one[:, :200] = two[:, :200]  # the second face leaves after 2 s
    result = extractor.extract_frames([two] * 20 + [one] * 20)
    census = result.census
    assert census.faces_seen == (2, 2, 1, 1) and census.max_faces == 2
    assert census.several_share == 0.5 and census.seconds_with(2) == 2.0
    assert census.analysed_rank == (0, 0, 0, 0) and census.usual_rank == 0 and census.close_calls == 0
    assert result.quality["faces_max"] == 2 and result.quality["multiple_faces_share"] == 0.5
    assert several_faces_note(0.5) in result.notes and NOTE_CLOSE_CALL not in result.notes
    assert result.quality["identity_switches"] == 0


@needs_models
def test_two_faces_of_one_size_are_a_close_call(extractor: VisualExtractor) -> None:
    result = extractor.extract_frames([_two_faces("astronaut", "hopper", 160, 160)] * 3)
    assert result.census.faces_seen == (2,) and result.census.close_calls == 1
    assert NOTE_CLOSE_CALL in result.notes


@needs_models
def test_when_the_analysed_face_leaves_the_tracker_takes_the_other_person_and_says_so(
    extractor: VisualExtractor,
) -> None:
    two = _two_faces("astronaut", "hopper", 200, 100)
    other = np.full_like(two, 120)
    other[:, 200:] = two[:, 200:]  # the analysed (larger) astronaut leaves; Grace Hopper stays
    result = extractor.extract_frames([two] * 20 + [other] * 20)
    assert result.valid.all() and result.quality["tracking_losses"] == 1
    assert result.census.identity_switches_s == (2.0,)
    assert result.landmarks_px[-1].mean(axis=0)[0] > 220  # now on the right-hand face
