"""The one clock of a devvault server: wall time plus an offset tests can move.

Every expiry (tokens, secret-ids, wrapping tokens, KV `delete_version_after`) reads
this clock, so `clock.advance(seconds)` ages the whole server at once.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


class Clock:
    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Seconds since the epoch, as the server sees them."""
        return time.time() + self._offset

    @property
    def offset(self) -> float:
        return self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the devvault clock only moves forward")
        with self._lock:
            self._offset += seconds

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0


def rfc3339(ts: float) -> str:
    """Vault's timestamp format (Go RFC3339Nano, UTC), e.g. 2018-03-22T02:24:06.945319Z."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
