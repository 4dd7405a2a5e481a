"""Signed webhooks for key status changes, delivered at least once (docs/key-health.md#webhooks).

Each event is POSTed as JSON to every configured URL with
`X-Keybroker-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">` keyed by
`KEYBROKER_WEBHOOK_SECRET`, so a receiver can check origin and freshness, and with its id
in the body and in `X-Keybroker-Event-Id`, so a receiver can drop duplicates. A delivery
that fails (connection error, timeout, non-2xx) is retried after each of
`KEYBROKER_WEBHOOK_RETRY_DELAYS`; every attempt goes to the delivery log (the last
DELIVERY_LOG_SIZE kept in memory) and to the audit log. Bodies hold identifiers and the
status only: never a secret, a masked key or a token.

Across restarts: before the first attempt the event is recorded in Vault
(broker/webhook_records.py) and the record goes once every URL answered 2xx or the last
retry gave up. A broker that starts resends what earlier processes left (`start()`):
so a receiver may see an event twice (a restart between a 2xx and the record's
deletion, or two replicas starting while the other still retries), never zero times
while Vault keeps the record. A record older than `KEYBROKER_WEBHOOK_MAX_AGE` is
abandoned instead. When Vault cannot take the record the event is delivered from memory
as before, and the audit line `webhook.not_recorded` says so; the status change that
caused it never waits for any of this (`send()` returns at once).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections import deque
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from hvac.exceptions import VaultError

from broker.audit import AuditLog
from broker.config import Settings
from broker.vault_session import VaultRefused, VaultSession, VaultUnavailable
from broker.webhook_records import DamagedRecord, WebhookRecord, WebhookRecords, url_id

log = logging.getLogger("keybroker.webhooks")

DELIVERY_LOG_SIZE = 1000
SIGNATURE_HEADER = "X-Keybroker-Signature"
EVENT_ID_HEADER = "X-Keybroker-Event-Id"
TIMEOUT_S = 10.0
# At start-up, records read and handed to delivery at a time; and POSTs in flight at
# any time (a replay of thousands of records must not open thousands of connections).
REPLAY_CONCURRENCY = 8
MAX_POSTS = 64
REPLAY_RETRY_S = 2.0  # Vault unavailable at start-up: list again after this
# What a failed record write is (Vault down or refusing, the event too large, an id
# that cannot name an entry): the event is then delivered from memory only.
_RECORD_ERRORS = (VaultUnavailable, VaultRefused, VaultError, ValueError)


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


def encode(body: dict[str, Any]) -> bytes:
    """The bytes POSTed (and signed): the same for a first delivery and a resend."""
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


@dataclass(frozen=True)
class Delivery:
    """One attempt, as the delivery log keeps it (the URL by host only). `abandoned`:
    the last attempt failed, or (attempt 0) a resend was given up for its age."""

    event_id: str
    host: str
    attempt: int
    status: int | None  # HTTP status; None when no answer came
    ok: bool
    at: float
    abandoned: bool = False


@dataclass
class ReplaySummary:
    """What one start-up replay did (also logged)."""

    pending: int = 0
    resent: int = 0
    abandoned: int = 0  # older than the max age
    damaged: int = 0  # unreadable records, left for an operator
    gone: int = 0  # deleted meanwhile, or already delivered everywhere
    errors: int = 0  # Vault failed while reading: resent by the next start


class WebhookSender:
    def __init__(
        self,
        urls: Sequence[str],
        secret: str | None,
        retry_delays: Sequence[float],
        audit: AuditLog,
        *,
        records: WebhookRecords | None = None,
        max_age: float = float("inf"),  # the setting's default is in broker/config.py
    ) -> None:
        self._urls = list(urls)
        self._secret = (secret or "").encode()
        self._delays = list(retry_delays)
        self._audit = audit
        self._records = records
        self._max_age = max_age
        self._tasks: set[asyncio.Task[None]] = set()
        self._active: set[str] = set()  # event ids this process is delivering
        self._posts: asyncio.Semaphore | None = None
        self._session: aiohttp.ClientSession | None = None
        self.log: deque[Delivery] = deque(maxlen=DELIVERY_LOG_SIZE)

    @property
    def in_flight(self) -> int:
        """Events this process is delivering or waiting to retry."""
        return len(self._active)

    @classmethod
    def from_settings(
        cls, settings: Settings, session: VaultSession, audit: AuditLog
    ) -> WebhookSender:
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
        return cls(
            settings.webhook_urls,
            secret,
            settings.webhook_retry_delays,
            audit,
            records=WebhookRecords(session, settings.kv_mount),
            max_age=settings.webhook_max_age,
        )

    @property
    def enabled(self) -> bool:
        return bool(self._urls)

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Resend what earlier broker processes left in Vault (in the background)."""
        if not self._urls or self._records is None:
            return
        self._spawn(self._replay_until_listed())

    async def aclose(self) -> None:
        """Stop: pending retries end here, their records stay for the next broker."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ new events
    def send(self, event: dict[str, Any]) -> None:
        """Record `event`, then deliver it to every URL (from the event loop); returns
        at once. An id the event already has is kept."""
        if not self._urls:
            return
        body = {"id": uuid.uuid4().hex, **event}
        asyncio.get_running_loop()  # no loop: RuntimeError before anything is registered
        self._active.add(str(body["id"]))
        self._spawn(self._record_and_deliver(WebhookRecord(body, time.time())))

    async def _record_and_deliver(self, record: WebhookRecord) -> None:
        recorded = False
        if self._records is not None:
            try:
                await self._records.put(record)
                recorded = True
            except _RECORD_ERRORS as exc:
                self._audit.emit(
                    "webhook.not_recorded",
                    event_id=record.event_id,
                    error=type(exc).__name__,
                    delivery="in memory only: lost if this broker stops before it succeeds",
                )
        await self._deliver_event(record, recorded=recorded, replayed=False)

    # ------------------------------------------------------------------ delivery
    async def _deliver_event(
        self, record: WebhookRecord, *, recorded: bool, replayed: bool
    ) -> None:
        event_id = record.event_id
        raw = encode(record.body)
        delivered = set(record.delivered)
        pending = [u for u in self._urls if url_id(self._secret, u) not in delivered]
        left = len(pending)

        async def one(url: str) -> None:
            nonlocal left
            ok = await self._deliver(url, raw, event_id, recorded=recorded, replayed=replayed)
            left -= 1
            if ok and recorded:
                delivered.add(url_id(self._secret, url))
                if left:  # others still retrying: a restart need not resend to this one
                    await self._update(record, delivered)

        try:
            await asyncio.gather(*(one(u) for u in pending))
            if recorded:
                await self._forget(event_id)
        finally:
            self._active.discard(event_id)

    async def _deliver(
        self, url: str, raw: bytes, event_id: str, *, recorded: bool, replayed: bool
    ) -> bool:
        host = urlsplit(url).netloc
        schedule = [0.0, *self._delays]
        for attempt, delay in enumerate(schedule, start=1):
            if delay:
                await asyncio.sleep(delay)
            status = await self._post(url, raw, event_id)
            ok = status is not None and 200 <= status < 300
            last = not ok and attempt == len(schedule)
            self.log.append(Delivery(event_id, host, attempt, status, ok, time.time(), last))
            self._audit.emit(
                "webhook.delivery",
                event_id=event_id,
                host=host,
                attempt=attempt,
                status=status,
                ok=ok,
                recorded=recorded,
                **({"replayed": True} if replayed else {}),
            )
            if ok:
                return True
        self._audit.emit("webhook.abandoned", event_id=event_id, host=host, reason="retries")
        return False

    async def _post(self, url: str, raw: bytes, event_id: str) -> int | None:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
            self._session = aiohttp.ClientSession(timeout=timeout, trust_env=False)
        if self._posts is None:
            self._posts = asyncio.Semaphore(MAX_POSTS)
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: event_id,
            SIGNATURE_HEADER: signature(self._secret, int(time.time()), raw),
        }
        try:
            async with self._posts, self._session.post(url, data=raw, headers=headers) as answer:
                return answer.status
        except (aiohttp.ClientError, TimeoutError):
            return None

    async def _update(self, record: WebhookRecord, delivered: set[str]) -> None:
        assert self._records is not None
        try:
            await self._records.put(
                WebhookRecord(record.body, record.created_at, frozenset(delivered))
            )
        except _RECORD_ERRORS as exc:  # a restart then resends to this receiver too
            log.warning("webhook record %s not updated (%s)", record.event_id, type(exc).__name__)

    async def _forget(self, event_id: str) -> None:
        assert self._records is not None
        try:
            await self._records.delete(event_id)
        except _RECORD_ERRORS as exc:  # the next start resends it: a duplicate, not a loss
            log.warning("webhook record %s not deleted (%s)", event_id, type(exc).__name__)

    # ------------------------------------------------------------------ start-up replay
    async def _replay_until_listed(self) -> None:
        assert self._records is not None
        while True:
            try:
                names = await self._records.names()
                break
            except VaultUnavailable:
                log.warning(
                    "webhook replay: Vault unavailable; listing again in %.0f s", REPLAY_RETRY_S
                )
                await asyncio.sleep(REPLAY_RETRY_S)
            except (VaultRefused, VaultError) as exc:
                # An older layout without metadata/webhooks/ in the broker's policy.
                log.error(
                    "webhook replay: cannot list pending webhooks (%s); apply the layout "
                    "(keybroker vault bootstrap) to grant them",
                    type(exc).__name__,
                )
                return
        await self.replay(names)

    async def replay(self, names: Sequence[str]) -> ReplaySummary:
        """Resend the records `names` (those of earlier processes), REPLAY_CONCURRENCY at
        a time; abandon those older than the max age. Progress goes to the log."""
        names = [n for n in names if n not in self._active]
        summary = ReplaySummary(pending=len(names))
        log.info("webhook replay: %d pending event(s) from earlier broker processes", len(names))
        if not names:
            return summary
        step = max(1, len(names) // 10)
        handled = 0
        limit = asyncio.Semaphore(REPLAY_CONCURRENCY)

        async def one(name: str) -> None:
            nonlocal handled
            async with limit:
                await self._replay_one(name, summary)
            handled += 1
            if handled % step == 0 or handled == len(names):
                log.info("webhook replay: %d/%d handled", handled, len(names))

        await asyncio.gather(*(one(n) for n in names))
        log.info(
            "webhook replay done: %d resent, %d abandoned (older than %s s), %d damaged "
            "(left for an operator), %d gone, %d unreadable (next start)",
            summary.resent,
            summary.abandoned,
            f"{self._max_age:g}",
            summary.damaged,
            summary.gone,
            summary.errors,
        )
        return summary

    async def _replay_one(self, name: str, summary: ReplaySummary) -> None:
        assert self._records is not None
        try:
            record = await self._records.read(name)
        except (DamagedRecord, ValueError):
            log.error("webhook record %s is malformed; left for an operator", name)
            summary.damaged += 1
            return
        except _RECORD_ERRORS as exc:
            log.warning("webhook record %s unreadable (%s)", name, type(exc).__name__)
            summary.errors += 1
            return
        pending = (
            [u for u in self._urls if url_id(self._secret, u) not in record.delivered]
            if record is not None
            else []
        )
        if record is None or not pending:
            summary.gone += 1
            if record is not None:
                await self._forget(name)
            return
        age = record.age()
        if age > self._max_age:
            for url in pending:
                host = urlsplit(url).netloc
                self.log.append(Delivery(name, host, 0, None, False, time.time(), True))
                self._audit.emit(
                    "webhook.abandoned",
                    event_id=name,
                    host=host,
                    reason="max_age",
                    age_s=round(age),
                )
            summary.abandoned += 1
            await self._forget(name)
            return
        summary.resent += 1
        self._active.add(name)
        self._spawn(self._deliver_event(record, recorded=True, replayed=True))
