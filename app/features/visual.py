"""Face features from video: PyAV decoding, MediaPipe's face models in ONNX Runtime, no torch.

Per sampled frame (``VisualSpec.rate_hz``): BlazeFace short-range detection (only when no
face is tracked, plus a cheap once-a-second census for extra faces), the 468-point face
mesh on a rotated square crop, two iris crops, 468 -> 68 iBUG points, head pose from a
similarity fit of the 3D mesh to MediaPipe's canonical face, and finally
``visual_space.frame_vector``, the function the synthetic training corpus goes through too.
Pre- and post-processing follow MediaPipe's graphs (face_detection_short_range_common,
face_detection_front_detection_to_roi, face_landmark_landmarks_to_roi,
iris_landmark_left_and_right); facts and costs in research/face_pipeline.md.

Image coordinates are continuous pixels: x right, y down, pixel (0, 0) covers [0, 1)^2.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from app.contract import VisualSpec
from app.features.ibug68 import MEDIAPIPE_TO_IBUG68
from app.features.visual_space import FULL_DIM, euler_angles, frame_vector

DETECTOR_DIR = Path("face_detector") / "1"
LANDMARKS_DIR = Path("face_landmarks") / "1"
IRIS_DIR = Path("iris_landmarks") / "1"
GEOMETRY_FILE = Path("face_geometry") / "1" / "canonical_face.json"
MODEL_FILE = "model.onnx"
PROVENANCE_FILE = "provenance.json"

DETECTOR_SIZE = 128
MESH_SIZE = 192
IRIS_SIZE = 64
MESH_POINTS = 468
# face_detection_short_range.pbtxt: SsdAnchorsCalculator options
ANCHOR_STRIDES = (8, 16, 16, 16)
ANCHOR_OFFSET = 0.5
# TensorsToDetectionsCalculator options
DETECTION_KEYPOINTS = 6  # right eye, left eye, nose tip, mouth, right ear, left ear (the subject's)
SCORE_CLIP = 100.0
NMS_IOU = 0.3
# face_detection_front_detection_to_roi / face_landmark_landmarks_to_roi: 1.5x, square
FACE_ROI_SCALE = 1.5
# iris_landmark_landmarks_to_roi: 2.3x the eye-corner span, square
IRIS_ROI_SCALE = 2.3
# mesh indices: outer eye corners (the rotation of the face crop), eye corners of each iris crop
MESH_EYE_LINE = (33, 263)
MESH_EYES = ((33, 133), (362, 263))  # the eye iBUG 36-41, then 42-47; the second one is flipped
# a tracked face whose mesh points lie mostly outside the frame has left it
MAX_OUTSIDE_FRACTION = 0.5
# re-run the mesh on its own crop when that moved by more than this fraction of the crop,
# or changed size by more than this log ratio (a fast move, or a detector box)
SETTLE_SHIFT = 0.03
SETTLE_SCALE = 0.1
# the detector's crop replaces the tracked one when their centres are this far apart (fraction of the side)
DETECTOR_SHIFT = 0.08
# a detection is the tracked face when its box and the mesh's box overlap this much
SAME_FACE_IOU = 0.3

NOTE_SEVERAL_FACES = "several faces were seen; the largest, most central one was analysed"


class VisualDecodeError(ValueError):
    """The file holds no decodable video stream."""


class FaceModelError(ValueError):
    """A face model folder is missing a file or its provenance names other inputs/outputs."""


# ------------------------------------------------------------------------------- models


@dataclass(frozen=True)
class _ModelIO:
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def _provenance_io(model_dir: Path) -> _ModelIO:
    """Input and output names as the model's provenance.json records them.

    Accepts the shapes a build script plausibly writes: lists of names, lists of
    {"name": ...} objects or {name: shape} maps, at the top level or under "io"/"interface".
    """
    provenance = json.loads((model_dir / PROVENANCE_FILE).read_text())

    def names(entry: object) -> tuple[str, ...]:
        if isinstance(entry, dict):
            return tuple(str(k) for k in entry)
        if isinstance(entry, list):
            return tuple(str(e["name"]) if isinstance(e, dict) else str(e) for e in entry)
        return ()

    for holder in (provenance, provenance.get("io", {}), provenance.get("interface", {})):
        if isinstance(holder, dict) and "inputs" in holder and "outputs" in holder:
            found = _ModelIO(names(holder["inputs"]), names(holder["outputs"]))
            if found.inputs and found.outputs:
                return found
    raise FaceModelError(f"{model_dir / PROVENANCE_FILE} names no inputs/outputs")


class _Model:
    """One ONNX session whose IO names come from provenance.json and are checked against the graph."""

    def __init__(self, model_dir: Path, options: ort.SessionOptions, providers: Sequence[str]) -> None:
        path = model_dir / MODEL_FILE
        if not path.is_file():
            raise FaceModelError(f"missing {path}")
        self.io = _provenance_io(model_dir)
        self.session = ort.InferenceSession(str(path), options, providers=list(providers))
        graph_inputs = {node.name for node in self.session.get_inputs()}
        graph_outputs = {node.name for node in self.session.get_outputs()}
        if not set(self.io.inputs) <= graph_inputs or not set(self.io.outputs) <= graph_outputs:
            raise FaceModelError(
                f"{path}: provenance names {self.io} but the graph has inputs {sorted(graph_inputs)}, "
                f"outputs {sorted(graph_outputs)}"
            )

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        return self.session.run(list(self.io.outputs), {self.io.inputs[0]: batch})


class FaceModels:
    """The three face sessions (detector, mesh, iris) and the canonical face, from a model store."""

    def __init__(
        self,
        model_store: Path,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        intra_op_threads: int = 1,
    ) -> None:
        store = Path(model_store)
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.detector = _Model(store / DETECTOR_DIR, options, providers)
        self.mesh = _Model(store / LANDMARKS_DIR, options, providers)
        self.iris = _Model(store / IRIS_DIR, options, providers)
        geometry = json.loads((store / GEOMETRY_FILE).read_text())
        self.canonical_mesh = np.asarray(geometry["mesh_points"], dtype=np.float64)
        if self.canonical_mesh.shape != (MESH_POINTS, 3):
            raise FaceModelError(f"{store / GEOMETRY_FILE}: mesh_points must be ({MESH_POINTS}, 3)")
        # what actually runs: onnxruntime-gpu lists CUDA even where no GPU exists
        self.providers: list[str] = self.mesh.session.get_providers()


# ------------------------------------------------------------------------------- detection


def ssd_anchors(input_size: int = DETECTOR_SIZE, strides: Sequence[int] = ANCHOR_STRIDES) -> np.ndarray:
    """(896, 2) anchor centres in [0, 1], MediaPipe's order; fixed size 1, so only centres matter.

    Consecutive layers with the same stride share one grid: 2 anchors per layer per cell
    (aspect ratio 1 plus the interpolated scale).
    """
    centres: list[np.ndarray] = []
    layer = 0
    while layer < len(strides):
        stride, per_cell = strides[layer], 0
        while layer < len(strides) and strides[layer] == stride:
            per_cell += 2
            layer += 1
        cells = math.ceil(input_size / stride)
        ys, xs = np.mgrid[0:cells, 0:cells]
        grid = np.stack([(xs + ANCHOR_OFFSET) / cells, (ys + ANCHOR_OFFSET) / cells], axis=-1).reshape(-1, 2)
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centres)


ANCHORS = ssd_anchors()


@dataclass(frozen=True)
class Detection:
    """One face in image pixels: box (x0, y0, x1, y1), 6 keypoints (x, y), sigmoid score."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float


def decode_detections(
    regressors: np.ndarray, scores: np.ndarray, anchors: np.ndarray = ANCHORS, min_score: float = 0.5
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw detector outputs of one image -> boxes (K, 4), keypoints (K, 6, 2), scores (K,), in [0, 1].

    raw / 128 + anchor (anchors have size 1); box values are (x centre, y centre, w, h).
    """
    raw = np.asarray(regressors, dtype=np.float64).reshape(len(anchors), -1)
    logits = np.clip(np.asarray(scores, dtype=np.float64).reshape(-1), -SCORE_CLIP, SCORE_CLIP)
    probability = 1.0 / (1.0 + np.exp(-logits))
    keep = probability >= min_score
    raw, probability, anchor = raw[keep] / DETECTOR_SIZE, probability[keep], anchors[keep]
    centre = raw[:, 0:2] + anchor
    half = raw[:, 2:4] / 2.0
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    keypoints = raw[:, 4 : 4 + 2 * DETECTION_KEYPOINTS].reshape(-1, DETECTION_KEYPOINTS, 2) + anchor[:, None, :]
    return boxes, keypoints, probability


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0.0, None) * np.clip(y1 - y0, 0.0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-12)


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou_threshold: float = NMS_IOU
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe's WEIGHTED non-max suppression: each cluster becomes its score-weighted mean.

    The cluster keeps its best score; overlapping anchors vote on the box and keypoints,
    which steadies them from frame to frame.
    """
    order = np.argsort(-scores, kind="stable")
    remaining = order
    out_boxes, out_keypoints, out_scores = [], [], []
    while remaining.size:
        best = remaining[0]
        overlap = _iou(boxes[best], boxes[remaining]) > iou_threshold
        cluster, remaining = remaining[overlap], remaining[~overlap]
        weights = scores[cluster] / scores[cluster].sum()
        out_boxes.append(weights @ boxes[cluster])
        out_keypoints.append(np.tensordot(weights, keypoints[cluster], axes=1))
        out_scores.append(scores[best])
    if not out_scores:
        return np.zeros((0, 4)), np.zeros((0, DETECTION_KEYPOINTS, 2)), np.zeros(0)
    return np.stack(out_boxes), np.stack(out_keypoints), np.asarray(out_scores)


def primary_face(detections: Sequence[Detection], image_size: tuple[int, int]) -> int:
    """Index of the face to analyse: the largest, discounted by its distance from the image centre.

    image_size is (width, height). A face twice as wide wins unless it sits at the very edge.
    """
    width, height = image_size
    centre = np.array([width / 2.0, height / 2.0])
    half_diagonal = math.hypot(width, height) / 2.0

    def merit(det: Detection) -> float:
        size = math.sqrt(max((det.box[2] - det.box[0]) * (det.box[3] - det.box[1]), 0.0))
        offset = float(np.linalg.norm((det.box[:2] + det.box[2:]) / 2.0 - centre)) / half_diagonal
        return size * (1.0 - 0.5 * min(offset, 1.0))

    return int(np.argmax([merit(d) for d in detections]))


# ------------------------------------------------------------------------------- crops


@dataclass(frozen=True)
class Roi:
    """A rotated square in image pixels: centre, side, rotation of its x axis (radians, y down)."""

    centre: np.ndarray
    side: float
    angle: float

    def crop_to_image(self, size: int, flip: bool = False) -> np.ndarray:
        """2x3 affine from crop coordinates (continuous, size x size) to image coordinates."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        k = self.side / size
        linear = np.array([[c, -s], [s, c]]) * k
        if flip:  # the crop is mirrored: crop u -> size - u
            linear = linear @ np.diag([-1.0, 1.0])
        origin = self.centre - linear @ np.array([size / 2.0, size / 2.0])
        return np.hstack([linear, origin[:, None]])


def crop(image: np.ndarray, roi: Roi, size: int, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(size, size, 3) float32 crop in [0, 1] and its crop->image affine."""
    affine = roi.crop_to_image(size, flip)
    # warpAffine works on pixel indices (centres at integers): shift by half a pixel either side
    index_affine = affine.copy()
    index_affine[:, 2] += affine[:, :2] @ np.array([0.5, 0.5]) - 0.5
    patch = cv2.warpAffine(
        image,
        index_affine,
        (size, size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return patch.astype(np.float32) * np.float32(1.0 / 255.0), affine


def to_image(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Crop points (N, 2+) -> image (N, 2)."""
    return points[:, :2] @ affine[:, :2].T + affine[:, 2]


def _roi_from_points(points: np.ndarray, start: np.ndarray, end: np.ndarray, scale: float) -> Roi:
    """Square ROI around points, rotated so the start -> end line is horizontal.

    The bounding box is taken in the rotated frame, so the crop is the same for a tilted
    face as for an upright one.
    """
    axis = end - start
    angle = math.atan2(axis[1], axis[0])
    c, s = math.cos(angle), math.sin(angle)
    unrotate = np.array([[c, s], [-s, c]])
    local = points @ unrotate.T
    low, high = local.min(axis=0), local.max(axis=0)
    centre = unrotate.T @ ((low + high) / 2.0)
    side = float((high - low).max()) * scale
    return Roi(centre=centre, side=side, angle=angle)


def roi_from_detection(det: Detection) -> Roi:
    """face_detection_front_detection_to_roi: the box x1.5, square, eyes level (keypoints 0 -> 1)."""
    axis = det.keypoints[1] - det.keypoints[0]
    angle = math.atan2(axis[1], axis[0])
    size = det.box[2:] - det.box[:2]
    return Roi(centre=(det.box[:2] + det.box[2:]) / 2.0, side=float(size.max()) * FACE_ROI_SCALE, angle=angle)


def roi_from_mesh(mesh: np.ndarray) -> Roi:
    """face_landmark_landmarks_to_roi: the tracked face's crop for the next frame."""
    start, end = MESH_EYE_LINE
    return _roi_from_points(mesh[:, :2], mesh[start, :2], mesh[end, :2], FACE_ROI_SCALE)


def eye_roi(mesh: np.ndarray, corners: tuple[int, int]) -> Roi:
    """iris_landmark_landmarks_to_roi: centred between the eye corners, 2.3x their distance."""
    a, b = mesh[corners[0], :2], mesh[corners[1], :2]
    axis = b - a
    return Roi(centre=(a + b) / 2.0, side=float(np.hypot(*axis)) * IRIS_ROI_SCALE, angle=math.atan2(axis[1], axis[0]))


# ------------------------------------------------------------------------------- pose


def similarity_fit(source: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Umeyama: scale, rotation (det +1) and translation with target ~ scale * R @ source + t."""
    src = np.asarray(source, dtype=np.float64)
    dst = np.asarray(target, dtype=np.float64)
    mu_src, mu_dst = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - mu_src, dst - mu_dst
    u, d, vt = np.linalg.svd(b.T @ a / len(src))
    sign = np.ones(3)
    sign[2] = np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0
    rotation = u @ np.diag(sign) @ vt
    scale = float((d * sign).sum() / max((a**2).sum() / len(src), 1e-12))
    return scale, rotation, mu_dst - scale * rotation @ mu_src


def head_pose(mesh: np.ndarray, canonical_mesh: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) of the mesh (image x, y, z; z away from the camera) against the canonical face.

    Both live in the contract's face frame (x right, y down, z away), so the fitted
    rotation is R = Rz(roll) Ry(yaw) Rx(pitch) of ``visual_space.rotation_matrix`` directly.
    """
    _, rotation, _ = similarity_fit(canonical_mesh, mesh)
    return euler_angles(rotation)


# ------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class VisualResult:
    frames: np.ndarray  # (T, FULL_DIM) float32, landmarks_v1 layout; invalid rows all zero
    valid: np.ndarray  # (T,) bool, a face was found
    confidence: np.ndarray  # (T,) float32, face-presence probability; 0 where invalid
    duration_s: float
    quality: dict[str, float]
    notes: list[str] = field(default_factory=list)
    landmarks_px: np.ndarray | None = None  # (T, 68, 2) float32 image pixels, NaN where invalid
    irises_px: np.ndarray | None = None  # (T, 2, 2) float32 image pixels, NaN where invalid


@dataclass(frozen=True)
class FaceObservation:
    """One analysed face in image coordinates."""

    mesh: np.ndarray  # (468, 3): x, y pixels; z in pixels, away from the camera
    irises: np.ndarray  # (2, 2) iris centres of the eye iBUG 36-41, then 42-47
    presence: float
    yaw: float
    pitch: float
    roll: float  # of the 3D fit; frames carry the eye-line roll of frame_vector

    @property
    def points68(self) -> np.ndarray:
        return self.mesh[list(MEDIAPIPE_TO_IBUG68), :2]


@dataclass
class _Counters:
    detector_runs: int = 0
    tracking_losses: int = 0
    acquisitions: int = 0
    multiple_faces_frames: int = 0


# ------------------------------------------------------------------------------- video sampling


class VideoSampler:
    """The first video stream, sampled at ``rate_hz``: for tick k, the frame whose time is nearest k / rate.

    Iterating yields one RGB uint8 array per tick (the same object when a frame serves
    several ticks; None for ticks past the last frame). Every frame is decoded (codecs are
    sequential) but only sampled frames are converted to RGB. After iteration:
    ``duration_s`` (of the video stream, or of the part kept under ``max_seconds``),
    ``ticks`` and ``cut`` (True when max_seconds shortened the video).
    """

    def __init__(self, path: Path, rate_hz: float, max_seconds: float | None = None) -> None:
        self.path, self.rate_hz, self.max_seconds = Path(path), float(rate_hz), max_seconds
        self.duration_s = 0.0
        self.ticks = 0
        self.cut = False
        self.decoded_frames = 0

    def __iter__(self) -> Iterator[np.ndarray | None]:
        import av  # local: keeps the module importable for the pure geometry

        try:
            container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError) as exc:
            raise VisualDecodeError(f"cannot open the video: {exc}") from exc
        with container:
            if not container.streams.video:
                raise VisualDecodeError("no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stated = _stated_duration(container, stream)
            limit = self.max_seconds if self.max_seconds is not None else math.inf
            # no ticks past the stated duration either: T = round(duration * rate)
            tick_limit = min(limit, stated) if stated else limit
            max_ticks = round(tick_limit * self.rate_hz) if math.isfinite(tick_limit) else math.inf
            tick = 0
            origin: float | None = None
            previous: tuple[float, av.VideoFrame] | None = None
            rgb_cache: tuple[av.VideoFrame, np.ndarray] | None = None  # the last converted frame and its RGB
            frame_step = 1.0 / float(stream.average_rate) if stream.average_rate else 1.0 / self.rate_hz
            last_time = 0.0

            def rgb_of(frame: av.VideoFrame) -> np.ndarray:
                nonlocal rgb_cache
                if rgb_cache is None or rgb_cache[0] is not frame:
                    rgb_cache = (frame, frame.to_ndarray(format="rgb24"))
                return rgb_cache[1]

            try:
                for frame in container.decode(stream):
                    self.decoded_frames += 1
                    time = frame.time if frame.time is not None else self.decoded_frames * frame_step
                    if origin is None:
                        origin = time
                    time -= origin
                    if previous is not None:
                        step = time - previous[0]
                        if step > 0:
                            frame_step = step
                        # ticks nearer the previous frame than this one belong to it
                        midpoint = (previous[0] + time) / 2.0
                        while tick / self.rate_hz < midpoint and tick < max_ticks:
                            yield rgb_of(previous[1])
                            tick += 1
                    if time >= limit:
                        self.cut = True
                        break
                    previous, last_time = (time, frame), time
            except av.error.FFmpegError as exc:
                if previous is None:
                    raise VisualDecodeError(f"the video could not be decoded: {exc}") from exc
                # a damaged tail: keep what decoded
            if previous is None:
                raise VisualDecodeError("the video stream holds no frames")
            end = last_time + frame_step
            duration = stated if stated is not None and stated > 0 else end
            duration = min(duration, limit)
            self.cut = self.cut or (self.max_seconds is not None and stated is not None and stated > limit)
            total = round(duration * self.rate_hz)
            while tick < total:
                # the last frame covers its own display time (half a tick of slack); later ticks have none
                yield rgb_of(previous[1]) if tick / self.rate_hz < end + 0.5 / self.rate_hz else None
                tick += 1
            self.ticks, self.duration_s = tick, duration


def _stated_duration(container, stream) -> float | None:
    """The video stream's duration from the container (not the audio's), or None when unstated."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    # webm/mkv often state only the container duration (which may include a longer audio track)
    return None


# ------------------------------------------------------------------------------- the extractor


class VisualExtractor:
    """Video or RGB frames -> visual frames in the manifest's layout plus quality figures.

    Tracks one face from frame to frame (next crop from this frame's mesh) and runs the
    detector only when no face is tracked, plus every ``census_every_s`` to notice extra
    faces. A frame is valid when the mesh's face-presence probability reaches
    ``min_presence``.
    """

    def __init__(
        self,
        models: FaceModels,
        spec: VisualSpec,
        min_detection_score: float = 0.5,
        min_presence: float = 0.5,
        census_every_s: float = 1.0,
    ) -> None:
        self.models, self.spec = models, spec
        self.min_detection_score = min_detection_score
        self.min_presence = min_presence
        self.census_every = max(1, round(census_every_s * spec.rate_hz))

    # -- per image ------------------------------------------------------------------

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an RGB uint8 image, best score first, in image pixels."""
        height, width = image.shape[:2]
        # letterbox as MediaPipe (keep the aspect ratio, pad with zeros), then 128 x 128
        scale = DETECTOR_SIZE / max(width, height)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
        canvas = np.zeros((DETECTOR_SIZE, DETECTOR_SIZE, 3), dtype=np.float32)
        off_x, off_y = (DETECTOR_SIZE - new_w) // 2, (DETECTOR_SIZE - new_h) // 2
        canvas[off_y : off_y + new_h, off_x : off_x + new_w] = resized.astype(np.float32) / 127.5 - 1.0
        # padding is black in the image's own range (-1), as MediaPipe's zero border after scaling
        pad = np.ones((DETECTOR_SIZE, DETECTOR_SIZE), dtype=bool)
        pad[off_y : off_y + new_h, off_x : off_x + new_w] = False
        canvas[pad] = -1.0
        regressors, classificators = _by_size(self.models.detector.run(canvas[None]), len(ANCHORS) * 16)
        boxes, keypoints, scores = decode_detections(
            regressors[0], classificators[0], min_score=self.min_detection_score
        )
        boxes, keypoints, scores = weighted_nms(boxes, keypoints, scores)
        to_px = np.array([DETECTOR_SIZE / (new_w / width), DETECTOR_SIZE / (new_h / height)])
        offset = np.array([off_x * width / new_w, off_y * height / new_h])
        return [
            Detection(
                box=(boxes[i].reshape(2, 2) * to_px - offset).reshape(-1),
                keypoints=keypoints[i] * to_px - offset,
                score=float(scores[i]),
            )
            for i in range(len(scores))
        ]

    def observe(self, image: np.ndarray, roi: Roi) -> FaceObservation:
        """Mesh and irises of the face in ``roi``."""
        patch, affine = crop(image, roi, MESH_SIZE)
        raw, presence_logit = _by_size(self.models.mesh.run(patch[None]), MESH_POINTS * 3)
        crop_points = np.asarray(raw, dtype=np.float64).reshape(MESH_POINTS, 3)
        mesh = np.empty((MESH_POINTS, 3))
        mesh[:, :2] = to_image(crop_points, affine)
        mesh[:, 2] = crop_points[:, 2] * (roi.side / MESH_SIZE)  # z has x's scale in the crop
        presence = float(1.0 / (1.0 + np.exp(-float(np.asarray(presence_logit).reshape(-1)[0]))))

        patches, affines = [], []
        for eye, corners in enumerate(MESH_EYES):
            eye_patch, eye_affine = crop(image, eye_roi(mesh, corners), IRIS_SIZE, flip=eye == 1)
            patches.append(eye_patch)
            affines.append(eye_affine)
        outputs = dict(zip(self.models.iris.io.outputs, self.models.iris.run(np.stack(patches)), strict=True))
        iris_raw = np.asarray(outputs[_iris_output(self.models.iris.io.outputs)], dtype=np.float64)
        irises = np.stack([to_image(iris_raw[eye].reshape(-1, 3)[:1], affines[eye])[0] for eye in range(2)])
        yaw, pitch, roll = head_pose(mesh, self.models.canonical_mesh)
        return FaceObservation(mesh=mesh, irises=irises, presence=presence, yaw=yaw, pitch=pitch, roll=roll)

    # -- sequences ------------------------------------------------------------------

    def extract_frames(self, frames: Iterable[np.ndarray | None], duration_s: float | None = None) -> VisualResult:
        """One output row per item of ``frames`` (RGB uint8 arrays, already sampled at the spec's rate).

        None items (no picture for that tick) give invalid rows. duration_s defaults to
        T / rate. Tracking carries over from one item to the next.
        """
        spec = self.spec
        rows: list[np.ndarray] = []
        valid: list[bool] = []
        confidence: list[float] = []
        landmarks: list[np.ndarray] = []
        irises: list[np.ndarray] = []
        face_sizes: list[float] = []
        counters = _Counters()
        empty_row = np.zeros(FULL_DIM, dtype=np.float32)
        nan68, nan_iris = np.full((68, 2), np.nan, np.float32), np.full((2, 2), np.nan, np.float32)
        roi: Roi | None = None
        last_image: np.ndarray | None = None
        last_out: tuple[np.ndarray, bool, float, np.ndarray, np.ndarray, float | None] | None = None

        for index, image in enumerate(frames):
            if image is not None and image is last_image and last_out is not None:
                out = last_out  # one decoded frame serving several ticks: same answer
            else:
                observation, roi = (None, None) if image is None else self._track(image, roi, index, counters)
                if observation is None:
                    out = (empty_row, False, 0.0, nan68, nan_iris, None)
                else:
                    out = self._row(observation, image.shape[0])
                last_image, last_out = image, out
            row, ok, conf, points, iris, size = out
            rows.append(row)
            valid.append(ok)
            confidence.append(conf)
            landmarks.append(points)
            irises.append(iris)
            if size is not None:
                face_sizes.append(size)

        n = len(rows)
        valid_arr = np.asarray(valid, dtype=bool)
        quality = {
            "face_found_ratio": float(valid_arr.mean()) if n else 0.0,
            "mean_face_size": float(np.mean(face_sizes)) if face_sizes else 0.0,
            "tracking_losses": float(counters.tracking_losses),
            "redetections": float(max(counters.acquisitions - 1, 0)),
            "multiple_faces_frames": float(counters.multiple_faces_frames),
        }
        notes: list[str] = []
        if counters.multiple_faces_frames:
            notes.append(NOTE_SEVERAL_FACES)
        if n and not valid_arr.any():
            notes.append("no face was found in the video")
        return VisualResult(
            frames=np.stack(rows) if n else np.zeros((0, FULL_DIM), dtype=np.float32),
            valid=valid_arr,
            confidence=np.asarray(confidence, dtype=np.float32),
            duration_s=float(duration_s) if duration_s is not None else n / spec.rate_hz,
            quality=quality,
            notes=notes,
            landmarks_px=np.stack(landmarks) if n else np.zeros((0, 68, 2), np.float32),
            irises_px=np.stack(irises) if n else np.zeros((0, 2, 2), np.float32),
        )

    def extract(self, video: Path, max_seconds: float | None = None) -> VisualResult:
        """The first video stream of ``video`` at the spec's rate; T = round(duration * rate)."""
        sampler = VideoSampler(video, self.spec.rate_hz, max_seconds)
        result = self.extract_frames(sampler)
        notes = list(result.notes)
        if sampler.cut and max_seconds is not None:
            notes.append(f"the video was cut at {max_seconds:g} s")
        return VisualResult(
            frames=result.frames,
            valid=result.valid,
            confidence=result.confidence,
            duration_s=sampler.duration_s,
            quality=result.quality,
            notes=notes,
            landmarks_px=result.landmarks_px,
            irises_px=result.irises_px,
        )

    # -- internals ------------------------------------------------------------------

    def _track(
        self, image: np.ndarray, roi: Roi | None, index: int, counters: _Counters
    ) -> tuple[FaceObservation | None, Roi | None]:
        """Analyse one image: follow the tracked face, or (re)acquire one with the detector."""
        height, width = image.shape[:2]
        detections: list[Detection] | None = None
        if roi is None or index % self.census_every == 0:
            detections = self._detect_counted(image, counters)
        if roi is not None:
            observation = self._settled(image, roi, counters)
            # a census that sees faces, none of them where the tracker is, means the track
            # slid off the face (e.g. a cut): the mesh alone can stay confident on a bad crop
            agrees = not detections or any(_same_face(observation, d) for d in detections)
            if agrees and self._usable(observation, width, height):
                return observation, roi_from_mesh(observation.mesh)
            counters.tracking_losses += 1
            if detections is None:  # lost: look again in this very frame
                detections = self._detect_counted(image, counters)
        if not detections:
            return None, None
        chosen = detections[primary_face(detections, (width, height))]
        observation = self._settled(image, roi_from_detection(chosen), counters, detected=True)
        if not self._usable(observation, width, height):
            return None, None
        counters.acquisitions += 1
        return observation, roi_from_mesh(observation.mesh)

    def _settled(self, image: np.ndarray, roi: Roi, counters: _Counters, detected: bool = False) -> FaceObservation:
        """The mesh in ``roi``; when its own crop sits clearly elsewhere, once more from a better crop.

        After a fast move the face is off-centre in the crop and the mesh is biased toward the
        crop's centre (it would take MediaPipe several frames to catch up). The detector (when
        it sees a face there) gives the face's place at once; else the mesh's own crop does.
        """
        observation = self.observe(image, roi)
        settled = roi_from_mesh(observation.mesh)
        moved = float(np.linalg.norm(settled.centre - roi.centre)) / roi.side
        if moved <= SETTLE_SHIFT and abs(math.log(max(settled.side, 1e-6) / roi.side)) <= SETTLE_SCALE:
            return observation
        if not detected:
            # the mesh reports only a fraction of a jump (80 px seen as 10): ask the detector
            nearby = [
                d
                for d in self._detect_counted(image, counters)
                if np.linalg.norm((d.box[:2] + d.box[2:]) / 2.0 - settled.centre) < 0.5 * settled.side
            ]
            if nearby:
                fresh = roi_from_detection(nearby[0])
                if float(np.linalg.norm(fresh.centre - roi.centre)) / roi.side <= DETECTOR_SHIFT:
                    return observation  # a small move after all: the tracked crop is fine
                return self._settled(image, fresh, counters, detected=True)
        again = self.observe(image, settled)
        return again if again.presence >= min(observation.presence, self.min_presence) else observation

    def _detect_counted(self, image: np.ndarray, counters: _Counters) -> list[Detection]:
        detections = self.detect(image)
        counters.detector_runs += 1
        if len(detections) > 1:
            counters.multiple_faces_frames += 1
        return detections

    def _usable(self, observation: FaceObservation, width: int, height: int) -> bool:
        if observation.presence < self.min_presence:
            return False
        xy = observation.mesh[:, :2]
        outside = (xy[:, 0] < 0) | (xy[:, 0] > width) | (xy[:, 1] < 0) | (xy[:, 1] > height)
        return float(outside.mean()) <= MAX_OUTSIDE_FRACTION

    def _row(
        self, observation: FaceObservation, image_height: int
    ) -> tuple[np.ndarray, bool, float, np.ndarray, np.ndarray, float | None]:
        points = observation.points68
        try:
            row = frame_vector(points, observation.irises, observation.yaw, observation.pitch, self.spec)
        except ValueError:  # degenerate eye corners: no usable face
            return (
                np.zeros(FULL_DIM, np.float32),
                False,
                0.0,
                np.full((68, 2), np.nan, np.float32),
                np.full((2, 2), np.nan, np.float32),
                None,
            )
        # face height along the face's own vertical axis (the eye line's normal), over the frame height
        eye_axis = observation.mesh[MESH_EYE_LINE[1], :2] - observation.mesh[MESH_EYE_LINE[0], :2]
        up = np.array([-eye_axis[1], eye_axis[0]]) / max(float(np.hypot(*eye_axis)), 1e-9)
        extent = observation.mesh[:, :2] @ up
        size = float(extent.max() - extent.min()) / image_height
        return (
            row,
            True,
            observation.presence,
            points.astype(np.float32),
            observation.irises.astype(np.float32),
            size,
        )


def _same_face(observation: FaceObservation, detection: Detection) -> bool:
    """The detection box and the mesh's bounding box overlap (IoU 0.8-0.9 for the same face)."""
    xy = observation.mesh[:, :2]
    mesh_box = np.concatenate([xy.min(axis=0), xy.max(axis=0)])
    return bool(_iou(detection.box, mesh_box[None])[0] > SAME_FACE_IOU)


def _by_size(outputs: Sequence[np.ndarray], big: int) -> tuple[np.ndarray, np.ndarray]:
    """(the output with ``big`` values per item, the other one): robust to the order provenance lists them in."""
    first, second = outputs
    return (first, second) if first[0].size == big else (second, first)


def _iris_output(names: Sequence[str]) -> str:
    """The iris model's 5-point output (centre first): named 'output_iris' in MediaPipe's model."""
    for name in names:
        if "iris" in name and "contour" not in name:
            return name
    raise FaceModelError(f"no iris output among {list(names)}")
