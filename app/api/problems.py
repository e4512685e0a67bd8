"""RFC 9457 problem+json responses for every error the API returns; the bodies come from the
error catalogue's one builder (``app.errors.problem_body``). The one 500 handler is the
request middleware in ``app.main`` (it answers with ``InternalError``)."""

from __future__ import annotations

from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import PROBLEM_BASE, ServiceError, problem_body

MEDIA_TYPE = "application/problem+json"


class Problem(BaseModel):
    """An RFC 9457 problem: ``type`` is stable and names the error; ``instance`` is the request id."""

    type: str = Field(..., examples=[PROBLEM_BASE + "no-usable-input"])
    title: str
    status: int
    detail: str
    instance: str | None = Field(None, description="the request id (also in the X-Request-ID header)")
    errors: list[dict] | None = Field(None, description="per-field locations and messages (400 only)")


def problem_responses(*statuses: int, **descriptions: str) -> dict:
    """OpenAPI ``responses`` entries for problem+json answers."""
    content = {"content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    return {
        status: {"description": descriptions.get(f"s{status}", HTTPStatus(status).phrase), **content}
        for status in statuses
    }


def add_problem_schema(openapi: dict) -> dict:
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    return openapi


def problem(
    status: int,
    type_: str,
    title: str,
    detail: str,
    request: Request,
    headers: dict[str, str] | None = None,
    **extra: object,
) -> JSONResponse:
    body = problem_body(status, type_, title, detail, _request_id(request), **extra)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def error_response(exc: ServiceError, request: Request) -> JSONResponse:
    """A catalogued error as its problem+json answer."""
    body = exc.problem_body(_request_id(request))
    return JSONResponse(body, status_code=exc.status, media_type=MEDIA_TYPE, headers=exc.headers)


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        return error_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # field locations and messages only: never echo the submitted values
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return problem(
            400, "bad-request", "Malformed request", "the request does not match the API", request, errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not-found", 405: "method-not-allowed", 401: "unauthorized"}.get(exc.status_code, "http-error")
        return problem(exc.status_code, slug, str(exc.detail), str(exc.detail), request, exc.headers)
