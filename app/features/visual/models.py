"""The face models the visual stage runs (BlazeFace short-range detector, the 468-point face
mesh, the iris model) and MediaPipe's canonical face, loaded from the model store through
``app.runtime``. Input and output names come from each model's provenance.json and are
checked against the graph, so a rebuilt model with other names fails at load, not mid-request.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.features.visual.ibug68 import MESH_POINTS
from app.model_store import MODEL_FILE, PROVENANCE_FILE, face_geometry_file, face_model_dirs
from app.runtime import CPU_DEFAULT, ModelRuntime, RuntimeConfig, load_model


class FaceModelError(ValueError):
    """A face model folder is missing a file or its provenance names other inputs/outputs."""


@dataclass(frozen=True)
class ModelIO:
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def provenance_io(model_dir: Path) -> ModelIO:
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
            found = ModelIO(names(holder["inputs"]), names(holder["outputs"]))
            if found.inputs and found.outputs:
                return found
    raise FaceModelError(f"{model_dir / PROVENANCE_FILE} names no inputs/outputs")


class FaceModel:
    """One face model: its runtime, with the IO names its provenance records."""

    def __init__(self, name: str, model_dir: Path, config: RuntimeConfig) -> None:
        path = model_dir / MODEL_FILE
        if not path.is_file():
            raise FaceModelError(f"missing {path}")
        self.io = provenance_io(model_dir)
        self.runtime: ModelRuntime = load_model(name, path, config)
        graph_inputs, graph_outputs = set(self.runtime.input_names), set(self.runtime.output_names)
        if not set(self.io.inputs) <= graph_inputs or not set(self.io.outputs) <= graph_outputs:
            raise FaceModelError(
                f"{path}: provenance names {self.io} but the graph has inputs {sorted(graph_inputs)}, "
                f"outputs {sorted(graph_outputs)}"
            )

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        return self.runtime.run({self.io.inputs[0]: batch}, self.io.outputs)


class FaceModels:
    """The three face models (detector, mesh, iris) and the canonical face, from a model store."""

    def __init__(self, model_store: Path, config: RuntimeConfig = CPU_DEFAULT) -> None:
        dirs = face_model_dirs(model_store)
        self.detector = FaceModel("face_detector", dirs["face_detector"], config)
        self.mesh = FaceModel("face_landmarks", dirs["face_landmarks"], config)
        self.iris = FaceModel("iris_landmarks", dirs["iris_landmarks"], config)
        geometry_file = face_geometry_file(model_store)
        geometry = json.loads(geometry_file.read_text())
        self.canonical_mesh = np.asarray(geometry["mesh_points"], dtype=np.float64)
        if self.canonical_mesh.shape != (MESH_POINTS, 3):
            raise FaceModelError(f"{geometry_file}: mesh_points must be ({MESH_POINTS}, 3)")

    @property
    def providers(self) -> list[str]:
        """What really runs (the mesh's session; all three share one configuration)."""
        return self.mesh.runtime.providers

    def describe(self) -> dict[str, dict[str, Any]]:
        """Each model's runtime report, by model name (for /models and the provider metric)."""
        return {model.runtime.name: model.runtime.describe() for model in (self.detector, self.mesh, self.iris)}
