"""Key health in the broker: verification reports in, one status per key out.

- `report()`: a consumer's verification of one key version -> the status
  (broker/health/status.py), kept in the key's KV custom metadata (`health.*`, beside the
  intake's version slots, docs/broker.md), the in-memory index, an audit line and a
  webhook on every change.
- `key_stored()` / `key_deleted()`: the intake's outcomes (a new version starts from its
  intake result; the intake's metadata write drops the old version's `health.*`).
- `rebuild()`: the index from Vault metadata at start-up; `sweep()`: keys with no
  verification in twice the schedule become `unverified`.

Metadata writes are read-modify-write (KV v2 replaces custom_metadata as a whole and the
broker's policy has no `patch`), under the intake's per-key lock so that a health write
never drops an intake's staged slot in this process (docs/key-health.md: other processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Gauge

from broker.audit import AuditLog
from broker.config import Settings
from broker.health.index import Entry, HealthIndex, KeyId
from broker.health.report import VerificationReport
from broker.health.status import Health, KeyStatus, from_check, stale, stops
from broker.ids import ROLES, validate_role
from broker.intake import Intake, KeyNotFound, KeyRecord
from broker.keystore import KeyStore, StoredKey
from broker.layout import KeyPaths
from broker.metrics import BrokerMetrics
from broker.vault_session import VaultRefused, VaultSession, VaultUnavailable
from broker.webhooks import WebhookSender

log = logging.getLogger("keybroker.health")

PREFIX = "health."
REBUILD_CONCURRENCY = 32
# A report may be dated a little ahead of the broker's clock, never more.
CLOCK_SLACK = timedelta(seconds=60)


class VersionMismatch(Exception):
    """The report verified another version than the key's current one (409)."""


class HealthService:
    def __init__(
        self,
        settings: Settings,
        session: VaultSession,
        store: KeyStore,
        intake: Intake,
        audit: AuditLog,
        metrics: BrokerMetrics,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._session = session
        self._store = store
        self._intake = intake
        self._audit = audit
        self._clock = clock
        self._stop_on = frozenset(settings.health_stop_on)
        gauge = Gauge(
            "keybroker_keys",
            "Stored keys by health status and exchange.",
            ["status", "exchange"],
            registry=metrics.registry,
        )
        self.index = HealthIndex(
            on_count=lambda status, exchange, delta: gauge.labels(status, exchange).inc(delta)
        )
        self.webhooks = WebhookSender.from_settings(settings, session, audit)
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ life cycle
    def start(self) -> None:
        """Rebuild the index in the background, then sweep for stale keys periodically."""
        self._spawn(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self.rebuild()
                break
            except (VaultUnavailable, VaultRefused) as exc:
                log.warning("health index rebuild failed (%s); retrying", type(exc).__name__)
                await asyncio.sleep(2)
        period = min(300.0, max(0.5, self._settings.verify_interval / 20))
        while True:
            await asyncio.sleep(period)
            try:
                await self.sweep()
            except (VaultUnavailable, VaultRefused) as exc:
                log.warning("health sweep incomplete (%s)", type(exc).__name__)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.webhooks.aclose()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ queries
    def view(self, record: KeyRecord) -> Entry | None:
        """The key's health: the index entry of its current version, or (index not built
        yet, or the version written by another broker process) the one its metadata says."""
        entry = self.index.get((record.account, record.exchange, record.role))
        if entry is not None and entry.version == record.stored.version:
            return entry
        return self._from_stored(record.account, record.exchange, record.role, record.stored)

    # ------------------------------------------------------------------ intake outcomes
    def key_stored(self, record: KeyRecord) -> None:
        """A version was accepted: its status starts from the intake result."""
        entry = self._from_stored(record.account, record.exchange, record.role, record.stored)
        if entry is not None:
            self._install(entry, reporter=None)

    def key_deleted(self, account: str, exchange: str, role: str) -> None:
        self.index.remove((account, exchange, role))

    # ------------------------------------------------------------------ reports
    async def report(self, paths: KeyPaths, report: VerificationReport, *, reporter: str) -> Entry:
        """Apply a consumer's verification. KeyNotFound, VersionMismatch."""
        key: KeyId = (paths.account, paths.exchange, paths.role)
        entry = self.index.get(key)
        if entry is None or entry.version != report.version:
            # Not indexed yet (rebuild running) or written by another broker process.
            stored = await self._store.read(paths)
            if stored is None:
                raise KeyNotFound(
                    f"no {paths.role} key for {paths.exchange} in account {paths.account}"
                )
            entry = self._from_stored(paths.account, paths.exchange, paths.role, stored)
            if entry is None:
                raise KeyNotFound("the key has no accepted version yet")
        if report.version != entry.version:
            raise VersionMismatch(
                f"the report is about version {report.version}, the key is at version "
                f"{entry.version}: load the current key and verify it"
            )
        now = self._clock()
        health = from_check(report.accepted, report.errors, report.expires_at, now)
        seen = min(report.checked_at.astimezone(UTC), now + CLOCK_SLACK)
        new = entry.with_health(health, now, stops(health, self._stop_on))
        new = replace(new, verified_at=max(seen, entry.verified_at or seen))
        await self._persist(paths, new)
        self._install(new, reporter=reporter, previous=entry)
        return new

    async def sweep(self) -> int:
        """Mark keys with no verification in twice the schedule `unverified`."""
        now = self._clock()
        interval = self._settings.verify_interval
        marked = 0
        for entry in self.index.entries():
            if entry.status == KeyStatus.UNVERIFIED or not stale(entry.last_seen, now, interval):
                continue
            health = Health(KeyStatus.UNVERIFIED)
            new = entry.with_health(health, now, stops(health, self._stop_on))
            paths = KeyPaths(
                self._settings.kv_mount, validate_role(entry.role), entry.account, entry.exchange
            )
            await self._persist(paths, new)
            self._install(new, reporter=None, previous=entry)
            marked += 1
        return marked

    # ------------------------------------------------------------------ rebuild
    async def rebuild(self) -> int:
        """Index every stored key from its metadata (start-up). Returns the count."""
        limit = asyncio.Semaphore(REBUILD_CONCURRENCY)
        mount = self._settings.kv_mount

        async def one(paths: KeyPaths) -> None:
            async with limit:
                stored = await self._store.read(paths)
            if stored is None:
                return
            entry = self._from_stored(paths.account, paths.exchange, paths.role, stored)
            if entry is not None and self.index.get(entry.key) is None:
                self.index.put(entry)

        async def account(role: str, name: str) -> list[KeyPaths]:
            async with limit:
                exchanges = await self._store.list_exchanges(role, name)
            return [
                KeyPaths(mount, validate_role(role), name, e) for e in exchanges if "/" not in e
            ]

        for role in ROLES:
            listed = await self._session.request(
                "list", "LIST", f"/v1/{mount}/metadata/{role}/", missing_ok=True
            )
            listed_names = (listed or {}).get("data", {}).get("keys", [])
            names = [n[:-1] for n in listed_names if n.endswith("/")]  # account folders
            found = await asyncio.gather(*(account(role, n) for n in names))
            await asyncio.gather(*(one(p) for group in found for p in group))
        self.index.complete = True
        return len(self.index)

    # ------------------------------------------------------------------ helpers
    def _from_stored(
        self, account: str, exchange: str, role: str, stored: StoredKey
    ) -> Entry | None:
        facts = stored.facts
        if facts is None:
            return None
        custom = stored.custom_metadata
        checked = _aware(facts.checked_at)
        current = custom.get(PREFIX + "version") == str(stored.version)
        health = _health_from(custom) if current else None
        if health is not None:
            changed_at = _time(custom.get(PREFIX + "changed_at")) or checked
            verified_at = _time(custom.get(PREFIX + "verified_at"))
        else:  # no health recorded for this version: as intake accepted it
            expires = _aware(facts.expires_at) if facts.expires_at else None
            health = from_check(True, [], expires, self._clock())
            changed_at, verified_at = checked, None
        return Entry(
            account=account,
            exchange=exchange,
            role=role,
            version=stored.version,
            health=health,
            checked_at=checked,
            changed_at=changed_at,
            verified_at=verified_at,
            stop=stops(health, self._stop_on),
        )

    def _install(
        self, entry: Entry, *, reporter: str | None, previous: Entry | None = None
    ) -> None:
        before = self.index.put(entry)
        previous = previous or before
        # A first acceptance is audited as key.accepted; a new version that keeps the
        # status is no change.
        if previous is None or (previous.health.status, previous.health.detail) == (
            entry.health.status,
            entry.health.detail,
        ):
            return
        event = {
            "event": "key.status_changed",
            "account": entry.account,
            "exchange": entry.exchange,
            "role": entry.role,
            "version": entry.version,
            "status": entry.status.value,
            "detail": entry.health.detail,
            "previous": previous.status.value,
            "stop": entry.stop,
            "changed_at": entry.changed_at.isoformat(),
        }
        self._audit.emit(
            "key.status_changed",
            **{k: v for k, v in event.items() if k not in ("event", "changed_at")},
            reasons=list(entry.health.codes),
            caller=reporter,
        )
        with contextlib.suppress(RuntimeError):  # no running loop: nothing to deliver from
            self.webhooks.send(event)

    async def _persist(self, paths: KeyPaths, entry: Entry) -> None:
        async with self._intake.key_lock(paths):
            current = await self._store.read_metadata(paths)
            if current is None or current.version != entry.version:
                return  # replaced or deleted meanwhile: that version's health is moot
            custom = {k: v for k, v in current.custom_metadata.items() if not k.startswith(PREFIX)}
            custom.update(_health_slot(entry))
            await self._session.request(
                "write_metadata",
                "POST",
                f"/v1/{paths.metadata}",
                json={"custom_metadata": custom},
            )


def _health_slot(entry: Entry) -> dict[str, str]:
    values = {
        "version": str(entry.version),
        "status": entry.status.value,
        "detail": entry.health.detail,
        "codes": ",".join(entry.health.codes)[:512],
        "changed_at": entry.changed_at.isoformat(),
    }
    if entry.verified_at is not None:
        values["verified_at"] = entry.verified_at.isoformat()
    # Vault refuses empty custom_metadata values (docs/facts/vault.md §3): leave them out.
    return {PREFIX + k: v for k, v in values.items() if v}


def _health_from(custom: dict[str, str]) -> Health | None:
    status = custom.get(PREFIX + "status", "")
    if status not in KeyStatus._value2member_map_:
        return None
    detail = custom.get(PREFIX + "detail", "")
    codes = tuple(c for c in custom.get(PREFIX + "codes", "").split(",") if c)
    if status == KeyStatus.RIGHTS_CHANGED:
        return Health(KeyStatus(status), rights=tuple(detail.split(",")), codes=codes)
    if status == KeyStatus.EXPIRES_SOON and detail.endswith("d") and detail[:-1].isdigit():
        return Health(KeyStatus(status), days=int(detail[:-1]), codes=codes)
    return Health(KeyStatus(status), codes=codes)


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return _aware(datetime.fromisoformat(text))
    except ValueError:
        return None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
