"""FastAPI dependencies: everything a route needs comes through here (tests replace them).

Order on /predict: services ready (503) -> API key (401) -> per-client rate (429); the
route then takes an admission ticket (503) before it reads the upload.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from app.config import Settings
from app.errors import OverloadedError, RateLimitedError, UnauthorizedError
from app.services import Services

bearer_scheme = HTTPBearer(auto_error=False, description="an API key as `Authorization: Bearer <key>`")
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key in `X-API-Key`")


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_services(request: Request) -> Services:
    services: Services | None = getattr(request.app.state, "services", None)
    if services is None or not services.ready:
        raise OverloadedError("the service is starting or stopping", retry_after_s=5)
    return services


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServicesDep = Annotated[Services, Depends(get_services)]


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_key(settings: Settings, presented: str | None) -> str | None:
    """The caller's key digest when keys are configured (UnauthorizedError if missing or
    wrong); None when the service runs without keys."""
    if not settings.api_key_hashes:
        return None
    if not presented:
        raise UnauthorizedError("send an API key as `Authorization: Bearer <key>` or in `X-API-Key`")
    digest = key_digest(presented)
    # compare against every stored digest, in constant time each: no early exit leaks which
    matches = [hmac.compare_digest(digest, stored) for stored in settings.api_key_hashes]
    if not any(matches):
        raise UnauthorizedError("the API key is not valid")
    return digest


def _presented_key(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


def _counted(request: Request, reason: str) -> None:
    request.app.state.metrics.rejected_total.labels(reason=reason).inc()


async def authenticate(
    request: Request,
    settings: SettingsDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> str:
    """The caller's identity for rate limiting: its key digest, else a digest of its address.

    Identities live only in memory; neither they nor addresses are logged.
    """
    presented = bearer.credentials if bearer is not None else api_key
    try:
        digest = check_key(settings, presented)
    except UnauthorizedError:
        _counted(request, "unauthorized")
        raise
    if digest is not None:
        return "key:" + digest
    host = request.client.host if request.client else ""
    return "address:" + key_digest(host)


async def rate_limited(request: Request, services: ServicesDep, caller: Annotated[str, Depends(authenticate)]) -> str:
    try:
        await services.rate_limiter.acquire(caller)
    except RateLimitedError:
        _counted(request, "rate_limited")
        raise
    return caller


Caller = Annotated[str, Depends(rate_limited)]


def open_unless(flag: str):
    """A dependency that asks for a key unless ``settings.<flag>`` is true (health, metrics).

    Reads the headers itself, so open endpoints do not show a lock in the docs.
    """

    async def guard(request: Request, settings: SettingsDep) -> None:
        if getattr(settings, flag):
            return
        try:
            check_key(settings, _presented_key(request))
        except UnauthorizedError:
            _counted(request, "unauthorized")
            raise

    return guard
