"""Sandbox state: keys, request counters, injected faults, latency and outages.

Kept apart from the HTTP layer (moto's models/responses split). The server's event loop
thread reads it on every request while tests and the `/_sandbox` control endpoints change
it from other threads, so every access goes through one lock.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import replace
from enum import StrEnum
from typing import Any

from keybroker_dev.sandbox.keys import (
    EXCHANGES,
    RIGHTS,
    ROBOT_EGRESS_IP,
    SandboxKey,
    SandboxKeyError,
)


class Fault(StrEnum):
    """Failures the sandbox can be told to produce on an exchange's next requests."""

    RATE_LIMITED = "rate_limited"  # the exchange's own rate-limit answer
    UNAVAILABLE = "unavailable"  # the exchange's 5xx / maintenance answer
    IP_REFUSED = "ip_refused"  # the exchange's own IP-not-allowed answer
    TIMEOUT = "timeout"  # no answer for `hang_seconds`, then a gateway timeout


class SandboxStateError(ValueError):
    """A control request names an unknown exchange or fault, or a bad value."""


# A timeout fault hangs this long unless changed: longer than any client timeout used in
# tests, short enough that a forgotten fault cannot hold a test run hostage.
DEFAULT_HANG_SECONDS = 15.0
MAX_HANG_SECONDS = 120.0
MAX_LATENCY_SECONDS = 60.0


def check_exchange(exchange: str) -> str:
    if exchange not in EXCHANGES:
        raise SandboxStateError(f"unknown exchange {exchange!r}")
    return exchange


class SandboxState:
    """All mutable sandbox state behind one lock."""

    def __init__(self, keys: Iterable[SandboxKey], client_ip: str = ROBOT_EGRESS_IP) -> None:
        self._lock = threading.Lock()
        self._by_api_key: dict[tuple[str, str], SandboxKey] = {}
        self._by_label: dict[str, dict[str, SandboxKey]] = defaultdict(dict)
        self._counts: Counter[str] = Counter()
        self._faults: dict[str, list[tuple[Fault, int]]] = defaultdict(list)
        self._latency: dict[str | None, float] = {}
        self._down: set[str] = set()
        self._last_nonce: dict[str, int] = {}
        self.client_ip = client_ip
        self._initial_client_ip = client_ip
        self.hang_seconds = DEFAULT_HANG_SECONDS
        for key in keys:
            self.add_key(key)

    # --- keys -----------------------------------------------------------------------------

    def add_key(self, key: SandboxKey) -> None:
        with self._lock:
            existing = self._by_label[key.exchange].get(key.label)
            if existing is not None:
                self._by_api_key.pop((key.exchange, existing.api_key), None)
            if (key.exchange, key.api_key) in self._by_api_key:
                raise SandboxKeyError(f"{key.exchange}/{key.label}: api_key already in use")
            self._by_api_key[(key.exchange, key.api_key)] = key
            self._by_label[key.exchange][key.label] = key

    def update_key(self, exchange: str, api_key: str, **changes: Any) -> SandboxKey:
        """Change a key's rights, whitelist or expiry at run time, as a user would at the
        exchange (key health tests). Unknown fields or bad values: SandboxKeyError."""
        allowed = {*RIGHTS, "ip_whitelist", "expires_at"}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise SandboxKeyError(f"cannot change {', '.join(unknown)}")
        whitelist = changes.get("ip_whitelist")
        if isinstance(whitelist, list | tuple):
            changes["ip_whitelist"] = tuple(str(entry) for entry in whitelist)
        with self._lock:
            key = self._by_api_key.get((check_exchange(exchange), api_key))
            if key is None:
                raise SandboxStateError(f"no {exchange} key with that api_key")
            changed = replace(key, **changes)  # __post_init__ validates
            self._by_api_key[(exchange, api_key)] = changed
            self._by_label[exchange][key.label] = changed
            return changed

    def remove_key(self, exchange: str, api_key: str) -> None:
        """Delete a key as the user would at the exchange: its requests get invalid-key."""
        with self._lock:
            key = self._by_api_key.pop((check_exchange(exchange), api_key), None)
            if key is None:
                raise SandboxStateError(f"no {exchange} key with that api_key")
            self._by_label[exchange].pop(key.label, None)

    def find_key(self, exchange: str, api_key: str | None) -> SandboxKey | None:
        if not api_key:
            return None
        with self._lock:
            return self._by_api_key.get((exchange, api_key))

    def keys_of(self, exchange: str) -> list[SandboxKey]:
        with self._lock:
            return list(self._by_label.get(exchange, {}).values())

    def keys_by_label(self) -> dict[str, dict[str, SandboxKey]]:
        with self._lock:
            return {exchange: dict(labels) for exchange, labels in self._by_label.items()}

    # --- counters -------------------------------------------------------------------------

    def count(self, api_key: str | None) -> None:
        if api_key:
            with self._lock:
                self._counts[api_key] += 1

    def request_count(self, api_key: str) -> int:
        with self._lock:
            return self._counts[api_key]

    # --- faults, latency, outages ---------------------------------------------------------

    def inject(self, exchange: str, fault: str, count: int = 1) -> None:
        check_exchange(exchange)
        try:
            kind = Fault(fault)
        except ValueError:
            names = ", ".join(f.value for f in Fault)
            raise SandboxStateError(f"unknown fault {fault!r} (one of {names})") from None
        if count < 1:
            raise SandboxStateError("count must be at least 1")
        with self._lock:
            self._faults[exchange].append((kind, count))

    def take_fault(self, exchange: str) -> Fault | None:
        """The fault for this request, if one is pending; consumes one of its count."""
        with self._lock:
            queue = self._faults.get(exchange)
            if not queue:
                return None
            kind, left = queue[0]
            if left <= 1:
                queue.pop(0)
            else:
                queue[0] = (kind, left - 1)
            return kind

    def set_latency(self, seconds: float, exchange: str | None = None) -> None:
        if exchange is not None:
            check_exchange(exchange)
        if not 0 <= seconds <= MAX_LATENCY_SECONDS:
            raise SandboxStateError(f"latency must be between 0 and {MAX_LATENCY_SECONDS} s")
        with self._lock:
            self._latency[exchange] = float(seconds)

    def latency_for(self, exchange: str) -> float:
        with self._lock:
            return self._latency.get(exchange, self._latency.get(None, 0.0))

    def set_hang(self, seconds: float) -> None:
        if not 0 < seconds <= MAX_HANG_SECONDS:
            raise SandboxStateError(f"hang must be between 0 and {MAX_HANG_SECONDS} s")
        self.hang_seconds = float(seconds)

    def set_outage(self, exchange: str, down: bool) -> None:
        check_exchange(exchange)
        with self._lock:
            if down:
                self._down.add(exchange)
            else:
                self._down.discard(exchange)

    def is_down(self, exchange: str) -> bool:
        with self._lock:
            return exchange in self._down

    # --- Kraken nonces --------------------------------------------------------------------

    def accept_nonce(self, api_key: str, nonce: int, window: int) -> bool:
        """Kraken: a nonce must exceed the last one seen for the key (minus its window)."""
        with self._lock:
            last = self._last_nonce.get(api_key)
            if last is not None and nonce <= last - window:
                return False
            if last is not None and nonce == last:
                return False
            self._last_nonce[api_key] = max(nonce, last or 0)
            return True

    def reset(self) -> None:
        """Forget faults, latency, outages, counters and nonces; keep the keys."""
        with self._lock:
            self._counts.clear()
            self._faults.clear()
            self._latency.clear()
            self._down.clear()
            self._last_nonce.clear()
            self.hang_seconds = DEFAULT_HANG_SECONDS
            self.client_ip = self._initial_client_ip
