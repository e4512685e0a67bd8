"""The app factory: ``create_app(settings)``; ``uvicorn app.main:app`` serves the defaults."""

from __future__ import annotations

import json
import logging
import time
import traceback
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from app.api import problems
from app.api.routes import health, jobs, live, predict, stream
from app.config import Settings
from app.errors import InternalError
from app.metrics import Metrics
from app.services import Services
from app.startup import running_services

log = logging.getLogger("app")

DESCRIPTION = """
Multimodal PHQ-8 estimation from an interview: video (with its audio track), audio
and/or transcript. **Research use only**: the shipped model is trained on synthetic
data and is not clinically validated; no answer is a diagnosis.
"""


THIRD_PARTY_MESSAGE = "(a library's message, withheld: it may quote request content)"


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: level, logger, message, request id.

    Exceptions are reduced to their type and frames (file, line, function): exception
    messages and tracebacks' text can carry request content, so they are never written.
    """

    def __init__(self, withhold_messages: bool = False) -> None:
        super().__init__()
        self.withhold_messages = withhold_messages

    def format(self, record: logging.LogRecord) -> str:
        # another library's message may quote what it parsed (a header, a path): only its origin is kept
        message = THIRD_PARTY_MESSAGE if self.withhold_messages else record.getMessage()
        entry: dict[str, object] = {"level": record.levelname, "logger": record.name, "message": message}
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            frames = traceback.extract_tb(error.__traceback__)
            entry["exception"] = type(error).__name__
            entry["frames"] = [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in frames[-8:]]
        return json.dumps(entry)


# uvicorn's own loggers go through the same formatter; its access log stays off (it
# would write client addresses)
LOGGERS = ("app", "uvicorn", "uvicorn.error")


def configure_logging(level: str = "INFO") -> None:
    for name in LOGGERS:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonLogFormatter())
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True
    # every other library (the multipart parser, PyAV...) through the root logger: JSON lines,
    # warnings and worse, their text withheld
    root_handler = logging.StreamHandler()
    root_handler.setFormatter(JsonLogFormatter(withhold_messages=True))
    root = logging.getLogger()
    root.handlers[:] = [root_handler]
    root.setLevel(logging.WARNING)


# builds the services for the app's lifetime and stops them after (app.startup.running_services)
ServicesFactory = Callable[[Settings, Metrics], AbstractAsyncContextManager[Services]]


def create_app(settings: Settings | None = None, services: ServicesFactory = running_services) -> FastAPI:
    """The REST transport over the services ``services(settings, metrics)`` builds at start-up."""
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with services(settings, metrics) as running:
            app.state.services = running
            yield

    app = FastAPI(
        title="PHQ-8 fusion service",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served below from local assets: the docs page needs no internet
        redoc_url=None,
    )
    app.state.metrics = metrics
    app.state.settings = settings
    problems.install(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-API-Key", "Content-Type"],
            expose_headers=["X-Request-ID", "Retry-After", "Location"],
            max_age=600,
        )
    app.include_router(predict.router)
    app.include_router(stream.router)
    app.include_router(jobs.router)
    app.include_router(health.router)
    app.include_router(live.router)
    app.mount(live.ASSETS_PATH, live.assets(), name="live-assets")
    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=app.title + " - docs",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon-32x32.png",
        )

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            if not settings.api_key_hashes:
                _drop_security(schema)  # no keys configured: the docs must not ask for one
            _drop_default_validation_responses(schema)
            app.openapi_schema = problems.add_problem_schema(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.middleware("http")
    async def observe(request: Request, call_next) -> Response:
        request.state.request_id = uuid.uuid4().hex[:16]
        started = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception as exc:
            # a bug: answered here so the 500 still carries the request id; logged by type and frames
            log.error("unhandled %s", type(exc).__name__, exc_info=exc, extra={"request_id": request.state.request_id})
            response = problems.error_response(InternalError(), request)
        elapsed = time.perf_counter() - started
        route = request.scope.get("route")
        template = getattr(route, "path", "unmatched")
        metrics.request_seconds.labels(route=template, method=request.method).observe(elapsed)
        metrics.requests_total.labels(route=template, method=request.method, status=str(response.status_code)).inc()
        response.headers["X-Request-ID"] = request.state.request_id
        log.info(
            "%s %s %s %.1fms",
            request.method,
            template,
            response.status_code,
            1000 * elapsed,
            extra={"request_id": request.state.request_id},
        )
        return response

    return app


def _drop_security(schema: dict) -> None:
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            operation.pop("security", None)
    schema.get("components", {}).pop("securitySchemes", None)


def _drop_default_validation_responses(schema: dict) -> None:
    """FastAPI documents a 422 with its own body for every route with parameters; this service
    answers request validation errors with a 400 problem (app/api/problems.py) instead."""
    default = {"$ref": "#/components/schemas/HTTPValidationError"}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            content = responses.get("422", {}).get("content", {})
            if content.get("application/json", {}).get("schema") == default:
                del responses["422"]
    for name in ("HTTPValidationError", "ValidationError"):
        schema.get("components", {}).get("schemas", {}).pop(name, None)


def __getattr__(name: str) -> FastAPI:
    # `uvicorn app.main:app` builds the default app on first access, not at import
    if name == "app":
        settings = Settings()
        configure_logging(settings.log_level)
        return create_app(settings)
    raise AttributeError(name)
