"""Fault injection for tests and benches: seal, latency, failed requests, dropped connections.

Not part of Vault's API. In-process through `DevVaultServer.faults`; from other
processes through `/_devvault/faults/...` (root token required, see `http.py`) or the
`RemoteFaults` client below. Faults apply to `/v1/` requests only, never to the
control endpoints, so a test can always undo what it set.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import requests

from keybroker_dev.devvault.core import Core

FAULT_MESSAGE = "devvault: injected fault"


@dataclass(frozen=True)
class Action:
    """What the HTTP layer must do with one request before the core sees it."""

    delay: float = 0.0
    drop: bool = False
    fail_status: int | None = None


@dataclass
class _Rule:
    remaining: int
    path_prefix: str | None
    status: int = 503

    def matches(self, path: str) -> bool:
        return self.remaining > 0 and (
            self.path_prefix is None or path.startswith(self.path_prefix.lstrip("/"))
        )


class Faults:
    def __init__(self, core: Core) -> None:
        self._core = core
        self._lock = threading.Lock()
        self._latency = 0.0
        self._fail: list[_Rule] = []
        self._drop: list[_Rule] = []

    # -- what tests call --------------------------------------------------------------
    def seal(self) -> None:
        """Seal the server: every Vault request but sys/health & co. gets 503."""
        with self._core.lock:
            self._core.seal.sealed = True

    def unseal(self) -> None:
        with self._core.lock:
            if not self._core.seal.initialized:
                raise RuntimeError("devvault is not initialised; PUT sys/init first")
            self._core.seal.sealed = False
            self._core.seal.progress.clear()

    def latency(self, seconds: float) -> None:
        """Delay every request by `seconds` (0 turns it off)."""
        if seconds < 0:
            raise ValueError("latency cannot be negative")
        with self._lock:
            self._latency = float(seconds)

    def fail_next(self, n: int, status: int = 503, path_prefix: str | None = None) -> None:
        """Answer the next `n` requests (whose logical path starts with `path_prefix`,
        e.g. "exchange-keys/") with `status` (500 or 503) and a Vault error body."""
        if n < 0:
            raise ValueError("n cannot be negative")
        if status not in (500, 502, 503):
            raise ValueError("status must be 500, 502 or 503")
        with self._lock:
            self._fail.append(_Rule(n, path_prefix, status))

    def drop_next(self, n: int, path_prefix: str | None = None) -> None:
        """Close the connection of the next `n` requests without answering."""
        if n < 0:
            raise ValueError("n cannot be negative")
        with self._lock:
            self._drop.append(_Rule(n, path_prefix))

    def reset(self) -> None:
        """Clear latency and pending failures/drops, and unseal if initialised."""
        with self._lock:
            self._latency = 0.0
            self._fail.clear()
            self._drop.clear()
        if self._core.seal.initialized:
            self.unseal()

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "sealed": self._core.seal.sealed,
                "latency": self._latency,
                "fail": [vars(r) for r in self._fail if r.remaining],
                "drop": [vars(r) for r in self._drop if r.remaining],
            }

    # -- what the HTTP layer calls ------------------------------------------------------
    def take(self, path: str) -> Action:
        with self._lock:
            if not (self._latency or self._fail or self._drop):
                return Action()
            for rule in self._drop:
                if rule.matches(path):
                    rule.remaining -= 1
                    return Action(delay=self._latency, drop=True)
            for rule in self._fail:
                if rule.matches(path):
                    rule.remaining -= 1
                    return Action(delay=self._latency, fail_status=rule.status)
            self._fail = [r for r in self._fail if r.remaining]
            self._drop = [r for r in self._drop if r.remaining]
            return Action(delay=self._latency)


class RemoteFaults:
    """The same controls for a devvault in another process (`keybroker devvault`)."""

    def __init__(self, addr: str, root_token: str, session: requests.Session | None = None) -> None:
        self._base = addr.rstrip("/") + "/_devvault/"
        self._headers = {"X-Vault-Token": root_token}
        self._session = session or requests.Session()

    def _post(self, what: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        resp = self._session.post(
            self._base + what, json=body or {}, headers=self._headers, timeout=10
        )
        resp.raise_for_status()
        return resp.json() if resp.content else {}

    def seal(self) -> None:
        self._post("faults/seal")

    def unseal(self) -> None:
        self._post("faults/unseal")

    def latency(self, seconds: float) -> None:
        self._post("faults/latency", {"seconds": seconds})

    def fail_next(self, n: int, status: int = 503, path_prefix: str | None = None) -> None:
        self._post("faults/fail", {"count": n, "status": status, "path_prefix": path_prefix})

    def drop_next(self, n: int, path_prefix: str | None = None) -> None:
        self._post("faults/drop", {"count": n, "path_prefix": path_prefix})

    def reset(self) -> None:
        self._post("faults/reset")

    def advance_clock(self, seconds: float) -> None:
        self._post("clock/advance", {"seconds": seconds})

    def state(self) -> dict[str, Any]:
        resp = self._session.get(self._base + "faults", headers=self._headers, timeout=10)
        resp.raise_for_status()
        return resp.json()
