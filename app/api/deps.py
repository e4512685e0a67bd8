"""FastAPI dependencies: everything a route needs comes through here (tests replace them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.errors import OverloadedError
from app.services import Services


def get_services(request: Request) -> Services:
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None or not services.ready:
        raise OverloadedError("the service is starting or stopping")
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
