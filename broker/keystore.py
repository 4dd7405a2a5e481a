"""Keys in the KV v2 mount, written so that every outcome of a write is known or knowable.

The broker's policy can write key data but never read it (docs/contracts.md §2), so every
fact the API reports comes from the key's metadata: `version`, `created_at` and
`updated_at` from KV's own metadata, the rest from `custom_metadata`, which holds only
non-secret facts (name, masked key, status, checked_at, permissions summary, IP facts,
expiry, warning codes) in a slot named after the version they describe (`v3.name`,
`v3.status`, ...). A reader only believes the slot of the current version.

A write (docs/broker.md "Write protocol") is:

1. read metadata: current version N (0 for a new key); the intake runs this read while
   the exchange inspects the key;
2. intent: a record in Vault (broker/intents.py) naming the key, N, and the facts slot
   `v(N+1).*` (and the Transit key under `transit` custody, whose import runs only
   after this, see `write`). A failure here sent no data: the answer is "not stored";
3. commit: write the data with `cas=N`. A cas mismatch means another writer committed
   first: drop the intent and go back to 1 (at most CAS_ATTEMPTS rounds, then
   WriteConflict). Any other failure is repeated once with the same cas (a repeat of
   a write that did land is refused by cas, so this never writes twice). If the repeat
   fails too, the outcome is unknown: the intent stays for broker/recovery.py;
4. finish: merge the new slot into custom_metadata and remove every other key the
   metadata held before the commit (slots of older versions, anything damaged) except
   key health's `health.*`, in one metadata PATCH (docs/facts/vault.md §3), then destroy
   every older live version. A PATCH changes only the keys it names, so a health write
   of another broker process (even about this very version) is never undone. The caller audits, then
   `settle` deletes the intent, or marks it `cleanup` when Vault refused a step of 4,
   so that the reconciler retries it.

No key entry exists before its data does, so a LIST (which site tokens may run) never
shows a key without a version. Writers in one process are serialized by the intake's
per-key lock; cas orders writers of different processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

import hvac.exceptions as hvac_errors

from broker.custody.transit import TransitPlan
from broker.intents import PHASE_CLEANUP, PHASE_DELETING, Intent, IntentStore, new_txn
from broker.layout import KeyPaths
from broker.names import CUSTOM_METADATA_MAX_VALUE_BYTES
from broker.reasons import Permissions, ReasonCode
from broker.vault_session import VaultRefused, VaultSession, VaultUnavailable

_CAS_MISMATCH = "check-and-set parameter did not match"
_PERMISSIONS = ("read", "spot_trade", "margin", "futures", "withdraw", "transfer")
# Key health's keys in custom_metadata (broker/health/service.py); key writes leave them.
HEALTH_PREFIX = "health."
# A cas mismatch means another writer committed a version, so every lost round is
# progress for someone; writers in other broker processes can still win several rounds
# in a row, hence a generous bound and a jittered pause that breaks lock-step retries.
CAS_ATTEMPTS = 12
CAS_BACKOFF_SECONDS = 0.005
_VAULT_ERRORS = (VaultUnavailable, VaultRefused)
Prepare = Callable[[], Awaitable[dict[str, str]]]


class NotStored(VaultUnavailable):
    """Vault failed before the key's data was sent: nothing new is stored."""


class OutcomeUnknown(VaultUnavailable):
    """Vault failed during the data write: the new version may or may not be live.
    The write's intent stays in Vault and the reconciler settles it either way."""


class WriteConflict(Exception):
    """Other writers kept replacing the key while this write retried; try again later."""


class DamagedMetadata(ValueError):
    """The key's custom metadata cannot be read as facts; the message names the field."""


# A version's slot in custom_metadata: `v<N>.<fact>` (docs/broker.md).
_SLOT_KEY = re.compile(r"^v(\d+)\.")


@dataclass(frozen=True)
class KeyFacts:
    """What the broker learned about a key; safe to store and to show."""

    name: str
    api_key_masked: str
    status: str
    checked_at: datetime
    permissions: Permissions
    ip_restricted: bool | None
    ip_whitelist: list[str] | None
    expires_at: datetime | None
    warnings: tuple[ReasonCode, ...] = ()

    def to_slot(self, version: int, txn: str | None = None) -> dict[str, str]:
        values: dict[str, str] = {
            "name": self.name,
            "api_key_masked": self.api_key_masked,
            "status": self.status,
            "checked_at": self.checked_at.isoformat(),
            "permissions": ",".join(p for p in _PERMISSIONS if getattr(self.permissions, p))
            or "none",
            "ip_restricted": "unknown" if self.ip_restricted is None else str(self.ip_restricted),
        }
        if self.ip_whitelist is not None:
            values["ip_whitelist"] = _bounded_json_list(self.ip_whitelist)
        if self.expires_at is not None:
            values["expires_at"] = self.expires_at.isoformat()
        if self.warnings:
            values["warnings"] = ",".join(code.value for code in self.warnings)
        if txn:
            values["txn"] = txn
        return {f"v{version}.{key}": value for key, value in values.items()}

    @classmethod
    def from_slot(cls, custom: dict[str, str], version: int) -> KeyFacts | None:
        """The facts of `version`, None when it has no slot. Raises DamagedMetadata
        (naming the field, never its value) when the slot cannot be read."""
        prefix = f"v{version}."
        slot = {k[len(prefix) :]: v for k, v in custom.items() if k.startswith(prefix)}
        if "name" not in slot:
            return None
        try:
            checked_at = _timestamp(slot, "checked_at", required=True)
            assert checked_at is not None
            return cls(
                name=_field(slot, "name", str),
                api_key_masked=slot.get("api_key_masked", ""),
                status=slot.get("status", "unknown"),
                checked_at=checked_at,
                permissions=_permissions(slot.get("permissions", "")),
                ip_restricted={"True": True, "False": False}.get(slot.get("ip_restricted", "")),
                ip_whitelist=_whitelist(slot.get("ip_whitelist")),
                expires_at=_timestamp(slot, "expires_at", required=False),
                warnings=tuple(
                    ReasonCode(code)
                    for code in slot.get("warnings", "").split(",")
                    if code in ReasonCode._value2member_map_
                ),
            )
        except _BadField as exc:
            raise DamagedMetadata(f"v{version}.{exc.args[0]} cannot be read") from None


class _BadField(Exception):
    pass


def _field(slot: dict[str, str], name: str, kind: type) -> str:
    value = slot.get(name)
    if not isinstance(value, kind) or not value:
        raise _BadField(name)
    return value


def _timestamp(slot: dict[str, str], name: str, *, required: bool) -> datetime | None:
    if name not in slot:
        if required:
            raise _BadField(name)
        return None
    try:
        return datetime.fromisoformat(str(slot[name]))
    except ValueError:
        raise _BadField(name) from None


def _permissions(text: str) -> Permissions:
    granted = set(str(text).split(","))
    if granted - {*_PERMISSIONS, "none", ""}:
        raise _BadField("permissions")
    return Permissions(**{p: p in granted for p in _PERMISSIONS})


def _whitelist(text: str | None) -> list[str] | None:
    if not text:
        return None
    try:
        items = json.loads(text)
    except ValueError:
        raise _BadField("ip_whitelist") from None
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise _BadField("ip_whitelist")
    return items


def _bounded_json_list(items: list[str]) -> str:
    """JSON list within the 512-byte value limit; a too-long list is cut, marked by "..."."""
    kept: list[str] = []
    for item in items:
        if len(json.dumps([*kept, item, "..."])) > CUSTOM_METADATA_MAX_VALUE_BYTES:
            return json.dumps([*kept, "..."])
        kept.append(item)
    return json.dumps(kept)


@dataclass(frozen=True)
class StoredKey:
    """A key as its metadata describes it (never its data)."""

    version: int
    created_at: str
    updated_at: str
    facts: KeyFacts | None
    live_versions: tuple[int, ...]  # versions not destroyed yet
    custom_metadata: dict[str, str] = field(repr=False)
    damage: str | None = None  # why the facts could not be read (never a stored value)

    @property
    def has_debris(self) -> bool:
        """Slots of versions other than the current one (left by older brokers or crashes).
        Keys outside the `v<N>.` slots (key health's `health.*`) are not debris."""
        return any(self.is_debris(key) for key in self.custom_metadata)

    def is_debris(self, key: str) -> bool:
        match = _SLOT_KEY.match(key)
        return match is not None and int(match.group(1)) != self.version


@dataclass(frozen=True)
class WriteResult:
    stored: StoredKey
    created: bool
    cleanup_pending: bool  # a step after the commit failed; the reconciler retries it
    intent: Intent = field(repr=False)

    @property
    def version(self) -> int:
        return self.stored.version


class _Unread:
    """Marker: the caller has not read the key's metadata yet."""


_UNREAD = _Unread()


class KeyStore:
    def __init__(self, session: VaultSession, mount: str, *, intent_grace: float = 60.0) -> None:
        self._session = session
        self._mount = mount
        # A writer never sends data for an intent older than half the grace, so the
        # reconciler (which waits for the whole grace) never races a live writer.
        self._send_deadline = intent_grace / 2
        self.intents = IntentStore(session, mount)

    # ------------------------------------------------------------------ reads
    async def read(self, paths: KeyPaths) -> StoredKey | None:
        """The key's metadata, or None when there is no live current version. When the
        current version has no facts slot yet (its write is being finished), the facts
        come from that write's intent."""
        stored = await self.read_metadata(paths)
        if stored is None or stored.version == 0 or stored.version not in stored.live_versions:
            return None
        if stored.facts is None and stored.damage is None:
            for intent in await self.intents.for_key(paths):
                if intent.version == stored.version and intent.phase != PHASE_DELETING:
                    try:
                        facts = KeyFacts.from_slot(intent.slot, intent.version)
                    except DamagedMetadata:
                        continue
                    return replace(stored, facts=facts)
        return stored

    async def list_exchanges(self, role: str, account: str) -> list[str]:
        # The trailing slash matters: the broker's policy grants list on `+/`.
        response = await self._session.request(
            "list", "LIST", f"/v1/{self._mount}/metadata/{role}/{account}/", missing_ok=True
        )
        keys = ((response or {}).get("data") or {}).get("keys") or []
        return [str(k) for k in keys if isinstance(k, str) and not k.endswith("/")]

    async def read_metadata(self, paths: KeyPaths) -> StoredKey | None:
        """Raw metadata, read tolerantly: unreadable facts give `damage`, never an error."""
        response = await self._session.request(
            "read_metadata", "GET", f"/v1/{paths.metadata}", missing_ok=True
        )
        data = response.get("data") if response else None
        if not isinstance(data, dict):
            return None
        raw_custom = data.get("custom_metadata")
        custom = (
            {str(k): str(v) for k, v in raw_custom.items()} if isinstance(raw_custom, dict) else {}
        )
        try:
            version = int(data.get("current_version") or 0)
        except (TypeError, ValueError):
            version = 0
        raw_versions = data.get("versions")
        versions = raw_versions if isinstance(raw_versions, dict) else {}
        live = []
        for number, info in versions.items():
            if str(number).isdigit() and isinstance(info, dict) and not info.get("destroyed"):
                live.append(int(number))
        damage = None
        facts = None
        if version:
            try:
                facts = KeyFacts.from_slot(custom, version)
            except DamagedMetadata as exc:
                damage = str(exc)
        current = versions.get(str(version))
        return StoredKey(
            version=version,
            created_at=str(data.get("created_time", "")),
            # The current version's own time: metadata-only writes do not move it.
            updated_at=str(current.get("created_time", "")) if isinstance(current, dict) else "",
            facts=facts,
            live_versions=tuple(sorted(live)),
            custom_metadata=custom,
            damage=damage,
        )

    # ------------------------------------------------------------------ write
    async def write(
        self,
        paths: KeyPaths,
        facts: KeyFacts,
        data: dict[str, str] | Prepare,
        *,
        caller: str,
        key_id: str,
        before: StoredKey | _Unread | None = _UNREAD,
        transit: TransitPlan | None = None,
    ) -> WriteResult:
        """Write `data` as the key's new version with `facts` (see the module docstring).

        `before` is this key's metadata if the caller already read it (under its lock).
        Under `transit` custody `data` is a coroutine function that imports the secret
        and returns the KV data; it runs once, after the first intent (which names the
        Transit key, `transit`) is in Vault, so that every import is covered by an
        intent the reconciler can finish (docs/custody.md "Crash safety").
        Raises NotStored, OutcomeUnknown or WriteConflict (or what `data` raises). The
        caller audits the result, then calls `settle`.
        """
        prepared = data if isinstance(data, dict) else None
        imported: Intent | None = None  # the intent covering an import, while it may matter
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                await asyncio.sleep(random.uniform(0, CAS_BACKOFF_SECONDS * attempt))
            if isinstance(before, _Unread):
                try:
                    before = await self.read_metadata(paths)
                except _VAULT_ERRORS as exc:
                    raise NotStored(str(exc)) from None
            base = before.version if before else 0
            txn = new_txn()
            intent = Intent(
                paths,
                txn,
                base,
                time.time(),
                caller,
                key_id,
                facts.to_slot(base + 1, txn),
                transit_key=transit.key if transit else "",
                transit_base=transit.base if transit else 0,
                transit_version=_transit_version(prepared),  # 0 until the import is done
            )
            # 2. The intent, before any data: from here on, any replica can finish the write.
            try:
                await self.intents.put(intent)
            except _VAULT_ERRORS as exc:
                if imported is None:
                    await self._forget(intent)  # it may have landed; the reconciler drops it if not
                raise NotStored(str(exc)) from None
            if imported is not None:  # the new intent covers the import now
                await self._forget(imported)
                imported = intent
            if prepared is None:
                assert not isinstance(data, dict)
                imported = intent
                prepared = await self._prepare(data, intent)
                intent = replace(intent, transit_version=_transit_version(prepared))
            if intent.age() > self._send_deadline:  # Vault was too slow: do not race the reconciler
                if imported is None:
                    await self._forget(intent)
                raise NotStored("Vault answered too slowly; nothing was stored")
            # 3. The commit.
            try:
                created_time = await self._commit(paths, prepared, intent)
            except _CasMismatch:
                if imported is None:
                    await self._forget(intent)
                before = _UNREAD
                continue
            # 4. Finish (after the commit point: failures leave the new key live).
            return await self.finish(intent, before, created_time)
        # An intent covering an import stays: the reconciler removes what it imported.
        raise WriteConflict("the key kept changing while it was being replaced; retry")

    async def _prepare(self, prepare: Prepare, intent: Intent) -> dict[str, str]:
        """Run the import. On failure its intent stays for the reconciler (what Transit
        holds is then unknown), and a plain Vault failure answers `not_stored`."""
        try:
            prepared = await prepare()
        except VaultUnavailable as exc:
            if type(exc) is VaultUnavailable:
                raise NotStored(str(exc)) from None
            raise  # CustodyProofFailed: its own message
        except hvac_errors.VaultError as exc:  # e.g. another writer created the key first
            raise NotStored(str(exc)) from None
        # Record the version the import made, for the reconciler's audit line (if this
        # fails, the line says the import is unconfirmed).
        with contextlib.suppress(*_VAULT_ERRORS):
            await self.intents.put(replace(intent, transit_version=_transit_version(prepared)))
        return prepared

    async def _commit(self, paths: KeyPaths, data: dict[str, str], intent: Intent) -> str:
        """The data write with cas; one repeat when Vault fails (harmless under cas). A
        cas mismatch on the repeat means the first attempt, or another writer, landed."""
        try:
            return await self._write_data(paths, data, cas=intent.base)
        except _VAULT_ERRORS:
            pass
        try:
            return await self._write_data(paths, data, cas=intent.base)
        except _CasMismatch:
            try:
                now = await self.read_metadata(paths)
                owner = await self.owner_of(paths, now, intent.version)
            except _VAULT_ERRORS:
                raise OutcomeUnknown("Vault failed while the key was being written") from None
            if owner == intent.txn and now is not None:
                return now.updated_at if now.version == intent.version else ""
            raise  # another writer's version: ours did not land (the caller starts over)
        except _VAULT_ERRORS:
            raise OutcomeUnknown("Vault failed while the key was being written") from None

    async def owner_of(self, paths: KeyPaths, now: StoredKey | None, version: int) -> str | None:
        """The txn of the write that produced `version`: its finished slot says so (or the
        owners list the slots carry for the last OWNERS_KEPT versions); before the slot
        is written, the one pending intent with that version. Two pending intents
        for one version (two replicas racing on one key, then a crash) cannot be told
        apart from metadata: the lowest txn is taken, on every replica alike."""
        if now is None or now.version < version:
            return None
        known = _owners(now.custom_metadata, version + 1)
        if version in known:
            return known[version]
        pending = await self.intents.for_key(paths)
        candidates = sorted(
            i.txn for i in pending if i.version == version and i.phase != PHASE_DELETING
        )
        return candidates[0] if candidates else None

    async def finish(
        self, intent: Intent, before: StoredKey | None, created_time: str
    ) -> WriteResult:
        """Step 4 for a version that is live: its slot, then destroy older versions.
        Idempotent; `before` is the key's metadata from before the commit (or now)."""
        paths, version = intent.paths, intent.version
        pending = False
        current = max(version, before.version if before else 0)
        if current == version:
            # The slot, and who wrote the versions before it: the reconciler can then
            # tell an intent whose data never landed from the writer of that version.
            owners = _owners(before.custom_metadata if before else {}, version)
            slot = dict(intent.slot)
            if owners:
                slot[f"v{version}.owners"] = _format_owners(owners)
            dropped = [
                k
                for k in (before.custom_metadata if before else {})
                if k not in slot and not k.startswith(HEALTH_PREFIX)
            ]
            try:
                await self._patch_metadata(paths, slot, dropped)
            except (*_VAULT_ERRORS, hvac_errors.VaultError):  # e.g. 405: Vault before 1.10
                pending = True  # readers take the facts from the intent meanwhile
        live = set(before.live_versions if before else ()) | {version}
        stale = sorted(v for v in live if v < current)
        if stale:
            try:
                await self._destroy(paths, stale)
            except _VAULT_ERRORS:
                pending = True
        try:
            facts, damage = KeyFacts.from_slot(intent.slot, version), None
        except DamagedMetadata as exc:  # an intent edited by hand: finish it all the same
            facts, damage = None, str(exc)
        stored = StoredKey(
            version=version,
            created_at=(before.created_at if before and before.version else "") or created_time,
            updated_at=created_time,
            facts=facts,
            live_versions=tuple(sorted(live)) if pending else (current,),
            custom_metadata=intent.slot,
            damage=damage,
        )
        return WriteResult(stored, created=intent.base == 0, cleanup_pending=pending, intent=intent)

    async def settle(self, intent: Intent, cleanup_pending: bool) -> None:
        """After the audit line: delete the intent, or mark it for the reconciler when a
        finishing step is left. Best effort: an intent left behind is finished again by
        the reconciler (which may repeat the audit line, with the same txn)."""
        try:
            if cleanup_pending:
                await self.intents.put(replace(intent, phase=PHASE_CLEANUP))
            else:
                await self.intents.delete(intent)
        except _VAULT_ERRORS:
            pass

    async def _forget(self, intent: Intent) -> None:
        # On failure the reconciler finds no data for it and drops it.
        with contextlib.suppress(*_VAULT_ERRORS):
            await self.intents.delete(intent)

    # ----------------------------------------------------------------- repair
    async def repair(self, paths: KeyPaths, stored: StoredKey) -> bool:
        """Remove debris: a metadata-only entry (no version ever written; older brokers
        staged facts before the data), or slots of versions other than the current one.
        Never while a write of the key is pending. True when something was removed."""
        if await self.intents.for_key(paths):
            return False
        if stored.version == 0:
            await self._delete_metadata(paths)
            return True
        if stored.has_debris and stored.damage is None:
            debris = [k for k in stored.custom_metadata if stored.is_debris(k)]
            await self._patch_metadata(paths, {}, debris)
            return True
        return False

    # ----------------------------------------------------------------- delete
    async def delete(self, paths: KeyPaths) -> bool:
        """Destroy every version and the metadata. False when there was no key."""
        stored = await self.read_metadata(paths)
        if stored is None:
            return False
        await self._delete_metadata(paths)
        return stored.version > 0 and stored.version in stored.live_versions

    # ------------------------------------------------------------ Vault calls
    async def _patch_metadata(
        self, paths: KeyPaths, values: dict[str, str], removed: list[str]
    ) -> None:
        """Set `values` and remove `removed` in custom_metadata, leaving every other key
        (and max_versions and the other settings) as it is: a JSON merge patch, in which
        a null removes a key (docs/facts/vault.md §3, needs the `patch` capability)."""
        patch: dict[str, str | None] = {k: None for k in removed}
        patch.update(values)
        await self._session.request(
            "patch_metadata", "PATCH", f"/v1/{paths.metadata}", json={"custom_metadata": patch}
        )

    async def _write_data(self, paths: KeyPaths, data: dict[str, str], *, cas: int) -> str:
        """Returns the new version's created_time."""
        try:
            response = await self._session.request(
                "write_data",
                "POST",
                f"/v1/{paths.data}",
                json={"options": {"cas": cas}, "data": data},
            )
        except hvac_errors.InvalidRequest as exc:
            if _CAS_MISMATCH in str(exc):
                raise _CasMismatch from None
            raise
        return str(((response or {}).get("data") or {}).get("created_time", ""))

    async def _destroy(self, paths: KeyPaths, versions: list[int]) -> None:
        await self._session.request(
            "destroy",
            "POST",
            f"/v1/{self._mount}/destroy/{paths.relative}",
            json={"versions": versions},
        )

    async def _delete_metadata(self, paths: KeyPaths) -> None:
        await self._session.request("delete", "DELETE", f"/v1/{paths.metadata}")


class _CasMismatch(Exception):
    pass


def _transit_version(data: dict[str, str] | None) -> int:
    """The Transit version KV data under `transit` custody names (0: none)."""
    value = (data or {}).get("transit_version", "")
    return int(value) if value.isdigit() else 0


OWNERS_KEPT = 8  # versions whose writer a slot remembers (well within the 512-byte value)


def _owners(custom: dict[str, str], below: int) -> dict[int, str]:
    """version -> txn of its writer, for versions below `below`, from the slots' `txn`
    and `owners` values (newest OWNERS_KEPT)."""
    found: dict[int, str] = {}
    for key, value in custom.items():
        head, _, name = key.partition(".")
        if name == "owners":
            for entry in value.split(","):
                number, _, txn = entry.partition(":")
                if number.isdigit() and txn:
                    found.setdefault(int(number), txn)
        elif name == "txn" and head[1:].isdigit():
            found[int(head[1:])] = value
    kept = sorted((v for v in found if v < below), reverse=True)[:OWNERS_KEPT]
    return {v: found[v] for v in kept}


def _format_owners(owners: dict[int, str]) -> str:
    return ",".join(f"{version}:{txn}" for version, txn in sorted(owners.items()))
