"""Verification requests ("Check now"): a user asks the consumer of a key to verify it now.

The broker cannot verify a key itself (it holds no secret and cannot sign), so a request
only waits here until the consumer that uses the key polls for it
(`GET /v1/verification-requests`), verifies the key and reports. A request is fulfilled
by the first report on its version checked at or after it (report times are whole
seconds, so a request is too). Requests live in this process's memory only: a request
is a nudge worth minutes, every key is verified on its schedule anyway, and keeping it
in Vault would cost a write per click without reaching consumers that poll another
broker process any sooner (docs/key-health.md "Check now"). An unfulfilled request is
dropped after REQUEST_TTL, or when its key is replaced or deleted.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from broker.health.index import KeyId

# A consumer polls every 30 s by default (broker/verifier.py); a request nobody answered
# within this long is dropped and the page stops saying it waits.
REQUEST_TTL = timedelta(minutes=15)


@dataclass(frozen=True)
class VerificationRequest:
    account: str
    exchange: str
    role: str
    version: int
    requested_at: datetime

    def to_json(self) -> dict[str, str | int]:
        return {
            "account": self.account,
            "exchange": self.exchange,
            "role": self.role,
            "version": self.version,
            "requested_at": self.requested_at.isoformat(),
        }


class PendingRequests:
    def __init__(self, ttl: timedelta = REQUEST_TTL) -> None:
        self._ttl = ttl
        self._lock = threading.Lock()
        self._pending: dict[KeyId, VerificationRequest] = {}

    def add(self, key: KeyId, version: int, now: datetime) -> VerificationRequest:
        """Ask for a verification of `version`; a repeated click renews the request."""
        request = VerificationRequest(*key, version, now.replace(microsecond=0))
        with self._lock:
            self._pending[key] = request
        return request

    def get(self, key: KeyId, version: int, now: datetime) -> VerificationRequest | None:
        """The pending request on this version of the key, if any."""
        with self._lock:
            request = self._pending.get(key)
        if request is None or request.version != version or self._expired(request, now):
            return None
        return request

    def fulfil(self, key: KeyId, version: int, checked_at: datetime) -> None:
        """A report on `version` checked at `checked_at` answers an earlier request."""
        with self._lock:
            request = self._pending.get(key)
            if (
                request is not None
                and request.version == version
                and checked_at >= request.requested_at
            ):
                del self._pending[key]

    def drop(self, key: KeyId) -> None:
        """The key was replaced or deleted: its request is moot."""
        with self._lock:
            self._pending.pop(key, None)

    def pending(self, role: str, account: str | None, now: datetime) -> list[VerificationRequest]:
        """The live requests on `role` keys (of `account` only, when given), oldest first;
        expired ones are forgotten on the way."""
        with self._lock:
            for key in [k for k, r in self._pending.items() if self._expired(r, now)]:
                del self._pending[key]
            found = [
                r
                for r in self._pending.values()
                if r.role == role and (account is None or r.account == account)
            ]
        return sorted(found, key=lambda r: (r.requested_at, r.account, r.exchange))

    def _expired(self, request: VerificationRequest, now: datetime) -> bool:
        return now - request.requested_at > self._ttl

    def __len__(self) -> int:
        return len(self._pending)
