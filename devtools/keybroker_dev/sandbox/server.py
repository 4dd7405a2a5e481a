"""`SandboxServer` (an aiohttp server on its own event loop thread) and `keybroker sandbox`."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import signal
import socket
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Self

from aiohttp import web

from keybroker_dev.sandbox.catalog import SIMULATORS
from keybroker_dev.sandbox.http import build_app
from keybroker_dev.sandbox.keys import (
    ROBOT_EGRESS_IP,
    SandboxKey,
    SandboxKeyError,
    default_keys,
    load_keys_file,
)
from keybroker_dev.sandbox.state import SandboxState

START_TIMEOUT_SECONDS = 10.0


def _loopback_only(host: str) -> str:
    """The sandbox holds credentials in the clear: it never listens beyond loopback."""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        if host == "localhost":
            return "127.0.0.1"
    raise ValueError(f"the sandbox listens on loopback only, not on {host!r}")


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (about twice the requests per CPU second), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class SandboxServer:
    """Every sandboxed exchange under `<base_url>/<exchange>`, plus `/_sandbox` controls."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        keys: Iterable[SandboxKey] | None = None,
        client_ip: str = ROBOT_EGRESS_IP,
    ) -> None:
        self._host = _loopback_only(host)
        self._requested_port = port
        self.state = SandboxState(default_keys() if keys is None else keys, client_ip)
        self._port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        """Start serving on a background thread; returns once the socket listens."""
        if self._thread is not None:
            return self
        self._ready.clear()
        self._error = None
        sock = socket.socket(socket.AF_INET6 if ":" in self._host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._requested_port))
        sock.listen(1024)
        sock.setblocking(False)
        self._port = sock.getsockname()[1]
        self._thread = threading.Thread(
            target=self._serve, args=(sock,), name="keybroker-sandbox", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT_SECONDS) or self._error is not None:
            raise RuntimeError(f"sandbox failed to start: {self._error!r}")
        return self

    def _serve(self, sock: socket.socket) -> None:
        loop = _new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main(sock))
        except BaseException as exc:  # reported to start() / stop()
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    async def _main(self, sock: socket.socket) -> None:
        self._stopping = asyncio.Event()
        app = build_app(self.state, SIMULATORS)
        # handler_cancellation: a hung "timeout" fault ends when its client gives up.
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.5
        )
        await runner.setup()
        site = web.SockSite(runner, sock, backlog=1024)
        await site.start()
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await runner.cleanup()

    def stop(self) -> None:
        if self._thread is None or self._loop is None or self._stopping is None:
            return
        self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(timeout=START_TIMEOUT_SECONDS)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- addresses and keys ---------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the sandbox is not started")
        return self._port

    @property
    def base_url(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def exchange_urls(self) -> dict[str, str]:
        return {exchange: f"{self.base_url}/{exchange}" for exchange in SIMULATORS}

    @property
    def keys(self) -> dict[str, dict[str, SandboxKey]]:
        return self.state.keys_by_label()

    def key(self, exchange: str, label: str) -> SandboxKey:
        return self.state.keys_by_label()[exchange][label]

    def add_key(self, key: SandboxKey) -> None:
        self.state.add_key(key)

    # --- faults and counters --------------------------------------------------------------

    def set_latency(self, seconds: float, exchange: str | None = None) -> None:
        self.state.set_latency(seconds, exchange)

    def inject(self, exchange: str, fault: str, count: int = 1) -> None:
        self.state.inject(exchange, fault, count)

    def set_outage(self, exchange: str, down: bool) -> None:
        self.state.set_outage(exchange, down)

    def set_hang(self, seconds: float) -> None:
        self.state.set_hang(seconds)

    def set_client_ip(self, ip: str) -> None:
        self.state.client_ip = str(ipaddress.ip_address(ip))

    def request_count(self, api_key: str) -> int:
        return self.state.request_count(api_key)

    def reset(self) -> None:
        self.state.reset()

    def describe(self) -> dict[str, object]:
        """docs/contracts.md §5: base_url, exchange_urls and every key's credentials."""
        return {
            "base_url": self.base_url,
            "exchange_urls": self.exchange_urls,
            "keys": {
                exchange: {label: key.credentials() for label, key in labels.items()}
                for exchange, labels in self.keys.items()
            },
        }


def run_forever(host: str, port: int, keys_file: Path | None) -> int:
    """`keybroker sandbox`: print the description as the first stdout line, serve until
    interrupted. The printed keys are the dev tool's contract (sandbox secrets only)."""
    try:
        keys = load_keys_file(keys_file) if keys_file is not None else None
        server = SandboxServer(host=host, port=port, keys=keys).start()
    except (SandboxKeyError, ValueError, OSError) as exc:
        print(f"keybroker sandbox: {exc}", file=sys.stderr)
        return 2
    # Handlers first: a caller may stop us as soon as it has read the description.
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print(json.dumps(server.describe()), flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0
