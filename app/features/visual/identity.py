"""Is the analysed face still the same person? A cheap appearance descriptor (pure numpy + cv2).

Not face recognition: a 16 x 16 grey thumbnail of the inner face, taken from the crop the
tracker already aligns (eye line horizontal, scaled to the face), zero-mean and unit-variance
(so overall brightness and contrast drop out), compared by correlation, the better of the
thumbnail and its mirror image (so a face lit from the other side, or a mirrored camera,
still matches). Measured on the generated media (tests/media.py: the astronaut and Grace
Hopper, panning, zooming 0.7-1.3x, rotating +-20 degrees in plane, still, on four
backgrounds; 40 raw views per person, and 20 H.264-encoded ones): the same person
correlates 0.85-1.00 (raw; 0.90-1.00 encoded; the lowest pairs: a head
tilted 20 degrees in plane, whose crop corner shows the background, against a zoomed one), also under gamma 0.5 or 2,
40 % brightness, blur, noise, a colour cast, a light gradient across the face or a mirror
image (0.95 or more); the two people 0.22-0.40. SAME_PERSON sits between. Only two people
were measured: faces that look alike, strong head turns and lighting changes are what it
cannot tell apart from a change of person.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from app.features.visual.geometry import crop, roi_from_mesh

THUMB = 16  # the descriptor's side, in pixels
# the aligned crop is 1.5x the face's extent; its central 28/48 is the inner face (0.88 of its
# extent: less background at the cheeks than 2/3 gave, 0.85 vs 0.83 worst same-person correlation)
_CROP = 48
_INNER = slice(10, 38)
# correlation at or above which two thumbnails are the same person (measured: same >= 0.85, other <= 0.40)
SAME_PERSON = 0.65
# descriptors are compared only between similar head poses (yaw and pitch within this, degrees):
# a turned head changes the thumbnail more than the measured in-plane moves did
COMPARABLE_POSE_DEG = 15.0


@dataclass(frozen=True)
class Appearance:
    """One face's descriptor, with the head pose it was taken at."""

    thumb: np.ndarray  # (THUMB * THUMB,) float32, zero mean, unit variance
    yaw: float  # radians
    pitch: float  # radians


def appearance(image: np.ndarray, mesh: np.ndarray, yaw: float, pitch: float) -> Appearance:
    """The descriptor of the face whose 468-point mesh (image pixels) is ``mesh`` in RGB uint8 ``image``."""
    patch, _ = crop(image, roi_from_mesh(mesh), _CROP)
    grey = cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY)[_INNER, _INNER]
    thumb = cv2.resize(grey, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    thumb = (thumb - thumb.mean()) / max(float(thumb.std()), 1e-6)
    return Appearance(thumb=thumb, yaw=float(yaw), pitch=float(pitch))


def similarity(a: Appearance, b: Appearance) -> float:
    """Correlation of the two thumbnails, the better of b as it is and b mirrored; in [-1, 1]."""
    mirrored = b.thumb.reshape(THUMB, THUMB)[:, ::-1].ravel()
    return max(float(np.mean(a.thumb * b.thumb)), float(np.mean(a.thumb * mirrored)))


def comparable(a: Appearance, b: Appearance, max_deg: float = COMPARABLE_POSE_DEG) -> bool:
    """The two were taken at head poses close enough for ``similarity`` to mean something."""
    limit = np.radians(max_deg)
    return abs(a.yaw - b.yaw) <= limit and abs(a.pitch - b.pitch) <= limit
