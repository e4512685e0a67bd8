"""The /predict form: its fields, their caps, their validation and their OpenAPI schema.

The route parses the body itself (``app.upload.form``), so FastAPI cannot derive the
request body from parameters; the schema below is generated from the same definitions
the parser and the validator use.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.config import Settings
from app.errors import BadRequestError
from app.upload.form import FormSpec

FILE_FIELDS = {
    "video": "interview video (mp4, mov, webm, mkv); its audio track feeds the audio branch unless `audio` is given",
    "audio": "interview audio (wav, flac, ogg/opus, mp3, m4a/aac, webm)",
    "transcript": "transcript file: plain text, WebVTT, SRT, DAIC-WOZ TSV or JSON segments (any common encoding)",
}
# the caps of short text fields; transcript_text shares the transcript cap
OPTION_BYTES = {"participant_speaker": 256, "include_timeline": 16, "model_version": 32}


class PredictOptions(BaseModel):
    """The form's text fields, validated after the body is in."""

    model_config = ConfigDict(extra="forbid")

    transcript_text: str | None = Field(None, description="the transcript as text instead of a file")
    participant_speaker: str | None = Field(
        None, min_length=1, max_length=128, description="speaker label of the patient in the transcript"
    )
    include_timeline: bool = Field(True, description="include the per-window timeline")
    model_version: int | None = Field(
        None, ge=1, le=2**31 - 1, description="fusion model version; the served one when unset"
    )


# what the form's own refusals mean, the same on every route that takes the form
FORM_PROBLEMS = {
    "s400": "malformed request: bad multipart, unknown or repeated fields, invalid values",
    "s401": "API key missing or not valid (when keys are configured)",
    "s413": "an upload or the whole body is larger than its cap",
    "s429": "this client's rate limit is reached; retry after Retry-After seconds",
}


def predict_form_spec(settings: Settings) -> FormSpec:
    return FormSpec(
        disk_files={"video": settings.max_upload_bytes, "audio": settings.max_upload_bytes},
        memory_files={"transcript": settings.max_transcript_bytes},
        text_fields={"transcript_text": settings.max_transcript_bytes, **OPTION_BYTES},
    )


def parse_options(fields: dict[str, str]) -> PredictOptions:
    try:
        return PredictOptions.model_validate(fields)
    except ValidationError as exc:
        # locations and messages only: the submitted values are never echoed
        errors = [{"loc": ["body", *map(str, e["loc"])], "msg": e["msg"]} for e in exc.errors()]
        raise BadRequestError("a form field is not valid", errors=errors) from exc


def request_body_schema() -> dict:
    options = PredictOptions.model_json_schema()
    properties = {
        name: {"type": "string", "format": "binary", "description": description}
        for name, description in FILE_FIELDS.items()
    }
    for name, schema in options["properties"].items():
        # a form field is one value: drop the `null` branch pydantic writes for optionals
        variants = [v for v in schema.pop("anyOf", []) if v.get("type") != "null"]
        if variants:
            schema.update(variants[0])
        schema.pop("title", None)
        if schema.get("default", "") is None:
            del schema["default"]
        properties[name] = schema
    text_only = {name: schema for name, schema in properties.items() if name not in FILE_FIELDS}
    return {
        "required": True,
        "description": "at least one of video, audio, transcript or transcript_text; "
        "transcript and transcript_text exclude each other. Without files the form may be urlencoded.",
        "content": {
            "multipart/form-data": {
                "schema": {"type": "object", "properties": properties, "additionalProperties": False},
            },
            "application/x-www-form-urlencoded": {
                "schema": {"type": "object", "properties": text_only, "additionalProperties": False},
            },
        },
    }
