"""The feature contract between training and serving.

One schema for ``model_store/fusion/<version>/manifest.json``. Training writes it,
the server reads it and refuses to start when its extractors would produce anything
else. This module imports neither torch nor the web stack, so ``training/`` and
``app/`` share it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MANIFEST_SCHEMA_VERSION = 1

PHQ8_ITEMS: tuple[str, ...] = (
    "interest",
    "mood",
    "sleep",
    "energy",
    "appetite",
    "self_worth",
    "concentration",
    "psychomotor",
)
MODALITIES: tuple[str, ...] = ("visual", "audio", "text")

N_LANDMARKS = 68


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _landmark_channels() -> tuple[str, ...]:
    names: list[str] = []
    for i in range(N_LANDMARKS):
        names += [f"lm{i}_x", f"lm{i}_y"]
    return tuple(names)


GAZE_CHANNELS: tuple[str, ...] = ("iris1_dx", "iris1_dy", "iris2_dx", "iris2_dy")
POSE_CHANNELS: tuple[str, ...] = ("yaw", "pitch", "roll", "valid")
# OpenFace 2.1's intensity outputs, as E-DAIC distributes them
ACTION_UNITS: tuple[str, ...] = tuple(
    f"AU{n:02d}_r" for n in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45)
)
# Visual feature profiles: which channels a frame carries. ``landmarks_v1`` is what the
# serve-time extractor produces; the others are trained from corpora without landmarks
# (E-DAIC). A server refuses a model whose profile its extractor cannot produce.
VISUAL_PROFILES: dict[str, tuple[str, ...]] = {
    "landmarks_v1": _landmark_channels() + GAZE_CHANNELS + POSE_CHANNELS,
    "gaze_pose_v1": GAZE_CHANNELS + POSE_CHANNELS,
    "gaze_pose_aus_v1": GAZE_CHANNELS + POSE_CHANNELS + ACTION_UNITS,
}
FULL_VISUAL_PROFILE = "landmarks_v1"


class VisualSpec(_Strict):
    """Per video frame, sampled at ``rate_hz``.

    Channel layout (``profile``): ``landmarks_v1`` holds 68 iBUG landmarks as interleaved
    (x, y) in the normalised face frame, two iris offsets (gaze proxy), head pose and a
    validity flag; ``gaze_pose_v1`` the same without landmarks; ``gaze_pose_aus_v1``
    adds OpenFace action-unit intensities. Invalid frames (no face) are all zeros.
    """

    rate_hz: float = 10.0
    profile: str = FULL_VISUAL_PROFILE
    landmark_layout: Literal["ibug68"] = "ibug68"
    landmark_normalisation: Literal["eye_corners_v1"] = "eye_corners_v1"
    # eye_corners_v1: origin at the midpoint of the outer eye corners (iBUG 36, 45),
    # rotated so that 36 -> 45 points along +x (image y down), scaled so that
    # |45 - 36| == 1. The removed in-plane angle is reported as roll.
    gaze_proxy: Literal["iris_offset_v1"] = "iris_offset_v1"
    # iris_offset_v1: per eye (36-39, then 42-45), the iris centre minus the midpoint
    # of that eye's corners, in the normalised frame, divided by the eye's width.
    pose_convention: Literal["zyx_radians_v1"] = "zyx_radians_v1"
    # zyx_radians_v1: R = Rz(roll) @ Ry(yaw) @ Rx(pitch) maps the canonical face
    # (x right, y down, z away from the camera) into camera space.
    quality_fields: tuple[str, ...] = ("face_found_ratio", "face_confidence")

    @model_validator(mode="after")
    def _known_profile(self) -> VisualSpec:
        if self.profile not in VISUAL_PROFILES:
            raise ValueError(f"unknown visual profile {self.profile!r}; known: {', '.join(VISUAL_PROFILES)}")
        return self

    @property
    def channel_names(self) -> tuple[str, ...]:
        return VISUAL_PROFILES[self.profile]

    @property
    def dim(self) -> int:
        return len(self.channel_names)


class AudioSpec(_Strict):
    """Log-mel frames of the participant's speech, 16 kHz mono."""

    sample_rate: int = 16000
    n_mels: int = 80
    n_fft: int = 2048
    hop_length: int = 533
    fmin: float = 0.0
    fmax: float = 8000.0
    power_to_db_amin: float = 1e-10
    normalisation: Literal["recording_band_zscore_v1"] = "recording_band_zscore_v1"
    # recording_band_zscore_v1: each mel band minus its mean and divided by its
    # standard deviation (+1e-5) over all frames of the recording.
    quality_fields: tuple[str, ...] = ("speech_ratio", "snr")
    snr_full_scale_db: float = 40.0

    @property
    def rate_hz(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def dim(self) -> int:
        return self.n_mels


class TextSpec(_Strict):
    """One sentence embedding per participant utterance."""

    encoder: str = "text_encoder"
    encoder_version: int = 1
    encoder_model_id: str = "sentence-transformers/all-MiniLM-L6-v2"
    dim: int = 384
    max_tokens: int = 256
    max_utterances_per_window: int = 10
    quality_fields: tuple[str, ...] = ("utterance_fill", "mean_words")
    mean_words_full_scale: float = 20.0


class WindowSpec(_Strict):
    length_s: float = 60.0
    overlap_s: float = 10.0

    @property
    def hop_s(self) -> float:
        return self.length_s - self.overlap_s


class FeatureSpec(_Strict):
    visual: VisualSpec = VisualSpec()
    audio: AudioSpec = AudioSpec()
    text: TextSpec = TextSpec()
    windows: WindowSpec = WindowSpec()

    def frames_per_window(self, modality: str) -> int:
        """Time steps of one window for a modality (text: utterance slots)."""
        if modality == "visual":
            return round(self.windows.length_s * self.visual.rate_hz)
        if modality == "audio":
            return round(self.windows.length_s * self.audio.rate_hz)
        if modality == "text":
            return self.text.max_utterances_per_window
        raise ValueError(f"unknown modality {modality!r}")

    def dim(self, modality: str) -> int:
        return getattr(self, modality).dim

    def n_quality(self) -> int:
        counts = {len(getattr(self, m).quality_fields) for m in MODALITIES}
        if len(counts) != 1:
            raise ValueError("every modality must declare the same number of quality fields")
        return counts.pop()


class TensorSpec(_Strict):
    name: str
    dtype: Literal["float32", "int64"]
    shape: tuple[int | str, ...]
    meaning: str


class OutputSemantics(_Strict):
    items: tuple[str, ...] = PHQ8_ITEMS
    item_min: float = 0.0
    item_max: float = 3.0
    n_bins: int = 32
    total_min: float = 0.0
    total_max: float = 24.0
    cutoff: float = 10.0
    modalities: tuple[str, ...] = MODALITIES
    label_sigma: float = 0.25
    # soft Gaussian labels of this width (score units) around the true item score

    @property
    def bin_centres(self) -> list[float]:
        step = (self.item_max - self.item_min) / (self.n_bins - 1)
        return [self.item_min + i * step for i in range(self.n_bins)]


class Provenance(_Strict):
    training_data: str
    clinically_validated: bool
    seed: int
    trained_at: str
    command: str
    wall_time_s: float
    corpus: dict[str, object] = Field(default_factory=dict)
    metrics: dict[str, object] = Field(default_factory=dict)
    notes: str = ""


class NetworkConfig(_Strict):
    """Sizes of the fusion network (training/network.py reads them back)."""

    conv_channels: int = 64
    lstm_hidden: int = 64
    lstm_layers: int = 1
    embed_dim: int = 128
    head_hidden: int = 64
    pool_visual: int = 3
    pool_audio: int = 4
    pool_text: int = 1
    dropout: float = 0.1
    # version 3 on: the modality attention also sees how much of each window a modality fills
    # (face frames found, audio frames, utterances, from the masks) and weighs it like quality
    evidence_attention: bool = False
    # the smallest exponent of the quality gate (weight ~ quality ** exponent): 0.5 to version 2
    quality_floor: float = Field(0.5, gt=0)
    # whether the learned attention score also sees the quality figures (to version 2): then it
    # can learn to undo the gate; without, lower quality always means less weight
    quality_in_keys: bool = True
    # version 4 on: the part of the attention score that depends on the input (the embedding) is
    # bounded to +- this, beside a learned per-item, per-modality constant, so the input can move a
    # modality's weight by at most exp(2 x bound) and cannot buy back what the gate takes away
    score_bound: float | None = Field(None, gt=0)
    # version 4 on: the gate also weighs how much the face moves inside the window (the masked
    # temporal SD of the visual features, as sd / (sd + this)): a frozen picture is not evidence
    liveliness_scale: float | None = Field(None, gt=0)
    # version 5 on: the gate also weighs how steady the face track is: its roughness (the
    # variance of frame-to-frame changes over twice the variance, ~1 for jitter, low for motion)
    # as sigmoid((centre - roughness) / width); a track that shakes more than it moves is noise
    steadiness_centre: float | None = Field(None, gt=0)
    steadiness_width: float = Field(0.05, gt=0)
    # version 5 on: the gate also weighs whether a modality agrees with the others: the gap
    # between its own estimate of the total (its embedding through the item heads alone) and the
    # other present modalities' estimates, each counted by the weight the other figures give it,
    # as 1 / (1 + (gap / this) ** 2); with one or two modalities present it moves nothing
    consensus_scale: float | None = Field(None, gt=0)


# what a conformal score |true - predicted| is divided by (Calibration.scale), and the method each names
CalibrationScale = Literal["predicted_sd", "none"]
CALIBRATION_METHODS: dict[str, str] = {
    "predicted_sd": "split-conformal, normalised by the predicted SD; isotonic P(total >= cutoff)",
    "none": "split-conformal on the absolute error per subset and evidence bucket; isotonic P(total >= cutoff)",
}


class Calibration(_Strict):
    """How the served uncertainty was calibrated on held-out (validation) participants
    (``app.fusion.calibration``; the method and its assumptions in the README).

    Interval: split-conformal on the score |true - predicted total| / predicted SD, one
    quantile per modality subset, amount of evidence and level; the interval is the predicted
    total +- quantile x predicted SD. Evidence buckets are bounded by ``evidence_edges_s``
    (seconds of evidence, ``app.fusion.calibration.evidence_seconds``); a shorter bucket's
    quantile is never below a longer one's. P(total >= cut-off): the model's probability
    mapped through the monotone curve ``cutoff_curve`` (isotonic fit, as (raw, calibrated) knots),
    or through its modality subset's own curve in ``subset_cutoff_curves`` where the calibration
    held enough people on both sides of the cut-off for one (subsets are miscalibrated differently).
    """

    method: str = CALIBRATION_METHODS["predicted_sd"]
    # what the score |true - predicted| is divided by: the answer's predicted SD (versions 3 and 4),
    # or nothing (version 5 on), so the interval's width depends on the subset and the evidence
    # alone and is never narrower for less of the same interview (the predicted SD of a short
    # input is the spread of fewer windows, often smaller than a longer input's)
    scale: CalibrationScale = "predicted_sd"
    levels: tuple[float, ...]
    evidence_edges_s: tuple[float, ...]
    quantiles: dict[str, tuple[tuple[float, ...], ...]]  # subset -> [bucket][level] -> quantile
    counts: dict[str, tuple[int, ...]]  # subset -> participants per bucket
    cutoff_curve: tuple[tuple[float, float], ...]
    subset_cutoff_curves: dict[str, tuple[tuple[float, float], ...]] = Field(default_factory=dict)
    participants: int
    source: str  # what the calibration participants were

    @model_validator(mode="after")
    def _check(self) -> Calibration:
        if list(self.levels) != sorted(set(self.levels)) or not all(0 < level < 1 for level in self.levels):
            raise ValueError("levels: increasing, each in (0, 1)")
        if list(self.evidence_edges_s) != sorted(set(self.evidence_edges_s)):
            raise ValueError("evidence_edges_s: increasing")
        buckets = len(self.evidence_edges_s) + 1
        for subset, table in self.quantiles.items():
            if len(table) != buckets or any(len(row) != len(self.levels) for row in table):
                raise ValueError(f"quantiles[{subset}]: {buckets} buckets x {len(self.levels)} levels")
        curves = {"cutoff_curve": self.cutoff_curve}
        curves |= {f"subset_cutoff_curves[{subset}]": curve for subset, curve in self.subset_cutoff_curves.items()}
        for name, curve in curves.items():
            raw = [knot[0] for knot in curve]
            mapped = [knot[1] for knot in curve]
            if len(raw) < 2 or raw != sorted(raw) or mapped != sorted(mapped):
                raise ValueError(f"{name}: at least two knots, non-decreasing in both coordinates")
        return self


class FusionManifest(_Strict):
    schema_version: int = MANIFEST_SCHEMA_VERSION
    name: str = "fusion"
    version: int
    model_file: str = "model.onnx"
    sha256: str
    opset: int
    features: FeatureSpec
    network: NetworkConfig
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    semantics: OutputSemantics
    provenance: Provenance
    calibration: Calibration | None = None  # versions without one answer the model's own spread

    @model_validator(mode="after")
    def _check_io(self) -> FusionManifest:
        expected = io_specs(self.features, self.semantics)
        if self.inputs != expected[0]:
            raise ValueError("inputs do not match the feature spec")
        if self.outputs != expected[1]:
            raise ValueError("outputs do not match the feature spec")
        if len(self.sha256) != 64:
            raise ValueError("sha256 must be 64 hex digits")
        return self

    @classmethod
    def load(cls, path: Path) -> FusionManifest:
        return cls.model_validate_json(Path(path).read_text())

    def dump(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n")


def io_specs(
    features: FeatureSpec, semantics: OutputSemantics
) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The ONNX graph's inputs and outputs implied by a feature spec."""
    q = features.n_quality()
    inputs = (
        TensorSpec(
            name="visual",
            dtype="float32",
            shape=("batch", "t_visual", features.visual.dim),
            meaning="visual frames, channels as features.visual.channel_names",
        ),
        TensorSpec(
            name="visual_mask",
            dtype="float32",
            shape=("batch", "t_visual"),
            meaning="1 where a frame exists and a face was found",
        ),
        TensorSpec(
            name="audio",
            dtype="float32",
            shape=("batch", "t_audio", features.audio.dim),
            meaning="normalised log-mel frames",
        ),
        TensorSpec(
            name="audio_mask",
            dtype="float32",
            shape=("batch", "t_audio"),
            meaning="1 where a participant audio frame exists",
        ),
        TensorSpec(
            name="text",
            dtype="float32",
            shape=("batch", "t_text", features.text.dim),
            meaning="sentence embeddings, one per utterance",
        ),
        TensorSpec(name="text_mask", dtype="float32", shape=("batch", "t_text"), meaning="1 where an utterance exists"),
        TensorSpec(
            name="modality_mask",
            dtype="float32",
            shape=("batch", len(MODALITIES)),
            meaning="1 where the modality is present, order " + ",".join(MODALITIES),
        ),
        TensorSpec(
            name="quality",
            dtype="float32",
            shape=("batch", len(MODALITIES), q),
            meaning="per-modality quality figures in [0, 1], fields per features.*.quality_fields",
        ),
    )
    n_items, n_bins = len(semantics.items), semantics.n_bins
    outputs = (
        TensorSpec(
            name="item_probs",
            dtype="float32",
            shape=("batch", n_items, n_bins),
            meaning="per-item distribution over semantics.bin_centres",
        ),
        TensorSpec(
            name="item_scores",
            dtype="float32",
            shape=("batch", n_items),
            meaning="expected item score under item_probs",
        ),
        TensorSpec(
            name="modality_weights",
            dtype="float32",
            shape=("batch", n_items, len(MODALITIES)),
            meaning="per-item attention over modalities; 0 for absent ones",
        ),
        TensorSpec(
            name="visual_time_weights",
            dtype="float32",
            shape=("batch", "t_visual_pooled"),
            meaning="temporal attention over pooled visual steps",
        ),
        TensorSpec(
            name="audio_time_weights",
            dtype="float32",
            shape=("batch", "t_audio_pooled"),
            meaning="temporal attention over pooled audio steps",
        ),
        TensorSpec(
            name="text_time_weights",
            dtype="float32",
            shape=("batch", "t_text_pooled"),
            meaning="temporal attention over utterances",
        ),
    )
    return inputs, outputs


# PHQ-8 severity bands and the highest (rounded) total in each
SEVERITY_BANDS: tuple[tuple[str, int], ...] = (
    ("none", 4),
    ("mild", 9),
    ("moderate", 14),
    ("moderately_severe", 19),
    ("severe", 24),
)


def severity_band(total: float) -> str:
    """PHQ-8 severity band of a (possibly fractional) total, by rounding to an integer."""
    score = math.floor(total + 0.5)
    for band, highest in SEVERITY_BANDS:
        if score <= highest:
            return band
    return SEVERITY_BANDS[-1][0]
