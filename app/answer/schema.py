"""The /predict answer: pydantic models with a documented example for every field."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RESEARCH_NOTICE = (
    "Research use only. This estimate comes from a model that is not clinically validated; it is not a "
    "diagnosis and must not replace assessment by a qualified clinician. PHQ-8 does not assess risk of self-harm."
)

Severity = Literal["none", "mild", "moderate", "moderately_severe", "severe"]


class ModalityWeights(BaseModel):
    visual: float = Field(..., ge=0, le=1, examples=[0.0], description="0 when the modality was not used")
    audio: float = Field(..., ge=0, le=1, examples=[0.38])
    text: float = Field(..., ge=0, le=1, examples=[0.62])


class ModelInfo(BaseModel):
    name: str = Field(..., examples=["fusion"])
    version: int = Field(..., examples=[1])
    training_data: str = Field(..., examples=["synthetic"], description="what the weights were trained on")
    clinically_validated: bool = Field(..., examples=[False])
    provider: str = Field(..., examples=["CPUExecutionProvider"], description="ONNX Runtime provider that ran it")


class ItemScore(BaseModel):
    item: str = Field(..., examples=["mood"], description="PHQ-8 item name")
    score: float = Field(..., ge=0, le=3, examples=[1.4], description="expected item score, 0-3")
    distribution: list[float] = Field(
        ..., description="probability of each score bin (bin_centres), summing to 1", examples=[[0.01] * 4]
    )


class Interval(BaseModel):
    level: float = Field(..., examples=[0.9], description="coverage of the interval")
    low: float = Field(..., examples=[5.25])
    high: float = Field(..., examples=[13.5])
    method: Literal["conformal", "model"] = Field(
        ...,
        examples=["conformal"],
        description="conformal: calibrated on held-out participants per modality subset and amount of evidence "
        "(see README); model: the model's own spread (a version shipped without calibration), not calibrated",
    )
    evidence_s: float = Field(
        ..., ge=0, examples=[184.0], description="seconds of evidence the answer rests on (face, speech or text)"
    )


class BandProbabilities(BaseModel):
    """P(the rounded total falls in each severity band) under the predicted distribution; sums to 1."""

    none: float = Field(..., ge=0, le=1, examples=[0.18])
    mild: float = Field(..., ge=0, le=1, examples=[0.47])
    moderate: float = Field(..., ge=0, le=1, examples=[0.29])
    moderately_severe: float = Field(..., ge=0, le=1, examples=[0.05])
    severe: float = Field(..., ge=0, le=1, examples=[0.01])


class Phq8(BaseModel):
    total: float = Field(..., ge=0, le=24, examples=[9.3], description="sum of the expected item scores")
    total_rounded: int = Field(..., ge=0, le=24, examples=[9])
    severity: Severity = Field(
        ..., examples=["mild"], description="0-4 none, 5-9 mild, 10-14 moderate, 15-19 moderately severe, 20-24 severe"
    )
    band_probabilities: BandProbabilities = Field(
        ..., description="how sure the severity band is: near a band boundary two bands share the probability"
    )
    interval: Interval
    probability_at_or_above_cutoff: float = Field(
        ..., ge=0, le=1, examples=[0.41], description="P(total >= cutoff) under the predicted distribution"
    )
    cutoff: float = Field(..., examples=[10.0])
    items: list[ItemScore] = Field(..., description="the 8 items in PHQ-8 order")
    bin_centres: list[float] = Field(..., description="item score of each distribution bin", examples=[[0.0, 1.0]])


class Attention(BaseModel):
    modalities: ModalityWeights = Field(..., description="mean over items and windows; sums to 1 over used ones")
    per_item: dict[str, ModalityWeights] = Field(..., description="per PHQ-8 item, averaged over windows")


class TimelineWindow(BaseModel):
    start_s: float = Field(..., examples=[0.0], description="window start on each modality's own timeline")
    end_s: float = Field(..., examples=[60.0])
    total: float = Field(..., examples=[8.7], description="PHQ-8 total from this window alone")
    coverage: float = Field(..., examples=[1.0], description="share of the window holding input (weight in the mean)")
    modalities: ModalityWeights


class Candidate(BaseModel):
    name: str = Field(
        ...,
        examples=["Speaker 2"],
        description="as the upload names it: a speaker label as the transcript writes it, 'track 2', 'left channel'",
    )
    chosen: bool = Field(..., examples=[True])
    seconds: float | None = Field(None, ge=0, examples=[141.5], description="seconds of speech or media it holds")
    words: int | None = Field(None, ge=0, examples=[812], description="words it speaks (speakers)")


class Selection(BaseModel):
    """A choice the service made among several candidates for the participant's input."""

    kind: Literal["speaker", "audio_track", "audio_channel", "face"] = Field(..., examples=["speaker"])
    rule: str = Field(
        ...,
        examples=["the option participant_speaker"],
        description="why the chosen one was taken: a client option, or the stated rule that picked it",
    )
    confident: bool = Field(
        ..., examples=[True], description="false when the rule's evidence is weak (a warning then says so)"
    )
    candidates: list[Candidate]


class RecognisedSegment(BaseModel):
    """One turn as speech recognition heard it (returned only with return_transcript=true)."""

    start_s: float = Field(..., ge=0, examples=[12.4], description="on the interview clock")
    end_s: float = Field(..., ge=0, examples=[19.8])
    speaker: str | None = Field(None, examples=["speaker 1"], description="as inputs.speakers names it")
    text: str = Field(..., examples=["i have not been sleeping well"])


class TranscriptCheckReport(BaseModel):
    """Whether the sent transcript says what the recording says (speech recognition of a sample
    of the patient's speech against the transcript's words; no word is quoted)."""

    ran: bool = Field(..., examples=[True])
    reason: str | None = Field(
        None, examples=["no audio came with the transcript"], description="why the check did not run or judge"
    )
    seconds_heard: float | None = Field(None, ge=0, examples=[30.0], description="seconds of speech recognised")
    words_heard: int | None = Field(None, ge=0, examples=[84])
    agreement: float | None = Field(
        None,
        ge=0,
        le=1,
        examples=[0.78],
        description="share of the heard words found in the transcript in runs of two or more, in order",
    )
    min_agreement: float | None = Field(None, ge=0, le=1, examples=[0.25], description="the setting it is held to")
    matches: bool | None = Field(
        None, examples=[True], description="false: the transcript was left out; null: not judged (see reason)"
    )


class ModalityReport(BaseModel):
    used: bool = Field(..., examples=[True])
    reason: str | None = Field(None, examples=["no audio given"], description="why the modality was not used")
    source: str | None = Field(None, examples=["video audio track"], description="which upload fed it")
    duration_s: float | None = Field(None, examples=[184.2], description="seconds of input the branch saw")
    windows: int = Field(0, examples=[4], description="windows in which the modality was present")
    quality: dict[str, float] = Field(
        default_factory=dict,
        examples=[{"speech_ratio": 0.62, "snr_db": 31.0, "level_dbfs": -24.0}],
        description="per-modality quality figures (see README)",
    )
    format: str | None = Field(
        None, examples=["webvtt (zoom)"], description="the upload's container and codecs, or the transcript dialect"
    )
    encoding: str | None = Field(None, examples=["utf-8"], description="the transcript's detected text encoding")
    selections: list[Selection] = Field(
        default_factory=list, description="every choice among speakers, tracks, channels or faces, and why"
    )
    transcript: list[RecognisedSegment] | None = Field(
        None,
        description="text only, with return_transcript=true and source 'speech recognition': the patient's "
        "recognised turns. Returned to the caller, never logged or stored",
    )
    check: TranscriptCheckReport | None = Field(
        None, description="text only, for a sent transcript: whether it says what the recording says"
    )


class SpeakersReport(BaseModel):
    """Speaker separation: who speaks when in the participant's audio, and which voice is the patient."""

    separated: bool = Field(..., examples=[True], description="whether speaker separation ran")
    reason: str | None = Field(
        None,
        examples=["the transcript labels and times every turn"],
        description="why it did not run",
    )
    count: int = Field(0, ge=0, examples=[2], description="voices found")
    confidence: float = Field(0.0, ge=0, le=1, examples=[0.93], description="how sure the count is")
    rule: str | None = Field(None, description="how the count was decided")
    seconds: list[float] = Field(
        default_factory=list, examples=[[141.5, 38.0]], description="speech of speaker 1, 2, ... (most first)"
    )
    participant: str | None = Field(None, examples=["speaker 1"], description="the voice analysed as the patient")
    selection: Selection | None = Field(None, description="which speaker is the patient, and why")


class Inputs(BaseModel):
    visual: ModalityReport
    audio: ModalityReport
    text: ModalityReport
    speakers: SpeakersReport = Field(
        default_factory=lambda: SpeakersReport(separated=False, reason="no audio"),
        description="speaker separation of the participant's audio",
    )


class PredictResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    request_id: str = Field(..., examples=["4f1c2a9e0b7d4c55"])
    model: ModelInfo
    phq8: Phq8
    attention: Attention
    timeline: list[TimelineWindow] | None = Field(None, description="per window; omitted if include_timeline=false")
    inputs: Inputs
    timings_ms: dict[str, float] = Field(
        ..., examples=[{"upload": 12.0, "audio": 410.0, "text": 95.0, "inference": 8.0, "total": 560.0}]
    )
    warnings: list[str] = Field(default_factory=list, examples=[["model weights are synthetic"]])
    notice: str = Field(RESEARCH_NOTICE, description="research-use notice")
