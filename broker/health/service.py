"""Key health in the broker: verification reports in, one status per key out.

- `report()`: a consumer's verification of one key version -> the status
  (broker/health/status.py), kept in the key's KV custom metadata (`health.*`, beside the
  intake's version slots, docs/broker.md), the in-memory index, an audit line and a
  webhook on every change.
- `key_stored()` / `key_deleted()`: the intake's outcomes (a new version starts from its
  intake result; the intake's metadata write drops the old version's `health.*`).
- `rebuild()`: the index from Vault metadata at start-up; `resync()`: the same pass
  every KEYBROKER_HEALTH_RESYNC_INTERVAL, so that statuses, keys and deletions other
  broker processes wrote reach this process's index; `sweep()`: keys with no
  verification in twice the schedule become `unverified`.

A health write is a KV metadata PATCH of the `health.*` keys only (docs/facts/vault.md
§3): it never touches the intake's version slots, whichever broker process writes them,
and the intake's own metadata writes leave `health.*` alone (broker/keystore.py). It
first reads the metadata, under the intake's per-key lock, to skip a version that was
replaced meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import hvac.exceptions as hvac_errors
from prometheus_client import Gauge

from broker.audit import AuditLog
from broker.config import Settings
from broker.health.demand import PendingRequests
from broker.health.index import Entry, HealthIndex, KeyId
from broker.health.report import VerificationReport
from broker.health.status import Health, KeyStatus, from_check, stale, stops
from broker.ids import ROLES, validate_role
from broker.intake import Intake, KeyNotFound, KeyRecord
from broker.keystore import HEALTH_PREFIX, KeyStore, StoredKey
from broker.layout import KeyPaths
from broker.metrics import BrokerMetrics
from broker.vault_session import VaultRefused, VaultSession, VaultUnavailable
from broker.webhooks import WebhookSender

log = logging.getLogger("keybroker.health")

PREFIX = HEALTH_PREFIX
REBUILD_CONCURRENCY = 32  # Vault reads in flight at start-up, when the index is empty
# ... and in a periodic resync, which is not urgent: fewer, so that the answers it parses
# on the event loop never queue requests for long (bench/health_bench.py).
RESYNC_CONCURRENCY = 8
RESYNC_JITTER = 0.1  # +-10%: broker processes started together do not resync in step
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
        self.requests = PendingRequests()  # "Check now" (broker/health/demand.py)
        self._tasks: set[asyncio.Task[None]] = set()
        self._synced = Gauge(
            "keybroker_health_index_synced",
            "Unix time when the key status index last finished a pass over Vault.",
            registry=metrics.registry,
        )
        in_flight = Gauge(
            "keybroker_webhook_events_in_flight",
            "Webhook events this process is still delivering or waiting to retry.",
            registry=metrics.registry,
        )
        in_flight.set_function(lambda: self.webhooks.in_flight)

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
        if self._settings.health_resync_interval > 0:
            self._spawn(self._resync_forever(self._settings.health_resync_interval))
        period = min(300.0, max(0.5, self._settings.verify_interval / 20))
        while True:
            await asyncio.sleep(period)
            try:
                await self.sweep()
            except (VaultUnavailable, VaultRefused) as exc:
                log.warning("health sweep incomplete (%s)", type(exc).__name__)

    async def _resync_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval * random.uniform(1 - RESYNC_JITTER, 1 + RESYNC_JITTER))
            try:
                await self.resync()
            except (VaultUnavailable, VaultRefused) as exc:
                log.warning("health index resync incomplete (%s)", type(exc).__name__)

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
        """The key's health: what the metadata just read says when it holds a health slot
        of the current version (Vault is the record, and another broker process may have
        written it), else the index entry of that version, else the intake result."""
        stored = record.stored
        if stored.custom_metadata.get(PREFIX + "version") != str(stored.version):
            entry = self.index.get((record.account, record.exchange, record.role))
            if entry is not None and entry.version == stored.version:
                return entry
        return self._from_stored(record.account, record.exchange, record.role, stored)

    def requested_at(self, record: KeyRecord) -> datetime | None:
        """When a verification of the key's current version was asked for and is still
        pending (\"Check now\")."""
        key = (record.account, record.exchange, record.role)
        request = self.requests.get(key, record.stored.version, self._clock())
        return request.requested_at if request else None

    # ------------------------------------------------------------------ intake outcomes
    def key_stored(self, record: KeyRecord) -> None:
        """A version was accepted: its status starts from the intake result."""
        entry = self._from_stored(record.account, record.exchange, record.role, record.stored)
        self.requests.drop((record.account, record.exchange, record.role))
        if entry is not None:
            self._install(entry, reporter=None)

    def key_deleted(self, account: str, exchange: str, role: str) -> None:
        self.index.remove((account, exchange, role))
        self.requests.drop((account, exchange, role))

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
        if await self._persist(paths, new) is not None:  # else: replaced meanwhile
            self._install(new, reporter=reporter, previous=entry)
            self.requests.fulfil(key, report.version, report.checked_at.astimezone(UTC))
        return new

    async def sweep(self) -> int:
        """Mark keys with no verification in twice the schedule `unverified`. A status
        that stops consumers stays until a verification or a new version replaces it:
        `unverified` would hide what was found (withdrawals enabled) and lift the stop."""
        now = self._clock()
        interval = self._settings.verify_interval
        marked = 0
        for entry in self.index.entries():
            if entry.status == KeyStatus.UNVERIFIED or entry.stop:
                continue
            if not stale(entry.last_seen, now, interval):
                continue
            health = Health(KeyStatus.UNVERIFIED)
            new = entry.with_health(health, now, stops(health, self._stop_on))
            paths = KeyPaths(
                self._settings.kv_mount, validate_role(entry.role), entry.account, entry.exchange
            )
            # Another broker process may have had a verification this index has not seen.
            stored = await self._persist(
                paths, new, unless=lambda s: not stale(s.last_seen, now, interval)
            )
            if stored is not new:
                if stored is not None:
                    self.index.replace(entry, stored)
                continue
            self._install(new, reporter=None, previous=entry)
            marked += 1
        return marked

    # ------------------------------------------------------------------ rebuild, resync
    async def rebuild(self) -> int:
        """Index every stored key from its metadata (start-up). Returns the count."""
        await self.resync(REBUILD_CONCURRENCY)
        self.index.complete = True
        return len(self.index)

    async def resync(self, concurrency: int = RESYNC_CONCURRENCY) -> int:
        """One pass over every stored key's metadata: index what Vault holds (statuses,
        keys and deletions written through other broker processes). An entry this process
        changes while the pass reads Vault is left alone. Returns the entries changed."""
        started = time.monotonic()
        limit = asyncio.Semaphore(concurrency)
        mount = self._settings.kv_mount
        seen = {entry.key: entry for entry in self.index.entries()}
        listed: set[KeyId] = set()
        changed = 0

        async def one(paths: KeyPaths) -> None:
            nonlocal changed
            async with limit:
                before = self.index.get((paths.account, paths.exchange, paths.role))
                stored = await self._store.read(paths)
            if stored is None:  # deleted, or no live version
                if before is not None and self.index.discard(before):
                    changed += 1
                return
            entry = self._from_stored(paths.account, paths.exchange, paths.role, stored)
            if entry is not None and entry != before and self.index.replace(before, entry):
                changed += 1

        async def account(role: str, name: str) -> list[KeyPaths]:
            async with limit:
                exchanges = await self._store.list_exchanges(role, name)
            return [
                KeyPaths(mount, validate_role(role), name, e) for e in exchanges if "/" not in e
            ]

        for role in ROLES:
            listed_names = await self._list(f"/v1/{mount}/metadata/{role}/")
            names = [n[:-1] for n in listed_names if n.endswith("/")]  # account folders
            found = [
                p
                for group in await asyncio.gather(*(account(role, n) for n in names))
                for p in group
            ]
            listed.update((p.account, p.exchange, p.role) for p in found)
            await asyncio.gather(*(one(p) for p in found))
        # Keys gone from Vault (deleted through another process) that nothing here
        # rewrote since the pass began.
        for key, entry in seen.items():
            if key not in listed and self.index.discard(entry):
                changed += 1
        self.index.synced_at = self._clock()
        self._synced.set(self.index.synced_at.timestamp())
        log.info(
            "health index synced: %d keys, %d changed, %.1fs",
            len(self.index),
            changed,
            time.monotonic() - started,
        )
        return changed

    async def _list(self, path: str) -> list[str]:
        listed = await self._session.request("list", "LIST", path, missing_ok=True)
        return [str(k) for k in (listed or {}).get("data", {}).get("keys", [])]

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

    async def _persist(
        self, paths: KeyPaths, entry: Entry, unless: Callable[[Entry], bool] | None = None
    ) -> Entry | None:
        """Store `entry`'s health slot; returns `entry`, or None when its version was
        replaced or deleted meanwhile (its health is moot), or the stored entry when
        `unless` holds for it (then nothing is written)."""
        async with self._intake.key_lock(paths):
            current = await self._store.read_metadata(paths)
            if current is None or current.version != entry.version:
                return None
            if unless is not None:
                stored = self._from_stored(paths.account, paths.exchange, paths.role, current)
                if stored is not None and unless(stored):
                    return stored
            try:
                await self._session.request(
                    "patch_metadata",
                    "PATCH",
                    f"/v1/{paths.metadata}",
                    json={"custom_metadata": _health_slot(entry)},
                )
            except hvac_errors.InvalidPath:  # deleted meanwhile (a PATCH creates nothing)
                return None
            return entry


def _health_slot(entry: Entry) -> dict[str, str | None]:
    """Every `health.*` key: a patch sets the whole slot, so no field of an earlier
    slot (another version's, or a status with a detail) survives it."""
    values = {
        "version": str(entry.version),
        "status": entry.status.value,
        "detail": entry.health.detail,
        "codes": ",".join(entry.health.codes)[:512],
        "changed_at": entry.changed_at.isoformat(),
        "verified_at": entry.verified_at.isoformat() if entry.verified_at else "",
    }
    # Vault refuses empty custom_metadata values (docs/facts/vault.md §3); in a merge
    # patch a null removes the key instead.
    return {PREFIX + k: v or None for k, v in values.items()}


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
