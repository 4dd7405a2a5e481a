"""Signed webhooks for key status changes (docs/key-health.md#webhooks).

Each event is POSTed as JSON to every configured URL with
`X-Keybroker-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` keyed by
`KEYBROKER_WEBHOOK_SECRET`, so a receiver can check origin and freshness. A delivery that
fails (connection error, timeout, non-2xx) is retried after each of
`KEYBROKER_WEBHOOK_RETRY_DELAYS`; every attempt goes to the delivery log (the last
DELIVERY_LOG_SIZE kept in memory) and to the audit log. Bodies hold identifiers and the
status only: never a secret, a masked key or a token.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from broker.audit import AuditLog

DELIVERY_LOG_SIZE = 1000
SIGNATURE_HEADER = "X-Keybroker-Signature"
TIMEOUT_S = 10.0


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: bytes, header: str, body: bytes, *, tolerance_s: float = 300) -> bool:
    """What a receiver does: recompute the HMAC, compare in constant time, reject old ones."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), header)


@dataclass(frozen=True)
class Delivery:
    """One attempt, as the delivery log keeps it (the URL by host only)."""

    event_id: str
    host: str
    attempt: int
    status: int | None  # HTTP status; None when no answer came
    ok: bool
    at: float


class WebhookSender:
    def __init__(
        self,
        urls: Sequence[str],
        secret: str | None,
        retry_delays: Sequence[float],
        audit: AuditLog,
    ) -> None:
        self._urls = list(urls)
        self._secret = (secret or "").encode()
        self._delays = list(retry_delays)
        self._audit = audit
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self.log: deque[Delivery] = deque(maxlen=DELIVERY_LOG_SIZE)

    @property
    def enabled(self) -> bool:
        return bool(self._urls)

    def send(self, event: dict[str, Any]) -> None:
        """Queue `event` for every URL (from the event loop); returns at once."""
        if not self._urls:
            return
        body = {"id": uuid.uuid4().hex, **event}
        for url in self._urls:
            task = asyncio.get_running_loop().create_task(self._deliver(url, body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, url: str, event: dict[str, Any]) -> None:
        raw = json.dumps(event, separators=(",", ":"), sort_keys=True).encode()
        host = urlsplit(url).netloc
        for attempt, delay in enumerate([0.0, *self._delays], start=1):
            if delay:
                await asyncio.sleep(delay)
            status = await self._post(url, raw)
            ok = status is not None and 200 <= status < 300
            self.log.append(Delivery(event["id"], host, attempt, status, ok, time.time()))
            self._audit.emit(
                "webhook.delivery",
                event_id=event["id"],
                host=host,
                attempt=attempt,
                status=status,
                ok=ok,
            )
            if ok:
                return
        self._audit.emit("webhook.abandoned", event_id=event["id"], host=host)

    async def _post(self, url: str, raw: bytes) -> int | None:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
            self._session = aiohttp.ClientSession(timeout=timeout, trust_env=False)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(self._secret, int(time.time()), raw),
        }
        try:
            async with self._session.post(url, data=raw, headers=headers) as answer:
                return answer.status
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
