"""Pure-ASGI dispatch of the two high-volume endpoints: key submission and site tokens.

Profiled under load (py-spy, POST /v1/site-tokens against devvault), FastAPI's routing,
dependency solving and request/response wrappers took about two thirds of the broker's
CPU per request, the handler itself one third. This layer sits innermost of the user
middleware (after RequestGuard's raw-path and body-size checks and inside CatchAll) and
serves exactly

    PUT  /v1/accounts/{account}/keys/{exchange}/{role}
    POST /v1/site-tokens

with the very functions the FastAPI routes call: the same `bearer` header parsing, the
same `authenticate` (401/403, audited), the same handler and the same exception mapping
(`to_api_error`; anything else propagates to CatchAll as before). Every other request,
and any path that does not match exactly (the router's `[^/]+` segments), goes on to
FastAPI unchanged. The FastAPI routes stay declared, so /openapi.json is unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from broker.api.auth import AuthenticatedCaller, authenticate, bearer
from broker.api.errors import error_response, to_api_error
from broker.api.routes import mint_site_token, submit_key
from broker.layout import INTAKE_POLICY, SITE_BACKEND_POLICY

# The route template of broker/api/routes.py, as Starlette compiles it (str convertor).
_KEY_PATH = re.compile(
    r"^/v1/accounts/(?P<account>[^/]+)/keys/(?P<exchange>[^/]+)/(?P<role>[^/]+)$"
)

Handler = Callable[[Request, AuthenticatedCaller], Awaitable[JSONResponse]]


class HotRoutes:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = _match(scope) if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        policy, handler = found
        request = Request(scope, receive, send)
        try:
            who = await authenticate(request, await bearer(request), policy)
            response = await handler(request, who)
        except Exception as exc:
            err = to_api_error(exc)
            if err is None:
                raise  # CatchAll answers 500, as for a routed request
            response = error_response(err)
        await response(scope, receive, send)


def _match(scope: Scope) -> tuple[str, Handler] | None:
    if scope.get("root_path"):
        return None  # mounted under a prefix: leave path handling to the router
    method, path = scope["method"], scope["path"]
    if method == "POST" and path == "/v1/site-tokens":
        return SITE_BACKEND_POLICY, mint_site_token
    if method == "PUT" and path.startswith("/v1/accounts/"):
        match = _KEY_PATH.match(path)
        if match is not None:
            account, exchange, role = match.group("account", "exchange", "role")

            async def put(request: Request, who: AuthenticatedCaller) -> JSONResponse:
                return await submit_key(request, account, exchange, role, who)

            return INTAKE_POLICY, put
    return None
