"""Checks shared by the in-process route tests."""

from __future__ import annotations

import httpx

from tests.api.conftest import ANSWERS
from tests.api.helpers import problem as api_problem

# the participant's answers once over: about 120 words, enough for the text branch
TRANSCRIPT = " ".join(ANSWERS)


def problem(response: httpx.Response, status: int, slug: str) -> dict:
    """An RFC 9457 answer with this status and problem type, naming the request it answers."""
    body = api_problem(response, status, slug)
    assert body["instance"] == response.headers["x-request-id"]
    return body
