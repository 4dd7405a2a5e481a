"""Thin HTTP/1.1 transport (stdlib socketserver, keep-alive, thread per connection).

It turns bytes into `protocol.Request`, applies injected faults, hands the request to
the core and writes the response in one `sendall` (no Nagle/delayed-ACK stalls). Any
method reaches the core, so Vault's `LIST` works and unknown methods get Vault's 405.
`/_devvault/...` carries the fault and clock controls (root token required); it is
deliberately outside Vault's `/v1/` namespace.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from keybroker_dev.devvault.faults import FAULT_MESSAGE
from keybroker_dev.devvault.protocol import Request, Response

if TYPE_CHECKING:
    from keybroker_dev.devvault.server import DevVaultServer

MAX_REQUEST_BYTES = 32 * 1024 * 1024  # DOC configuration: max_request_size default


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class DevVaultHTTPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # The stdlib default backlog (5) drops connects under bursts (hundreds of concurrent
    # broker requests in the benches), which clients see as one-second SYN retries.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], devvault: DevVaultServer) -> None:
        self.devvault = devvault
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, conn: socket.socket, *, open_: bool) -> None:
        with self._open_lock:
            if open_:
                self._open.add(conn)
            else:
                self._open.discard(conn)

    def close_connections(self) -> None:
        """Close kept-alive client connections, so that a stopped server answers nothing."""
        with self._open_lock:
            conns, self._open = list(self._open), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Handler(socketserver.StreamRequestHandler):
    """A minimal HTTP/1.1 server loop: request line, headers, Content-Length body.

    The stdlib's BaseHTTPRequestHandler parses headers with the email package, which
    costs more than the whole Vault pipeline; this loop keeps devvault off the
    critical path of the benches. Chunked request bodies are refused (411): Vault
    clients (hvac, the Vault CLI, curl with -d) send Content-Length.
    """

    rbufsize = 65536
    wbufsize = 0
    server: DevVaultHTTPServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.close_connection = False
        self.command = ""
        self.server.track(self.connection, open_=True)

    def finish(self) -> None:
        self.server.track(self.connection, open_=False)
        with contextlib.suppress(OSError):
            super().finish()

    def handle(self) -> None:
        try:
            while not self.close_connection:
                if not self._one_request():
                    return
        except (TimeoutError, ConnectionError):
            return

    def _one_request(self) -> bool:
        line = self.rfile.readline(65537)
        while line in (b"\r\n", b"\n"):
            line = self.rfile.readline(65537)
        if not line:
            return False
        try:
            self._parse(line)
        except _BadRequest as exc:
            self.close_connection = True
            self.command = ""
            self._write(Response(exc.status, {"errors": [str(exc)]}))
            return False
        self._serve()
        return True

    def _parse(self, line: bytes) -> None:
        if len(line) > 65536:
            raise _BadRequest(414, "request line too long")
        parts = line.decode("latin-1").split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest(400, "malformed request line")
        self.command, self.path, version = parts
        headers: dict[str, str] = {}
        while True:
            raw = self.rfile.readline(65537)
            if raw in (b"\r\n", b"\n", b""):
                break
            if len(headers) >= 100:
                raise _BadRequest(431, "too many headers")
            name, sep, value = raw.decode("latin-1").partition(":")
            if not sep:
                raise _BadRequest(400, "malformed header")
            headers[name.strip().lower()] = value.strip()
        self.headers = headers
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            self.close_connection = connection != "keep-alive"
        else:
            self.close_connection = connection == "close"
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise _BadRequest(411, "chunked request bodies are not supported; send Content-Length")
        if headers.get("expect", "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def _serve(self) -> None:
        try:
            length = int(self.headers.get("content-length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._write(Response(400, {"errors": ["invalid Content-Length"]}))
            return
        if length > MAX_REQUEST_BYTES:
            self._write(Response(413, {"errors": ["http: request body too large"]}))
            self.close_connection = True
            return
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        headers = self.headers
        devvault = self.server.devvault
        decoded = unquote(url.path)
        canonical = clean_path(decoded)
        if canonical != decoded:
            # Go's http.ServeMux (Vault's router) answers a non-canonical path (`..`, `.`,
            # `//`, also percent-encoded) with a 301 to the cleaned one, so `..` never
            # reaches the ACL or a backend.
            location = quote(canonical) + (f"?{url.query}" if url.query else "")
            self._write(Response(301, None, {"Location": location}))
            return
        if url.path.startswith("/_devvault/"):
            self._write(
                _control(devvault, self.command, url.path[len("/_devvault/") :], headers, body)
            )
            return
        if not url.path.startswith("/v1/"):
            self._write(Response(404, {"errors": []}))
            return
        logical = decoded[len("/v1/") :]
        action = devvault.faults.take(logical)
        if action.delay:
            time.sleep(action.delay)
        if action.drop:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if action.fail_status is not None:
            self._write(Response(action.fail_status, {"errors": [FAULT_MESSAGE]}))
            return
        request = Request(
            method=self.command,
            path=logical,
            query=dict(parse_qsl(url.query, keep_blank_values=True)),
            headers=headers,
            body=body,
            remote_addr=self.client_address[0],
            remote_port=self.client_address[1],
        )
        self._write(devvault.core.handle(request))

    def _write(self, response: Response) -> None:
        payload = b""
        if response.body is not None and self.command != "HEAD":
            payload = json.dumps(response.body, separators=(",", ":")).encode()
        lines = [
            f"HTTP/1.1 {response.status} {_reason(response.status)}",
            "Cache-Control: no-store",
        ]
        if response.body is not None:
            lines.append("Content-Type: application/json")
        lines.extend(f"{k}: {v}" for k, v in response.headers.items())
        if response.status != 204:
            lines.append(f"Content-Length: {len(payload)}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + payload)


def clean_path(path: str) -> str:
    """Go's path.Clean as net/http's cleanPath applies it: keep a trailing slash."""
    if not path:
        return "/"
    parts: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if parts:
                parts.pop()
            continue
        parts.append(segment)
    cleaned = "/" + "/".join(parts)
    if path.endswith("/") and cleaned != "/":
        cleaned += "/"
    return cleaned


# -- /_devvault/ controls ----------------------------------------------------------------
def _control(
    devvault: DevVaultServer, method: str, path: str, headers: dict[str, str], body: bytes
) -> Response:
    token = headers.get("x-vault-token", "")
    if not token and headers.get("authorization", "")[:7].lower() == "bearer ":
        token = headers["authorization"][7:].strip()
    entry = devvault.core.tokens.lookup(token) if token else None
    if entry is None or not entry.is_root:
        return Response(403, {"errors": ["devvault controls need the root token"]})
    try:
        args = json.loads(body) if body.strip() else {}
        if not isinstance(args, dict):
            raise ValueError("expected a JSON object")
    except ValueError as exc:
        return Response(400, {"errors": [f"failed to parse JSON input: {exc}"]})
    faults = devvault.faults
    actions: dict[tuple[str, str], Callable[[], Any]] = {
        ("GET", "faults"): lambda: None,
        ("POST", "faults/seal"): faults.seal,
        ("POST", "faults/unseal"): faults.unseal,
        ("POST", "faults/latency"): lambda: faults.latency(float(args.get("seconds", 0))),
        ("POST", "faults/fail"): lambda: faults.fail_next(
            int(args.get("count", 1)), int(args.get("status", 503)), args.get("path_prefix")
        ),
        ("POST", "faults/drop"): lambda: faults.drop_next(
            int(args.get("count", 1)), args.get("path_prefix")
        ),
        ("POST", "faults/reset"): faults.reset,
        ("POST", "clock/advance"): lambda: devvault.clock.advance(float(args.get("seconds", 0))),
    }
    action = actions.get((method, path.strip("/")))
    if action is None:
        return Response(404, {"errors": [f"no devvault control {method} {path}"]})
    try:
        action()
    except (ValueError, TypeError, RuntimeError) as exc:
        return Response(400, {"errors": [str(exc)]})
    return Response(200, {**faults.state(), "clock_offset": devvault.clock.offset})
