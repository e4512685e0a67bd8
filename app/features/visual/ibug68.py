"""MediaPipe face mesh (468 points) -> the 68 iBUG / OpenFace landmarks.

The table is the list ``landmark_points_68`` of the function
``mediapipe_lm478_to_face_alignment_lm68`` in bytedance/LatentSync @ 75a4a1733c73
("Release LatentSync 1.5"), file ``latentsync/utils/image_processor.py``.
Copyright (c) 2024 Bytedance Ltd. and/or its affiliates, licensed under the Apache
License, Version 2.0 (http://www.apache.org/licenses/LICENSE-2.0). Copied unchanged;
on one test face it is off from dlib's 68 points by 3.9 % of the outer-eye-corner
distance on average (research/face_pipeline.md, section 5).

Both the serve-time extractor and the synthetic corpus (through the canonical face in
``model_store/face_geometry``) use this one table.
"""

from __future__ import annotations

MESH_POINTS = 468
IBUG_POINTS = 68

# fmt: off
MEDIAPIPE_TO_IBUG68: tuple[int, ...] = (
    162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389,  # jaw 0-16
    71, 63, 105, 66, 107, 336, 296, 334, 293, 301,                                     # brows 17-26
    168, 197, 5, 4, 75, 97, 2, 326, 305,                                               # nose 27-35
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,                         # eyes 36-47
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,                               # outer lips 48-59
    78, 82, 13, 312, 308, 317, 14, 87,                                                 # inner lips 60-67
)
# fmt: on

# iBUG index ranges of the face parts (half-open), as the 68-point annotation defines them
JAW = range(0, 17)
BROWS = range(17, 27)
NOSE = range(27, 36)
EYES = range(36, 48)
MOUTH = range(48, 68)

if len(MEDIAPIPE_TO_IBUG68) != IBUG_POINTS or not all(0 <= i < MESH_POINTS for i in MEDIAPIPE_TO_IBUG68):
    raise AssertionError("the 468 -> 68 table must hold 68 mesh indices")
