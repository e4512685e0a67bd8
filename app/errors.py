"""Domain errors, each with the HTTP status and the stable problem type it maps to.

Messages never carry user content (no transcript text, no filenames): they say what
was wrong with which field.
"""

from __future__ import annotations

PROBLEM_BASE = "https://phq-fusion.example/problems/"


class ServiceError(Exception):
    status: int = 500
    type: str = "internal-error"
    title: str = "Internal error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class BadRequestError(ServiceError):
    status, type, title = 400, "bad-request", "Malformed request"


class PayloadTooLargeError(ServiceError):
    status, type, title = 413, "payload-too-large", "Upload too large"


class UnsupportedMediaError(ServiceError):
    status, type, title = 415, "unsupported-media", "Unsupported media"


class NoUsableInputError(ServiceError):
    status, type, title = 422, "no-usable-input", "Nothing usable to estimate from"


class CorruptMediaError(ServiceError):
    status, type, title = 422, "corrupt-media", "Media could not be decoded"


class TranscriptInvalidError(ServiceError):
    status, type, title = 422, "invalid-transcript", "Transcript could not be read"


class OverloadedError(ServiceError):
    status, type, title = 503, "overloaded", "Service overloaded"


class ProcessingTimeoutError(ServiceError):
    status, type, title = 504, "processing-timeout", "Processing time limit reached"
