"""One live session, transport-free: the client's messages in, the pipeline's ``Receive`` out.

``StreamSession.receive`` is what the pipeline calls to fill its private folder: it sends
``ready``, then reads messages (each within the idle timeout) into a ``StreamRecording``
until ``end``, and returns the session as a ``ReceivedForm``. The pipeline around it is
/predict's: the admission ticket is held for the whole session, the folder is removed on
every path, the final answer is the one /predict gives for the same media. The WebSocket
route (app/api/routes/stream.py) only adapts its messages to ``Incoming`` and ``Outgoing``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from pydantic import BaseModel

from app.answer.schema import PredictResponse
from app.errors import BadRequestError, IdleTimeoutError, ServiceError, StreamTooFastError
from app.features.visual.tracking import TrackedSegment, TrackerState
from app.metrics import Metrics
from app.speech.live import LiveWords
from app.stream.live_speech import LiveSpeech
from app.stream.live_video import LiveVideo
from app.stream.monitor import AudioMonitor, FaceMonitor, VoiceMonitor, person_changed
from app.stream.protocol import (
    AUDIO_FRAME,
    VIDEO_FRAME,
    ConfigMessage,
    EndMessage,
    EstimateMessage,
    ModalityState,
    ReadyMessage,
    WarningMessage,
    WindowMessage,
    parse_client_text,
    split_video_frame,
    too_large,
)
from app.stream.recording import StreamLimits, StreamRecording
from app.upload.form import ReceivedForm

# the next client message: text or bytes; raises BodyInterrupted when the client is gone
Incoming = Callable[[], Awaitable[str | bytes]]
# sends one JSON message to the client
Outgoing = Callable[[dict], Awaitable[None]]
# the answer for a form of the session's media so far and its video tracked so far (Pipeline.interim)
Interim = Callable[[ReceivedForm, tuple[TrackedSegment, ...], float], Awaitable[PredictResponse]]
# a part of the session's pictures through the face tracker: (first tick, a JPEG per tick,
# where the previous part left the tracker) -> its segment (Pipeline.track_live)
TrackPictures = Callable[[int, tuple[bytes | None, ...], TrackerState | None], Awaitable[TrackedSegment]]
# samples [first, end) of the session's WAV (after its last complete stretch of speech)
# through speech recognition (Pipeline.hear_live)
HearSpeech = Callable[[Path, int, int], Awaitable[LiveWords]]

# a running estimate at most this often, in stream time
ESTIMATE_EVERY_S = 10.0
VISUAL_AT_THE_END = "the video is analysed for the final answer"
LIVE_VIDEO_FAILED = "the live video analysis failed"
SESSION_ENDED = "the session ended"
SPEECH_AT_THE_END = "no captions: the speech is recognised for the final answer"
NOTHING_HEARD_YET = "no captions, and live speech recognition has heard no complete turn yet"
LIVE_SPEECH_FAILED = "the live speech recognition failed"
log = logging.getLogger("app.stream")


async def next_within(incoming: Incoming, timeout_s: float) -> str | bytes:
    """The next message, or IdleTimeoutError when none comes within ``timeout_s``."""
    try:
        return await asyncio.wait_for(incoming(), timeout_s)
    except TimeoutError:
        raise IdleTimeoutError(f"no message came for {timeout_s:g} s") from None


class StreamSession:
    """A configured session: reads its media into the pipeline's folder until ``end``."""

    def __init__(
        self,
        config: ConfigMessage,
        incoming: Incoming,
        outgoing: Outgoing,
        limits: StreamLimits,
        request_id: str,
        metrics: Metrics,
        interim: Interim | None = None,
        recognises_speech: bool = True,
        track: TrackPictures | None = None,
        video_rate_hz: float = 10.0,
        hear: HearSpeech | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config, self.limits, self.request_id = config, limits, request_id
        self._incoming, self._outgoing, self._metrics = incoming, outgoing, metrics
        self._interim = interim
        self._recognises_speech = recognises_speech  # the final answer's speech stage will run
        self._estimating: asyncio.Task[None] | None = None  # one interim estimate at a time
        self._next_estimate_s = ESTIMATE_EVERY_S
        self._windows_sent = 0
        self._audio_monitor = AudioMonitor()
        # the video tracked as it comes, one part at a time, for the running estimates
        self._live_video = LiveVideo(video_rate_hz) if track is not None and config.video is not None else None
        self._track = track
        self._tracking: asyncio.Task[None] | None = None
        self._face_monitor = FaceMonitor(video_rate_hz)
        # the words of the audio, recognised as it comes when no captions do
        live_words = hear is not None and recognises_speech and config.audio is not None and not config.captions
        self._live_speech = LiveSpeech() if live_words else None
        self._hear = hear
        self._hearing: asyncio.Task[None] | None = None
        self._audio_path: Path | None = None  # the recording's WAV, once it exists
        self._voice_monitor = VoiceMonitor()
        self._clock = clock

    async def receive(self, folder: Path) -> ReceivedForm:
        recording = StreamRecording(folder, self.config, self.limits)
        try:
            await self._outgoing(ReadyMessage(session=self.request_id, limits=self.limits.as_dict()).model_dump())
            ready_at = self._clock()  # a live session's media keep to the time since ``ready``
            while True:
                message = await next_within(self._incoming, self.limits.idle_timeout_s)
                if isinstance(message, str):
                    parsed = parse_client_text(message)
                    if isinstance(parsed, EndMessage):
                        await self._settled()
                        form = recording.form()
                        live = self._live_video
                        if live is not None and live.stopped == SESSION_ENDED:
                            form.tracked_video = tuple(live.segments)  # the final answer tracks the rest
                        return form
                    recording.add_segment(parsed)
                    self._metrics.stream_frames_total.labels(kind="transcript").inc()
                else:
                    for warning in self._frame(recording, message):
                        await self._send(WarningMessage(message=warning))
                    self._maybe_track()
                self._keeps_pace(recording, ready_at)
                self._maybe_estimate(recording)
        finally:
            await self._settled()  # never a worker reading the folder after it is removed
            recording.close()

    # -- running estimates -------------------------------------------------------------------

    def _maybe_estimate(self, recording: StreamRecording) -> None:
        """Start an estimate of the media so far once 10 s more of it came and none is running:
        a client faster than the pipeline gets fewer estimates, never a queue of them."""
        covered = recording.covered_seconds
        if self._interim is None or covered < self._next_estimate_s:
            return
        if self._estimating is not None and not self._estimating.done():
            return
        self._next_estimate_s = covered + ESTIMATE_EVERY_S
        video_ticks = self._live_video.decided_ticks if self._live_video is not None else 0
        self._estimating = asyncio.create_task(self._estimate(recording, video_ticks, covered, time.perf_counter()))

    async def _settled(self) -> None:
        """Wait for the estimate and the tracking running now (none starts after ``end``)."""
        if self._live_video is not None:
            self._live_video.stop(SESSION_ENDED)
        if self._live_speech is not None:
            self._live_speech.stop(SESSION_ENDED)
        running = {task for task in (self._estimating, self._tracking, self._hearing) if task is not None}
        if running:
            await asyncio.wait(running)

    # -- live video --------------------------------------------------------------------------

    def _maybe_track(self, now: bool = False) -> None:
        """Hand the next part of the pictures to a worker once it is due (``now``: whatever waits)
        and none is being tracked."""
        live = self._live_video
        if live is None or not live.ready(now) or (self._tracking is not None and not self._tracking.done()):
            return
        self._tracking = asyncio.create_task(self._track_part(*live.next_part()))

    async def _video_until(self, ticks: int) -> tuple[tuple[TrackedSegment, ...], float]:
        """The tracked video once it reaches ``ticks`` (what was decided when an estimate fell due;
        parts are short, so this waits for a second or two of pictures at real time), or as far
        as it got if the tracking stopped; nothing when it stopped before any part."""
        live = self._live_video
        if live is None:
            return (), 0.0
        while live.stopped is None and live.tracked_ticks < ticks:
            self._maybe_track(now=True)
            if self._tracking is None or self._tracking.done():
                break  # nothing is waiting after all: never wait for ever
            await asyncio.wait({self._tracking})
        if live.stopped not in (None, SESSION_ENDED) or not live.segments:
            return (), 0.0
        return tuple(live.segments), live.tracked_s

    async def _track_part(
        self, first_tick: int, pictures: tuple[bytes | None, ...], resume: TrackerState | None
    ) -> None:
        live = self._live_video
        assert live is not None and self._track is not None
        try:
            segment = await self._track(first_tick, pictures, resume)
        except Exception as exc:  # the estimates go on without the video; the final answer still has it
            live.stop(LIVE_VIDEO_FAILED)
            log.warning("live video tracking failed: %s", type(exc).__name__, extra={"request_id": self.request_id})
            await self._send(WarningMessage(message=LIVE_VIDEO_FAILED + "; the final answer still analyses the video"))
            return
        if live.stopped is not None and live.stopped != SESSION_ENDED:
            return
        live.tracked(segment)
        warnings = self._face_monitor.feed(segment.valid)
        warnings += [person_changed(tick / live.rate_hz) for tick in segment.identity_switches]
        for warning in warnings:
            await self._send(WarningMessage(message=warning))
        self._tracking = None
        self._maybe_track()  # the pictures that came meanwhile

    # -- live speech recognition -------------------------------------------------------------

    def _maybe_hear(self, now: bool = False) -> None:
        speech = self._live_speech
        if speech is None or not speech.ready(now) or (self._hearing is not None and not self._hearing.done()):
            return
        assert self._audio_path is not None
        self._hearing = asyncio.create_task(self._hear_part(self._audio_path, *speech.next_call()))

    async def _hear_part(self, audio: Path, first_sample: int, end_sample: int) -> None:
        speech = self._live_speech
        assert speech is not None and self._hear is not None
        try:
            words = await self._hear(audio, first_sample, end_sample)
        except Exception as exc:  # the estimates go on without live words; the final answer still hears them
            speech.stop(LIVE_SPEECH_FAILED)
            log.warning("live speech recognition failed: %s", type(exc).__name__, extra={"request_id": self.request_id})
            await self._send(WarningMessage(message=LIVE_SPEECH_FAILED + "; the final answer still hears the call"))
            return
        speech.heard(words)
        for warning in self._voice_monitor.feed(words.voices):
            await self._send(WarningMessage(message=warning))

    async def _words(self) -> list[dict[str, object]] | None:
        """The words heard live so far, once the call in flight is back (a few seconds of audio)."""
        speech = self._live_speech
        if speech is None:
            return None
        self._maybe_hear(now=True)
        if self._hearing is not None and not self._hearing.done():
            await asyncio.wait({self._hearing})
        return list(speech.segments) if speech.stopped in (None, SESSION_ENDED) else None

    # -- running estimates -------------------------------------------------------------------

    async def _estimate(self, recording: StreamRecording, video_ticks: int, covered_s: float, media_in: float) -> None:
        assert self._interim is not None
        try:
            video = await self._video_until(video_ticks)
            form = recording.snapshot(heard=await self._words())
            try:
                answer = await self._interim(form, *video)
            except ServiceError as exc:
                # nothing usable yet (or not this time): said, and the session goes on
                reasons = exc.extra.get("reasons")
                states = (
                    {name: ModalityState(used=False, reason=str(why)) for name, why in reasons.items()}
                    if isinstance(reasons, dict)
                    else {}
                )
                await self._send(
                    EstimateMessage(
                        stream_s=covered_s, video_s=video[1], reason=exc.detail, modalities=self._final_only(states)
                    )
                )
                return
            for window in (answer.timeline or [])[self._windows_sent :]:
                if window.end_s > covered_s + 1e-6:
                    break  # not complete yet
                weights = window.modalities.model_dump()
                await self._send(
                    WindowMessage(
                        index=self._windows_sent,
                        start_s=window.start_s,
                        end_s=window.end_s,
                        total=window.total,
                        weights=weights,
                    )
                )
                self._windows_sent += 1
            estimate = _estimate_message(answer, covered_s, video[1])
            estimate.modalities = self._final_only(estimate.modalities)
            await self._send(estimate)
            self._metrics.stream_estimate_lag.observe(time.perf_counter() - media_in)
        except Exception as exc:  # an estimate that fails must not end the call; its type only is logged
            log.warning(
                "interim estimate failed: %s", type(exc).__name__, extra={"request_id": self.request_id}, exc_info=exc
            )

    def _final_only(self, states: dict[str, ModalityState]) -> dict[str, ModalityState]:
        """The states of an estimate, with the modalities only the final answer analyses said so."""
        states = dict(states)
        live = self._live_video
        if self.config.video is not None and (
            live is None or live.stopped not in (None, SESSION_ENDED) or not live.segments
        ):
            why = live.stopped if live is not None and live.stopped != SESSION_ENDED else None
            states["visual"] = ModalityState(
                used=False, reason=f"{why}: {VISUAL_AT_THE_END}" if why else VISUAL_AT_THE_END
            )
        if not self.config.captions and self._recognises_speech and self.config.audio is not None:
            speech = self._live_speech
            if speech is None or speech.stopped not in (None, SESSION_ENDED):
                why = speech.stopped if speech is not None else None
                reason = f"{why}: {SPEECH_AT_THE_END}" if why else SPEECH_AT_THE_END
                states["text"] = ModalityState(used=False, reason=reason)
            elif not speech.segments:
                states["text"] = ModalityState(used=False, reason=NOTHING_HEARD_YET)
        return states

    def _keeps_pace(self, recording: StreamRecording, ready_at: float) -> None:
        """A live session's media may not run more than ``max_ahead_s`` ahead of the wall clock:
        past it the client sends faster than a call happens (and than the live analysis is
        sized for), and is told so with 4429 instead of getting ever later estimates."""
        if self.config.pace != "live":
            return
        ahead = recording.covered_seconds - (self._clock() - ready_at)
        if ahead > self.limits.max_ahead_s:
            raise StreamTooFastError(
                f"the media run {ahead:.1f} s ahead of the time since ready, more than the "
                f"{self.limits.max_ahead_s:g} s a live session may: send at the pace of the call, or set "
                '"pace": "replay" in the config to send a recording'
            )

    async def _send(self, message: BaseModel) -> None:
        await self._outgoing(message.model_dump())

    def _frame(self, recording: StreamRecording, frame: bytes) -> list[str]:
        """Record one binary frame; the live warnings it starts."""
        if len(frame) > self.limits.max_frame_bytes:
            raise too_large("a binary frame", self.limits.max_frame_bytes)
        kind = frame[0] if frame else None
        if kind == AUDIO_FRAME:
            recording.add_audio(frame[1:])
            self._metrics.stream_frames_total.labels(kind="audio").inc()
            warnings = self._audio_monitor.feed(frame[1:])
            if self._live_speech is not None:
                self._audio_path = recording.audio_path
                stopped = self._live_speech.add((len(frame) - 1) // 2)
                if stopped:
                    warnings.append(f"{stopped}: the running estimates go on without its words")
                self._maybe_hear()
            return warnings
        elif kind == VIDEO_FRAME:
            timestamp, jpeg = split_video_frame(frame[1:])
            recorded_s = recording.add_video(timestamp, jpeg)
            self._metrics.stream_frames_total.labels(kind="video").inc()
            if self._live_video is not None:
                stopped = self._live_video.stopped
                self._live_video.add(recorded_s, jpeg)
                if self._live_video.stopped != stopped:
                    return [f"{self._live_video.stopped}: the running estimates go on without the video"]
            return []
        else:
            raise BadRequestError("a binary frame must start with 0x01 (audio) or 0x02 (video)")


def _estimate_message(answer: PredictResponse, covered_s: float, video_s: float) -> EstimateMessage:
    phq8 = answer.phq8
    modalities = {
        name: ModalityState(used=report.used, reason=report.reason)
        for name, report in (
            ("visual", answer.inputs.visual),
            ("audio", answer.inputs.audio),
            ("text", answer.inputs.text),
        )
    }
    return EstimateMessage(
        stream_s=covered_s,
        video_s=video_s,
        total=phq8.total,
        interval=phq8.interval.model_dump(),
        severity=phq8.severity,
        band_probabilities=phq8.band_probabilities.model_dump(),
        probability_at_or_above_cutoff=phq8.probability_at_or_above_cutoff,
        weights=answer.attention.modalities.model_dump(),
        windows=len(answer.timeline or []),
        modalities=modalities,
    )
