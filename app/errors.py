"""The error catalogue: every domain error, each with the HTTP status and the stable problem
type it maps to, and the one builder of the RFC 9457 problem body (``problem_body``).

Messages never carry user content (no transcript text, no filenames): they say what
was wrong with which field.
"""

from __future__ import annotations

PROBLEM_BASE = "https://phq-fusion.example/problems/"


def problem_body(status: int, type_: str, title: str, detail: str, instance: str | None, **extra: object) -> dict:
    """The RFC 9457 body of every error answer (and of a failed job); ``instance`` is the request id."""
    return {
        "type": PROBLEM_BASE + type_,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        **extra,
    }


class ServiceError(Exception):
    status: int = 500
    type: str = "internal-error"
    title: str = "Internal error"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extra: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        # extra members of the problem body (e.g. per-field ``errors``); never user content
        self.extra = extra

    def problem_body(self, instance: str | None) -> dict[str, object]:
        """The RFC 9457 body this error is answered with (app/api/problems.py), e.g. kept in a failed job."""
        return problem_body(self.status, self.type, self.title, self.detail, instance, **self.extra)

    def __reduce__(self):
        # errors raised in a worker cross a pipe: keep the keyword state on the way
        return _rebuild, (type(self), self.detail, self.headers, self.extra)


def _rebuild(cls: type[ServiceError], detail: str, headers: dict[str, str], extra: dict) -> ServiceError:
    error = cls.__new__(cls)
    Exception.__init__(error, detail)
    error.detail, error.headers, error.extra = detail, headers, extra
    return error


class InternalError(ServiceError):
    """A bug: answered without any detail of it (the log has its type and frames)."""

    def __init__(self, detail: str = "an unexpected error occurred") -> None:
        super().__init__(detail)


class BadRequestError(ServiceError):
    status, type, title = 400, "bad-request", "Malformed request"


class UnauthorizedError(ServiceError):
    status, type, title = 401, "unauthorized", "API key missing or not valid"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="phq-fusion"'})


class IdleTimeoutError(ServiceError):
    status, type, title = 408, "idle-timeout", "Nothing received for too long"


class PayloadTooLargeError(ServiceError):
    status, type, title = 413, "payload-too-large", "Upload too large"


class UnsupportedMediaError(ServiceError):
    status, type, title = 415, "unsupported-media", "Unsupported media"


class NoUsableInputError(ServiceError):
    status, type, title = 422, "no-usable-input", "Nothing usable to estimate from"


class ConflictingInputError(ServiceError):
    status, type, title = 422, "conflicting-input", "Inputs that exclude each other"


class CorruptMediaError(ServiceError):
    status, type, title = 422, "corrupt-media", "Media could not be decoded"


class TranscriptInvalidError(ServiceError):
    status, type, title = 422, "invalid-transcript", "Transcript could not be read"


class RateLimitedError(ServiceError):
    status, type, title = 429, "rate-limited", "Too many requests from this client"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


class StreamTooFastError(ServiceError):
    """A live /stream session whose media run ahead of real time by more than its cap."""

    status, type, title = 429, "stream-too-fast", "Media arrive faster than real time"


class OverloadedError(ServiceError):
    status, type, title = 503, "overloaded", "Service overloaded"

    def __init__(self, detail: str, retry_after_s: int = 5) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


class WorkerCrashError(ServiceError):
    status, type, title = 500, "worker-crashed", "Preprocessing worker crashed"


class ResourceLimitError(ServiceError):
    status, type, title = 422, "resource-limit", "Input needs more memory than a worker may use"


class PreprocessingError(ServiceError):
    status, type, title = 500, "preprocessing-failed", "Preprocessing failed"


class ProcessingTimeoutError(ServiceError):
    status, type, title = 504, "processing-timeout", "Processing time limit reached"


class JobNotFoundError(ServiceError):
    status, type, title = 404, "job-not-found", "No such job"


class TooManyJobsError(OverloadedError):
    type, title = "too-many-jobs", "Job limit reached"


class JobStoreUnavailableError(OverloadedError):
    """The shared job store (Redis) does not answer: jobs cannot be created or read, /predict still works."""

    type, title = "job-store-unavailable", "Job store unavailable"


class JobAbandonedError(ServiceError):
    """Kept in a job whose replica stopped renewing its lease: its upload was on that replica only."""

    status, type, title = 503, "job-abandoned", "The server process running this job stopped"
