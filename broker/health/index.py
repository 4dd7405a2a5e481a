"""The broker's in-memory index of key statuses, for status queries over every account.

Rebuilt from Vault metadata at start-up (broker/health/service.py), kept current by the
broker's own writes, and resynced from Vault periodically so that what other broker
processes wrote shows here too; Vault stays the record (`health.*` custom metadata).
A resync replaces an entry only if it is still the one seen before Vault was read
(`replace`, `discard`), so it never undoes a newer write of this process. Per-status
sets make a status filter touch only the matching keys; counts by (status, exchange)
feed the Prometheus gauge.
"""

from __future__ import annotations

import heapq
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import Any

from broker.health.status import Health, KeyStatus

KeyId = tuple[str, str, str]  # (account, exchange, role)


@dataclass(frozen=True)
class Entry:
    account: str
    exchange: str
    role: str
    version: int
    health: Health
    checked_at: datetime  # when intake accepted this version
    changed_at: datetime  # when the status last changed
    verified_at: datetime | None = None  # the latest consumer verification, if any
    stop: bool = False  # the broker's stop setting says consumers must stop using it

    @property
    def key(self) -> KeyId:
        return (self.account, self.exchange, self.role)

    @property
    def status(self) -> KeyStatus:
        return self.health.status

    @property
    def last_seen(self) -> datetime:
        return self.verified_at or self.checked_at

    @cached_property
    def public(self) -> dict[str, Any]:
        """The key's health as every view shows it (the API's HealthView), built once:
        listings of many keys are then mostly JSON encoding."""
        return {
            "status": self.status.value,
            "detail": self.health.detail,
            "rights": list(self.health.rights),
            "expires_in_days": self.health.days,
            "version": self.version,
            "verified_at": self.verified_at.isoformat() if self.verified_at else None,
            "changed_at": self.changed_at.isoformat(),
            "stop": self.stop,
        }

    @cached_property
    def listed(self) -> dict[str, Any]:
        """One item of a status listing."""
        return {
            "account": self.account,
            "exchange": self.exchange,
            "role": self.role,
            "health": self.public,
        }

    def with_health(self, health: Health, now: datetime, stop: bool) -> Entry:
        changed = (health.status, health.detail) != (self.health.status, self.health.detail)
        return replace(
            self, health=health, stop=stop, changed_at=now if changed else self.changed_at
        )


# Called with (status, exchange, +1/-1) on every change of the counts.
CountHook = Callable[[str, str, int], None]


class HealthIndex:
    def __init__(self, on_count: CountHook | None = None) -> None:
        self._lock = threading.Lock()
        self._entries: dict[KeyId, Entry] = {}
        self._by_status: dict[KeyStatus, set[KeyId]] = {s: set() for s in KeyStatus}
        self._counts: Counter[tuple[str, str]] = Counter()
        self._on_count = on_count
        # Per status, its keys in order; dropped when a key enters or leaves the status
        # (statuses change rarely; most reports keep them).
        self._ordered: dict[KeyStatus, list[KeyId]] = {}
        self.complete = False  # the start-up rebuild has finished
        self.synced_at: datetime | None = None  # when the last full pass over Vault ended

    def get(self, key: KeyId) -> Entry | None:
        return self._entries.get(key)

    def put(self, entry: Entry) -> Entry | None:
        """Store `entry`; returns the entry it replaced."""
        with self._lock:
            return self._put(entry)

    def replace(self, expected: Entry | None, entry: Entry) -> bool:
        """Store `entry` if its key's entry is still `expected` (the same object, or
        absent for None); False when another write came first."""
        with self._lock:
            if self._entries.get(entry.key) is not expected:
                return False
            self._put(entry)
            return True

    def discard(self, expected: Entry) -> bool:
        """Remove `expected`'s key if its entry is still `expected` (the same object)."""
        with self._lock:
            if self._entries.get(expected.key) is not expected:
                return False
            self._remove(expected.key)
            return True

    def remove(self, key: KeyId) -> Entry | None:
        with self._lock:
            return self._remove(key)

    def _put(self, entry: Entry) -> Entry | None:
        old = self._entries.get(entry.key)
        if old is not None:
            self._unindex(old)
        if old is None or old.status != entry.status:
            self._ordered.pop(entry.status, None)
            if old is not None:
                self._ordered.pop(old.status, None)
        self._entries[entry.key] = entry
        self._by_status[entry.status].add(entry.key)
        self._count(entry.status, entry.exchange, 1)
        return old

    def _remove(self, key: KeyId) -> Entry | None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._unindex(old)
            self._ordered.pop(old.status, None)
        return old

    def _unindex(self, entry: Entry) -> None:
        self._by_status[entry.status].discard(entry.key)
        self._count(entry.status, entry.exchange, -1)

    def _count(self, status: KeyStatus, exchange: str, delta: int) -> None:
        self._counts[(status.value, exchange)] += delta
        if self._on_count is not None:
            self._on_count(status.value, exchange, delta)

    def query(
        self,
        *,
        status: KeyStatus | None = None,
        exchange: str | None = None,
        role: str | None = None,
        account: str | None = None,
        limit: int | None = None,
    ) -> tuple[list[Entry], int]:
        """Matching entries (sorted by account, exchange, role; at most `limit`) and their
        total count."""
        with self._lock:
            if status is not None and account is None and exchange is None and role is None:
                ordered = self._ordered.get(status)
                if ordered is None:
                    ordered = self._ordered[status] = sorted(self._by_status[status])
                shown = ordered if limit is None else ordered[:limit]
                return [self._entries[key] for key in shown], len(ordered)
            keys = self._by_status[status] if status is not None else self._entries.keys()
            found = [
                key
                for key in keys
                if (account is None or key[0] == account)
                and (exchange is None or key[1] == exchange)
                and (role is None or key[2] == role)
            ]
            if limit is None or limit >= len(found):
                shown = sorted(found)
            else:  # the first `limit` in order without sorting all of them
                shown = heapq.nsmallest(limit, found)
            return [self._entries[key] for key in shown], len(found)

    def entries(self) -> list[Entry]:
        with self._lock:
            return list(self._entries.values())

    def counts(self) -> dict[str, dict[str, int]]:
        """status -> exchange -> number of keys (zero counts left out)."""
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for (status, exchange), n in self._counts.items():
                if n:
                    out.setdefault(status, {})[exchange] = n
        return out

    def __len__(self) -> int:
        return len(self._entries)
