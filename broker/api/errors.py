"""The error envelope `{"error", "message", "reasons"}` for every failure (docs/contracts.md §3).

Domain exceptions map onto (status, code) here and nowhere else. Messages are our own
texts: an exception's message is only used where it was written by this code base, and
an unexpected exception is answered with a generic 500 and logged by type only (its
text could hold anything).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.callers import UnknownCaller
from broker.ids import InvalidIdentifier
from broker.intake import ExchangeUnavailable, InvalidRequest, KeyNotFound, KeyRejected
from broker.keystore import WriteConflict
from broker.reasons import Reason
from broker.site_tokens import CallerCannotMint, InvalidTTL
from broker.vault_session import VaultRefused, VaultUnavailable

log = logging.getLogger("keybroker.api")


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        reasons: Sequence[Reason] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.reasons = list(reasons)
        self.headers = headers or {}


def error_response(err: ApiError) -> JSONResponse:
    body = {
        "error": err.error,
        "message": err.message,
        "reasons": [r.model_dump(mode="json") for r in err.reasons],
    }
    return JSONResponse(body, status_code=err.status, headers=err.headers)


def to_api_error(exc: Exception) -> ApiError | None:
    """The contract's answer for a known exception, None for an unexpected one."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, InvalidRequest | InvalidIdentifier | InvalidTTL):
        return ApiError(400, "invalid_request", str(exc))
    if isinstance(exc, CallerCannotMint):
        return ApiError(403, "forbidden", str(exc))
    if isinstance(exc, KeyRejected):
        return ApiError(422, "key_rejected", str(exc), exc.result.reasons)
    if isinstance(exc, ExchangeUnavailable):
        return ApiError(
            503,
            "exchange_unavailable",
            str(exc),
            exc.reasons,
            {"Retry-After": str(exc.retry_after)},
        )
    if isinstance(exc, VaultUnavailable | VaultRefused | WriteConflict):
        message = {
            VaultRefused: "Vault refused the broker's request; the operator must check its policy",
            WriteConflict: "the key was being replaced concurrently; retry",
        }.get(type(exc), "Vault is unavailable; retry later")
        return ApiError(503, "vault_unavailable", message, headers={"Retry-After": "2"})
    if isinstance(exc, KeyNotFound):
        return ApiError(404, "not_found", str(exc))
    if isinstance(exc, UnknownCaller):
        return ApiError(
            401,
            "unauthorized",
            "a valid Vault token is required (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return None


_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def install_error_handlers(app: FastAPI) -> None:
    async def on_known(request: Request, exc: Exception) -> JSONResponse:
        err = to_api_error(exc)
        assert err is not None
        return error_response(err)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = {404: "no such endpoint", 405: "method not allowed on this endpoint"}.get(
            exc.status_code, code.replace("_", " ")
        )
        return error_response(
            ApiError(
                exc.status_code, code, message, headers=dict(exc.headers) if exc.headers else None
            )
        )

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        return error_response(ApiError(400, "invalid_request", "the request is malformed"))

    for known in (
        ApiError,
        InvalidRequest,
        InvalidIdentifier,
        InvalidTTL,
        KeyRejected,
        ExchangeUnavailable,
        VaultUnavailable,
        VaultRefused,
        WriteConflict,
        KeyNotFound,
        UnknownCaller,
    ):
        app.add_exception_handler(known, on_known)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)


class CatchAll:
    """Innermost guard: an unexpected exception becomes a 500 envelope, logged by type only.

    Without it Starlette's ServerErrorMiddleware would log the exception's text, which
    nothing guarantees to be free of request data.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.error(
                "unhandled %s on %s %s", type(exc).__name__, scope.get("method"), _route(scope)
            )
            if started:
                return
            response = error_response(
                ApiError(500, "internal_error", "the broker failed; the error is logged")
            )
            await response(scope, receive, send)


def _route(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", "?")
