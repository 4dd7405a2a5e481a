"""The reconciler: drives every unfinished write intent (broker/intents.py) to one end state.

Runs once when the broker starts and then every `reconcile_interval` seconds. It only
touches intents older than `intent_grace` (a live writer finishes its own intent well
within that time: broker/keystore.py bounds the data write by the Vault timeout), and
resolves each under the same per-key lock the intake uses. For each intent:

- phase `cleanup` (the new version is live and was audited; a finishing step failed):
  finish again -> audit `key.cleanup_done`, delete the intent;
- the key's current version is still the intent's base (the data never landed) or the
  version above it belongs to another write: nothing new -> remove a Transit key the
  write imported and no KV record can refer to (`_unused_transit`) -> audit
  `key.write_abandoned`, delete the intent;
- phase `deleting` (a key deletion stopped after its intent): the KV key gone -> delete
  its Transit key, audit `key.transit_deleted`; the KV key live -> keep both, audit
  `key.delete_abandoned`; delete the intent;
- the version above the base is this intent's (it landed, but the writer died, lost the
  answer or timed out): finish it (slot, destroy older versions) -> audit
  `key.accepted`/`key.replaced` with `recovered: true`, delete the intent.

Every line carries the intent's `txn`, so a line repeated after a crash between the
audit and the intent's deletion is recognisable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from broker.audit import AuditLog
from broker.custody.transit import TransitCustody
from broker.intents import PHASE_CLEANUP, PHASE_DELETING, DamagedIntent, Intent
from broker.keystore import KeyStore, StoredKey
from broker.layout import KeyPaths
from broker.metrics import BrokerMetrics
from broker.vault_session import VaultRefused, VaultUnavailable

log = logging.getLogger("keybroker.recovery")

LockFor = Callable[[KeyPaths], asyncio.Lock]


class Reconciler:
    def __init__(
        self,
        store: KeyStore,
        audit: AuditLog,
        lock_for: LockFor,
        *,
        grace: float,
        interval: float,
        on_outcome: Callable[[KeyPaths, str], None] | None = None,
        metrics: BrokerMetrics | None = None,
        custody: TransitCustody | None = None,
    ) -> None:
        self._store = store
        self._custody = custody
        self._audit = audit
        self._lock_for = lock_for
        self._grace = grace
        self._interval = interval
        self._on_outcome = on_outcome or (lambda paths, outcome: None)
        self._metrics = metrics
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except (VaultUnavailable, VaultRefused):
                pass  # Vault is down: the next round tries again
            except Exception as exc:  # never let the loop die; logged by type only
                log.error("reconciler round failed: %s", type(exc).__name__)
            await asyncio.sleep(self._interval)

    async def run_once(self, *, grace: float | None = None) -> int:
        """Resolve every intent older than `grace` (default: the configured grace).
        Returns how many were settled."""
        min_age = self._grace if grace is None else grace
        settled = 0
        names = await self._store.intents.names()
        for name in names:
            try:
                intent = await self._store.intents.read(name)
            except DamagedIntent:
                log.error("write intent %s is malformed; left for an operator", name)
                continue
            if intent is None or intent.age() < min_age:
                continue
            try:
                async with self._lock_for(intent.paths):
                    await self._resolve(intent)
                settled += 1
            except (VaultUnavailable, VaultRefused):
                continue  # this one waits for the next round
        if self._metrics is not None:
            self._metrics.intents_pending.set(len(names) - settled)
        return settled

    async def _resolve(self, intent: Intent) -> None:
        store, paths = self._store, intent.paths
        current = await store.intents.read(intent.name)
        if current is None:
            return  # its writer settled it meanwhile
        now = await store.read_metadata(paths)
        if intent.phase == PHASE_DELETING:
            await self._finish_deletion(intent, now)
            return
        if now is None:  # deleted since (or a new key whose data never landed)
            if intent.phase == PHASE_CLEANUP:
                self._emit("key.cleanup_done", intent)
            else:
                self._emit("key.write_abandoned", intent, **await self._unused_transit(intent, now))
            await store.intents.delete(intent)
            return
        if intent.phase == PHASE_CLEANUP:
            result = await store.finish(intent, now, now.updated_at)
            if not result.cleanup_pending:
                self._emit("key.cleanup_done", intent, version=intent.version)
                await store.intents.delete(intent)
            return
        owner = await store.owner_of(paths, now, intent.version)
        if owner != intent.txn:
            self._emit("key.write_abandoned", intent, **await self._unused_transit(intent, now))
            self._on_outcome(paths, "abandoned")
            await store.intents.delete(intent)
            return
        result = await store.finish(intent, now, now.updated_at)
        outcome = "accepted" if result.created else "replaced"
        self._emit(
            f"key.{outcome}",
            intent,
            version=intent.version,
            recovered=True,
            superseded=now.version > intent.version,
            cleanup_pending=result.cleanup_pending,
        )
        self._on_outcome(paths, outcome)
        await store.settle(intent, result.cleanup_pending)

    async def _unused_transit(self, intent: Intent, now: StoredKey | None) -> dict[str, Any]:
        """An abandoned write imported into Transit (or may have): remove what no KV
        record can refer to. A Transit key goes when the key has no live KV version, or
        when this write created it and KV still holds the version the write started
        from (written before the key existed); unless another write of the key is
        pending (it may be about to refer to it). A version added to a key KV refers to
        stays: Vault removes versions only below a floor (docs/facts/transit.md §8),
        and KV pins the version consumers sign with. The audit fields say which."""
        if not intent.transit_key or self._custody is None:
            return {}
        fields: dict[str, Any] = {"transit_key": intent.transit_key}
        if self._orphaned(intent, now) and not await self._others_pending(intent):
            fields["transit_deleted"] = await self._custody.delete(intent.paths)
        elif intent.transit_version:
            fields["transit_unused_version"] = intent.transit_version
        else:  # the import may have failed, or its version was never recorded
            fields["transit_import_unconfirmed"] = True
        return fields

    @staticmethod
    def _orphaned(intent: Intent, now: StoredKey | None) -> bool:
        live = now is not None and now.version > 0 and now.version in now.live_versions
        return not live or (
            intent.transit_base == 0 and now is not None and now.version == intent.base
        )

    async def _others_pending(self, intent: Intent) -> bool:
        return any(i.txn != intent.txn for i in await self._store.intents.for_key(intent.paths))

    async def _finish_deletion(self, intent: Intent, now: StoredKey | None) -> None:
        """A deletion that stopped between KV and Transit. With the KV key gone, its
        Transit key goes too; a live KV key (its deletion failed, answered 503, or a
        new key written since) keeps its Transit key, which it refers to."""
        live = now is not None and now.version > 0 and now.version in now.live_versions
        if live:
            self._emit("key.delete_abandoned", intent)
        elif await self._others_pending(intent):  # a new write of the key may refer to it
            self._emit("key.transit_kept", intent, transit_key=intent.transit_key)
        elif self._custody is not None:
            deleted = await self._custody.delete(intent.paths)
            self._emit(
                "key.transit_deleted", intent, transit_key=intent.transit_key, deleted=deleted
            )
        await self._store.intents.delete(intent)

    def _emit(self, event: str, intent: Intent, **fields: Any) -> None:
        paths = intent.paths
        self._audit.emit(
            event,
            caller=intent.caller or None,
            account=paths.account,
            exchange=paths.exchange,
            role=paths.role,
            key_id=intent.key_id,
            txn=intent.txn,
            **fields,
        )
