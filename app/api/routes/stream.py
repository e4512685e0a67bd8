"""WebSocket /stream: a live session in, its final PHQ-8 answer out (protocol: app/stream/protocol.py).

The adapter only: it accepts the connection, reads the config, checks the key and the
client's rate like /predict, and hands the session to the same pipeline /predict calls.
Any refusal is an ``error`` message (the problem /predict would answer) and a close with
4000 + its status; nothing but the request id and the close code is logged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from app.api.deps import check_key, key_digest
from app.errors import InternalError, OverloadedError, RateLimitedError, ServiceError, UnauthorizedError
from app.services import Services
from app.stream.protocol import CLOSE_NORMAL, ErrorMessage, FinalMessage, close_code, parse_config
from app.stream.recording import StreamLimits
from app.stream.session import StreamSession, next_within
from app.upload.form import BodyInterrupted

router = APIRouter(tags=["prediction"])
log = logging.getLogger("app.stream")


class _Connection:
    """The WebSocket as the session's ``Incoming``/``Outgoing``."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket

    async def incoming(self) -> str | bytes:
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise BodyInterrupted
        if message.get("bytes") is not None:
            return message["bytes"]
        return message.get("text") or ""

    async def outgoing(self, message: dict) -> None:
        await self.websocket.send_text(json.dumps(message))


def _presented_key(websocket: WebSocket, in_config: str | None) -> str | None:
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return websocket.headers.get("x-api-key") or in_config


@router.websocket("/stream")
async def stream(websocket: WebSocket) -> None:
    request_id = uuid.uuid4().hex[:16]
    await websocket.accept()
    services: Services | None = getattr(websocket.app.state, "services", None)
    connection = _Connection(websocket)
    code = CLOSE_NORMAL
    if services is not None:
        services.metrics.stream_sessions.inc()
    try:
        if services is None or not services.ready:
            raise OverloadedError("the service is starting or stopping", retry_after_s=5)
        settings, limits = services.settings, StreamLimits.from_settings(services.settings)
        config = parse_config(_text(await next_within(connection.incoming, limits.idle_timeout_s)))
        try:
            digest = check_key(settings, _presented_key(websocket, config.api_key))
        except UnauthorizedError:
            services.metrics.rejected_total.labels(reason="unauthorized").inc()
            raise
        host = websocket.client.host if websocket.client else ""
        try:
            await services.rate_limiter.acquire("key:" + digest if digest else "address:" + key_digest(host))
        except RateLimitedError:
            services.metrics.rejected_total.labels(reason="rate_limited").inc()
            raise
        pipeline = services.pipeline
        session = StreamSession(
            config,
            connection.incoming,
            connection.outgoing,
            limits,
            request_id,
            services.metrics,
            interim=lambda form, video, video_s: pipeline.interim(form, request_id, video, video_s),
            recognises_speech=settings.speech_recognition == "auto",
            track=pipeline.track_live,
            video_rate_hz=pipeline.model.manifest.features.visual.rate_hz,
            hear=pipeline.hear_live,
        )
        answer = await pipeline.predict(session.receive, request_id)
        await connection.outgoing(FinalMessage(answer=answer.model_dump(mode="json")).model_dump())
    except (BodyInterrupted, WebSocketDisconnect):
        code = None  # the client went away: nothing to send
    except ServiceError as exc:
        code = await _refuse(connection, exc, request_id)
    except Exception as exc:  # a bug: the client gets no detail of it, the log its type and frames
        log.error("unhandled %s", type(exc).__name__, exc_info=exc, extra={"request_id": request_id})
        code = await _refuse(connection, InternalError(), request_id)
    finally:
        if services is not None:
            services.metrics.stream_sessions.dec()
    if code is not None and websocket.client_state == WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):  # it went away meanwhile
            await websocket.close(code)
    log.info("stream closed %s", code, extra={"request_id": request_id})


def _text(message: str | bytes) -> str:
    if isinstance(message, bytes):
        return "{}"  # a binary first message is not a config: refused by the config's validation
    return message


async def _refuse(connection: _Connection, error: ServiceError, request_id: str) -> int | None:
    retry = error.headers.get("Retry-After")
    message = ErrorMessage(problem=error.problem_body(request_id), retry_after_s=int(retry) if retry else None)
    try:
        await connection.outgoing(message.model_dump())
    except (RuntimeError, WebSocketDisconnect):
        return None
    return close_code(error)
