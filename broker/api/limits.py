"""Request guards that run before routing: raw path check and the 16 KiB body limit.

Both are plain ASGI middleware so that they see the request before Starlette decodes
the path or a handler reads the body.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.api.errors import ApiError, error_response
from broker.ids import InvalidIdentifier, check_raw_path

MAX_BODY_BYTES = 16 * 1024


class RequestGuard:
    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Servers decode %2f to "/" and %2e%2e to ".." before routing; the raw path
        # still shows what the client sent.
        try:
            check_raw_path(scope.get("raw_path") or scope["path"].encode())
        except InvalidIdentifier as exc:
            await error_response(ApiError(400, "invalid_request", str(exc)))(scope, receive, send)
            return

        declared = _content_length(scope)
        if declared is not None and declared > self.max_body:
            await _too_large(self.max_body)(scope, receive, send)
            return
        if scope.get("method") not in {"POST", "PUT", "PATCH"}:
            await self.app(scope, receive, send)
            return

        # Buffer the (small) body to enforce the limit on chunked uploads too, then replay it.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _too_large(self.max_body)(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _too_large(limit: int) -> JSONResponse:
    return error_response(
        ApiError(413, "payload_too_large", f"the request body exceeds {limit // 1024} KiB")
    )
