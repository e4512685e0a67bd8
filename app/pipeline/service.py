"""The prediction pipeline behind every entry point: POST /predict (answered at once), POST
/jobs (answered later), and any later transport.

receive the uploads into a private folder -> validate -> extract features in the worker pool
(time limit) -> fusion through the batcher -> answer -> metrics: the same caps, checks,
errors and metrics on every path.

``predict`` runs it all under an admission ticket, as one request. ``submit`` runs the
first two steps at once, so bad input still gets its 4xx (and an oversized upload its 413
mid-stream) before the job is accepted, and hands the rest to the job manager, which runs
it when an admission slot is free and removes the folder when it ends.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Protocol

from app.admission import Admission
from app.answer.build import build_answer
from app.answer.schema import PredictResponse
from app.config import Settings
from app.errors import ConflictingInputError, NoUsableInputError, ServiceError
from app.features.visual.tracking import TrackedSegment, TrackerState
from app.fusion.runner import FusionOutput
from app.job_store import JobRecord
from app.jobs import PROGRESS_FEATURES, JobManager, Progress
from app.metrics import Metrics
from app.model_store import FusionModel
from app.pipeline.extraction import (
    Extracted,
    ExtractionJob,
    InputLimits,
    LiveSpeechJob,
    LiveVideoJob,
    WorkerJob,
    WorkerResult,
)
from app.pipeline.interview import MEDIA_FIELDS, Interview, PredictOptions, Receive, parse_options
from app.speech.live import LiveWords
from app.speech.sources import CHANNEL_NAMES
from app.upload import private_folder
from app.upload.form import ReceivedForm
from app.windows import WindowBatch


class Extractor(Protocol):
    """Runs a worker job within a time limit (the worker pool, or a thread in tests): ``extract``
    for an ExtractionJob, live video tracking for a LiveVideoJob."""

    async def run(self, job: WorkerJob, timeout_s: float) -> WorkerResult: ...


class Fusion(Protocol):
    """Runs windows through the fusion model (the batcher)."""

    async def run(self, windows: WindowBatch) -> FusionOutput: ...


class Pipeline:
    """One interview in, its answer out; every dependency is given, none is looked up."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        model: FusionModel,
        provider: str,
        extractor: Extractor,
        fusion: Fusion,
        admission: Admission,
        jobs: JobManager,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.model = model
        self.provider = provider  # the fusion session's execution provider, named in every answer
        self.extractor = extractor
        self.fusion = fusion
        self.admission = admission
        self.jobs = jobs
        self.limits = InputLimits.from_settings(settings)

    async def predict(self, receive: Receive, request_id: str) -> PredictResponse:
        """One interview in, its answer out, within this call."""
        started = time.perf_counter()
        with self._counted():
            # refused here, before a byte of the upload is read, when the service is full
            with self.admission.ticket(), private_folder(self.settings.spool_dir) as folder:
                interview = await self._receive(receive, folder, request_id, started)
                extracted = await self._extract(interview)
            answer = await self._answer(interview, extracted)
        self._record_success(answer, extracted, interview.timings)
        return answer

    async def submit(self, receive: Receive, request_id: str, owner: str | None) -> JobRecord:
        """Receive and validate an interview now, process it as a job later; the queued record.
        ``owner`` (a key digest) makes the job visible to that caller only."""
        started = time.perf_counter()
        job_id = await self.jobs.reserve(owner)  # 503 before a byte of the upload is read
        folder_scope = ExitStack()  # the folder outlives this call: the job removes it
        try:
            folder = folder_scope.enter_context(private_folder(self.settings.spool_dir))
            interview = await self._receive(receive, folder, request_id, started)
        except BaseException as exc:  # refused, malformed, client gone or cancelled: nothing is kept
            folder_scope.close()
            await self.jobs.discard(job_id)
            if isinstance(exc, ServiceError):
                self._record_failure(exc)
            raise
        work = partial(self._run_job, interview)
        return await self.jobs.launch(job_id, work, cleanup=folder_scope.close, request_id=request_id)

    async def _run_job(self, interview: Interview, progress: Progress) -> PredictResponse:
        """A job's processing, once it holds an admission slot (the job manager's part)."""
        interview.timings["queued"] = 1000 * (time.perf_counter() - interview.received)
        with self._counted():
            extracted = await self._extract(interview)
            await progress(PROGRESS_FEATURES)
            answer = await self._answer(interview, extracted)
        self._record_success(answer, extracted, interview.timings)
        return answer

    # -- the stages --------------------------------------------------------------------------

    async def interim(
        self,
        form: ReceivedForm,
        request_id: str,
        live_video: tuple[TrackedSegment, ...] = (),
        live_video_s: float = 0.0,
    ) -> PredictResponse:
        """The answer for the media of a live session so far, while the session holds its admission
        ticket: the same checks, extraction and answer as ``predict``, without the speech stage (it
        would hear the whole call again at every update; the final answer runs it) and outside the
        prediction metrics (one session, one prediction). ``live_video``: the session's pictures
        tracked so far (``track_live``), up to ``live_video_s`` on its clock; the audio's frames
        computed by earlier estimates are kept in ``form.audio_cache``, so each computes only the
        new ones."""
        interview = self._interview(form, request_id, time.perf_counter(), speech_stage=False, live_video=live_video)
        job = replace(interview.job, live_audio_cache=form.audio_cache)
        if live_video:
            job = replace(job, live_video=live_video, live_video_s=live_video_s)
        interview = replace(interview, job=job)
        extracted = await self._extract(interview)
        return await self._answer(interview, extracted)

    async def track_live(
        self, first_tick: int, pictures: tuple[bytes | None, ...], resume: TrackerState | None
    ) -> TrackedSegment:
        """A live session's next pictures (a JPEG per tick) through the face tracker, in a worker."""
        job = LiveVideoJob(self.model.manifest.features, first_tick, pictures, resume)
        segment = await self.extractor.run(job, self.settings.request_timeout_s)
        assert isinstance(segment, TrackedSegment)
        return segment

    async def hear_live(self, audio: Path, first_sample: int, end_sample: int) -> LiveWords:
        """Samples of a live session's WAV (after its last complete stretch of speech) through
        speech recognition, in a worker."""
        job = LiveSpeechJob(audio, first_sample, end_sample)
        words = await self.extractor.run(job, self.settings.request_timeout_s)
        assert isinstance(words, LiveWords)
        return words

    async def _receive(self, receive: Receive, folder: Path, request_id: str, started: float) -> Interview:
        """The uploads into ``folder`` (caps: 413), then checked (400, 415, 422) before any work."""
        return self._interview(await receive(folder), request_id, started)

    def _transcript_check_off(self, options: PredictOptions, speech_stage: bool) -> str | None:
        """Why a sent transcript is not checked against the recording; None: it is."""
        if not options.check_transcript:
            return "check_transcript=false was sent"
        if not speech_stage:
            return "running estimates do not check the transcript; the final answer does"
        if self.settings.transcript_check == "off":
            return "the transcript check is off (setting transcript_check)"
        if self.settings.speech_recognition == "off":
            return "speech recognition is off (setting speech_recognition)"
        return None

    def _interview(
        self,
        form: ReceivedForm,
        request_id: str,
        started: float,
        speech_stage: bool = True,
        live_video: tuple[TrackedSegment, ...] = (),
    ) -> Interview:
        options = parse_options(form.fields)
        video, audio, transcript = (form.files.get(name) for name in MEDIA_FIELDS)
        if transcript is not None and options.transcript_text is not None:
            raise ConflictingInputError("send either a transcript file or transcript_text, not both")
        served = self.model.manifest.version
        if options.model_version is not None and options.model_version != served:
            raise NoUsableInputError(f"model version {options.model_version} is not served here (serving {served})")
        if video is None and audio is None and transcript is None and not options.transcript_text and not live_video:
            raise NoUsableInputError("no input: send a video, an audio file or a transcript")
        received = time.perf_counter()
        idle = self.admission.admitted <= 1  # this interview is the only one in flight
        job = ExtractionJob(
            features=self.model.manifest.features,
            limits=self.limits,
            video=video.path if video else None,
            audio=audio.path if audio else None,
            transcript=transcript.data if transcript else _encoded(options.transcript_text),
            transcript_hint=transcript.suffix if transcript else None,
            transcript_content_type=transcript.content_type if transcript else None,
            participant_speaker=options.participant_speaker,
            participant_track=None if options.participant_track is None else options.participant_track - 1,
            participant_channel=(
                None if options.participant_channel is None else CHANNEL_NAMES.index(options.participant_channel)
            ),
            speaker_separation=speech_stage and self.settings.speaker_separation == "auto",
            speech_recognition=speech_stage and self.settings.speech_recognition == "auto",
            return_transcript=options.return_transcript,
            transcript_check_off=self._transcript_check_off(options, speech_stage),
            # both cores for one interview only while it is the only one: under load, one each
            visual_split=self.settings.visual_split if idle else 1,
            beside_visual=idle,
            # a live session's parts tracked as they came: the final answer tracks only the rest
            live_video=tuple(s for s in form.tracked_video if isinstance(s, TrackedSegment)) if video else (),
        )
        return Interview(
            request_id=request_id,
            options=options,
            job=job,
            started=started,
            received=received,
            timings={"upload": 1000 * (received - started)},
        )

    async def _extract(self, interview: Interview) -> Extracted:
        """Decoding and feature extraction in a worker, within the time limit (waiting for one included)."""
        self.metrics.waiting.inc()
        try:
            extracted = await self.extractor.run(interview.job, self.settings.request_timeout_s)
        finally:
            self.metrics.waiting.dec()
        assert isinstance(extracted, Extracted)
        interview.timings.update(extracted.timings_ms)
        return extracted

    async def _answer(self, interview: Interview, extracted: Extracted) -> PredictResponse:
        t1 = time.perf_counter()
        # shares a session run with concurrent requests' windows (app/fusion/batcher.py)
        output = await self.fusion.run(extracted.windows)
        timings = interview.timings
        timings["inference"] = 1000 * (time.perf_counter() - t1)
        timings["total"] = 1000 * (time.perf_counter() - interview.started)
        return build_answer(
            request_id=interview.request_id,
            model=self.model,
            provider=self.provider,
            windows=extracted.windows,
            reports=extracted.reports,
            extraction_warnings=extracted.warnings,
            output=output,
            include_timeline=interview.options.include_timeline,
            interval_level=self.settings.interval_level,
            timings_ms=timings,
            speakers=extracted.speakers,
        )

    # -- metrics -----------------------------------------------------------------------------

    @contextmanager
    def _counted(self) -> Iterator[None]:
        """The in-flight gauge around a prediction's processing, and its failure by outcome."""
        self.metrics.in_flight.inc()
        try:
            yield
        except ServiceError as exc:
            self._record_failure(exc)
            raise
        finally:
            self.metrics.in_flight.dec()

    def _record_success(self, answer: PredictResponse, extracted: Extracted, timings: dict[str, float]) -> None:
        metrics = self.metrics
        for stage, ms in timings.items():
            metrics.stage_seconds.labels(stage=stage).observe(ms / 1000)
        metrics.windows_per_request.observe(extracted.windows.size)
        for name, report in extracted.reports.items():
            if report.used:
                metrics.modality_used_total.labels(modality=name).inc()
        metrics.predictions_total.labels(outcome="ok").inc()

    def _record_failure(self, exc: ServiceError) -> None:
        if exc.status == 503:
            self.metrics.rejected_total.labels(reason="overloaded").inc()
        else:
            self.metrics.predictions_total.labels(outcome=_outcome(exc.status)).inc()


def _encoded(text: str | None) -> bytes | None:
    return text.encode("utf-8") if text is not None else None


def _outcome(status: int) -> str:
    return {413: "too_large", 415: "unsupported_media", 422: "unusable_input", 504: "timeout"}.get(
        status, "client_error" if status < 500 else "error"
    )
