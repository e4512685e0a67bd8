"""Face detection: BlazeFace short-range's SSD anchors, raw-output decoding, MediaPipe's
weighted non-max suppression, and the choice of the face to analyse (pure numpy).

Follows face_detection_short_range_common.pbtxt (SsdAnchorsCalculator, TensorsToDetectionsCalculator).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DETECTOR_SIZE = 128  # the detector's square input, in pixels
# face_detection_short_range.pbtxt: SsdAnchorsCalculator options
ANCHOR_STRIDES = (8, 16, 16, 16)
ANCHOR_OFFSET = 0.5
# TensorsToDetectionsCalculator options
DETECTION_KEYPOINTS = 6  # right eye, left eye, nose tip, mouth, right ear, left ear (the subject's)
SCORE_CLIP = 100.0
NMS_IOU = 0.3


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


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
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
        overlap = iou(boxes[best], boxes[remaining]) > iou_threshold
        cluster, remaining = remaining[overlap], remaining[~overlap]
        weights = scores[cluster] / scores[cluster].sum()
        out_boxes.append(weights @ boxes[cluster])
        out_keypoints.append(np.tensordot(weights, keypoints[cluster], axes=1))
        out_scores.append(scores[best])
    if not out_scores:
        return np.zeros((0, 4)), np.zeros((0, DETECTION_KEYPOINTS, 2)), np.zeros(0)
    return np.stack(out_boxes), np.stack(out_keypoints), np.asarray(out_scores)


def face_merit(det: Detection, image_size: tuple[int, int]) -> float:
    """How much a face claims to be the one analysed: its size, discounted by its distance from the centre.

    image_size is (width, height). A face twice as wide wins unless it sits at the very edge.
    """
    width, height = image_size
    centre = np.array([width / 2.0, height / 2.0])
    half_diagonal = math.hypot(width, height) / 2.0
    size = math.sqrt(max((det.box[2] - det.box[0]) * (det.box[3] - det.box[1]), 0.0))
    offset = float(np.linalg.norm((det.box[:2] + det.box[2:]) / 2.0 - centre)) / half_diagonal
    return size * (1.0 - 0.5 * min(offset, 1.0))


def ranked_faces(detections: Sequence[Detection], image_size: tuple[int, int]) -> list[int]:
    """Indices of ``detections``, the largest, most central face first (stable among equals)."""
    merits = [face_merit(d, image_size) for d in detections]
    return sorted(range(len(detections)), key=lambda i: -merits[i])


def primary_face(detections: Sequence[Detection], image_size: tuple[int, int]) -> int:
    """Index of the face to analyse: the largest, discounted by its distance from the image centre."""
    return ranked_faces(detections, image_size)[0]
