"""The prediction pipeline, shared by POST /predict (answered at once) and POST /jobs (later).

receive the form into a private folder -> validate -> extract features in the worker pool
(time limit) -> fusion through the batcher -> answer -> metrics: the same caps, checks,
errors and metrics on both paths.

``predict`` runs it all under an admission ticket, as one request. ``submit_job`` runs the
first two steps during its POST, so bad input still gets its 4xx (and an oversized upload
its 413 mid-stream) at once, and hands the rest (``run_interview``) to the job manager,
which runs it when an admission slot is free and removes the folder when it ends.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.requests import Request

from app.answer.build import build_answer
from app.answer.schema import PredictResponse
from app.api.forms import PredictOptions, parse_options, predict_form_spec
from app.errors import ConflictingInputError, NoUsableInputError, ServiceError
from app.features.extract import Extracted, ExtractionJob
from app.job_store import JobRecord
from app.jobs import PROGRESS_FEATURES, Progress
from app.metrics import Metrics
from app.upload import private_folder
from app.upload.form import receive_form

if TYPE_CHECKING:
    from app.services import Services


@dataclass
class Interview:
    """A received and validated request: what the workers and the answer need."""

    request_id: str
    options: PredictOptions
    job: ExtractionJob
    started: float  # perf_counter when the request came in
    received: float  # perf_counter when its upload was in and valid
    timings: dict[str, float]  # ms per stage, filled as the pipeline goes


async def predict(request: Request, services: Services) -> PredictResponse:
    """One interview in, its answer out, within this request."""
    settings, metrics = services.settings, services.metrics
    started = time.perf_counter()
    with _counted(metrics):
        # refused here, before a byte of the upload is read, when the service is full
        with services.admission.ticket(), private_folder(settings.spool_dir) as folder:
            interview = await receive_interview(request, folder, services, started)
            extracted = await extract_features(services, interview)
        answer = await infer_answer(services, interview, extracted)
    record_success(metrics, answer, extracted, interview.timings)
    return answer


async def submit_job(request: Request, services: Services, caller: str) -> JobRecord:
    """Receive and validate an interview now, process it as a job later; the queued record."""
    settings, jobs = services.settings, services.jobs
    started = time.perf_counter()
    # with API keys, a job is visible to the key that created it only
    owner = caller if settings.api_key_hashes else None
    job_id = await jobs.reserve(owner)  # 503 before a byte of the upload is read
    folder_scope = ExitStack()  # the folder outlives this request: the job removes it
    try:
        folder = folder_scope.enter_context(private_folder(settings.spool_dir))
        interview = await receive_interview(request, folder, services, started)
    except BaseException as exc:  # refused, malformed, client gone or cancelled: nothing is kept
        folder_scope.close()
        await jobs.discard(job_id)
        if isinstance(exc, ServiceError):
            record_failure(services.metrics, exc)
        raise
    work = partial(run_interview, services, interview)
    return await jobs.launch(job_id, work, cleanup=folder_scope.close, request_id=interview.request_id)


async def run_interview(services: Services, interview: Interview, progress: Progress) -> PredictResponse:
    """A job's processing, once it holds an admission slot (the job manager's part)."""
    metrics = services.metrics
    interview.timings["queued"] = 1000 * (time.perf_counter() - interview.received)
    with _counted(metrics):
        extracted = await extract_features(services, interview)
        await progress(PROGRESS_FEATURES)
        answer = await infer_answer(services, interview, extracted)
    record_success(metrics, answer, extracted, interview.timings)
    return answer


@contextmanager
def _counted(metrics: Metrics) -> Iterator[None]:
    """The in-flight gauge around a prediction's processing, and its failure by outcome."""
    metrics.in_flight.inc()
    try:
        yield
    except ServiceError as exc:
        record_failure(metrics, exc)
        raise
    finally:
        metrics.in_flight.dec()


async def receive_interview(request: Request, folder: Path, services: Services, started: float) -> Interview:
    """Stream the form into ``folder`` (caps: 413) and check it (400, 415, 422) before any work."""
    settings = services.settings
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
    received = time.perf_counter()
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
    return Interview(
        request_id=request.state.request_id,
        options=options,
        job=job,
        started=started,
        received=received,
        timings={"upload": 1000 * (received - started)},
    )


async def extract_features(services: Services, interview: Interview) -> Extracted:
    """Decoding and feature extraction in a worker, within the time limit (waiting for one included)."""
    metrics = services.metrics
    metrics.waiting.inc()
    try:
        extracted = await services.workers.run(interview.job, services.settings.request_timeout_s)
    finally:
        metrics.waiting.dec()
    interview.timings.update(extracted.timings_ms)
    return extracted


async def infer_answer(services: Services, interview: Interview, extracted: Extracted) -> PredictResponse:
    t1 = time.perf_counter()
    # shares a session run with concurrent requests' windows (app/fusion/batcher.py)
    output = await services.batcher.run(extracted.windows)
    timings = interview.timings
    timings["inference"] = 1000 * (time.perf_counter() - t1)
    timings["total"] = 1000 * (time.perf_counter() - interview.started)
    return build_answer(
        request_id=interview.request_id,
        model=services.model,
        provider=services.runner.provider,
        extracted=extracted,
        output=output,
        include_timeline=interview.options.include_timeline,
        interval_level=services.settings.interval_level,
        timings_ms=timings,
    )


def record_success(metrics: Metrics, answer: PredictResponse, extracted: Extracted, timings: dict[str, float]) -> None:
    for stage, ms in timings.items():
        metrics.stage_seconds.labels(stage=stage).observe(ms / 1000)
    metrics.windows_per_request.observe(extracted.windows.size)
    for name, report in answer.inputs.model_dump().items():
        if report["used"]:
            metrics.modality_used_total.labels(modality=name).inc()
    metrics.predictions_total.labels(outcome="ok").inc()


def record_failure(metrics: Metrics, exc: ServiceError) -> None:
    if exc.status == 503:
        metrics.rejected_total.labels(reason="overloaded").inc()
    else:
        metrics.predictions_total.labels(outcome=_outcome(exc.status)).inc()


def _encoded(text: str | None) -> bytes | None:
    return text.encode("utf-8") if text is not None else None


def _outcome(status: int) -> str:
    return {413: "too_large", 415: "unsupported_media", 422: "unusable_input", 504: "timeout"}.get(
        status, "client_error" if status < 500 else "error"
    )
