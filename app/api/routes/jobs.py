"""Async jobs for long recordings: POST /jobs (202), GET /jobs/{job_id}, DELETE /jobs/{job_id}.

The same form, caps, checks and errors as /predict, checked during the POST; the processing
runs afterwards (app/jobs.py) and its answer waits in memory for ``job_ttl_s``. See docs/jobs.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.types import Receive, Scope, Send

from app.answer.schema import PredictResponse
from app.api.deps import Caller, ServicesDep, authenticate
from app.api.forms import FORM_PROBLEMS, form_receiver, request_body_schema
from app.api.problems import Problem, problem_responses
from app.job_store import JobRecord, JobStatus


class _JobRoute(APIRoute):
    """GET and DELETE /jobs/{job_id} are two routes on one path: a 405 there names the methods
    of both in Allow (Starlette would name only those of the first route it tried)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:
            siblings = [r for r in router.routes if isinstance(r, APIRoute) and r.path == self.path]
            methods = {method for route in siblings for method in route.methods}
            raise HTTPException(status_code=405, headers={"Allow": ", ".join(sorted(methods))})
        await super().handle(scope, receive, send)


router = APIRouter(tags=["jobs"], route_class=_JobRoute)

# reading and cancelling are not rate limited: a client polls its job; the id is the capability
Identity = Annotated[str, Depends(authenticate)]
JobId = Annotated[str, Path(description="the id from POST /jobs")]

_S401 = FORM_PROBLEMS["s401"]
_S404 = "no such job: unknown, expired, deleted, already read (with delete-on-read) or another key's"
_S503 = "starting or stopping; retry after Retry-After seconds"

SUBMIT_RESPONSES = {
    202: {
        "description": "accepted: poll the job at its Location",
        "headers": {"Location": {"description": "the job: /jobs/{job_id}", "schema": {"type": "string"}}},
    },
    **problem_responses(
        400,
        401,
        413,
        415,
        422,
        429,
        503,
        **FORM_PROBLEMS,
        s415="not multipart/form-data, or an empty upload",
        s422="no input at all, both transcript and transcript_text, or a model version not served",
        s503="starting, stopping, or max_jobs jobs are held already; retry after Retry-After seconds",
    ),
}
READ_RESPONSES = problem_responses(401, 404, 503, s401=_S401, s404=_S404, s503=_S503)


class JobAccepted(BaseModel):
    job_id: str = Field(..., description="random and unguessable", examples=["q3Jb6Yl0cYx2m1Sxv8Vh5g"])
    status: JobStatus = Field(..., examples=["queued"])
    location: str = Field(..., description="where to poll (also the Location header)", examples=["/jobs/q3Jb6Y..."])
    expires_at: datetime | None = Field(None, description="when the result is deleted; set once the job finishes")


class JobState(BaseModel):
    job_id: str
    status: JobStatus = Field(..., examples=["running"])
    progress: float = Field(
        ..., ge=0, le=1, description="coarse: 0.1 received, 0.2 processing, 0.9 features extracted, 1 done"
    )
    created_at: datetime
    finished_at: datetime | None = None
    expires_at: datetime | None = Field(None, description="when the result is deleted (finished jobs)")
    result: PredictResponse | None = Field(None, description="the answer, when done")
    error: Problem | None = Field(None, description="the problem, as /predict would have answered it, when failed")

    @classmethod
    def of(cls, record: JobRecord) -> JobState:
        return cls(
            job_id=record.job_id,
            status=record.status,
            progress=record.progress,
            created_at=_time(record.created_at),
            finished_at=_time(record.finished_at),
            expires_at=_time(record.expires_at),
            result=PredictResponse.model_validate(record.result) if record.result is not None else None,
            error=Problem.model_validate(record.error) if record.error is not None else None,
        )


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobAccepted,
    responses=SUBMIT_RESPONSES,
    summary="Submit an interview for asynchronous estimation (long recordings)",
    openapi_extra={"requestBody": request_body_schema()},
)
async def submit_job(request: Request, response: Response, services: ServicesDep, caller: Caller) -> JobAccepted:
    settings = services.settings
    # with API keys, a job is visible to the key that created it only
    owner = caller if settings.api_key_hashes else None
    receive = form_receiver(request, settings)
    record = await services.pipeline.submit(receive, request.state.request_id, owner)
    location = f"/jobs/{record.job_id}"
    response.headers["Location"] = location
    return JobAccepted(
        job_id=record.job_id, status=record.status, location=location, expires_at=_time(record.expires_at)
    )


@router.get("/jobs/{job_id}", response_model=JobState, responses=READ_RESPONSES, summary="A job's status and result")
async def get_job(job_id: JobId, services: ServicesDep, caller: Identity) -> JobState:
    return JobState.of(await services.jobs.read(job_id, caller))


@router.delete(
    "/jobs/{job_id}",
    status_code=204,
    response_class=Response,
    responses=READ_RESPONSES,
    summary="Cancel a job (when queued or running) and delete it",
)
async def delete_job(job_id: JobId, services: ServicesDep, caller: Identity) -> Response:
    await services.jobs.cancel(job_id, caller)
    return Response(status_code=204)


def _time(epoch_s: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch_s, tz=UTC) if epoch_s is not None else None
