"""The app factory: ``create_app(settings)``; ``uvicorn app.main:app`` serves the defaults."""

from __future__ import annotations

import json
import logging
import time
import traceback
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from app.admission import Admission, RateLimiter
from app.api import problems
from app.api.routes import health, jobs, predict
from app.config import Settings
from app.fusion.batcher import FusionBatcher
from app.fusion.runner import FusionRunner, provider_list
from app.fusion.store import check_contract, load_fusion, text_encoder_dir
from app.job_store import InMemoryJobStore
from app.jobs import JobManager
from app.metrics import Metrics
from app.services import Services
from app.upload import sweep_stale_folders
from app.workers import WorkerPool

log = logging.getLogger("app")

DESCRIPTION = """
Multimodal PHQ-8 estimation from an interview: video (with its audio track), audio
and/or transcript. **Research use only**: the shipped model is trained on synthetic
data and is not clinically validated; no answer is a diagnosis.
"""


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: level, logger, message, request id.

    Exceptions are reduced to their type and frames (file, line, function): exception
    messages and tracebacks' text can carry request content, so they are never written.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {"level": record.levelname, "logger": record.name, "message": record.getMessage()}
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


async def load_services(settings: Settings, metrics: Metrics) -> Services:
    # a request lives at most its upload, its time limit and the inference: older folders are orphans
    swept = sweep_stale_folders(settings.spool_dir, older_than_s=settings.request_timeout_s + 3600)
    if swept:
        log.warning("removed %d upload folders left by an earlier process", swept)
    model = load_fusion(settings.model_store, settings.fusion_version)
    features = model.manifest.features
    # refuse to start when the extractors cannot produce what the manifest declares
    await anyio.to_thread.run_sync(check_contract, features, settings.model_store)
    runner = FusionRunner(model, settings)
    await anyio.to_thread.run_sync(runner.warm_up, settings.batch_max_windows)
    workers = WorkerPool(
        settings.workers,
        settings.model_store,
        text_encoder_dir(settings.model_store, features),
        settings.worker_threads,
        memory_limit_bytes=settings.worker_memory_bytes,
        providers=provider_list(settings),
        on_replace=lambda cause: metrics.worker_replacements_total.labels(cause=cause).inc(),
    )
    await workers.start()
    manifest = model.manifest
    metrics.model_info.info(
        {
            "name": manifest.name,
            "version": str(manifest.version),
            "training_data": manifest.provenance.training_data,
            "clinically_validated": str(manifest.provenance.clinically_validated).lower(),
            "provider": runner.provider,
        }
    )
    for provider in runner.providers:
        metrics.session_provider.labels(model="fusion", provider=provider).set(1 if provider == runner.provider else 0)
    for worker_model, providers in workers.session_providers().items():
        metrics.session_provider.labels(model=worker_model, provider=providers[0]).set(1)
    batcher = FusionBatcher(
        runner, metrics, max_batch_windows=settings.batch_max_windows, max_wait_ms=settings.batch_max_wait_ms
    )
    await batcher.start()  # nothing above can fail and leave its task behind
    admission = Admission(running=settings.workers, waiting=settings.max_waiting_requests)
    jobs = JobManager(
        InMemoryJobStore(),  # one replica; a shared store for several (docs/jobs.md)
        metrics,
        admission,
        ttl_s=settings.job_ttl_s,
        max_jobs=settings.max_jobs,
        delete_on_read=settings.job_delete_on_read,
        job_slots=settings.workers,
    )
    await jobs.start()  # its sweeper cannot fail either
    log.info(
        "serving fusion/%s on %s (batches of up to %d windows, %.1f ms wait)",
        manifest.version,
        runner.provider,
        settings.batch_max_windows,
        settings.batch_max_wait_ms,
    )
    return Services(
        settings=settings,
        metrics=metrics,
        model=model,
        runner=runner,
        batcher=batcher,
        workers=workers,
        admission=admission,
        rate_limiter=RateLimiter(settings.rate_limit_per_minute),
        jobs=jobs,
        ready=True,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await load_services(settings, metrics)
        app.state.services = services
        try:
            yield
        finally:
            services.ready = False
            try:
                # first: cancelling a running job kills its worker and removes its upload folder
                await services.jobs.stop()
            finally:
                try:
                    await services.batcher.stop()  # finishes queued inferences (bounded), refuses new ones
                finally:
                    await anyio.to_thread.run_sync(services.workers.close)

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
    app.include_router(jobs.router)
    app.include_router(health.router)
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
            response = problems.problem(
                500, "internal-error", "Internal error", "an unexpected error occurred", request
            )
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
