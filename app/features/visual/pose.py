"""Head pose: the similarity fit of the face mesh to MediaPipe's canonical face, as Euler angles."""

from __future__ import annotations

import numpy as np

from app.features.visual.space import euler_angles


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
