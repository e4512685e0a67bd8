"""POST /predict: one interview in, one PHQ-8 estimate out."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.answer.schema import PredictResponse
from app.api.deps import Caller, ServicesDep
from app.api.forms import FORM_PROBLEMS, form_receiver, request_body_schema
from app.api.problems import problem_responses

router = APIRouter(tags=["prediction"])

RESPONSES = problem_responses(
    400,
    401,
    413,
    415,
    422,
    429,
    500,
    503,
    504,
    **FORM_PROBLEMS,
    s415="not multipart/form-data, or an upload is not media the service reads",
    s422="nothing usable (no modality, corrupt audio, unreadable transcript, over the worker memory cap), "
    "or both transcript and transcript_text",
    s500="a preprocessing worker crashed on this request (the pool replaced it)",
    s503="starting, stopping or overloaded; retry after Retry-After seconds",
    s504="processing time limit reached",
)


@router.post(
    "/predict",
    response_model=PredictResponse,
    responses=RESPONSES,
    summary="Estimate PHQ-8 from an interview",
    openapi_extra={"requestBody": request_body_schema()},
)
async def predict(request: Request, services: ServicesDep, caller: Caller) -> PredictResponse:
    receive = form_receiver(request, services.settings)
    return await services.pipeline.predict(receive, request.state.request_id)
