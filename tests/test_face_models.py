"""The shipped MediaPipe face models (model_store/{face_detector,face_landmarks,iris_landmarks}/1) in ONNX Runtime."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from skimage import data

from training.build_face_models import (
    DETECTOR,
    DETECTOR_LEFT_EYE,
    DETECTOR_RIGHT_EYE,
    FACE_MODELS,
    IRIS,
    IRIS_EYE_CORNERS,
    IRIS_SIZE,
    MAX_PARITY_DIFF,
    MESH,
    Detection,
    FaceModel,
    decode_detections,
    detector_anchors,
    detector_input,
    iris_crops,
    mesh_crop,
    rotated_square_crop,
    to_image,
)

MODEL_STORE = Path(__file__).resolve().parent.parent / "model_store"
MODEL_IDS = [model.name for model in FACE_MODELS]

# the astronaut's face on the 512x512 image (by eye: forehead to chin, ear to ear) and a
# region both eyes lie in; the detector's box must hold the eyes and stay near the face
FACE_REGION = (170.0, 70.0, 285.0, 190.0)
EYES_REGION = (200.0, 90.0, 255.0, 120.0)


def model_dir(model: FaceModel) -> Path:
    return MODEL_STORE / model.name / "1"


def provenance(model: FaceModel) -> dict[str, Any]:
    return json.loads((model_dir(model) / "provenance.json").read_text())


@pytest.fixture(scope="module")
def sessions() -> dict[str, ort.InferenceSession]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return {
        model.name: ort.InferenceSession(
            str(model_dir(model) / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )
        for model in FACE_MODELS
    }


def run(session: ort.InferenceSession, batch: np.ndarray) -> dict[str, np.ndarray]:
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(None, {session.get_inputs()[0].name: batch}), strict=True))


def random_batch(model: FaceModel, size: int, seed: int) -> np.ndarray:
    low, high = model.input_range
    shape = (size, model.input_hw, model.input_hw, 3)
    return np.random.default_rng(seed).uniform(low, high, size=shape).astype(np.float32)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


@pytest.fixture(scope="module")
def best_detection(sessions: dict[str, ort.InferenceSession], astronaut: np.ndarray) -> Detection:
    outputs = run(sessions[DETECTOR.name], detector_input(astronaut))
    return decode_detections(outputs["regressors"][0], outputs["classificators"][0])[0]


def sigmoid(logit: float) -> float:
    return float(1.0 / (1.0 + np.exp(-logit)))


@pytest.mark.parametrize("model", FACE_MODELS, ids=MODEL_IDS)
def test_each_model_file_matches_the_sha256_in_its_provenance(model: FaceModel) -> None:
    digest = hashlib.sha256((model_dir(model) / "model.onnx").read_bytes()).hexdigest()
    assert digest == provenance(model)["sha256"]["model.onnx"]


@pytest.mark.parametrize("model", FACE_MODELS, ids=MODEL_IDS)
def test_each_model_has_the_io_names_and_nhwc_shapes_its_provenance_records(
    model: FaceModel, sessions: dict[str, ort.InferenceSession]
) -> None:
    session = sessions[model.name]
    recorded = provenance(model)["interface"]
    assert {i.name: i.shape for i in session.get_inputs()} == recorded["inputs"]
    assert {o.name: o.shape for o in session.get_outputs()} == recorded["outputs"]
    assert recorded["inputs"] == {model.input_name: ["N", model.input_hw, model.input_hw, 3]}
    assert recorded["outputs"] == {name: ["N", *shape] for name, shape in model.outputs.items()}


@pytest.mark.parametrize("model", FACE_MODELS, ids=MODEL_IDS)
def test_a_batch_of_four_equals_four_single_image_runs(
    model: FaceModel, sessions: dict[str, ort.InferenceSession]
) -> None:
    session = sessions[model.name]
    batch = random_batch(model, 4, seed=7)
    together = run(session, batch)
    for name, shape in model.outputs.items():
        one_by_one = np.concatenate([run(session, image[None])[name] for image in batch])
        assert together[name].shape == (4, *shape)
        assert np.abs(together[name] - one_by_one).max() <= 1e-5


def test_the_detector_has_896_anchors_two_per_stride_8_cell_then_six_per_stride_16_cell() -> None:
    anchors = detector_anchors()
    assert anchors.shape == (896, 2)
    # stride 8: 16x16 cells, the first cell's two anchors share its centre
    assert np.allclose(anchors[0], [0.5 / 16, 0.5 / 16]) and np.allclose(anchors[1], anchors[0])
    assert np.allclose(anchors[2], [1.5 / 16, 0.5 / 16])
    # stride 16 starts at 512 with six anchors on the first 8x8 cell
    assert np.allclose(anchors[512:518], [0.5 / 8, 0.5 / 8])
    assert np.allclose(anchors[-1], [7.5 / 8, 7.5 / 8])


def test_the_detector_finds_the_astronauts_face_with_the_eyes_inside_its_box(
    best_detection: Detection, astronaut: np.ndarray
) -> None:
    size = np.array(astronaut.shape[1::-1], dtype=np.float64)
    x0, y0, x1, y1 = best_detection.box * np.tile(size, 2)
    assert best_detection.score > 0.8
    assert x0 <= EYES_REGION[0] and y0 <= EYES_REGION[1] and x1 >= EYES_REGION[2] and y1 >= EYES_REGION[3]
    assert x0 >= FACE_REGION[0] and y0 >= FACE_REGION[1] and x1 <= FACE_REGION[2] and y1 <= FACE_REGION[3]
    right_eye, left_eye = best_detection.keypoints[[DETECTOR_RIGHT_EYE, DETECTOR_LEFT_EYE]] * size
    for eye in (right_eye, left_eye):
        assert EYES_REGION[0] <= eye[0] <= EYES_REGION[2] and EYES_REGION[1] <= eye[1] <= EYES_REGION[3]
    assert right_eye[0] < left_eye[0]  # the subject's right eye is on the image's left


def test_the_detector_finds_no_face_in_the_background(
    sessions: dict[str, ort.InferenceSession], astronaut: np.ndarray
) -> None:
    background = np.ascontiguousarray(astronaut[300:512, 300:512])
    outputs = run(sessions[DETECTOR.name], detector_input(background))
    assert decode_detections(outputs["regressors"][0], outputs["classificators"][0])[0].score < 0.5


def test_the_mesh_on_the_detected_face_reports_a_face_and_puts_its_points_on_it(
    sessions: dict[str, ort.InferenceSession], astronaut: np.ndarray, best_detection: Detection
) -> None:
    crop, crop_to_image = mesh_crop(astronaut, best_detection)
    outputs = run(sessions[MESH.name], crop)
    assert sigmoid(outputs["conv2d_31"].ravel()[0]) > 0.9
    points = to_image(outputs["conv2d_21"].reshape(468, 3)[:, :2].astype(np.float64), crop_to_image)
    x0, y0, x1, y1 = FACE_REGION
    assert ((points[:, 0] >= x0) & (points[:, 0] <= x1) & (points[:, 1] >= y0) & (points[:, 1] <= y1)).all()


def test_the_mesh_on_a_background_crop_reports_no_face(
    sessions: dict[str, ort.InferenceSession], astronaut: np.ndarray
) -> None:
    patch, _ = rotated_square_crop(astronaut, (60.0, 60.0), 140.0, 0.0, MESH.input_hw)
    outputs = run(sessions[MESH.name], (patch.astype(np.float32) / 255.0)[None])
    assert sigmoid(outputs["conv2d_31"].ravel()[0]) < 0.5


def test_each_iris_centre_lies_between_its_eye_corners(
    sessions: dict[str, ort.InferenceSession], astronaut: np.ndarray, best_detection: Detection
) -> None:
    crop, crop_to_image = mesh_crop(astronaut, best_detection)
    mesh = run(sessions[MESH.name], crop)["conv2d_21"].reshape(468, 3)[:, :2].astype(np.float64)
    mesh_xy = to_image(mesh, crop_to_image)
    for eye, (patch, patch_to_image) in iris_crops(astronaut, mesh_xy).items():
        centre = run(sessions[IRIS.name], patch)["output_iris"].reshape(5, 3)[0, :2].astype(np.float64)
        if eye == "right":  # the model saw the mirrored crop
            centre[0] = IRIS_SIZE - centre[0]
        centre = to_image(centre[None], patch_to_image)[0]
        first, second = (mesh_xy[i] for i in IRIS_EYE_CORNERS[eye])
        along = np.dot(centre - first, second - first) / np.dot(second - first, second - first)
        (ax, ay), (bx, by) = second - first, centre - first
        across = abs(ax * by - ay * bx) / np.linalg.norm(second - first)
        assert 0.25 < along < 0.75, f"{eye} iris centre not between the corners ({along:.2f} along)"
        assert across < 0.25 * np.linalg.norm(second - first), f"{eye} iris centre {across:.1f} px off the eye line"


@pytest.mark.skipif(
    importlib.util.find_spec("ai_edge_litert") is None,
    reason="ai_edge_litert is not installed (the cpu extra brings it; the gpu extra does not)",
)
@pytest.mark.parametrize("model", FACE_MODELS, ids=MODEL_IDS)
def test_each_model_matches_its_tflite_original(model: FaceModel, sessions: dict[str, ort.InferenceSession]) -> None:
    from ai_edge_litert.interpreter import Interpreter

    # the original as the store ships it for the LiteRT backend, byte for byte the wheel's
    tflite_path = model_dir(model) / "model.tflite"
    digest = hashlib.sha256(tflite_path.read_bytes()).hexdigest()
    assert digest == provenance(model)["source"]["tflite_sha256"] == provenance(model)["sha256"]["model.tflite"]
    interpreter = Interpreter(model_path=str(tflite_path), num_threads=1)
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_indices = {d["name"]: d["index"] for d in interpreter.get_output_details()}
    batch = random_batch(model, 4, seed=11)
    converted = run(sessions[model.name], batch)
    for row, image in enumerate(batch):
        interpreter.set_tensor(input_index, image[None])
        interpreter.invoke()
        for name in model.outputs:
            reference = interpreter.get_tensor(output_indices[name])
            assert np.abs(converted[name][row] - reference[0]).max() <= MAX_PARITY_DIFF
