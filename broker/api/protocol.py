"""The HTTP/1.1 protocol the broker serves with: uvicorn's httptools protocol plus a
header read timeout and a cap on connections still waiting for their headers.

uvicorn bounds idle keep-alive connections but not a request whose line and headers
arrive slowly (or never): before authentication, such a client could hold a connection
and its memory forever. Here every connection, and every new request on a kept-alive
one, must deliver its headers within `header_timeout` seconds or is closed; and at
most `max_waiting` connections may be waiting for headers at once (one more gets a
bare 503 and is closed). The body, read before authentication too, is bounded by
broker/api/limits.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_BUSY_BODY = b'{"error":"server_busy","message":"too many connections; retry later","reasons":[]}'
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"retry-after: 1\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
    % (len(_BUSY_BODY), _BUSY_BODY)
)


class WaitingConnections:
    """How many connections are waiting for request headers (one event loop: no lock)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def enter(self) -> bool:
        if self.count >= self.limit:
            return False
        self.count += 1
        return True

    def leave(self) -> None:
        self.count -= 1


def guarded_protocol(header_timeout: float, max_waiting: int) -> type[asyncio.Protocol]:
    """A protocol class for uvicorn's `http=` option (one gate per server)."""
    gate = WaitingConnections(max_waiting)

    class GuardedProtocol(HttpToolsProtocol):
        _timer: asyncio.TimerHandle | None = None
        _waiting = False

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if not gate.enter():
                transport.write(_BUSY)
                transport.close()
                return
            self._wait_for_headers(entered=True)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if not self._waiting and not self.transport.is_closing():
                if gate.enter():
                    self._wait_for_headers(entered=True)
                else:
                    self.transport.close()

        def on_headers_complete(self) -> None:
            self._stop_waiting()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_waiting()
            super().connection_lost(exc)

        def _wait_for_headers(self, *, entered: bool) -> None:
            self._waiting = entered
            self._timer = self.loop.call_later(header_timeout, self._headers_too_slow)

        def _stop_waiting(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._waiting:
                self._waiting = False
                gate.leave()

        def _headers_too_slow(self) -> None:
            self._timer = None
            self._stop_waiting()
            self.transport.close()

    GuardedProtocol.gate = gate  # type: ignore[attr-defined]  # tests read the count
    return GuardedProtocol
