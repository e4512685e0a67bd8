"""POST /predict: one interview in, one PHQ-8 estimate out."""

from __future__ import annotations

import time
from typing import Annotated

import anyio
from fastapi import APIRouter, File, Form, Request, UploadFile

from app.answer.build import build_answer
from app.answer.schema import PredictResponse
from app.api.deps import ServicesDep
from app.api.problems import MEDIA_TYPE
from app.errors import BadRequestError, NoUsableInputError, ServiceError
from app.features.extract import ExtractionJob
from app.upload import private_folder, read_small, spool, suffix_hint

router = APIRouter(tags=["prediction"])

_PROBLEM = {"content": {MEDIA_TYPE: {"schema": {"type": "object"}}}}
RESPONSES = {
    400: {"description": "malformed request (e.g. both transcript and transcript_text)", **_PROBLEM},
    413: {"description": "an upload is larger than the configured cap", **_PROBLEM},
    415: {"description": "an upload is not a media container the service reads", **_PROBLEM},
    422: {"description": "nothing usable (no modality, corrupt audio, unreadable transcript)", **_PROBLEM},
    503: {"description": "starting, stopping or overloaded; retry after Retry-After seconds", **_PROBLEM},
    504: {"description": "processing time limit reached", **_PROBLEM},
}


def _given(upload: UploadFile | None) -> UploadFile | None:
    # browsers send an empty part for an unset file input
    return upload if upload is not None and (upload.filename or upload.size) else None


@router.post(
    "/predict", response_model=PredictResponse, responses=RESPONSES, summary="Estimate PHQ-8 from an interview"
)
async def predict(
    request: Request,
    services: ServicesDep,
    video: Annotated[
        UploadFile | None,
        File(
            description="interview video (mp4, webm, mov); its audio track feeds "
            "the audio branch unless `audio` is given"
        ),
    ] = None,
    audio: Annotated[
        UploadFile | None, File(description="interview audio (wav, flac, ogg, mp3, m4a, opus, webm)")
    ] = None,
    transcript: Annotated[
        UploadFile | None, File(description="transcript file: plain text, WebVTT, SRT, DAIC-WOZ TSV or JSON segments")
    ] = None,
    transcript_text: Annotated[str | None, Form(description="transcript as text instead of a file")] = None,
    participant_speaker: Annotated[
        str | None, Form(description="speaker label of the patient in the transcript")
    ] = None,
    include_timeline: Annotated[bool, Form(description="include the per-window timeline")] = True,
    model_version: Annotated[int | None, Form(description="fusion model version; the served one when unset")] = None,
) -> PredictResponse:
    settings, metrics = services.settings, services.metrics
    started = time.perf_counter()
    video, audio, transcript = _given(video), _given(audio), _given(transcript)
    metrics.in_flight.inc()
    try:
        if transcript is not None and transcript_text is not None:
            raise BadRequestError("send either a transcript file or transcript_text, not both")
        if model_version is not None and model_version != services.model.manifest.version:
            raise NoUsableInputError(
                f"model version {model_version} is not served here (serving {services.model.manifest.version})"
            )
        if video is None and audio is None and transcript is None and not transcript_text:
            raise NoUsableInputError("no input: send a video, an audio file or a transcript")
        with private_folder(settings.spool_dir) as folder:
            t0 = time.perf_counter()
            video_path = await spool(video, folder, "video", settings.max_upload_bytes) if video else None
            audio_path = await spool(audio, folder, "audio", settings.max_upload_bytes) if audio else None
            transcript_bytes, hint, content_type = None, None, None
            if transcript is not None:
                transcript_bytes = await read_small(transcript, "transcript", settings.max_transcript_bytes)
                hint, content_type = suffix_hint(transcript.filename), transcript.content_type
            elif transcript_text is not None:
                transcript_bytes = transcript_text.encode("utf-8")
            timings = {"upload": 1000 * (time.perf_counter() - t0)}
            features = services.model.manifest.features
            job = ExtractionJob(
                features=features,
                model_store=settings.model_store,
                video=video_path,
                audio=audio_path,
                transcript=transcript_bytes,
                transcript_hint=hint,
                transcript_content_type=content_type,
                participant_speaker=participant_speaker,
                max_media_seconds=settings.max_media_seconds,
                min_speech_seconds=settings.min_speech_seconds,
                max_transcript_bytes=settings.max_transcript_bytes,
            )
            extracted = await services.workers.run(job, settings.request_timeout_s)
        timings.update(extracted.timings_ms)
        t1 = time.perf_counter()
        output = await anyio.to_thread.run_sync(services.runner.run, extracted.windows)
        timings["inference"] = 1000 * (time.perf_counter() - t1)
        timings["total"] = 1000 * (time.perf_counter() - started)
        answer = build_answer(
            request_id=request.state.request_id,
            model=services.model,
            provider=services.runner.provider,
            extracted=extracted,
            output=output,
            include_timeline=include_timeline,
            interval_level=settings.interval_level,
            timings_ms=timings,
        )
    except ServiceError as exc:
        metrics.predictions_total.labels(outcome=_outcome(exc.status)).inc()
        raise
    finally:
        metrics.in_flight.dec()
    for stage, ms in timings.items():
        metrics.stage_seconds.labels(stage=stage).observe(ms / 1000)
    metrics.windows_per_request.observe(extracted.windows.size)
    for name, report in answer.inputs.model_dump().items():
        if report["used"]:
            metrics.modality_used_total.labels(modality=name).inc()
    metrics.predictions_total.labels(outcome="ok").inc()
    return answer


def _outcome(status: int) -> str:
    return {413: "too_large", 415: "unsupported_media", 422: "unusable_input", 504: "timeout"}.get(
        status, "client_error" if status < 500 else "error"
    )
