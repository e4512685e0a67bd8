"""Face tracking over a sampled video: detect, follow the face from frame to frame, run the mesh
and iris models, fit the head pose, and write each frame in the manifest's layout.

Per sampled frame (``VisualSpec.rate_hz``): BlazeFace short-range detection (only when no
face is tracked, plus a cheap once-a-second census for extra faces), the 468-point face
mesh on a rotated square crop, two iris crops, 468 -> 68 iBUG points, head pose from a
similarity fit of the 3D mesh to MediaPipe's canonical face, and finally
``space.frame_vector``, the function the synthetic training corpus goes through too.
Pre- and post-processing follow MediaPipe's graphs (face_detection_front_detection_to_roi,
face_landmark_landmarks_to_roi, iris_landmark_left_and_right); facts and costs in
research/face_pipeline.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from app.contract import VisualSpec
from app.features.visual.detection import (
    ANCHORS,
    DETECTOR_SIZE,
    Detection,
    decode_detections,
    face_merit,
    iou,
    primary_face,
    ranked_faces,
    weighted_nms,
)
from app.features.visual.geometry import (
    IRIS_SIZE,
    MESH_EYE_LINE,
    MESH_EYES,
    MESH_SIZE,
    Roi,
    crop,
    eye_roi,
    roi_from_detection,
    roi_from_mesh,
    to_image,
)
from app.features.visual.ibug68 import MEDIAPIPE_TO_IBUG68, MESH_POINTS
from app.features.visual.identity import SAME_PERSON, Appearance, appearance, comparable, similarity
from app.features.visual.models import FaceModelError, FaceModels
from app.features.visual.pose import head_pose
from app.features.visual.sampling import VideoSampler, stated_ticks
from app.features.visual.space import FULL_DIM, frame_vector

# a tracked face whose mesh points lie mostly outside the frame has left it
MAX_OUTSIDE_FRACTION = 0.5
# a video is split for parallel analysis only with at least this much per segment: under it the
# second decode and the fresh detection cost more than the thread saves
MIN_SPLIT_S = 10.0
# a later segment's tracker starts this long before its first tick, so that at the cut it
# follows the face as one pass would (a face that leaves at the cut is a tracking loss there)
SPLIT_WARM_UP_S = 1.0
# re-run the mesh on its own crop when that moved by more than this fraction of the crop,
# or changed size by more than this log ratio (a fast move, or a detector box)
SETTLE_SHIFT = 0.03
SETTLE_SCALE = 0.1
# the detector's crop replaces the tracked one when their centres are this far apart (fraction of the side)
DETECTOR_SHIFT = 0.08
# a detection is the tracked face when its box and the mesh's box overlap this much
SAME_FACE_IOU = 0.3

# more than one face in at least this share of the census passes is worth a warning
SEVERAL_FACES_SHARE = 0.1
# a second face whose merit (detection.face_merit) reaches this share of the analysed one's
# makes the choice between them a close call: the Selection is then not confident
CLOSE_CALL = 0.8


NOTE_CLOSE_CALL = "another face was about as large and central as the analysed one: who was analysed is uncertain"


def several_faces_note(share: float) -> str:
    return (
        f"more than one face was in view for about {100 * share:.0f} % of the video; "
        "the largest, most central face was analysed and followed"
    )


def identity_note(times_s: Sequence[float]) -> str:
    """A warning naming when the analysed face changed person (the first three times)."""
    shown = [f"{t:.0f} s" for t in times_s[:3]]
    when = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
    more = f" (and {len(times_s) - 3} more times)" if len(times_s) > 3 else ""
    return f"the analysed face changed person at about {when}{more}; the features mix more than one person"


@dataclass(frozen=True)
class FaceCensus:
    """What the detector's census passes (one every ``interval_s``) saw, and who was analysed.

    Faces are ranked per pass (0: the largest, most central, as ``detection.ranked_faces``);
    the detector does not know persons, so "face 2" is whichever face ranks second in a pass.
    """

    interval_s: float
    faces_seen: tuple[int, ...]  # per pass: how many faces
    analysed_rank: tuple[int | None, ...]  # per pass: the analysed face's rank; None when none was analysed
    close_calls: int  # passes where another face came within CLOSE_CALL of the analysed one's merit
    identity_switches_s: tuple[float, ...]  # when the analysed face changed person

    @property
    def passes(self) -> int:
        return len(self.faces_seen)

    @property
    def max_faces(self) -> int:
        return max(self.faces_seen, default=0)

    @property
    def several_share(self) -> float:
        """Share of the passes that saw more than one face."""
        return sum(n > 1 for n in self.faces_seen) / self.passes if self.passes else 0.0

    def seconds_with(self, faces: int) -> float:
        """About how long at least ``faces`` faces were in view."""
        return sum(n >= faces for n in self.faces_seen) * self.interval_s

    @property
    def usual_rank(self) -> int:
        """The rank the analysed face held most often (0 when it was never seen in a pass)."""
        ranks = [r for r in self.analysed_rank if r is not None]
        return max(set(ranks), key=ranks.count) if ranks else 0


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
    census: FaceCensus | None = None


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
    census_faces: list[int] = field(default_factory=list)
    census_rank: list[int | None] = field(default_factory=list)
    close_calls: int = 0
    switches: list[int] = field(default_factory=list)  # tick indices
    reference: Appearance | None = None  # the analysed person's last compared appearance
    first_reference: Appearance | None = None  # and their first, with its tick (joining segments)
    first_reference_tick: int = 0


@dataclass(frozen=True)
class TrackerState:
    """Where a tracking pass stood after its last tick: the crop it follows and the person it
    analyses. A pass resumed from it continues as the one pass would have (``track(resume=)``)."""

    roi: Roi | None
    reference: Appearance | None


@dataclass
class TrackedSegment:
    """Consecutive ticks from ``first_tick`` as one tracking pass left them (joined by ``join``;
    plain data, so a worker can hand one to the process that joins the next)."""

    first_tick: int = 0
    rows: list[np.ndarray] = field(default_factory=list)
    valid: list[bool] = field(default_factory=list)
    confidence: list[float] = field(default_factory=list)
    landmarks: list[np.ndarray] = field(default_factory=list)
    irises: list[np.ndarray] = field(default_factory=list)
    face_sizes: list[float] = field(default_factory=list)
    counters: _Counters = field(default_factory=_Counters)
    end_state: TrackerState = TrackerState(None, None)

    @property
    def identity_switches(self) -> list[int]:
        """Ticks at which the analysed face became another person's (within this segment)."""
        return list(self.counters.switches)


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
        return self.join([self.track(frames)], duration_s)

    def track(
        self,
        frames: Iterable[np.ndarray | None],
        first_tick: int = 0,
        warm_up: int = 0,
        resume: TrackerState | None = None,
    ) -> TrackedSegment:
        """Track through ``frames`` (ticks from ``first_tick - warm_up``): rows and counters, not yet
        summarised. The first ``warm_up`` ticks only bring the tracker to where a single pass
        would be at ``first_tick`` (the face found and followed): they give no rows and count
        nothing, and the person tracked at their end is the segment's first reference.
        ``resume``: the previous segment's ``end_state``, so this one goes on exactly as one pass
        over both would (a live session's parts, tracked as they come)."""
        segment = TrackedSegment(first_tick=first_tick)
        counters = segment.counters
        empty_row = np.zeros(FULL_DIM, dtype=np.float32)
        nan68, nan_iris = np.full((68, 2), np.nan, np.float32), np.full((2, 2), np.nan, np.float32)
        roi: Roi | None = None
        if resume is not None:
            roi, counters.reference = resume.roi, resume.reference
            counters.first_reference, counters.first_reference_tick = resume.reference, first_tick
        last_image: np.ndarray | None = None
        last_out: tuple[np.ndarray, bool, float, np.ndarray, np.ndarray, float | None] | None = None

        for index, image in enumerate(frames, start=first_tick - warm_up):
            if warm_up and index == first_tick:
                held = counters.reference
                counters = segment.counters = _Counters(reference=held, first_reference=held)
                counters.first_reference_tick = first_tick
                segment.rows, segment.valid, segment.confidence = [], [], []
                segment.landmarks, segment.irises, segment.face_sizes = [], [], []
            if image is not None and image is last_image and last_out is not None:
                out = last_out  # one decoded frame serving several ticks: same answer
                if index % self.census_every == 0 and counters.census_faces:
                    # the census pass would see the same picture: count it again, so shares stay per second
                    counters.census_faces.append(counters.census_faces[-1])
                    counters.census_rank.append(counters.census_rank[-1])
            else:
                observation, roi = (None, None) if image is None else self._track(image, roi, index, counters)
                if observation is None:
                    out = (empty_row, False, 0.0, nan68, nan_iris, None)
                else:
                    out = self._row(observation, image.shape[0])
                last_image, last_out = image, out
            row, ok, conf, points, iris, size = out
            segment.rows.append(row)
            segment.valid.append(ok)
            segment.confidence.append(conf)
            segment.landmarks.append(points)
            segment.irises.append(iris)
            if size is not None:
                segment.face_sizes.append(size)
        segment.end_state = TrackerState(roi, counters.reference)
        return segment

    def join(self, segments: Sequence[TrackedSegment], duration_s: float | None = None) -> VisualResult:
        """Segments of consecutive ticks, joined on the interview clock and summarised."""
        spec = self.spec
        counters = _Counters()
        rows, valid, confidence, landmarks, irises, face_sizes = [], [], [], [], [], []
        for segment in segments:
            rows += segment.rows
            valid += segment.valid
            confidence += segment.confidence
            landmarks += segment.landmarks
            irises += segment.irises
            face_sizes += segment.face_sizes
            part = segment.counters
            counters.tracking_losses += part.tracking_losses
            counters.acquisitions += part.acquisitions
            counters.multiple_faces_frames += part.multiple_faces_frames
            counters.census_faces += part.census_faces
            counters.census_rank += part.census_rank
            counters.close_calls += part.close_calls
            # the person at a segment's start against the one at the previous segment's end
            if counters.reference is not None and part.first_reference is not None:
                earlier, later = counters.reference, part.first_reference
                if comparable(earlier, later) and similarity(earlier, later) < SAME_PERSON:
                    counters.switches.append(part.first_reference_tick)
            counters.switches += part.switches
            counters.reference = part.reference or counters.reference
        n = len(rows)
        valid_arr = np.asarray(valid, dtype=bool)
        quality = {
            "face_found_ratio": float(valid_arr.mean()) if n else 0.0,
            "mean_face_size": float(np.mean(face_sizes)) if face_sizes else 0.0,
            "tracking_losses": float(counters.tracking_losses),
            "redetections": float(max(counters.acquisitions - 1, 0)),
            "multiple_faces_frames": float(counters.multiple_faces_frames),
        }
        census = FaceCensus(
            interval_s=self.census_every / spec.rate_hz,
            faces_seen=tuple(counters.census_faces),
            analysed_rank=tuple(counters.census_rank),
            close_calls=counters.close_calls,
            identity_switches_s=tuple(i / spec.rate_hz for i in counters.switches),
        )
        quality.update(
            faces_max=float(census.max_faces),
            multiple_faces_share=census.several_share,
            identity_switches=float(len(census.identity_switches_s)),
        )
        notes: list[str] = []
        if census.several_share >= SEVERAL_FACES_SHARE:
            notes.append(several_faces_note(census.several_share))
        if census.close_calls:
            notes.append(NOTE_CLOSE_CALL)
        if census.identity_switches_s:
            notes.append(identity_note(census.identity_switches_s))
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
            census=census,
        )

    def extract(
        self, video: Path, max_seconds: float | None = None, partners: Sequence[VisualExtractor] = ()
    ) -> VisualResult:
        """The first video stream of ``video`` at the spec's rate; T = round(duration * rate).

        With ``partners`` (extractors on model sessions of their own: an interpreter serves
        one thread at a time) a video of at least ``MIN_SPLIT_S`` per part whose container
        states its duration is cut into 1 + len(partners) consecutive segments analysed in
        parallel threads (the face models release the GIL), each later one starting its tracker
        ``SPLIT_WARM_UP_S`` early; the rows are joined on the interview clock and a change of
        person at a cut is still found (the appearance at a segment's start against the one
        at the previous segment's end)."""
        parts = 1 + len(partners)
        total = stated_ticks(video, self.spec.rate_hz, max_seconds) if partners else None
        if total is None or total < parts * MIN_SPLIT_S * self.spec.rate_hz:
            sampler = VideoSampler(video, self.spec.rate_hz, max_seconds)
            return self._finished(self.join([self.track(sampler)]), sampler, max_seconds, 1)
        bounds = [round(total * k / parts) for k in range(parts + 1)]
        # each later segment starts its tracker a little before its first tick (see track)
        warm_up = [0] + [round(SPLIT_WARM_UP_S * self.spec.rate_hz)] * (parts - 1)
        samplers = [
            VideoSampler(
                video,
                self.spec.rate_hz,
                max_seconds,
                first_tick=bounds[k] - warm_up[k],
                end_tick=None if k == parts - 1 else bounds[k + 1],
            )
            for k in range(parts)
        ]
        extractors = [self, *partners]
        with ThreadPoolExecutor(max_workers=parts, thread_name_prefix="visual-segment") as pool:
            futures = [pool.submit(extractors[k].track, samplers[k], bounds[k], warm_up[k]) for k in range(parts)]
            segments = [future.result() for future in futures]
        # the last segment's sampler read the video to its end: duration, cut and rotation are its
        return self._finished(self.join(segments), samplers[-1], max_seconds, parts)

    def extract_rest(
        self, video: Path, tracked: Sequence[TrackedSegment], max_seconds: float | None = None
    ) -> VisualResult:
        """``extract``'s result for ``video`` when its first ticks were already tracked as
        ``tracked`` (a live session's parts, consecutive from tick 0, each resumed from the
        last): only the ticks after them are decoded and tracked, resumed where the last part
        left the tracker, so the rows are the one pass's. Empty ``tracked``: ``extract``."""
        done = tracked[-1].first_tick + len(tracked[-1].valid) if tracked else 0
        if not done:
            return self.extract(video, max_seconds)
        sampler = VideoSampler(video, self.spec.rate_hz, max_seconds, first_tick=done)
        rest = self.track(sampler, done, resume=tracked[-1].end_state)
        return self._finished(self.join([*tracked, rest]), sampler, max_seconds, 1)

    def _finished(
        self, result: VisualResult, sampler: VideoSampler, max_seconds: float | None, parts: int
    ) -> VisualResult:
        notes = list(result.notes)
        if sampler.cut and max_seconds is not None:
            notes.append(f"the video was cut at {max_seconds:g} s")
        return VisualResult(
            frames=result.frames,
            valid=result.valid,
            confidence=result.confidence,
            duration_s=sampler.duration_s,
            quality={**result.quality, "rotation_deg": float(sampler.rotation_deg), "segments": float(parts)},
            notes=notes,
            landmarks_px=result.landmarks_px,
            irises_px=result.irises_px,
            census=result.census,
        )

    # -- internals ------------------------------------------------------------------

    def _track(
        self, image: np.ndarray, roi: Roi | None, index: int, counters: _Counters
    ) -> tuple[FaceObservation | None, Roi | None]:
        """Analyse one image; on census ticks also count the faces, and check who is analysed."""
        census = index % self.census_every == 0
        observation, new_roi, detections, acquired = self._follow(image, roi, census, counters)
        if census:
            self._count_faces(detections or [], observation, image.shape[1::-1], counters)
        if observation is not None and (acquired or census):
            self._check_identity(image, observation, index, counters)
        return observation, new_roi

    def _follow(
        self, image: np.ndarray, roi: Roi | None, census: bool, counters: _Counters
    ) -> tuple[FaceObservation | None, Roi | None, list[Detection] | None, bool]:
        """Follow the tracked face, or (re)acquire one with the detector: (observation, next roi,
        the detector's faces when it ran, whether the face was (re)acquired)."""
        height, width = image.shape[:2]
        detections: list[Detection] | None = None
        if roi is None or census:
            detections = self._detect_counted(image, counters)
        if roi is not None:
            observation = self._settled(image, roi, counters)
            # a census that sees faces, none of them where the tracker is, means the track
            # slid off the face (e.g. a cut): the mesh alone can stay confident on a bad crop
            agrees = not detections or any(_same_face(observation, d) for d in detections)
            if agrees and self._usable(observation, width, height):
                return observation, roi_from_mesh(observation.mesh), detections, False
            counters.tracking_losses += 1
            if detections is None:  # lost: look again in this very frame
                detections = self._detect_counted(image, counters)
        if not detections:
            return None, None, detections, False
        chosen = detections[primary_face(detections, (width, height))]
        observation = self._settled(image, roi_from_detection(chosen), counters, detected=True)
        if not self._usable(observation, width, height):
            return None, None, detections, False
        counters.acquisitions += 1
        return observation, roi_from_mesh(observation.mesh), detections, True

    @staticmethod
    def _count_faces(
        detections: list[Detection], observation: FaceObservation | None, size: tuple[int, int], counters: _Counters
    ) -> None:
        """One census pass: how many faces, which rank the analysed one holds, and how close the runner-up came."""
        order = ranked_faces(detections, size)
        rank = None
        if observation is not None:
            rank = next((r for r, i in enumerate(order) if _same_face(observation, detections[i])), None)
        counters.census_faces.append(len(detections))
        counters.census_rank.append(rank)
        if rank is not None and len(order) > 1:
            analysed = face_merit(detections[order[rank]], size)
            others = [face_merit(detections[i], size) for r, i in enumerate(order) if r != rank]
            if max(others) >= CLOSE_CALL * analysed:
                counters.close_calls += 1

    @staticmethod
    def _check_identity(image: np.ndarray, observation: FaceObservation, index: int, counters: _Counters) -> None:
        """Compare the analysed face's appearance with the person analysed so far (at a similar head pose)."""
        current = appearance(image, observation.mesh, observation.yaw, observation.pitch)
        reference = counters.reference
        if reference is not None and not comparable(reference, current):
            return  # wait for a pose like the reference's: a turned head is not another person
        if reference is not None and similarity(reference, current) < SAME_PERSON:
            counters.switches.append(index)
        if counters.first_reference is None:
            counters.first_reference, counters.first_reference_tick = current, index
        counters.reference = current

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
    return bool(iou(detection.box, mesh_box[None])[0] > SAME_FACE_IOU)


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
