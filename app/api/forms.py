"""The /predict form: its fields, their caps, their validation and their OpenAPI schema.

The route parses the body itself (``app.upload.form``), so FastAPI cannot derive the
request body from parameters; the schema below is generated from the same definitions
the parser and the validator (``app.pipeline.interview.PredictOptions``) use.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from starlette.requests import ClientDisconnect, Request

from app.config import Settings
from app.pipeline.interview import PredictOptions, Receive
from app.upload.form import BodyInterrupted, FormBody, FormSpec, ReceivedForm, receive_form

FILE_FIELDS = {
    "video": "interview video (mp4, mov, webm, mkv); its audio track feeds the audio branch unless `audio` is given",
    "audio": "interview audio (wav, flac, ogg/opus, mp3, m4a/aac, webm)",
    "transcript": (
        "transcript file: plain text, WebVTT (Zoom, Teams), SRT, SBV, Otter.ai or Rev TXT, DAIC-WOZ TSV, E-DAIC CSV, "
        "JSON (segments, Whisper, WhisperX, AWS Transcribe); UTF-8/16/32 or a legacy code page such as Windows-1252 "
        "(detected; inputs.text.encoding says which)"
    ),
}
# the caps of short text fields; transcript_text shares the transcript cap
OPTION_BYTES = {
    "participant_speaker": 256,
    "participant_track": 16,
    "participant_channel": 16,
    "include_timeline": 16,
    "return_transcript": 16,
    "check_transcript": 16,
    "model_version": 32,
}


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


def form_receiver(request: Request, settings: Settings) -> Receive:
    """How the pipeline receives this request's form: its body streamed into the folder it gives."""
    spec = predict_form_spec(settings)

    async def receive(folder: Path) -> ReceivedForm:
        headers = request.headers
        body = FormBody(headers.get("content-type"), headers.get("content-length"), _chunks(request))
        return await receive_form(body, folder, spec)

    return receive


async def _chunks(request: Request) -> AsyncIterator[bytes]:
    try:
        async for chunk in request.stream():
            yield chunk
    except ClientDisconnect as exc:
        raise BodyInterrupted from exc


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
