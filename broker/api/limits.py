"""Request guards that run before routing: raw path check, the 16 KiB body limit, the
body read timeout and the cap on bodies being read.

Plain ASGI middleware, so that they see the request before Starlette decodes the path
or a handler reads the body. The body is read here, before authentication, so it is
bounded in size, in time (`body_timeout`: 408) and in how many requests may be reading
one at once (`max_reading`: 503); headers are bounded by broker/api/protocol.py.
"""

from __future__ import annotations

import asyncio

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.api.errors import ApiError, error_response
from broker.ids import InvalidIdentifier, check_raw_path

MAX_BODY_BYTES = 16 * 1024


class RequestGuard:
    def __init__(
        self,
        app: ASGIApp,
        max_body: int = MAX_BODY_BYTES,
        body_timeout: float = 10.0,
        max_reading: int = 256,
    ) -> None:
        self.app = app
        self.max_body = max_body
        self.body_timeout = body_timeout
        self.max_reading = max_reading
        self.reading = 0

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

        if self.reading >= self.max_reading:
            busy = ApiError(
                503,
                "server_busy",
                "too many requests in progress; retry later",
                headers={"Retry-After": "1"},
            )
            await error_response(busy)(scope, receive, send)
            return
        # Buffer the (small) body to enforce the limit on chunked uploads too, then replay it.
        self.reading += 1
        try:
            async with asyncio.timeout(self.body_timeout):
                body = await self._read_body(receive)
        except TimeoutError:
            slow = ApiError(
                408,
                "request_timeout",
                f"the request body did not arrive within {self.body_timeout:g}s",
                headers={"Connection": "close"},
            )
            await error_response(slow)(scope, receive, send)
            return
        finally:
            self.reading -= 1
        if body is None:
            return  # the client went away
        if len(body) > self.max_body:
            await _too_large(self.max_body)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body; stops early (returning what it has) past the size limit, so
        that the caller answers 413 without reading an endless stream."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            chunks.append(chunk)
            if size > self.max_body or not message.get("more_body", False):
                return b"".join(chunks)


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
