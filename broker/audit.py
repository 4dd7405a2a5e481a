"""Audit events as JSON lines: one line per accept, reject, replace, delete, check,
minted site token and failed authentication.

A line never holds a secret. Keys are identified by an HMAC of their api_key (so the
same key submitted twice gives the same `key_id`, without the key being recoverable);
callers by an HMAC of their token. The HMAC key comes from `KEYBROKER_AUDIT_HMAC_KEY`
or is random per process (ids then correlate within one process run only).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from broker.config import Settings


class AuditLog:
    def __init__(self, settings: Settings, stream: TextIO | None = None) -> None:
        key = settings.audit_hmac_key
        hmac_key = key.get_secret_value().encode() if key else secrets.token_bytes(32)
        # Keyed once: each fingerprint copies this state instead of re-deriving the
        # HMAC pads from the key (two per request: the caller's token, the api_key).
        self._keyed = hmac.new(hmac_key, digestmod=hashlib.sha256)
        self._lock = threading.Lock()
        self._owned: TextIO | None = None
        if stream is not None:
            self._stream = stream
        elif settings.audit_log is not None:
            self._stream = self._owned = _open_private(settings.audit_log)
        else:
            self._stream = sys.stderr

    def fingerprint(self, value: str) -> str:
        """A stable, non-reversible id for a key or token (first 128 bits of HMAC-SHA256)."""
        mac = self._keyed.copy()
        mac.update(value.encode())
        return mac.hexdigest()[:32]

    def emit(self, event: str, **fields: Any) -> None:
        record = {"ts": datetime.now(UTC).isoformat(), "event": event, **fields}
        line = json.dumps(record, default=str, separators=(",", ":"), ensure_ascii=True)
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None


def _open_private(path: Path) -> TextIO:
    """Append-only, created with mode 0600: audit lines name accounts and callers."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    return os.fdopen(fd, "a", encoding="utf-8")
