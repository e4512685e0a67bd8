"""Build ``model_store/{face_detector,face_landmarks,iris_landmarks}/1/``: MediaPipe's face models as ONNX.

Run from the repository root::

    python -m training.build_face_models

The conversion needs tf2onnx, which needs TensorFlow (1.6 GB), and the parity reference
needs ai-edge-litert; the serving venv must carry neither, so this script creates (or
reuses) a build-only venv at ``.build/face-venv`` and re-executes itself there.

Source: the three ``.tflite`` files inside the mediapipe 0.10.21 wheel from PyPI (later
wheels carry no .tflite files); the wheel is downloaded, checked against a pinned sha256
and unzipped, never installed. Steps per model (measured recipe:
research/face_pipeline.md): tf2onnx (opset 13) -> dynamic batch axis ('N') -> PRelu
rewritten as ``Relu(x) - a * Relu(-x)`` (required bit-identical to the converted graph;
ONNX Runtime's PRelu kernel is about half of the landmark models' time) -> parity
against the tflite originals run by ai-edge-litert, on the astronaut image and on random
inputs, at batch 1 and batch 4 (the build fails above ``MAX_PARITY_DIFF``) -> CPU latency
-> files (model.onnx and the tflite original as model.tflite, which the LiteRT backend runs)
+ LICENSE + provenance.json. ``--tflite-originals`` adds only the tflite files to folders
already built (pinned wheel, sha256 against the provenance; no build venv). The input
layout stays NHWC as tf2onnx writes it.

The pre/post-processing helpers at the top (anchors, box decoding, rotated crops) need
only numpy and OpenCV; the tests use them too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from training.build_support import (
    MEDIAPIPE_VERSION,
    MEDIAPIPE_WHEEL,
    REPO,
    BuildVenv,
    download_mediapipe_wheel,
    sha256_file,
)

if TYPE_CHECKING:
    import onnx

WORK_DIR = REPO / ".build" / "face_models"
MODEL_STORE = REPO / "model_store"
MODEL_VERSION = 1
TFLITE_FILE = "model.tflite"
BUILD_COMMAND = "python -m training.build_face_models"

REQUIREMENTS = (
    "tf2onnx==1.17.0",
    "tensorflow-cpu==2.21.0",
    "onnx==1.23.2",
    "ai-edge-litert==2.3.0",
    "onnxruntime==1.31.1",
    "numpy==2.4.6",
    "opencv-python-headless==5.0.0.93",
    "scikit-image==0.26.0",
)
BUILD_VENV = BuildVenv(REPO / ".build" / "face-venv", REQUIREMENTS, "about 1.6 GB, mostly tensorflow-cpu")

WHEEL_FILE = MEDIAPIPE_WHEEL
# pinned: the same digest as research/face_pipeline.md and model_store/face_geometry/1
WHEEL_SHA256 = "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3"
LICENSE_IN_WHEEL = f"mediapipe-{MEDIAPIPE_VERSION}.dist-info/LICENSE"
METADATA_IN_WHEEL = f"mediapipe-{MEDIAPIPE_VERSION}.dist-info/METADATA"

OPSET = 13
MAX_PARITY_DIFF = 5e-4
PARITY_RANDOM_INPUTS = 5
PARITY_SEED = 20261125
LATENCY_BATCHES = (1, 16)
LATENCY_REPEATS = 5

# ------------------------------------------------------------------ model interfaces

DETECTOR_SIZE = 128
MESH_SIZE = 192
IRIS_SIZE = 64
MESH_ROI_SCALE = 1.5  # face_detection_front_detection_to_roi.pbtxt
IRIS_ROI_SCALE = 2.3  # iris_landmark_landmarks_to_roi.pbtxt
# eye-boundary mesh indices (iris_landmark_left_and_right_from_face_landmarks_cpu.pbtxt);
# MediaPipe calls the first pair the left eye; the second ("right") is flipped horizontally
IRIS_EYE_CORNERS = {"left": (33, 133), "right": (362, 263)}
DETECTOR_RIGHT_EYE, DETECTOR_LEFT_EYE = 0, 1  # keypoint order of the short-range detector


@dataclass(frozen=True)
class FaceModel:
    """One tflite model of the wheel and the interface its ONNX conversion must have."""

    name: str  # model_store folder
    tflite_in_wheel: str
    input_name: str
    input_hw: int
    input_range: tuple[float, float]
    outputs: dict[str, tuple[int, ...]]  # name -> shape without the batch axis
    description: str
    preprocessing: str
    output_meaning: dict[str, str] = field(default_factory=dict)


DETECTOR = FaceModel(
    name="face_detector",
    tflite_in_wheel="mediapipe/modules/face_detection/face_detection_short_range.tflite",
    input_name="input",
    input_hw=DETECTOR_SIZE,
    input_range=(-1.0, 1.0),
    outputs={"regressors": (896, 16), "classificators": (896, 1)},
    description="BlazeFace short-range face detector (faces within about 2 m of the camera)",
    preprocessing=(
        "RGB, letterboxed to a square (keep the aspect ratio, pad), resized to 128x128 "
        "(cv2.resize, bilinear), float32 NHWC, value = pixel / 127.5 - 1 (range [-1, 1])"
    ),
    output_meaning={
        "regressors": "per anchor, in input pixels (divide by 128 for image fractions): box centre offset "
        "(dx, dy) from the anchor centre, box (w, h), then 6 keypoints as (x, y) offsets from the anchor centre: "
        "0 right eye, 1 left eye (the subject's), 2 nose tip, 3 mouth centre, 4 right ear tragion, 5 left ear "
        "tragion",
        "classificators": "per anchor, the face logit; score = sigmoid(clip(logit, -100, 100)); MediaPipe keeps "
        "scores >= 0.5 and merges overlaps by weighted NMS (IoU 0.3)",
        "anchors": "896 = stride 8 (16x16 cells, 2 anchors each) then stride 16 (8x8 cells, 6 anchors each), "
        "row-major, anchor centre ((col + 0.5) / cells, (row + 0.5) / cells), fixed size 1; "
        "box centre = raw / 128 + anchor centre",
    },
)
MESH = FaceModel(
    name="face_landmarks",
    tflite_in_wheel="mediapipe/modules/face_landmark/face_landmark.tflite",
    input_name="input_1",
    input_hw=MESH_SIZE,
    input_range=(0.0, 1.0),
    outputs={"conv2d_21": (1, 1, 1404), "conv2d_31": (1, 1, 1)},
    description="MediaPipe face mesh: 468 3D landmarks and a face-presence logit",
    preprocessing=(
        "RGB crop around the face: centre = detection box centre, side = 1.5 x the box's longer side, "
        "rotated so that the detector's right-eye -> left-eye keypoints are horizontal "
        "(rotation = atan2(y_left - y_right, x_left - x_right) in image pixels, y down), "
        "resampled to 192x192 (bilinear, border replicated), float32 NHWC, value = pixel / 255 (range [0, 1]). "
        "On later frames MediaPipe crops from the previous landmarks instead (tracking)."
    ),
    output_meaning={
        "conv2d_21": "468 landmarks x (x, y, z) flattened to 1404; x, y in crop pixels [0, 192], z in the same "
        "scale relative to the face centre (MediaPipe: smaller = closer to the camera); map x, y back through the crop",
        "conv2d_31": "face-presence logit; presence = sigmoid(logit) (MediaPipe drops the face below 0.5)",
    },
)
IRIS = FaceModel(
    name="iris_landmarks",
    tflite_in_wheel="mediapipe/modules/iris_landmark/iris_landmark.tflite",
    input_name="input_1",
    input_hw=IRIS_SIZE,
    input_range=(0.0, 1.0),
    outputs={"output_eyes_contours_and_brows": (213,), "output_iris": (15,)},
    description="MediaPipe iris landmark model: eye contour and brow (71 points) and iris (5 points) of one eye",
    preprocessing=(
        "per eye, an RGB crop centred between the two eye-corner mesh points (33, 133) for MediaPipe's 'left' "
        "eye (image left) and (362, 263) for its 'right' eye, side = 2.3 x the corner distance, rotated so the "
        "corners are horizontal, resampled to 64x64 (bilinear, border replicated), float32 NHWC, value = "
        "pixel / 255 (range [0, 1]); the 'right' (362, 263) crop is flipped horizontally before the model "
        "(the model was trained on one eye only) and the output x un-flipped (x -> 64 - x) after"
    ),
    output_meaning={
        "output_eyes_contours_and_brows": "71 points x (x, y, z) in crop pixels [0, 64]: eye contour and brow",
        "output_iris": "5 points x (x, y, z) in crop pixels [0, 64]: iris centre first, then 4 on the iris edge",
    },
)
FACE_MODELS = (DETECTOR, MESH, IRIS)


# ------------------------------------------------------------------ pre/post-processing (numpy + cv2)


def detector_anchors() -> np.ndarray:
    """The 896 anchor centres (x, y) of the short-range detector, as image fractions."""
    centres = []
    for cells, per_cell in ((DETECTOR_SIZE // 8, 2), (DETECTOR_SIZE // 16, 6)):
        for row in range(cells):
            for col in range(cells):
                centres.extend([((col + 0.5) / cells, (row + 0.5) / cells)] * per_cell)
    return np.asarray(centres, dtype=np.float32)


def detector_input(image_rgb: np.ndarray) -> np.ndarray:
    """A square RGB uint8 image -> the detector's [1, 128, 128, 3] input in [-1, 1]."""
    import cv2

    resized = cv2.resize(image_rgb, (DETECTOR_SIZE, DETECTOR_SIZE), interpolation=cv2.INTER_LINEAR)
    return (resized.astype(np.float32) / 127.5 - 1.0)[None]


@dataclass(frozen=True)
class Detection:
    score: float
    box: np.ndarray  # (x0, y0, x1, y1), image fractions
    keypoints: np.ndarray  # (6, 2) image fractions


def decode_detections(regressors: np.ndarray, classificators: np.ndarray) -> list[Detection]:
    """One image's raw outputs ([896, 16], [896, 1]) -> detections, best score first (no NMS)."""
    anchors = detector_anchors()
    scores = 1.0 / (1.0 + np.exp(-np.clip(classificators[:, 0].astype(np.float64), -100.0, 100.0)))
    raw = regressors.astype(np.float64) / DETECTOR_SIZE
    centres = raw[:, 0:2] + anchors
    half_sizes = raw[:, 2:4] / 2
    boxes = np.concatenate([centres - half_sizes, centres + half_sizes], axis=1)
    keypoints = raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
    order = np.argsort(-scores)
    return [Detection(float(scores[i]), boxes[i], keypoints[i]) for i in order]


def rotated_square_crop(
    image_rgb: np.ndarray, centre_xy: Sequence[float], side: float, rotation: float, out_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Crop a square of ``side`` pixels rotated by ``rotation`` (radians, y down) to out_size x out_size.

    Returns the patch and the 2x3 affine that maps patch pixels to image pixels.
    """
    from app.features.visual.geometry import Roi, warp_square

    roi = Roi(centre=np.asarray(centre_xy, dtype=np.float64), side=side, angle=rotation)
    patch_to_image = roi.crop_to_image(out_size)
    # pixel indices as the affine's coordinates (no half-pixel shift): the crop the build's parity figures used
    return warp_square(image_rgb, patch_to_image, out_size), patch_to_image


def to_image(points_xy: np.ndarray, patch_to_image: np.ndarray) -> np.ndarray:
    return points_xy @ patch_to_image[:, :2].T + patch_to_image[:, 2]


def mesh_crop(image_rgb: np.ndarray, detection: Detection) -> tuple[np.ndarray, np.ndarray]:
    """The mesh model's [1, 192, 192, 3] input in [0, 1] for one detection, and the patch -> image affine."""
    height, width = image_rgb.shape[:2]
    size = np.array([width, height], dtype=np.float64)
    box = detection.box.reshape(2, 2) * size
    centre = box.mean(axis=0)
    side = float((box[1] - box[0]).max()) * MESH_ROI_SCALE
    right_eye, left_eye = detection.keypoints[[DETECTOR_RIGHT_EYE, DETECTOR_LEFT_EYE]] * size
    rotation = math.atan2(left_eye[1] - right_eye[1], left_eye[0] - right_eye[0])
    patch, patch_to_image = rotated_square_crop(image_rgb, centre, side, rotation, MESH_SIZE)
    return (patch.astype(np.float32) / 255.0)[None], patch_to_image


def iris_crops(image_rgb: np.ndarray, mesh_xy: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per eye ('left', 'right' in MediaPipe's naming): the iris model's [1, 64, 64, 3] input and its affine.

    The 'right' patch is flipped horizontally, as the model expects; its affine is the unflipped one.
    """
    crops = {}
    for eye, (first, second) in IRIS_EYE_CORNERS.items():
        a, b = mesh_xy[first], mesh_xy[second]
        rotation = math.atan2(b[1] - a[1], b[0] - a[0])
        side = float(np.hypot(*(b - a))) * IRIS_ROI_SCALE
        patch, patch_to_image = rotated_square_crop(image_rgb, (a + b) / 2, side, rotation, IRIS_SIZE)
        if eye == "right":
            patch = patch[:, ::-1]
        crops[eye] = ((patch.astype(np.float32) / 255.0)[None], patch_to_image)
    return crops


# ------------------------------------------------------------------ launcher


# ------------------------------------------------------------------ build steps (inside the build venv)


def extract_tflite(wheel: Path, model: FaceModel, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / Path(model.tflite_in_wheel).name
    with zipfile.ZipFile(wheel) as archive:
        target.write_bytes(archive.read(model.tflite_in_wheel))
    return target


def convert(tflite_path: Path, onnx_path: Path) -> dict[str, Any]:
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tf2onnx.convert",
            "--tflite",
            str(tflite_path),
            "--output",
            str(onnx_path),
            "--opset",
            str(OPSET),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    (onnx_path.with_suffix(".tf2onnx.log")).write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"tf2onnx failed on {tflite_path.name}:\n{result.stderr[-3000:]}")
    return {
        "step": "convert",
        "tool": "tf2onnx.convert (python -m tf2onnx.convert --tflite <file> --output <file> --opset 13)",
        "opset": OPSET,
        "layout": "NHWC input kept as tf2onnx writes it (Transpose nodes inside the graph)",
        "bytes": onnx_path.stat().st_size,
        "seconds": round(time.perf_counter() - started, 2),
    }


def make_batch_dynamic(model: onnx.ModelProto) -> dict[str, Any]:
    """Leading dim of every input/output -> 'N'; constant Reshape shapes follow the batch."""
    from onnx import numpy_helper

    graph = model.graph
    for value in list(graph.input) + list(graph.output):
        value.type.tensor_type.shape.dim[0].ClearField("dim_value")
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    # the converter's value_info fixes the batch at 1 inside the graph; shape inference redoes it
    del graph.value_info[:]
    initializers = {init.name: init for init in graph.initializer}
    edited: dict[str, list[int]] = {}
    for node in graph.node:
        shape_name = node.input[1] if node.op_type == "Reshape" else None
        # several Reshapes may share one shape initializer: edit each once
        if shape_name in initializers and shape_name not in edited:
            tensor = initializers[shape_name]
            shape = numpy_helper.to_array(tensor).astype(np.int64).copy()
            if shape[0] != 1:
                raise RuntimeError(f"Reshape shape {shape.tolist()} does not start with the batch of 1")
            # 0 = copy the input's batch; -1 only where no other axis is already inferred
            shape[0] = 0 if (shape == -1).any() else -1
            tensor.CopyFrom(numpy_helper.from_array(shape, tensor.name))
            edited[shape_name] = shape.tolist()
    return {
        "step": "dynamic_batch",
        "what": "inputs/outputs dim 0 -> dim_param 'N'; value_info dropped; constant Reshape shapes: leading 1 -> "
        "0 (copy the batch) when the shape holds a -1, else -1 (each shared initializer edited once)",
        "reshape_shapes": edited,
    }


def rewrite_prelu(model: onnx.ModelProto) -> dict[str, Any]:
    """PRelu(x, a) -> Sub(Relu(x), Mul(Relu(Neg(x)), a)): the same numbers, faster in ONNX Runtime."""
    from onnx import helper

    graph = model.graph
    nodes = []
    rewritten = 0
    for node in graph.node:
        if node.op_type != "PRelu":
            nodes.append(node)
            continue
        x, slope = node.input
        prefix = f"{node.name or node.output[0]}/prelu_rewrite"
        nodes.extend(
            [
                helper.make_node("Relu", [x], [f"{prefix}/pos"], name=f"{prefix}/relu_pos"),
                helper.make_node("Neg", [x], [f"{prefix}/negx"], name=f"{prefix}/neg"),
                helper.make_node("Relu", [f"{prefix}/negx"], [f"{prefix}/neg_part"], name=f"{prefix}/relu_neg"),
                helper.make_node("Mul", [f"{prefix}/neg_part", slope], [f"{prefix}/scaled"], name=f"{prefix}/mul"),
                helper.make_node("Sub", [f"{prefix}/pos", f"{prefix}/scaled"], [node.output[0]], name=f"{prefix}/sub"),
            ]
        )
        rewritten += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return {
        "step": "prelu_rewrite",
        "what": "PRelu(x, a) -> Sub(Relu(x), Mul(Relu(Neg(x)), a)); exact in IEEE arithmetic "
        "(x > 0: x - a*0; x < 0: 0 - a*(-x) = a*x), about 45 % of ORT CPU time in the mesh and iris models",
        "prelu_nodes_rewritten": rewritten,
    }


def finish_model(model: onnx.ModelProto, path: Path) -> onnx.ModelProto:
    import onnx

    onnx.checker.check_model(model)
    inferred = onnx.shape_inference.infer_shapes(model)
    onnx.save(inferred, str(path))
    return inferred


def io_signature(model: onnx.ModelProto) -> dict[str, dict[str, list[int | str]]]:
    def shape(value: onnx.ValueInfoProto) -> list[int | str]:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    return {
        "inputs": {v.name: shape(v) for v in model.graph.input},
        "outputs": {v.name: shape(v) for v in model.graph.output},
    }


def check_interface(model: FaceModel, signature: dict[str, dict[str, list[int | str]]]) -> None:
    wanted_inputs = {model.input_name: ["N", model.input_hw, model.input_hw, 3]}
    wanted_outputs = {name: ["N", *shape] for name, shape in model.outputs.items()}
    if signature["inputs"] != wanted_inputs or signature["outputs"] != wanted_outputs:
        raise RuntimeError(f"{model.name}: interface {signature}, expected {wanted_inputs} -> {wanted_outputs}")


class OrtRunner:
    def __init__(self, path: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.output_names, self.session.run(None, {self.input_name: batch}), strict=True))


class LiteRunner:
    """The tflite original, one image at a time (ai-edge-litert with its default XNNPACK delegate)."""

    def __init__(self, path: Path) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=1)
        self.interpreter.allocate_tensors()
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.outputs = {d["name"]: d["index"] for d in self.interpreter.get_output_details()}

    def __call__(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        results: dict[str, list[np.ndarray]] = {name: [] for name in self.outputs}
        for image in batch:
            self.interpreter.set_tensor(self.input_index, image[None])
            self.interpreter.invoke()
            for name, index in self.outputs.items():
                results[name].append(self.interpreter.get_tensor(index).copy())
        return {name: np.concatenate(parts) for name, parts in results.items()}


def astronaut_model_inputs(
    detector: OrtRunner, mesh: OrtRunner, iris: OrtRunner
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The astronaut image through detector -> mesh crop -> iris crops: each model's real input, and a summary."""
    from skimage import data

    image = data.astronaut()
    det_input = detector_input(image)
    det_out = detector(det_input)
    best = decode_detections(det_out["regressors"][0], det_out["classificators"][0])[0]
    mesh_input, mesh_to_image = mesh_crop(image, best)
    mesh_out = mesh(mesh_input)
    mesh_xy = to_image(mesh_out["conv2d_21"].reshape(468, 3)[:, :2].astype(np.float64), mesh_to_image)
    crops = iris_crops(image, mesh_xy)
    iris_centres = {}
    for eye, (patch, patch_to_image) in crops.items():
        centre = iris(patch)["output_iris"].reshape(5, 3)[0, :2].astype(np.float64)
        if eye == "right":  # the model saw a mirrored crop
            centre[0] = IRIS_SIZE - centre[0]
        iris_centres[eye] = [round(float(v), 1) for v in to_image(centre[None], patch_to_image)[0]]
    size = np.array(image.shape[1::-1], dtype=np.float64)
    summary = {
        "image": "skimage.data.astronaut(), 512x512 RGB",
        "detector_best_score": round(best.score, 4),
        "detector_box_px": [round(float(v), 1) for v in (best.box.reshape(2, 2) * size).ravel()],
        "mesh_presence": round(float(1 / (1 + np.exp(-mesh_out["conv2d_31"].ravel()[0]))), 4),
        "mesh_span_px": [round(float(v), 1) for v in (*mesh_xy.min(axis=0), *mesh_xy.max(axis=0))],
        "iris_centres_px": iris_centres,
        "detector_eye_keypoints_px": [
            [round(float(v), 1) for v in best.keypoints[i] * size] for i in (DETECTOR_RIGHT_EYE, DETECTOR_LEFT_EYE)
        ],
    }
    inputs = {
        DETECTOR.name: det_input,
        MESH.name: mesh_input,
        IRIS.name: np.concatenate([crops["left"][0], crops["right"][0]]),
    }
    return inputs, summary


def parity(
    model: FaceModel,
    tflite: LiteRunner,
    converted: OrtRunner,
    shipped: OrtRunner,
    astronaut: np.ndarray,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Max abs differences: shipped ONNX vs tflite (batch 1 and 4), vs the un-rewritten ONNX, batch 4 vs 1."""
    low, high = model.input_range
    shape = (PARITY_RANDOM_INPUTS, model.input_hw, model.input_hw, 3)
    random_inputs = rng.uniform(low, high, size=shape).astype(np.float32)
    cases = {"astronaut": astronaut, "random": random_inputs}
    report: dict[str, Any] = {"inputs": {k: int(v.shape[0]) for k, v in cases.items()}}
    worst = 0.0
    for label, inputs in cases.items():
        reference = tflite(inputs)
        one_by_one = [shipped(image[None]) for image in inputs]
        batch1 = {name: np.concatenate([out[name] for out in one_by_one]) for name in model.outputs}
        entry: dict[str, Any] = {}
        for name in model.outputs:
            diff_b1 = float(np.abs(batch1[name] - reference[name]).max())
            entry[name] = {"max_abs_vs_tflite_batch1": diff_b1, "max_abs_output": float(np.abs(reference[name]).max())}
            worst = max(worst, diff_b1)
        # batch 4: the first four inputs as one run (the astronaut's two eyes are padded with random crops)
        batch4_inputs = np.concatenate([inputs, random_inputs])[:4]
        batch4 = shipped(batch4_inputs)
        batch4_reference = tflite(batch4_inputs)
        unrewritten = converted(batch4_inputs)
        for name in model.outputs:
            diff_b4 = float(np.abs(batch4[name] - batch4_reference[name]).max())
            entry[name]["max_abs_vs_tflite_batch4"] = diff_b4
            worst = max(worst, diff_b4)
            if not np.array_equal(batch4[name], unrewritten[name]):
                raise RuntimeError(f"{model.name}/{name}: the PRelu rewrite changed the output")
            entry[name]["prelu_rewrite_bit_identical"] = True
            one_by_one_b4 = np.concatenate([shipped(image[None])[name] for image in batch4_inputs])
            entry[name]["batch4_vs_batch1_max_abs"] = float(np.abs(batch4[name] - one_by_one_b4).max())
        if label == "astronaut":
            entry["observed_output_range"] = {
                name: [float(batch1[name].min()), float(batch1[name].max())] for name in model.outputs
            }
        report[label] = entry
    report["worst_max_abs_vs_tflite"] = worst
    report["limit"] = MAX_PARITY_DIFF
    if worst > MAX_PARITY_DIFF:
        raise RuntimeError(f"{model.name}: ONNX differs from tflite by {worst} > {MAX_PARITY_DIFF}")
    return report


def latency(model: FaceModel, paths: dict[str, Path], rng: np.random.Generator) -> dict[str, Any]:
    """Median/min wall ms per call, ONNX Runtime CPU, 1 intra-op thread, random input."""
    low, high = model.input_range
    report: dict[str, Any] = {
        "runtime": "onnxruntime CPUExecutionProvider, ORT_ENABLE_ALL, intra_op 1, inter_op 1",
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs (shared)",
        "repeats": LATENCY_REPEATS,
    }
    for label, path in paths.items():
        runner = OrtRunner(path, threads=1)
        for batch_size in LATENCY_BATCHES:
            batch = rng.uniform(low, high, size=(batch_size, model.input_hw, model.input_hw, 3)).astype(np.float32)
            calls = max(3, 40 // batch_size)
            runner(batch)  # warm-up: first-run allocations
            walls = []
            for _ in range(LATENCY_REPEATS):
                started = time.perf_counter()
                for _ in range(calls):
                    runner(batch)
                walls.append((time.perf_counter() - started) / calls * 1000)
            walls.sort()
            report[f"{label}_batch{batch_size}"] = {
                "median_ms": round(walls[len(walls) // 2], 2),
                "min_ms": round(walls[0], 2),
                "median_ms_per_image": round(walls[len(walls) // 2] / batch_size, 2),
            }
    return report


def op_counts(model: onnx.ModelProto) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def licence_text(wheel: Path, model: FaceModel, tflite_sha: str, prelu_rewritten: int) -> str:
    with zipfile.ZipFile(wheel) as archive:
        full = archive.read(LICENSE_IN_WHEEL).decode()
        metadata = archive.read(METADATA_IN_WHEEL).decode()
    if "License: Apache 2.0" not in metadata:
        raise RuntimeError("the mediapipe wheel no longer declares 'License: Apache 2.0'")
    # the Apache-2.0 part; third-party notices for code this folder does not contain follow a ==== line
    apache = full.split("\n=====", 1)[0].rstrip() + "\n"
    if "END OF TERMS AND CONDITIONS" not in apache or "Version 2.0, January 2004" not in apache:
        raise RuntimeError(f"{LICENSE_IN_WHEEL} is not a full Apache-2.0 text")
    header = (
        f"model.onnx in this folder is converted from {model.tflite_in_wheel}\n"
        f"(sha256 {tflite_sha}) in {WHEEL_FILE}\n"
        f"(PyPI, sha256 {WHEEL_SHA256}): MediaPipe, by The MediaPipe Authors (Google),\n"
        "whose wheel metadata says 'License: Apache 2.0'.\n"
        "Modifications: converted to ONNX by tf2onnx, batch axis made dynamic"
        + (", PRelu written as\nRelu(x) - a * Relu(-x) (the same numbers)" if prelu_rewritten else "")
        + "; see provenance.json.\n\n"
        f"The licence text below is copied from {LICENSE_IN_WHEEL} in that wheel; only its\n"
        "Apache-2.0 part is kept: its third-party notices cover code this folder does not contain.\n\n"
    )
    return header + apache


def tool_versions() -> dict[str, str]:
    from importlib import metadata

    names = (
        "tf2onnx",
        "tensorflow-cpu",
        "onnx",
        "onnxruntime",
        "ai-edge-litert",
        "numpy",
        "opencv-python-headless",
        "scikit-image",
        "protobuf",
    )
    versions = {name: metadata.version(name) for name in names}
    versions["python"] = platform.python_version()
    return versions


def build() -> None:
    import onnx

    started = time.perf_counter()
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    wheel = download_mediapipe_wheel(WORK_DIR / "wheel", WHEEL_SHA256)
    rng = np.random.default_rng(PARITY_SEED)

    converted: dict[str, dict[str, Any]] = {}
    for model in FACE_MODELS:
        tflite_path = extract_tflite(wheel, model, WORK_DIR / "tflite")
        raw_path = WORK_DIR / f"{model.name}.tf2onnx.onnx"
        steps = [convert(tflite_path, raw_path)]
        proto = onnx.load(str(raw_path))
        steps.append(make_batch_dynamic(proto))
        dynamic_path = WORK_DIR / f"{model.name}.dynamic.onnx"
        finish_model(proto, dynamic_path)
        steps.append(rewrite_prelu(proto))
        final_path = WORK_DIR / f"{model.name}.onnx"
        final = finish_model(proto, final_path)
        signature = io_signature(final)
        check_interface(model, signature)
        converted[model.name] = {
            "tflite": tflite_path,
            "dynamic": dynamic_path,
            "final": final_path,
            "steps": steps,
            "signature": signature,
            "ops": op_counts(final),
        }
        print(f"converted {model.name}: {signature}", flush=True)

    runners = {name: OrtRunner(info["final"]) for name, info in converted.items()}
    astronaut, astronaut_summary = astronaut_model_inputs(
        runners[DETECTOR.name], runners[MESH.name], runners[IRIS.name]
    )
    print(f"astronaut: {astronaut_summary}", flush=True)

    folders: dict[str, Path] = {}
    staging_root = Path(tempfile.mkdtemp(prefix=".staging-faces-", dir=MODEL_STORE))
    tools = tool_versions()
    wheel_sha = sha256_file(wheel)
    for model in FACE_MODELS:
        info = converted[model.name]
        report = parity(
            model,
            LiteRunner(info["tflite"]),
            OrtRunner(info["dynamic"]),
            runners[model.name],
            astronaut[model.name],
            rng,
        )
        print(f"parity {model.name}: worst {report['worst_max_abs_vs_tflite']:.3g}", flush=True)
        timing = latency(model, {"shipped": info["final"], "prelu_as_converted": info["dynamic"]}, rng)
        print(f"latency {model.name}: {timing}", flush=True)

        staging = staging_root / model.name
        staging.mkdir()
        shutil.copyfile(info["final"], staging / "model.onnx")
        shutil.copyfile(info["tflite"], staging / TFLITE_FILE)  # the CPU backend runs the original
        tflite_sha = sha256_file(info["tflite"])
        prelu_rewritten = info["steps"][-1]["prelu_nodes_rewritten"]
        (staging / "LICENSE").write_text(licence_text(wheel, model, tflite_sha, prelu_rewritten))
        provenance = {
            "name": model.name,
            "version": MODEL_VERSION,
            "description": model.description,
            "licence": "Apache-2.0",
            "licence_text_from": f"{WHEEL_FILE}: {LICENSE_IN_WHEEL} (Apache-2.0 part)",
            "source": {
                "package": "mediapipe",
                "version": MEDIAPIPE_VERSION,
                "registry": "PyPI",
                "wheel": WHEEL_FILE,
                "wheel_sha256": wheel_sha,
                "tflite_in_wheel": model.tflite_in_wheel,
                "tflite_sha256": tflite_sha,
                "tflite_bytes": info["tflite"].stat().st_size,
            },
            "interface": {
                "layout": "NHWC (as tf2onnx writes it; the graph transposes internally)",
                "dtype": "float32",
                "batch_axis": "dynamic, dim_param 'N'",
                "inputs": info["signature"]["inputs"],
                "outputs": info["signature"]["outputs"],
                "input_range": list(model.input_range),
                "preprocessing": model.preprocessing,
                "outputs_meaning": model.output_meaning,
            },
            "ops": info["ops"],
            "steps": info["steps"],
            "parity": {
                "reference": f"the tflite original in ai-edge-litert {tools['ai-edge-litert']} (XNNPACK, 1 thread), "
                "one image per invoke",
                "astronaut_pipeline": astronaut_summary,
                "random_inputs": f"uniform over the input range, numpy default_rng({PARITY_SEED})",
                **report,
            },
            "latency": timing,
            "tools": tools,
            "build_command": BUILD_COMMAND,
            "build_venv_requirements": list(REQUIREMENTS),
            "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "sha256": {"model.onnx": sha256_file(staging / "model.onnx"), TFLITE_FILE: tflite_sha},
            "bytes": {
                "model.onnx": (staging / "model.onnx").stat().st_size,
                TFLITE_FILE: info["tflite"].stat().st_size,
            },
            "reproducibility": "tf2onnx's node names and order vary between runs, so the sha256 changes on "
            "every rebuild; verify a rebuild numerically (parity), not by hash",
        }
        (staging / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n")
        folders[model.name] = staging

    build_wall = round(time.perf_counter() - started, 1)
    # swap only after every model passed, so a failed build never leaves a half store
    for name, staging in folders.items():
        provenance_path = staging / "provenance.json"
        provenance = json.loads(provenance_path.read_text())
        provenance["build_wall_s"] = build_wall
        provenance_path.write_text(json.dumps(provenance, indent=2) + "\n")
        target = MODEL_STORE / name / str(MODEL_VERSION)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
        target.chmod(0o755)
        print(f"wrote {target}: sha256 {provenance['sha256']['model.onnx']}", flush=True)
    shutil.rmtree(staging_root)
    print(f"built in {build_wall} s", flush=True)


def add_tflite_originals() -> None:
    """Put each model's tflite original next to its ONNX conversion (``model.tflite``), for
    the LiteRT backend, without reconverting: the file is unzipped from the pinned wheel and
    must have the sha256 the folder's provenance already records for its source. Needs only
    the standard library and pip, so it runs in the serving venv."""
    wheel = download_mediapipe_wheel(WORK_DIR / "wheel", WHEEL_SHA256)
    for model in FACE_MODELS:
        folder = MODEL_STORE / model.name / str(MODEL_VERSION)
        provenance_path = folder / "provenance.json"
        provenance = json.loads(provenance_path.read_text())
        target = extract_tflite(wheel, model, WORK_DIR / "tflite")
        digest = sha256_file(target)
        if digest != provenance["source"]["tflite_sha256"]:
            raise RuntimeError(f"{model.tflite_in_wheel} has sha256 {digest}, provenance says another")
        shutil.copyfile(target, folder / TFLITE_FILE)
        provenance["sha256"][TFLITE_FILE] = digest
        provenance.setdefault("bytes", {})[TFLITE_FILE] = target.stat().st_size
        provenance["tflite_original"] = (
            f"{TFLITE_FILE} is {model.tflite_in_wheel} from {WHEEL_FILE} unchanged (for the LiteRT backend), "
            f"added by `{BUILD_COMMAND} --tflite-originals`; parity of model.onnx against it is above"
        )
        provenance_path.write_text(json.dumps(provenance, indent=2) + "\n")
        print(f"wrote {folder / TFLITE_FILE}: sha256 {digest}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tflite-originals",
        action="store_true",
        help="only add the tflite originals to the built folders (no conversion, no build venv)",
    )
    args = parser.parse_args(argv)
    if args.tflite_originals:
        add_tflite_originals()
        return 0
    if not BUILD_VENV.active:
        # TF_CPP_MIN_LOG_LEVEL: TensorFlow's C++ start-up chatter buries the build log
        return BUILD_VENV.relaunch("training.build_face_models", argv, {"TF_CPP_MIN_LOG_LEVEL": "2"})
    build()
    return 0


if __name__ == "__main__":
    sys.exit(main())
