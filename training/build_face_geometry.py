"""Build ``model_store/face_geometry/1/``: MediaPipe's canonical 3D face and its 68 iBUG points.

Run ``python -m training.build_face_geometry`` (build time only; needs PyPI and npm).

Where the mesh comes from: the brief asked for ``canonical_face_model.obj`` from the
mediapipe 0.10.21 wheel. That wheel carries neither the .obj nor any face-geometry
metadata (its ``face_geometry/data`` folders hold only ``__init__.py``), so the script
records that search and then takes the same canonical mesh from the npm package
``@mediapipe/face_mesh`` (Apache-2.0, by Google), whose packed assets hold
``modules/face_geometry/data/geometry_pipeline_metadata_landmarks.binarypb``: a
``GeometryPipelineMetadata`` proto whose ``canonical_mesh`` has 468 vertices of
(x, y, z, u, v), the vertex list of ``canonical_face_model.obj``. The proto's wire format
is decoded here by hand (the schema is in the wheel's ``geometry_pipeline_metadata_pb2``),
so no protobuf runtime version matters.

Output frame: x right, y down, z away from the camera (``VisualSpec.pose_convention``);
MediaPipe's model has y up and z towards the camera, so (x, y, z) -> (x, -y, -z), a
rotation by 180 degrees about x (no mirroring). Units: centimetres, as MediaPipe's
metric face geometry defines them (outer eye corners ~9 cm apart).
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import json
import re
import struct
import subprocess
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.features.visual.ibug68 import MEDIAPIPE_TO_IBUG68, MESH_POINTS
from training.build_support import MEDIAPIPE_VERSION, MEDIAPIPE_WHEEL, download_mediapipe_wheel, sha256_bytes

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = REPO_ROOT / ".build" / "face_geometry"
OUT_DIR = REPO_ROOT / "model_store" / "face_geometry" / "1"

WHEEL_FILE = MEDIAPIPE_WHEEL
NPM_PACKAGE = "@mediapipe/face_mesh"
NPM_VERSION = "0.4.1657299874"
NPM_ASSETS_DATA = "package/face_mesh_solution_packed_assets.data"
NPM_ASSETS_LOADER = "package/face_mesh_solution_packed_assets_loader.js"
GEOMETRY_ASSET = "/third_party/mediapipe/modules/face_geometry/data/geometry_pipeline_metadata_landmarks.binarypb"
CONNECTIONS_IN_WHEEL = "mediapipe/python/solutions/face_mesh_connections.py"
LICENSE_IN_WHEEL = f"mediapipe-{MEDIAPIPE_VERSION}.dist-info/LICENSE"
# names in the wheel that would hold a canonical face if it carried one
CANONICAL_NAME_PATTERN = re.compile(r"canonical_face_model\.obj$|geometry_pipeline_metadata.*\.(binarypb|pbtxt)$")

# MediaPipe (y up, z towards the camera) -> project face frame (y down, z away)
MEDIAPIPE_TO_FACE_FRAME = np.diag([1.0, -1.0, -1.0])


def download_npm_package(dest: Path) -> tuple[Path, str]:
    """``npm pack`` the face-mesh package; returns (tarball, npm's sha512 integrity)."""
    dest.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["npm", "pack", f"{NPM_PACKAGE}@{NPM_VERSION}", "--json", "--pack-destination", str(dest)],
        check=True,
        capture_output=True,
        text=True,
    )
    info = json.loads(result.stdout)[0]
    return dest / info["filename"], info["integrity"]


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _proto_fields(buf: bytes) -> list[tuple[int, int, object]]:
    """(field number, wire type, value) of one protobuf message, in order."""
    fields: list[tuple[int, int, object]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        fields.append((number, wire, value))
    return fields


def canonical_vertices_from_metadata(blob: bytes) -> np.ndarray:
    """Vertex positions (468, 3) of ``GeometryPipelineMetadata.canonical_mesh`` (VERTEX_PT layout)."""
    meshes = [value for number, wire, value in _proto_fields(blob) if number == 1 and wire == 2]
    if len(meshes) != 1:
        raise ValueError("expected one canonical_mesh in the geometry metadata")
    floats: list[float] = []
    for number, wire, value in _proto_fields(meshes[0]):
        if number != 3:  # vertex_buffer; 1, 2 are the enums, 4 the triangle indices
            continue
        if wire == 5:
            floats.append(struct.unpack("<f", value)[0])
        elif wire == 2:  # packed encoding, should a later build use it
            floats.extend(struct.unpack(f"<{len(value) // 4}f", value))
    buffer = np.asarray(floats, dtype=np.float64).reshape(-1, 5)  # x, y, z, u, v
    return buffer[:, :3]


def canonical_vertices_from_obj(text: str) -> np.ndarray:
    vertices = [[float(v) for v in line.split()[1:4]] for line in text.splitlines() if line.startswith("v ")]
    return np.asarray(vertices, dtype=np.float64)


def eye_contours_from_wheel(source: str) -> dict[str, list[int]]:
    """Vertex indices of FACEMESH_RIGHT_EYE / FACEMESH_LEFT_EYE in the wheel's face_mesh_connections."""
    contours: dict[str, list[int]] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in ("FACEMESH_RIGHT_EYE", "FACEMESH_LEFT_EYE") and isinstance(node.value, ast.Call):
                edges = ast.literal_eval(node.value.args[0])
                contours[name] = sorted({i for edge in edges for i in edge})
    if set(contours) != {"FACEMESH_RIGHT_EYE", "FACEMESH_LEFT_EYE"}:
        raise ValueError("eye contours not found in face_mesh_connections.py")
    return contours


def apache_license_text(full: str) -> str:
    """The Apache-2.0 part of the wheel's LICENSE (third-party notices follow a ==== line)."""
    return full.split("\n=====", 1)[0].rstrip() + "\n"


@dataclass(frozen=True)
class MeshSource:
    vertices: np.ndarray  # (468, 3) in MediaPipe's frame
    description: dict[str, object]


def locate_canonical_mesh(wheel: Path) -> MeshSource:
    with zipfile.ZipFile(wheel) as archive:
        candidates = [n for n in archive.namelist() if CANONICAL_NAME_PATTERN.search(n)]
        obj = [n for n in candidates if n.endswith(".obj")]
        if obj:
            data = archive.read(obj[0])
            return MeshSource(
                canonical_vertices_from_obj(data.decode()),
                {"kind": "wheel", "path": obj[0], "file_sha256": sha256_bytes(data)},
            )
    # The wheel has none: take the canonical mesh from the npm package.
    tarball, integrity = download_npm_package(BUILD_DIR / "npm")
    with tarfile.open(tarball) as archive:
        loader = archive.extractfile(NPM_ASSETS_LOADER).read().decode()
        packed = archive.extractfile(NPM_ASSETS_DATA).read()
    files = json.loads(re.search(r'"files":\s*(\[.*?\])', loader, re.S).group(1))
    entry = next(f for f in files if f["filename"] == GEOMETRY_ASSET)
    blob = packed[entry["start"] : entry["end"]]
    return MeshSource(
        canonical_vertices_from_metadata(blob),
        {
            "kind": "npm",
            "wheel_search": f"{WHEEL_FILE} holds no canonical_face_model.obj and no "
            f"geometry_pipeline_metadata file (names searched: "
            f"{CANONICAL_NAME_PATTERN.pattern}; found {candidates})",
            "package": NPM_PACKAGE,
            "version": NPM_VERSION,
            "license": "Apache-2.0 (package.json)",
            "tarball": tarball.name,
            "tarball_sha256": sha256_bytes(tarball.read_bytes()),
            "npm_integrity": integrity,
            "path": f"{NPM_ASSETS_DATA} [{entry['start']}:{entry['end']}] = {GEOMETRY_ASSET}",
            "file_sha256": sha256_bytes(blob),
            "format": "GeometryPipelineMetadata proto, canonical_mesh.vertex_buffer (x, y, z, u, v) per vertex",
        },
    )


def rounded(array: np.ndarray) -> list:
    return np.round(np.asarray(array, dtype=np.float64), 6).tolist()


def build(out_dir: Path = OUT_DIR) -> dict[str, object]:
    wheel = download_mediapipe_wheel(BUILD_DIR / "wheel")
    wheel_sha = sha256_bytes(wheel.read_bytes())
    with zipfile.ZipFile(wheel) as archive:
        license_full = archive.read(LICENSE_IN_WHEEL).decode()
        metadata = archive.read(f"mediapipe-{MEDIAPIPE_VERSION}.dist-info/METADATA").decode()
        contours = eye_contours_from_wheel(archive.read(CONNECTIONS_IN_WHEEL).decode())
    wheel_license = re.search(r"^License: (.+)$", metadata, re.M).group(1).strip()

    source = locate_canonical_mesh(wheel)
    if source.vertices.shape != (MESH_POINTS, 3):
        raise ValueError(f"expected {MESH_POINTS} vertices, got {source.vertices.shape}")
    mesh = source.vertices @ MEDIAPIPE_TO_FACE_FRAME.T
    ibug = mesh[list(MEDIAPIPE_TO_IBUG68)]
    # iBUG 36-41 is the eye on the image's left: MediaPipe calls it the (subject's) right eye
    iris = np.stack(
        [mesh[contours["FACEMESH_RIGHT_EYE"]].mean(axis=0), mesh[contours["FACEMESH_LEFT_EYE"]].mean(axis=0)]
    )

    # sanity of the frame: image-left eye at negative x, eyes above the mouth, nose towards the camera
    eye_distance = float(np.linalg.norm(ibug[45] - ibug[36]))
    if not (ibug[36, 0] < 0 < ibug[45, 0] and iris[0, 0] < 0 < iris[1, 0]):
        raise ValueError("left/right are mirrored")
    if not ibug[36:48, 1].max() < ibug[48:68, 1].min():
        raise ValueError("y axis does not point down")
    if not ibug[30, 2] < ibug[36:48, 2].min():
        raise ValueError("z axis does not point away from the camera")

    canonical = {
        "format": "canonical_face_v1",
        "frame": "x right, y down, z away from the camera; MediaPipe's canonical face (y up, z towards "
        "the camera) mapped by (x, y, z) -> (x, -y, -z)",
        "units": "cm",
        "mesh_points": rounded(mesh),
        "ibug68_index": list(MEDIAPIPE_TO_IBUG68),
        "ibug68_index_source": "bytedance/LatentSync @75a4a1733c73, latentsync/utils/image_processor.py "
        "(landmark_points_68), Apache-2.0",
        "ibug68_points": rounded(ibug),
        "iris_centres": rounded(iris),
        "iris_estimate": "mean of the eye-contour vertices: FACEMESH_RIGHT_EYE (iBUG 36-41), "
        f"FACEMESH_LEFT_EYE (iBUG 42-47) of {CONNECTIONS_IN_WHEEL} in the wheel",
        "eye_contour_index": {"ibug36_41": contours["FACEMESH_RIGHT_EYE"], "ibug42_47": contours["FACEMESH_LEFT_EYE"]},
        "outer_eye_corner_distance": round(eye_distance, 6),
        "source": {
            "wheel": WHEEL_FILE,
            "wheel_sha256": wheel_sha,
            "wheel_license": wheel_license,
            "mesh": source.description,
        },
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    canonical_path = out_dir / "canonical_face.json"
    canonical_path.write_text(json.dumps(canonical, indent=1) + "\n")
    header = (
        f"Copied from {LICENSE_IN_WHEEL} in {WHEEL_FILE} (PyPI, sha256 {wheel_sha}),\n"
        f"whose metadata says 'License: {wheel_license}'. It covers MediaPipe's canonical face mesh\n"
        f"(taken from the Apache-2.0 npm package {NPM_PACKAGE}@{NPM_VERSION}, by Google) and the\n"
        "468 -> 68 table of bytedance/LatentSync (Apache-2.0). Only the Apache-2.0 part of that\n"
        "file is kept; its third-party notices are for code this folder does not contain.\n\n"
    )
    (out_dir / "LICENSE").write_text(header + apache_license_text(license_full))
    provenance = {
        "command": "python -m training.build_face_geometry",
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "files": {"canonical_face.json": sha256_bytes(canonical_path.read_bytes())},
        "source_wheel": {"name": WHEEL_FILE, "sha256": wheel_sha},
        "source_mesh": source.description,
    }
    (out_dir / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
    return canonical


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    canonical = build(args.out)
    eye_cm = canonical["outer_eye_corner_distance"]
    print(f"wrote {args.out}: 468 points, outer eye corners {eye_cm:.3f} cm apart")


if __name__ == "__main__":
    main()
