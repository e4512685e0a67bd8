"""Liveness, readiness, loaded models and Prometheus metrics."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from app.api.deps import ServicesDep, open_unless
from app.api.problems import problem_responses
from app.model_store import FACE_MODELS, SPEECH_TO_TEXT, VOICE_ENCODER, fusion_catalogue, text_encoder_dir
from app.runtime import backend_of

router = APIRouter(tags=["operations"])
health_guard = [Depends(open_unless("open_health"))]
UNAUTHORIZED = problem_responses(401, s401="API key missing or not valid (when this endpoint is not open)")


class Health(BaseModel):
    status: str = Field(..., examples=["ok"])


class Readiness(BaseModel):
    ready: bool = Field(..., examples=[True])
    models_loaded: bool = Field(..., examples=[True])
    workers_alive: bool = Field(..., examples=[True])
    shared_store: Literal["none", "reachable", "unreachable"] = Field(
        "none",
        description="the Redis that jobs and rate limits are shared in (PHQ_REDIS_URL): none when unset. Not part "
        "of `ready`: without Redis jobs answer 503 but /predict works, so the replica stays in the load balancer",
        examples=["reachable"],
    )


@router.get(
    "/healthz",
    response_model=Health,
    summary="Liveness: the process answers",
    dependencies=health_guard,
    responses=UNAUTHORIZED,
)
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: models loaded and workers up",
    dependencies=health_guard,
    responses={503: {"description": "not ready", "model": Readiness}, **UNAUTHORIZED},
)
async def readyz(request: Request) -> Response:
    services = getattr(request.app.state, "services", None)
    models = services is not None and services.ready
    workers = models and services.workers.alive()
    shared = "none"
    if services is not None and services.jobs.store.shared:
        shared = "reachable" if await services.jobs.store.ping() else "unreachable"
    body = Readiness(ready=models and workers, models_loaded=models, workers_alive=workers, shared_store=shared)
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


@router.get(
    "/models",
    summary="Loaded models, their manifests and the execution provider that really runs",
    dependencies=health_guard,
    responses={**UNAUTHORIZED, **problem_responses(503, s503="starting or stopping")},
)
async def models(services: ServicesDep) -> dict:
    manifest = services.model.manifest
    features = manifest.features
    worker_providers = services.workers.session_providers()
    return {
        "fusion": {
            "version": manifest.version,
            "path": f"fusion/{manifest.version}",
            **services.runner.runtime.describe(),  # execution_providers, provider
            "requested_providers": services.settings.provider_names,
            "manifest": manifest.model_dump(mode="json"),
        },
        "fusion_versions": fusion_catalogue(services.settings.model_store, manifest.version),
        # backend: which runtime really runs each (setting face_backend): LiteRT on the tflite original, or ONNX Runtime
        "face_models": {
            name: {
                "path": f"{name}/{version}",
                "backend": backend_of(worker_providers[name]),
                "file": "model.tflite" if backend_of(worker_providers[name]) == "litert" else "model.onnx",
                "setting": services.settings.face_backend,
                "execution_providers": worker_providers[name],
            }
            for name, version in FACE_MODELS.items()
        },
        "text_encoder": {
            "path": str(
                text_encoder_dir(services.settings.model_store, features).relative_to(services.settings.model_store)
            ),
            "model_id": features.text.encoder_model_id,
            "execution_providers": worker_providers["text_encoder"],
        },
        # the speech stage's models; execution_providers null: the store lacks it (the step reports so)
        "speech": {
            name: {
                "path": f"{name}/{version}",
                "setting": getattr(services.settings, setting),
                "execution_providers": worker_providers.get(name),
            }
            for name, version, setting in (
                (*VOICE_ENCODER, "speaker_separation"),
                (*SPEECH_TO_TEXT, "speech_recognition"),
            )
        },
    }


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    dependencies=[Depends(open_unless("open_metrics"))],
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}, **UNAUTHORIZED},
)
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
