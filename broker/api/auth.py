"""Caller authentication (docs/contracts.md §3): `Authorization: Bearer <Vault token>`.

401 when the token is missing or unknown to Vault, 403 when it lacks the endpoint's
policy, 429 when the caller exceeds its request rate (broker/ratelimit.py). 401 and 403
are audited with an HMAC of the token, never the token itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from broker.api.errors import ApiError
from broker.api.state import BrokerState, state_of
from broker.callers import Caller, UnknownCaller
from broker.ratelimit import RateLimited

bearer = HTTPBearer(auto_error=False, description="A Vault token.")


class AuthenticatedCaller:
    def __init__(self, caller: Caller, audit_id: str) -> None:
        self.caller = caller
        self.audit_id = audit_id  # HMAC of the token: correlates audit lines


def require(policy: str | None) -> Callable[..., Awaitable[AuthenticatedCaller]]:
    """Dependency: a caller whose token holds `policy` (any valid token when None)."""

    async def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),
    ) -> AuthenticatedCaller:
        return await authenticate(request, credentials, policy)

    return dependency


async def authenticate(
    request: Request, credentials: HTTPAuthorizationCredentials | None, policy: str | None
) -> AuthenticatedCaller:
    """The caller behind `credentials` (from `bearer`), holding `policy` unless None."""
    state: BrokerState = state_of(request)
    token = credentials.credentials if credentials else ""
    audit_id = state.audit.fingerprint(token) if token else ""
    try:
        caller = await state.callers.resolve(token)
    except UnknownCaller:
        _refuse(state, request, 401, audit_id, "unknown or missing token")
        raise
    if policy is not None and not caller.has(policy):
        _refuse(state, request, 403, audit_id, f"token lacks policy {policy}")
        raise ApiError(403, "forbidden", f"this endpoint needs a token with policy {policy}")
    try:
        state.caller_limits.take(audit_id)
    except RateLimited:
        state.metrics.rate_limited("caller", "")
        raise
    return AuthenticatedCaller(caller, audit_id)


def _refuse(state: BrokerState, request: Request, status: int, caller: str, why: str) -> None:
    state.metrics.auth_failure(status)
    state.audit.emit(
        "auth.failed",
        status=status,
        caller=caller or None,
        method=request.method,
        path=request.url.path,
        reason=why,
    )
