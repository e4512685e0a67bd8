"""An interview as the pipeline takes it: the received form, its options, and the validated
request that the workers and the answer need. Transport-free: any entry point that can put
the uploads into a private folder (a multipart body, a WebSocket, files on disk) hands them
over as a ``ReceivedForm``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.errors import BadRequestError
from app.pipeline.extraction import ExtractionJob
from app.upload.form import ReceivedForm

MEDIA_FIELDS = ("video", "audio", "transcript")

# fills the private folder it is given with the uploads; raises a ServiceError for bad input
Receive = Callable[[Path], Awaitable[ReceivedForm]]


class PredictOptions(BaseModel):
    """The form's text fields, validated after the body is in."""

    model_config = ConfigDict(extra="forbid")

    transcript_text: str | None = Field(None, description="the transcript as text instead of a file")
    participant_speaker: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="speaker label of the patient as the transcript writes it (case and spacing, titles, "
        "credentials and pronouns do not matter); without it a stated rule picks the participant",
    )
    participant_track: int | None = Field(
        None, ge=1, le=64, description="audio track (1-based) that holds the patient, when the recording has several"
    )
    participant_channel: Literal["left", "right"] | None = Field(
        None, description="channel that holds the patient, in a call recorded one side per stereo channel"
    )
    include_timeline: bool = Field(True, description="include the per-window timeline")
    return_transcript: bool = Field(
        False,
        description="return the words speech recognition heard (inputs.text.transcript); never logged or stored",
    )
    check_transcript: bool = Field(
        True,
        description="with a transcript and audio: hear a sample of the patient's speech and leave the transcript "
        "out if it does not say what the recording says (inputs.text.check); false: trust the transcript",
    )
    model_version: int | None = Field(
        None, ge=1, le=2**31 - 1, description="fusion model version; the served one when unset"
    )


def parse_options(fields: dict[str, str]) -> PredictOptions:
    try:
        return PredictOptions.model_validate(fields)
    except ValidationError as exc:
        # locations and messages only: the submitted values are never echoed
        errors = [{"loc": ["body", *map(str, e["loc"])], "msg": e["msg"]} for e in exc.errors()]
        raise BadRequestError("a form field is not valid", errors=errors) from exc


@dataclass
class Interview:
    """A received and validated request: what the workers and the answer need."""

    request_id: str
    options: PredictOptions
    job: ExtractionJob
    started: float  # perf_counter when the request came in
    received: float  # perf_counter when its upload was in and valid
    timings: dict[str, float]  # ms per stage, filled as the pipeline goes
