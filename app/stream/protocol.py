"""The /stream WebSocket protocol: its messages, binary frame layout and close codes.

Client -> server, in this order: one ``config`` (JSON text), then any mix of binary media
frames and ``transcript`` segments (JSON text), then ``end`` (JSON text).

- audio frame: ``0x01`` + PCM, signed 16-bit little-endian, mono, 16 kHz (about 100 ms a
  frame is usual); its time is the samples sent before it.
- video frame: ``0x02`` + its timestamp (seconds on the session clock, float64
  little-endian) + one baseline or progressive JPEG picture; timestamps increase.

Server -> client: ``ready`` once the config is accepted (the session id and the limits),
``estimate`` (the running answer for the audio and captions so far, at most every 10 s of
stream time) and ``window`` (each completed 60-s window), ``warning`` as conditions arise,
``final`` (the same answer /predict gives for the media as streamed) and a normal close,
or ``error`` (an RFC 9457 problem) and a close whose code is 4000 + the HTTP status
/predict would have answered (4400 bad message, 4401 key, 4408 idle, 4413 too large or too
long, 4415 not JPEG, 4422 nothing usable, 4429 rate, 4503 full, ...).

``message_schemas`` is the machine-readable form (a JSON Schema per message) that
docs/stream-protocol.json holds.
"""

from __future__ import annotations

import math
import struct
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from app.errors import BadRequestError, PayloadTooLargeError, ServiceError, UnsupportedMediaError

AUDIO_FRAME = 0x01
VIDEO_FRAME = 0x02
VIDEO_HEADER = struct.Struct("<d")  # the timestamp after the kind byte
SAMPLE_RATE = 16000
SAMPLE_BYTES = 2

CLOSE_NORMAL = 1000  # after ``final``
CLOSE_ERROR_BASE = 4000  # + the HTTP status of the problem sent before the close


def close_code(error: ServiceError) -> int:
    """The close code that follows an ``error`` message: 4000 + the problem's HTTP status."""
    return CLOSE_ERROR_BASE + error.status


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AudioConfig(_Message):
    format: Literal["s16le"] = Field("s16le", description="signed 16-bit little-endian PCM")
    sample_rate: Literal[16000] = Field(16000, description="samples per second")
    channels: Literal[1] = Field(1, description="mono: the patient's side of the call, or the room")


class VideoConfig(_Message):
    format: Literal["jpeg"] = Field("jpeg", description="one JPEG picture per video frame")


class ConfigMessage(_Message):
    """The session's first message: which streams will come, and the /predict options."""

    type: Literal["config"]
    audio: AudioConfig | None = Field(None, description="audio frames will come")
    video: VideoConfig | None = Field(None, description="video frames will come")
    captions: bool = Field(False, description="transcript segments (live captions) will come")
    participant_speaker: str | None = Field(
        None, min_length=1, max_length=128, description="the patient's speaker label in the captions"
    )
    include_timeline: bool = Field(True, description="include the per-window timeline in the final answer")
    pace: Literal["live", "replay"] = Field(
        "live",
        description="live: media come as the call happens; a session whose media run more than `max_ahead_s` "
        "(limits in `ready`) ahead of the time since `ready` is closed 4429 (stream-too-fast), so the running "
        "estimates never lag behind a client faster than the server. replay: a recording sent at any speed; the "
        "live analysis keeps up as it can (warnings say when it falls back) and the final answer is the same",
    )
    api_key: str | None = Field(
        None,
        min_length=1,
        max_length=512,
        description="the API key, for clients that cannot set headers on a WebSocket (browsers); "
        "else `Authorization: Bearer` or `X-API-Key` on the handshake",
    )


class TranscriptMessage(_Message):
    """One caption segment on the session clock."""

    type: Literal["transcript"]
    speaker: str = Field(..., min_length=1, max_length=128)
    start: float = Field(..., ge=0, allow_inf_nan=False, description="seconds")
    end: float = Field(..., ge=0, allow_inf_nan=False, description="seconds")
    text: str = Field(..., max_length=64 << 10)


class EndMessage(_Message):
    type: Literal["end"]


ClientText = Annotated[TranscriptMessage | EndMessage, Field(discriminator="type")]
_CONFIG = TypeAdapter(ConfigMessage)
_CLIENT_TEXT = TypeAdapter(ClientText)


class ReadyMessage(_Message):
    type: Literal["ready"] = "ready"
    session: str = Field(..., description="the request id of this session (X-Request-ID on /predict)")
    limits: dict[str, float] = Field(..., description="the caps this session runs under")


class ModalityState(_Message):
    used: bool
    reason: str | None = Field(None, description="why it is not used in this estimate")


class WindowMessage(_Message):
    """One completed 60-s window of the stream's audio and captions, fused on its own."""

    type: Literal["window"] = "window"
    index: int = Field(..., ge=0, description="0 for the first window; windows overlap by 10 s")
    start_s: float
    end_s: float
    total: float = Field(..., description="PHQ-8 total from this window alone")
    weights: dict[str, float] = Field(..., description="modality weights in this window")


class EstimateMessage(_Message):
    """The running participant-level answer for the media so far (at most every 10 s of stream time).

    It comes from the audio and the captions so far, and from the video tracked so far (in 1-s
    parts as it comes, up to ``video_s``). Without captions its words come from live speech
    recognition of the audio (the stretches a pause has ended). ``total`` is None while
    nothing is usable yet; ``modalities`` gives each one's state and reason.
    """

    type: Literal["estimate"] = "estimate"
    stream_s: float = Field(..., description="the stream time the audio and captions of this estimate reach")
    video_s: float = Field(0.0, description="how far the video tracked for this estimate reaches (s)")
    total: float | None = None
    interval: dict[str, Any] | None = None
    severity: str | None = None
    band_probabilities: dict[str, float] | None = None
    probability_at_or_above_cutoff: float | None = None
    weights: dict[str, float] | None = None
    windows: int = 0
    reason: str | None = Field(None, description="why there is no total yet")
    modalities: dict[str, ModalityState] = Field(default_factory=dict)


class WarningMessage(_Message):
    type: Literal["warning"] = "warning"
    message: str


class FinalMessage(_Message):
    type: Literal["final"] = "final"
    answer: dict[str, Any] = Field(..., description="the /predict answer (PredictResponse) for the media as streamed")


class ErrorMessage(_Message):
    type: Literal["error"] = "error"
    problem: dict[str, Any] = Field(..., description="an RFC 9457 problem, as /predict would answer it")
    retry_after_s: int | None = Field(None, description="for 429 and 503: when to try again")


def _errors(exc: ValidationError) -> list[dict[str, object]]:
    # locations and messages only: the submitted values are never echoed
    return [{"loc": list(map(str, e["loc"])), "msg": e["msg"]} for e in exc.errors()]


def parse_config(text: str) -> ConfigMessage:
    try:
        return _CONFIG.validate_json(text)
    except ValidationError as exc:
        raise BadRequestError("the first message must be a valid config message", errors=_errors(exc)) from exc


def parse_client_text(text: str) -> TranscriptMessage | EndMessage:
    try:
        return _CLIENT_TEXT.validate_json(text)
    except ValidationError as exc:
        raise BadRequestError("a text message is not a valid transcript or end message", errors=_errors(exc)) from exc


def split_video_frame(frame: bytes) -> tuple[float, bytes]:
    """A video frame's payload (after the kind byte) -> (timestamp s, JPEG bytes)."""
    if len(frame) <= VIDEO_HEADER.size:
        raise BadRequestError("a video frame must hold an 8-byte timestamp and a JPEG picture")
    (timestamp,) = VIDEO_HEADER.unpack_from(frame)
    if not math.isfinite(timestamp) or timestamp < 0:
        raise BadRequestError("a video frame's timestamp must be a finite number of seconds >= 0")
    return timestamp, frame[VIDEO_HEADER.size :]


# SOFn markers that carry the frame size (not DHT C4, JPG C8, DAC CC)
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a JPEG picture from its frame header, without decoding it.

    Walks the marker segments from SOI to the first SOFn; anything else is not a JPEG
    picture (UnsupportedMediaError).
    """
    if len(data) < 4 or data[0] != 0xFF or data[1] != 0xD8:
        raise UnsupportedMediaError("a video frame is not a JPEG picture")
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            break
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        (length,) = struct.unpack_from(">H", data, at + 2)
        if marker in _SOF_MARKERS:
            if at + 9 > len(data) or length < 8:
                break
            height, width = struct.unpack_from(">HH", data, at + 5)
            if width == 0 or height == 0:
                break
            return width, height
        if marker in (0xD9, 0xDA) or length < 2:  # end of image or scan data before any frame header
            break
        at += 2 + length
    raise UnsupportedMediaError("a video frame is not a JPEG picture with a frame header")


def too_large(what: str, cap: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"{what} is larger than its cap of {cap} bytes")


def message_schemas() -> dict[str, Any]:
    """A JSON Schema per message of the protocol, keyed by direction and type."""
    return {
        "binary_frames": {
            "audio": {"kind_byte": AUDIO_FRAME, "payload": "PCM s16le mono 16 kHz"},
            "video": {"kind_byte": VIDEO_FRAME, "payload": "float64 little-endian timestamp (s), then a JPEG"},
        },
        "client": {
            "config": ConfigMessage.model_json_schema(),
            "transcript": TranscriptMessage.model_json_schema(),
            "end": EndMessage.model_json_schema(),
        },
        "server": {
            "ready": ReadyMessage.model_json_schema(),
            "window": WindowMessage.model_json_schema(),
            "estimate": EstimateMessage.model_json_schema(),
            "warning": WarningMessage.model_json_schema(),
            "final": FinalMessage.model_json_schema(),
            "error": ErrorMessage.model_json_schema(),
        },
        "close_codes": {
            str(CLOSE_NORMAL): "the final answer was sent",
            "4000 + HTTP status": "the error message before the close holds the problem (e.g. 4400, 4413, 4422)",
        },
    }
