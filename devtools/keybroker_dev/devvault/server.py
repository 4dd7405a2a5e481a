"""Start and stop a devvault: in-process for tests, or `keybroker devvault` (docs/contracts.md §5).

    with DevVaultServer() as srv:           # 127.0.0.1, free port, random root token
        client = hvac.Client(url=srv.addr, token=srv.root_token)
        srv.clock.advance(600)              # age every token, secret-id, wrapping token
        srv.faults.fail_next(2, status=503, path_prefix="exchange-keys/")

A fresh server is initialised and unsealed (like `vault server -dev`) and holds only
the `token/` auth method, the `cubbyhole/` and `sys/` mounts and the `default` policy.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType, TracebackType

from keybroker_dev.devvault.clock import Clock
from keybroker_dev.devvault.core import Core
from keybroker_dev.devvault.faults import Faults
from keybroker_dev.devvault.http import DevVaultHTTPServer


class DevVaultServer:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        root_token: str | None = None,
        audit_dir: str | Path | None = None,
        *,
        initialized: bool = True,
        auto_unseal: bool = False,
        strict_batch_roles: bool = True,
    ) -> None:
        """`initialized=False` starts it like a fresh `vault server` (PUT sys/init first);
        `auto_unseal=True` behaves like a KMS seal: init returns recovery keys and unseals.
        With `audit_dir`, audit file paths (e.g. /vault/logs/audit.log) land inside it.

        `strict_batch_roles=False` accepts a batch token role with an explicit max TTL,
        which Vault refuses (token_store.go tokenStoreRoleCreateUpdate); only for callers
        that must tolerate an older layout."""
        self.host = host
        self.port = port
        self.clock = Clock()
        self.core = Core(
            self.clock,
            root_token=root_token,
            audit_dir=Path(audit_dir) if audit_dir is not None else None,
            initialized=initialized,
            auto_unseal=auto_unseal,
            strict_batch_roles=strict_batch_roles,
        )
        self.faults = Faults(self.core)
        self._httpd: DevVaultHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def root_token(self) -> str:
        """The root token ("" until `sys/init` when started uninitialised)."""
        return self.core.root_token

    @property
    def addr(self) -> str:
        if self._httpd is None:
            raise RuntimeError("devvault is not started")
        return f"http://{self.host}:{self._httpd.server_address[1]}"

    def start(self) -> DevVaultServer:
        """Listen and serve in a background thread; returns once the socket accepts."""
        if self._httpd is not None:
            return self
        self._httpd = DevVaultHTTPServer((self.host, self.port), self)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"devvault:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> DevVaultServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:  # never the root token
        state = "stopped" if self._httpd is None else self.addr
        return f"DevVaultServer({state})"


def run_forever(host: str, port: int, root_token: str | None) -> int:
    """`keybroker devvault`: print `{"addr", "root_token"}` as one JSON line, serve until
    Ctrl-C or SIGTERM, exit 0."""
    server = DevVaultServer(host=host, port=port, root_token=root_token)
    try:
        server.start()
    except OSError as exc:
        print(f"devvault: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
        return 1
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    print(json.dumps({"addr": server.addr, "root_token": server.root_token}), flush=True)
    print(
        f"devvault listening on {server.addr} (in-memory; data is lost on exit). Ctrl-C stops it.",
        file=sys.stderr,
        flush=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
