"""Running the broker: `keybroker serve`, and an in-thread server for tests and dev mode."""

from __future__ import annotations

import importlib.util
import logging
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from pydantic import BaseModel

from broker.config import ConfigError, Settings, load_settings
from broker.loopback import is_loopback

log = logging.getLogger("keybroker.server")


@dataclass
class RunningBroker:
    """A broker serving on loopback in a background thread."""

    url: str
    app: Any
    _server: uvicorn.Server = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> RunningBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def fast_io(settings: Settings) -> dict[str, Any]:
    """uvicorn options: uvloop when installed, and the httptools protocol (both are
    dependencies in pyproject) with the broker's header timeout and connection cap
    (broker/api/protocol.py)."""
    from broker.api.protocol import guarded_protocol

    options: dict[str, Any] = {
        "http": guarded_protocol(settings.header_timeout, settings.max_unauthenticated)
    }
    if importlib.util.find_spec("uvloop") is not None:
        options["loop"] = "uvloop"
    return options


def start_in_thread(
    settings: Settings, host: str = "127.0.0.1", port: int = 0, **app_kwargs: Any
) -> RunningBroker:
    """Start the broker on `host:port` (0: a free port); returns once it accepts requests.

    `app_kwargs` go to `create_app` (e.g. `checker=`, `audit_stream=`).
    """
    from broker.api.app import create_app

    app = create_app(settings, **app_kwargs)
    return serve_app_in_thread(
        app, settings, host, port, "the broker", "keybroker-http", timeout_graceful_shutdown=5
    )


def serve_app_in_thread(
    app: Any,
    settings: Settings,
    host: str,
    port: int,
    what: str,
    thread_name: str,
    **uvicorn_options: Any,
) -> RunningBroker:
    """Serve ASGI `app` on a socket bound to `host:port` (0: a free port) in a daemon
    thread; returns once it accepts requests, or raises naming `what` did not start."""
    sock = _bind(host, port)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        **uvicorn_options,
        **fast_io(settings),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=thread_name, daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.01)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return RunningBroker(f"http://{shown}:{bound_port}", app, server, thread)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def open_listen_refused(command: str, host: str, settings: BaseModel, variable: str) -> bool:
    """Whether `command` must refuse `host`: only an explicitly set listen address
    (`variable`, or a config file entry) may open a server beyond loopback; says so."""
    if is_loopback(host) or "listen" in settings.model_fields_set:
        return False
    print(f"{command}: refusing to listen on {host} without {variable}", file=sys.stderr)
    return True


def serve() -> int:
    """`keybroker serve`: exit 2 on a configuration problem, else run until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"keybroker serve: {exc}", file=sys.stderr)
        return 2
    try:
        host, port = settings.listen_host_port
    except ValueError:
        print("keybroker serve: KEYBROKER_LISTEN must be HOST:PORT", file=sys.stderr)
        return 2
    if open_listen_refused("keybroker serve", host, settings, "KEYBROKER_LISTEN"):
        return 2
    if settings.vault_token is None and not (settings.vault_role_id and settings.vault_secret_id):
        print(
            "keybroker serve: set KEYBROKER_VAULT_TOKEN, or KEYBROKER_VAULT_ROLE_ID and "
            "KEYBROKER_VAULT_SECRET_ID",
            file=sys.stderr,
        )
        return 2
    from broker.api.app import create_app

    try:
        app = create_app(settings)
    except (OSError, ValueError) as exc:  # e.g. an unreadable KEYBROKER_VAULT_CACERT
        print(f"keybroker serve: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    if not is_loopback(host):
        log.warning("listening beyond loopback on %s:%d (KEYBROKER_LISTEN)", host, port)
    log.info("keybroker listening on http://%s:%d (Vault %s)", host, port, settings.vault_addr)
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False, **fast_io(settings))
    return 0
