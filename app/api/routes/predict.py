"""POST /predict: one interview in, one PHQ-8 estimate out."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request

from app.answer.build import build_answer
from app.answer.schema import PredictResponse
from app.api.deps import Caller, ServicesDep
from app.api.forms import parse_options, predict_form_spec, request_body_schema
from app.api.problems import problem_responses
from app.errors import ConflictingInputError, NoUsableInputError, ServiceError
from app.features.extract import ExtractionJob
from app.upload import private_folder
from app.upload.form import receive_form

router = APIRouter(tags=["prediction"])

RESPONSES = problem_responses(
    400,
    401,
    413,
    415,
    422,
    429,
    500,
    503,
    504,
    s400="malformed request: bad multipart, unknown or repeated fields, invalid values",
    s401="API key missing or not valid (when keys are configured)",
    s413="an upload or the whole body is larger than its cap",
    s415="not multipart/form-data, or an upload is not media the service reads",
    s422="nothing usable (no modality, corrupt audio, unreadable transcript, over the worker memory cap), "
    "or both transcript and transcript_text",
    s429="this client's rate limit is reached; retry after Retry-After seconds",
    s500="a preprocessing worker crashed on this request (the pool replaced it)",
    s503="starting, stopping or overloaded; retry after Retry-After seconds",
    s504="processing time limit reached",
)


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=RESPONSES,
    summary="Estimate PHQ-8 from an interview",
    openapi_extra={"requestBody": request_body_schema()},
)
async def predict(request: Request, services: ServicesDep, caller: Caller) -> PredictResponse:
    settings, metrics = services.settings, services.metrics
    started = time.perf_counter()
    metrics.in_flight.inc()
    try:
        # refused here, before a byte of the upload is read, when the service is full
        with services.admission.ticket(), private_folder(settings.spool_dir) as folder:
            form = await receive_form(request, folder, predict_form_spec(settings))
            options = parse_options(form.fields)
            video, audio, transcript = (form.files.get(name) for name in ("video", "audio", "transcript"))
            if transcript is not None and options.transcript_text is not None:
                raise ConflictingInputError("send either a transcript file or transcript_text, not both")
            served = services.model.manifest.version
            if options.model_version is not None and options.model_version != served:
                raise NoUsableInputError(f"model version {options.model_version} is not served here (serving {served})")
            if video is None and audio is None and transcript is None and not options.transcript_text:
                raise NoUsableInputError("no input: send a video, an audio file or a transcript")
            timings = {"upload": 1000 * (time.perf_counter() - started)}
            job = ExtractionJob(
                features=services.model.manifest.features,
                model_store=settings.model_store,
                video=video.path if video else None,
                audio=audio.path if audio else None,
                transcript=transcript.data if transcript else _encoded(options.transcript_text),
                transcript_hint=transcript.suffix if transcript else None,
                transcript_content_type=transcript.content_type if transcript else None,
                participant_speaker=options.participant_speaker,
                max_media_seconds=settings.max_media_seconds,
                min_speech_seconds=settings.min_speech_seconds,
                min_transcript_words=settings.min_transcript_words,
                max_transcript_bytes=settings.max_transcript_bytes,
                max_frame_pixels=settings.max_frame_pixels,
                max_streams=settings.max_streams,
            )
            metrics.waiting.inc()
            try:
                extracted = await services.workers.run(job, settings.request_timeout_s)
            finally:
                metrics.waiting.dec()
        timings.update(extracted.timings_ms)
        t1 = time.perf_counter()
        # shares a session run with concurrent requests' windows (app/fusion/batcher.py)
        output = await services.batcher.run(extracted.windows)
        timings["inference"] = 1000 * (time.perf_counter() - t1)
        timings["total"] = 1000 * (time.perf_counter() - started)
        answer = build_answer(
            request_id=request.state.request_id,
            model=services.model,
            provider=services.runner.provider,
            extracted=extracted,
            output=output,
            include_timeline=options.include_timeline,
            interval_level=settings.interval_level,
            timings_ms=timings,
        )
    except ServiceError as exc:
        if exc.status == 503:
            metrics.rejected_total.labels(reason="overloaded").inc()
        else:
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


def _encoded(text: str | None) -> bytes | None:
    return text.encode("utf-8") if text is not None else None


def _outcome(status: int) -> str:
    return {413: "too_large", 415: "unsupported_media", 422: "unusable_input", 504: "timeout"}.get(
        status, "client_error" if status < 500 else "error"
    )
