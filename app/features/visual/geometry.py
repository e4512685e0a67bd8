"""Crop geometry: rotated square crops (MediaPipe's ROI rules) and crop <-> image mappings
(numpy and OpenCV's warp only, so the face-model build venv can use them too).

Image coordinates are continuous pixels: x right, y down, pixel (0, 0) covers [0, 1)^2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from app.features.visual.detection import Detection

# the mesh's and the iris model's square inputs, in pixels
MESH_SIZE = 192
IRIS_SIZE = 64
# face_detection_front_detection_to_roi / face_landmark_landmarks_to_roi: 1.5x, square
FACE_ROI_SCALE = 1.5
# iris_landmark_landmarks_to_roi: 2.3x the eye-corner span, square
IRIS_ROI_SCALE = 2.3
# mesh indices: outer eye corners (the rotation of the face crop), eye corners of each iris crop
MESH_EYE_LINE = (33, 263)
MESH_EYES = ((33, 133), (362, 263))  # the eye iBUG 36-41, then 42-47; the second one is flipped


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


def warp_square(image: np.ndarray, index_affine: np.ndarray, size: int) -> np.ndarray:
    """The size x size patch whose pixel (u, v) samples ``image`` at ``index_affine @ (u, v, 1)``
    (pixel indices, bilinear, edges replicated)."""
    return cv2.warpAffine(
        image,
        index_affine,
        (size, size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


def crop(image: np.ndarray, roi: Roi, size: int, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(size, size, 3) float32 crop in [0, 1] and its crop->image affine."""
    affine = roi.crop_to_image(size, flip)
    # warpAffine works on pixel indices (centres at integers): shift by half a pixel either side
    index_affine = affine.copy()
    index_affine[:, 2] += affine[:, :2] @ np.array([0.5, 0.5]) - 0.5
    patch = warp_square(image, index_affine, size)
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
