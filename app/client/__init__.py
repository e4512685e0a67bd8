"""A small HTTP client for the PHQ-8 service: ``/predict`` and the ``/jobs`` API.

Light on purpose: httpx and the standard library only (no numpy, onnxruntime or librosa),
so ``phq-client`` starts fast on a machine that only calls a server. Answers come back
as the JSON the server sent (``dict``); :mod:`app.client.summary` turns one into text.

    with PhqClient("http://localhost:8000", api_key=key) as client:
        answer = client.predict(audio="session.wav", transcript="session.vtt")
"""

from __future__ import annotations

import mimetypes
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, TypedDict, Unpack

import httpx

__all__ = [
    "DEFAULT_URL",
    "InputFileError",
    "InterviewForm",
    "Job",
    "JobCancelledError",
    "JobTimeoutError",
    "MultipartForm",
    "PhqClient",
    "PhqClientError",
    "ProblemError",
    "ServerUnreachableError",
    "UnexpectedAnswerError",
]

DEFAULT_URL = "http://localhost:8000"
DEFAULT_TIMEOUT_S = 900.0  # the server's default processing limit is 600 s, plus the upload
CONNECT_TIMEOUT_S = 10.0
CHUNK_BYTES = 64 * 1024  # upload chunk: fine enough for a smooth progress bar
USER_AGENT = "phq-client/0.1.0"
JOB_STATES_FINAL = ("done", "failed", "cancelled")

ProgressCallback = Callable[[int, int], None]  # (bytes sent, bytes in all)


class InterviewForm(TypedDict, total=False):
    """The /predict form, as the keyword arguments of :func:`build_form`, :meth:`PhqClient.predict`
    and :meth:`PhqClient.submit_job`; every field is optional (defaults: None, ``include_timeline`` True)."""

    video: str | os.PathLike[str] | None
    audio: str | os.PathLike[str] | None
    transcript: str | os.PathLike[str] | None
    transcript_text: str | None
    participant_speaker: str | None
    include_timeline: bool
    return_transcript: bool
    trust_transcript: bool  # true: the server does not check the transcript against the recording
    model_version: int | None


# **form accepts any keyword at run time: build_form refuses the others, as a parameter list would
_FORM_FIELDS = frozenset(InterviewForm.__annotations__)


class PhqClientError(Exception):
    """Base of every error this client raises."""


class InputFileError(PhqClientError, ValueError):
    """A local file cannot be sent (missing, not a file, unreadable, empty); raised before any request."""


class ServerUnreachableError(PhqClientError):
    """No connection to the server, or it did not answer in time."""


class UnexpectedAnswerError(PhqClientError):
    """The server answered something this client does not understand (not JSON, not the documented shape)."""


class JobCancelledError(PhqClientError):
    """The job was cancelled (by a DELETE from somewhere) before it finished."""


class JobTimeoutError(PhqClientError):
    """The job did not finish within the time the caller was willing to wait."""

    def __init__(self, message: str, job: Job) -> None:
        super().__init__(message)
        self.job = job


class ProblemError(PhqClientError):
    """An error answer: RFC 9457 problem+json when the server sent one, else built from the status."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        type_: str | None = None,
        request_id: str | None = None,
        retry_after_s: float | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        self.status, self.title, self.detail, self.type = status, title, detail, type_
        self.request_id, self.retry_after_s, self.errors = request_id, retry_after_s, errors or []
        super().__init__(status, title, detail)

    def __str__(self) -> str:
        return f"{self.status} {self.title}: {self.detail}"

    @property
    def retryable(self) -> bool:
        """Overloaded or rate-limited: the same request may succeed later."""
        return self.status in (429, 503)

    @classmethod
    def from_body(cls, body: Mapping[str, Any], retry_after_s: float | None = None) -> ProblemError:
        try:
            status = int(body.get("status") or 500)
        except (TypeError, ValueError):
            status = 500
        return cls(
            status=status,
            title=str(body.get("title") or _phrase(status)),
            detail=str(body.get("detail") or ""),
            type_=body.get("type"),
            request_id=body.get("instance"),
            retry_after_s=retry_after_s,
            errors=list(body.get("errors") or []),
        )

    @classmethod
    def from_response(cls, response: httpx.Response) -> ProblemError:
        retry_after = _retry_after(response)
        body = _json_or_none(response)
        if isinstance(body, dict) and "title" in body:
            problem = cls.from_body({**body, "status": response.status_code}, retry_after)  # HTTP's status rules
        else:
            # not problem+json (a proxy's HTML page, say): keep the start of the text as the detail
            text = " ".join(response.text.split())[:200]
            status = response.status_code
            problem = cls(status, _phrase(status), text or "(no body)", retry_after_s=retry_after)
        problem.request_id = problem.request_id or response.headers.get("x-request-id")
        return problem


@dataclass(frozen=True)
class Job:
    """One ``/jobs`` entry as the server last described it."""

    job_id: str
    status: str  # queued | running | done | failed | cancelled
    progress: float  # 0..1
    body: dict[str, Any]

    @property
    def finished(self) -> bool:
        return self.status in JOB_STATES_FINAL

    @classmethod
    def from_body(cls, body: Any) -> Job:
        if not isinstance(body, dict) or not body.get("job_id") or not body.get("status"):
            raise UnexpectedAnswerError("the job answer has no job_id or status")
        progress = body.get("progress")
        return cls(
            job_id=str(body["job_id"]),
            status=str(body["status"]),
            progress=float(progress) if isinstance(progress, int | float) else 0.0,
            body=body,
        )


@dataclass(frozen=True)
class FilePart:
    """A local file to upload as the form field ``name``; checked and sized up front."""

    name: str
    path: Path
    size: int

    @classmethod
    def check(cls, name: str, path: str | os.PathLike[str]) -> FilePart:
        """Raise :class:`InputFileError` with a plain reason unless ``path`` is a non-empty readable file."""
        path = Path(path).expanduser()
        try:
            info = path.stat()
        except FileNotFoundError:
            raise InputFileError(f"--{name} {path}: no such file") from None
        except OSError as exc:
            raise InputFileError(f"--{name} {path}: cannot read it ({exc.strerror or exc})") from None
        if stat.S_ISDIR(info.st_mode):
            raise InputFileError(f"--{name} {path}: is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise InputFileError(f"--{name} {path}: is not a regular file")
        if info.st_size == 0:
            raise InputFileError(f"--{name} {path}: is empty (0 bytes)")
        try:
            with path.open("rb") as handle:  # proves readability (permissions, I/O) before any request
                handle.read(1)
        except OSError as exc:
            raise InputFileError(f"--{name} {path}: cannot read it ({exc.strerror or exc})") from None
        return cls(name, path, info.st_size)

    @property
    def upload_filename(self) -> str:
        # only the extension reaches the server (it picks the format from it); the local name
        # can hold a patient's name and has no business leaving this machine
        suffix = "".join(ch for ch in self.path.suffix.lower() if (ch.isascii() and ch.isalnum()) or ch == ".")
        return f"{self.name}{suffix}"

    @property
    def content_type(self) -> str:
        return mimetypes.guess_type(self.upload_filename)[0] or "application/octet-stream"


class MultipartForm:
    """A multipart/form-data body streamed from disk with a known length.

    httpx's own multipart encoder gives no progress, so the body is built here: text fields
    in memory, files read in chunks as the request is sent. Declaring the length lets the
    server refuse an oversized upload before the first byte and lets the bar show a total.
    """

    def __init__(self, fields: Mapping[str, str], files: list[FilePart]) -> None:
        self.boundary = "phq-" + secrets.token_hex(16)
        self._fields = dict(fields)
        self._files = list(files)
        self._field_parts = [self._head(name) + value.encode("utf-8") + b"\r\n" for name, value in self._fields.items()]
        self._file_heads = [self._head(f.name, f.upload_filename, f.content_type) for f in self._files]
        self._tail = f"--{self.boundary}--\r\n".encode("ascii")
        self.length = (
            sum(map(len, self._field_parts))
            + sum(len(head) + f.size + 2 for head, f in zip(self._file_heads, self._files, strict=True))
            + len(self._tail)
        )

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def _head(self, name: str, filename: str | None = None, content_type: str | None = None) -> bytes:
        disposition = f'form-data; name="{_quote(name)}"'
        if filename is not None:
            disposition += f'; filename="{_quote(filename)}"'
        lines = [f"--{self.boundary}", f"Content-Disposition: {disposition}"]
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")

    def chunks(self, on_progress: ProgressCallback | None = None) -> Iterator[bytes]:
        """The body, chunk by chunk; ``on_progress(sent, total)`` after each one."""
        sent = 0

        def step(chunk: bytes) -> bytes:
            nonlocal sent
            sent += len(chunk)
            if on_progress is not None:
                on_progress(sent, self.length)
            return chunk

        for part in self._field_parts:
            yield step(part)
        for head, upload in zip(self._file_heads, self._files, strict=True):
            yield step(head)
            left = upload.size
            try:
                with upload.path.open("rb") as handle:
                    while left > 0:
                        chunk = handle.read(min(CHUNK_BYTES, left))
                        if not chunk:
                            # the declared Content-Length can no longer be honoured
                            raise InputFileError(f"--{upload.name} {upload.path}: shrank while it was being sent")
                        left -= len(chunk)
                        yield step(chunk)
            except OSError as exc:
                raise InputFileError(f"--{upload.name} {upload.path}: cannot read it ({exc.strerror or exc})") from None
            yield step(b"\r\n")
        yield step(self._tail)


class PhqClient:
    """Calls one PHQ-8 server. Use as a context manager, or call :meth:`close`.

    ``api_key`` goes out as ``Authorization: Bearer``; it is never part of an error message.
    ``timeout`` bounds each request (connecting is capped at 10 s); ``transport`` is for tests.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json, application/problem+json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.base_url = str(url).rstrip("/")
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_S)),
            transport=transport,
        )

    def __enter__(self) -> PhqClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------------- requests

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; transport failures become :class:`ServerUnreachableError`, error statuses
        :class:`ProblemError`."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise ServerUnreachableError(f"cannot connect to {self.base_url}: {_reason(exc)}") from None
        except httpx.TimeoutException as exc:
            kind = "connecting" if isinstance(exc, httpx.ConnectTimeout) else "waiting for the answer"
            raise ServerUnreachableError(f"{self.base_url}: timed out {kind} (timeout {self.timeout:g} s)") from None
        except httpx.TransportError as exc:
            raise ServerUnreachableError(f"{self.base_url}: connection failed: {_reason(exc)}") from None
        if response.status_code >= 400:
            raise ProblemError.from_response(response)
        return response

    def _post_form(self, path: str, form: MultipartForm, on_progress: ProgressCallback | None) -> httpx.Response:
        headers = {"Content-Type": form.content_type, "Content-Length": str(form.length)}
        return self._send("POST", path, content=form.chunks(on_progress), headers=headers)

    def predict(self, *, on_progress: ProgressCallback | None = None, **form: Unpack[InterviewForm]) -> dict[str, Any]:
        """POST /predict and return the answer JSON. Files are checked before anything is sent."""
        return _answer_json(self._post_form("/predict", build_form(**form), on_progress))

    def submit_job(self, *, on_progress: ProgressCallback | None = None, **form: Unpack[InterviewForm]) -> Job:
        """POST /jobs (the /predict form) and return the queued job."""
        body = build_form(**form)
        try:
            response = self._post_form("/jobs", body, on_progress)
        except ProblemError as problem:
            if problem.status in (404, 405):
                problem.detail = "this server has no job API (POST /jobs); call it without --async"
            raise
        return Job.from_body(_answer_json(response))

    def job(self, job_id: str) -> Job:
        """GET /jobs/{id}. Built from the id (not the Location header) so a base URL path prefix is kept."""
        return Job.from_body(_answer_json(self._send("GET", f"/jobs/{job_id}")))

    def cancel_job(self, job_id: str) -> None:
        """DELETE /jobs/{id}; a job that is already gone counts as cancelled."""
        try:
            self._send("DELETE", f"/jobs/{job_id}", timeout=min(self.timeout, CONNECT_TIMEOUT_S))
        except ProblemError as problem:
            if problem.status not in (404, 410):
                raise

    def wait_for_job(
        self,
        job: Job,
        on_update: Callable[[Job], None] | None = None,
        poll_interval_s: float = 0.5,
        max_interval_s: float = 2.0,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """Poll until the job finishes; return its answer (the /predict JSON).

        Raises :class:`ProblemError` for a failed job (the job's problem body), and
        :class:`JobCancelledError` or :class:`JobTimeoutError`. The interval grows from
        ``poll_interval_s`` to ``max_interval_s`` so long jobs cost few requests.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        interval = poll_interval_s
        while True:
            if on_update is not None:
                on_update(job)
            if job.status == "done":
                result = job.body.get("result")
                if not isinstance(result, dict):
                    raise UnexpectedAnswerError(f"job {job.job_id} is done but holds no result")
                return result
            if job.status == "failed":
                error = job.body.get("error")
                if isinstance(error, dict):
                    raise ProblemError.from_body(error)
                raise ProblemError(500, "Job failed", f"job {job.job_id} failed without saying why")
            if job.status == "cancelled":
                raise JobCancelledError(f"job {job.job_id} was cancelled")
            if deadline is not None and time.monotonic() + interval > deadline:
                raise JobTimeoutError(f"job {job.job_id} did not finish within {timeout_s:g} s", job)
            time.sleep(interval)
            interval = min(max_interval_s, interval * 1.5)
            job = self.job(job.job_id)


def build_form(**form: Unpack[InterviewForm]) -> MultipartForm:
    """The /predict form; raises :class:`InputFileError` for a file that cannot be sent, and
    ``ValueError`` for inputs the server would refuse anyway (none, or both transcript forms)."""
    unknown = sorted(form.keys() - _FORM_FIELDS)
    if unknown:
        raise TypeError(f"unexpected form field {unknown[0]!r}; the form has {', '.join(sorted(_FORM_FIELDS))}")
    video, audio, transcript = form.get("video"), form.get("audio"), form.get("transcript")
    transcript_text, participant_speaker = form.get("transcript_text"), form.get("participant_speaker")
    include_timeline, model_version = form.get("include_timeline", True), form.get("model_version")
    if transcript is not None and transcript_text is not None:
        raise ValueError("give a transcript file or transcript text, not both")
    if video is None and audio is None and transcript is None and not transcript_text:
        raise ValueError("nothing to send: give a video, an audio file or a transcript")
    files = [
        FilePart.check(name, path)
        for name, path in (("video", video), ("audio", audio), ("transcript", transcript))
        if path is not None
    ]
    fields: dict[str, str] = {}
    if transcript_text is not None:
        fields["transcript_text"] = transcript_text
    if participant_speaker:
        fields["participant_speaker"] = participant_speaker
    if not include_timeline:
        fields["include_timeline"] = "false"  # the server's default is true
    if form.get("return_transcript"):
        fields["return_transcript"] = "true"
    if form.get("trust_transcript"):
        fields["check_transcript"] = "false"  # the server's default is true
    if model_version is not None:
        fields["model_version"] = str(model_version)
    return MultipartForm(fields, files)


def _answer_json(response: httpx.Response) -> dict[str, Any]:
    body = _json_or_none(response)
    if not isinstance(body, dict):
        kind = response.headers.get("content-type", "no content type")
        raise UnexpectedAnswerError(f"{response.status_code} answer is not a JSON object ({kind})")
    return body


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare from this service; the status alone says "later"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _quote(value: str) -> str:
    # the HTML form encoding of quotes and line breaks inside Content-Disposition parameters
    return value.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _reason(exc: Exception) -> str:
    """The innermost OS reason ("Connection refused") rather than httpx's nested wrapper text."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        cause = cause.__cause__ or cause.__context__
    text = str(exc)
    if "refused" in text.lower():
        return "connection refused"
    return text or type(exc).__name__
