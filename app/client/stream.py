"""A recording replayed as a live /stream session (``phq-client stream``), and the session's
client side.

``replay_frames`` turns files into the protocol's messages in stream-time order: the video's
pictures as JPEG frames (an MJPEG video's own JPEG packets untouched; any other codec decoded
and encoded as JPEG, so the final answer is then the one for those JPEG pictures), the audio
(the audio file, else the video's own track) as 100-ms PCM blocks, s16le mono 16 kHz, and
caption segments (a JSON segment list) once their end has passed. ``run_session`` sends them,
paced to real time when asked, and returns every message the server sent.
"""

from __future__ import annotations

import heapq
import json
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AUDIO_FRAME, VIDEO_FRAME = b"\x01", b"\x02"
SAMPLE_RATE = 16000
BLOCK_S = 0.1  # audio per frame, as live capture sends it
JPEG_QUALITY = 90


@dataclass(frozen=True)
class Outgoing:
    """One message of the session, due at ``at_s`` on the stream clock."""

    at_s: float
    data: bytes | str


def _video_frames(path: Path) -> Iterator[Outgoing]:
    import av
    import cv2

    with av.open(str(path)) as container:
        if not container.streams.video:
            return
        stream = container.streams.video[0]
        origin: float | None = None
        if stream.codec_context.name == "mjpeg":
            for packet in container.demux(stream):
                if packet.size == 0 or packet.pts is None:
                    continue
                at = float(packet.pts * packet.time_base)
                origin = at if origin is None else origin
                yield Outgoing(at - origin, VIDEO_FRAME + struct.pack("<d", at - origin) + bytes(packet))
            return
        for frame in container.decode(stream):
            at = float(frame.time or 0.0)
            origin = at if origin is None else origin
            ok, jpeg = cv2.imencode(".jpg", frame.to_ndarray(format="bgr24"), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if ok:
                yield Outgoing(at - origin, VIDEO_FRAME + struct.pack("<d", at - origin) + jpeg.tobytes())


def _audio_blocks(path: Path) -> Iterator[Outgoing]:
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            return
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        pending, sent = bytearray(), 0
        block = round(BLOCK_S * SAMPLE_RATE) * 2

        def flushed(final: bool) -> Iterator[Outgoing]:
            nonlocal sent
            while len(pending) >= block or (final and pending):
                data = bytes(pending[:block])
                del pending[:block]
                yield Outgoing(sent / 2 / SAMPLE_RATE, AUDIO_FRAME + data)
                sent += len(data)

        for frame in container.decode(container.streams.audio[0]):
            for out in resampler.resample(frame):
                pending.extend(out.to_ndarray().tobytes())
            yield from flushed(False)
        for out in resampler.resample(None):
            pending.extend(out.to_ndarray().tobytes())
        yield from flushed(True)


def _captions(path: Path) -> Iterator[Outgoing]:
    segments = json.loads(path.read_text(encoding="utf-8"))
    for segment in sorted(segments, key=lambda s: float(s["start"])):
        message = {"type": "transcript", **{k: segment[k] for k in ("speaker", "start", "end", "text")}}
        yield Outgoing(float(segment["end"]), json.dumps(message))


def replay_frames(video: Path | None, audio: Path | None, captions: Path | None) -> Iterator[Outgoing]:
    """The messages a live session of these files would send, in stream-time order (no config, no end)."""
    sources: list[Iterable[Outgoing]] = []
    if video is not None:
        sources.append(_video_frames(video))
    if audio is not None or video is not None:
        sources.append(_audio_blocks(audio if audio is not None else video))  # type: ignore[arg-type]
    if captions is not None:
        sources.append(_captions(captions))
    # captions keep their order among themselves; a caption's start order is the server's rule too
    yield from heapq.merge(*sources, key=lambda m: m.at_s)


def config_message(video: Path | None, audio_present: bool, captions: bool, **options: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"type": "config", "captions": captions}
    if video is not None:
        config["video"] = {"format": "jpeg"}
    if audio_present:
        config["audio"] = {"format": "s16le", "sample_rate": SAMPLE_RATE, "channels": 1}
    config.update({k: v for k, v in options.items() if v is not None})
    return config


def has_audio(path: Path) -> bool:
    import av

    with av.open(str(path)) as container:
        return bool(container.streams.audio)


@dataclass
class SessionResult:
    messages: list[dict[str, Any]]  # every message the server sent, in order
    close_code: int | None
    close_reason: str


def run_session(
    url: str,
    config: dict[str, Any],
    frames: Iterable[Outgoing],
    *,
    realtime: bool = False,
    headers: dict[str, str] | None = None,
    on_message: Callable[[dict[str, Any]], None] | None = None,
    timeout_s: float = 600.0,
) -> SessionResult:
    """One session against ``url`` (ws:// or wss://.../stream): config, the frames, end; the server's messages."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    # a replay at socket speed says so: the server closes a live session that runs ahead of real time
    config = {"pace": "live" if realtime else "replay", **config}
    messages: list[dict[str, Any]] = []
    with connect(url, additional_headers=headers or {}, max_size=None, open_timeout=30) as websocket:

        def listen() -> None:
            try:
                for text in websocket:
                    message = json.loads(text)
                    messages.append(message)
                    if on_message is not None:
                        on_message(message)
            except ConnectionClosed:
                pass

        listener = threading.Thread(target=listen, name="stream-listener", daemon=True)
        listener.start()
        try:
            websocket.send(json.dumps(config))
            started = time.monotonic()
            for frame in frames:
                if realtime:
                    ahead = frame.at_s - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
                websocket.send(frame.data)
            websocket.send(json.dumps({"type": "end"}))
        except ConnectionClosed:
            pass  # the server ended the session: its error message says why
        listener.join(timeout_s)
        code, reason = websocket.close_code, websocket.close_reason or ""
    return SessionResult(messages, code, reason)
