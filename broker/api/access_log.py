"""One line per request for a terminal (dev mode): method, path, status, milliseconds.

Never the query string, a header or a body: tokens travel in headers and keys in bodies.
A plain ASGI middleware, so it times the whole request, guards and errors included.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

Emit = Callable[[str], None]


def access_line(method: str, path: str, status: int, seconds: float) -> str:
    return f"{method} {path} {status} {seconds * 1000:.0f} ms"


class AccessLog:
    def __init__(self, app: ASGIApp, emit: Emit) -> None:
        self.app = app
        self.emit = emit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app fails before it answers, the server answers 500

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            self.emit(
                access_line(scope["method"], scope["path"], status, time.perf_counter() - started)
            )
