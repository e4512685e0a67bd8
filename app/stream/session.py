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
from collections.abc import Awaitable, Callable
from pathlib import Path

from app.errors import BadRequestError, IdleTimeoutError
from app.metrics import Metrics
from app.stream.protocol import (
    AUDIO_FRAME,
    VIDEO_FRAME,
    ConfigMessage,
    EndMessage,
    ReadyMessage,
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
    ) -> None:
        self.config, self.limits, self.request_id = config, limits, request_id
        self._incoming, self._outgoing, self._metrics = incoming, outgoing, metrics

    async def receive(self, folder: Path) -> ReceivedForm:
        recording = StreamRecording(folder, self.config, self.limits)
        try:
            await self._outgoing(ReadyMessage(session=self.request_id, limits=self.limits.as_dict()).model_dump())
            while True:
                message = await next_within(self._incoming, self.limits.idle_timeout_s)
                if isinstance(message, str):
                    parsed = parse_client_text(message)
                    if isinstance(parsed, EndMessage):
                        return recording.form()
                    recording.add_segment(parsed)
                    self._metrics.stream_frames_total.labels(kind="transcript").inc()
                    continue
                self._frame(recording, message)
        finally:
            recording.close()

    def _frame(self, recording: StreamRecording, frame: bytes) -> None:
        if len(frame) > self.limits.max_frame_bytes:
            raise too_large("a binary frame", self.limits.max_frame_bytes)
        kind = frame[0] if frame else None
        if kind == AUDIO_FRAME:
            recording.add_audio(frame[1:])
            self._metrics.stream_frames_total.labels(kind="audio").inc()
        elif kind == VIDEO_FRAME:
            timestamp, jpeg = split_video_frame(frame[1:])
            recording.add_video(timestamp, jpeg)
            self._metrics.stream_frames_total.labels(kind="video").inc()
        else:
            raise BadRequestError("a binary frame must start with 0x01 (audio) or 0x02 (video)")
