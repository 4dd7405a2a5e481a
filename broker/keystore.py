"""Keys in the KV v2 mount, written so that a failure at any step leaves Vault as it was.

The broker's policy can write key data but never read it (docs/contracts.md §2), so every
fact the API reports comes from the key's metadata: `version`, `created_at` and
`updated_at` from KV's own metadata, the rest from `custom_metadata`, which holds only
non-secret facts (name, masked key, status, checked_at, permissions summary, IP facts,
expiry, warning codes).

KV v2 keeps one custom_metadata map per key, not per version, and the data write and
the metadata write are two requests. To keep them consistent under failures, the facts
are stored in slots named after the version they describe (`v3.name`, `v3.status`, ...)
and a reader only believes the slot of the current version. A write is:

1. read metadata: current version N (0 for a new key) and the slot `vN.*` (the intake
   runs this read while the exchange inspects the key);
2. stage: write custom_metadata = slot `vN.*` + new slot `v(N+1).*`. Readers still see
   version N and its facts; a failure here changed nothing;
3. commit: write the data with `cas=N`. A mismatch means another writer got there
   first: go back to 1 (at most CAS_ATTEMPTS rounds; a writer that loses them all
   removes its stage slots, which may now label the winner's version, and answers
   WriteConflict). Any other failure is retried once with the same cas (harmless
   if the first attempt did land: cas refuses the repeat), then step 2 is undone. When
   Vault refuses the undo as well, `StagingLeft` carries the undo for the caller to
   retry once Vault is back;
4. destroy every version up to N, so a replaced key cannot be read back.

Step 4 runs after the commit point: its failure does not undo the new key; it is
reported (`WriteResult.cleanup_pending`) and the next write destroys what is left. The
slot `vN.*` of a destroyed version stays until the next write replaces it; readers
ignore it. Writers in one process are serialized by the intake's per-key lock; cas
orders writers of different processes, and a slot tagged with another attempt's `txn`
is never carried forward as the facts of a version it did not write.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

import hvac.exceptions as hvac_errors

from broker.layout import KeyPaths
from broker.reasons import Permissions, ReasonCode
from broker.vault_session import VaultRefused, VaultSession, VaultUnavailable

_CAS_MISMATCH = "check-and-set parameter did not match"
_PERMISSIONS = ("read", "spot_trade", "margin", "futures", "withdraw", "transfer")
_VALUE_MAX = 512  # KV v2 custom_metadata value limit (docs/facts/vault.md §3)
# A cas mismatch means another writer committed a version, so every lost round is
# progress for someone; writers in other broker processes can still win several rounds
# in a row, hence a generous bound and a jittered pause that breaks lock-step retries.
CAS_ATTEMPTS = 12
CAS_BACKOFF_SECONDS = 0.005


class StagingLeft(VaultUnavailable):
    """Vault failed mid-write and refused the undo as well. Readers are not affected (the
    staged slot describes no version), but the caller should run `undo` again later so
    that the metadata returns exactly to what it was."""

    def __init__(self, message: str, undo: Callable[[], Awaitable[None]]) -> None:
        super().__init__(message)
        self.undo = undo


class WriteConflict(Exception):
    """Other writers kept replacing the key while this write retried; try again later."""


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
        prefix = f"v{version}."
        slot = {k[len(prefix) :]: v for k, v in custom.items() if k.startswith(prefix)}
        if "name" not in slot:
            return None
        granted = set(slot.get("permissions", "").split(","))
        whitelist = slot.get("ip_whitelist")
        return cls(
            name=slot["name"],
            api_key_masked=slot.get("api_key_masked", ""),
            status=slot.get("status", "unknown"),
            checked_at=datetime.fromisoformat(slot["checked_at"]),
            permissions=Permissions(**{p: p in granted for p in _PERMISSIONS}),
            ip_restricted={"True": True, "False": False}.get(slot.get("ip_restricted", "")),
            ip_whitelist=json.loads(whitelist) if whitelist else None,
            expires_at=datetime.fromisoformat(slot["expires_at"]) if "expires_at" in slot else None,
            warnings=tuple(
                ReasonCode(code)
                for code in slot.get("warnings", "").split(",")
                if code in ReasonCode._value2member_map_
            ),
        )


def _bounded_json_list(items: list[str]) -> str:
    """JSON list within the 512-byte value limit; a too-long list is cut, marked by "..."."""
    kept: list[str] = []
    for item in items:
        if len(json.dumps([*kept, item, "..."])) > _VALUE_MAX:
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


@dataclass(frozen=True)
class WriteResult:
    stored: StoredKey
    created: bool
    cleanup_pending: bool  # destroying older versions failed; the next write retries it

    @property
    def version(self) -> int:
        return self.stored.version


class _Unread:
    """Marker: the caller has not read the key's metadata yet."""


_UNREAD = _Unread()


class KeyStore:
    def __init__(self, session: VaultSession, mount: str) -> None:
        self._session = session
        self._mount = mount

    # ------------------------------------------------------------------ reads
    async def read(self, paths: KeyPaths) -> StoredKey | None:
        """The key's metadata, or None when there is no committed version."""
        stored = await self.read_metadata(paths)
        if stored is None or stored.version == 0 or stored.version not in stored.live_versions:
            return None
        return stored

    async def list_exchanges(self, role: str, account: str) -> list[str]:
        # The trailing slash matters: the broker's policy grants list on `+/`.
        response = await self._session.request(
            "list", "LIST", f"/v1/{self._mount}/metadata/{role}/{account}/", missing_ok=True
        )
        return list(response["data"]["keys"]) if response else []

    async def read_metadata(self, paths: KeyPaths) -> StoredKey | None:
        """Raw metadata, including a key with only a staged (uncommitted) slot."""
        response = await self._session.request(
            "read_metadata", "GET", f"/v1/{paths.metadata}", missing_ok=True
        )
        data = response["data"] if response else None
        if data is None:
            return None
        custom = dict(data.get("custom_metadata") or {})
        version = int(data.get("current_version") or 0)
        versions = data.get("versions") or {}
        return StoredKey(
            version=version,
            created_at=str(data.get("created_time", "")),
            # The current version's own time: metadata-only writes do not move it.
            updated_at=str((versions.get(str(version)) or {}).get("created_time", "")),
            facts=KeyFacts.from_slot(custom, version) if version else None,
            live_versions=tuple(
                sorted(int(n) for n, v in versions.items() if not v.get("destroyed"))
            ),
            custom_metadata=custom,
        )

    # ------------------------------------------------------------------ write
    async def write(
        self,
        paths: KeyPaths,
        facts: KeyFacts,
        data: dict[str, str],
        *,
        before: StoredKey | _Unread | None = _UNREAD,
    ) -> WriteResult:
        """Write `data` as the key's new version with `facts` (see the module docstring).

        `before` is this key's metadata if the caller already read it (under its lock).
        Raises VaultUnavailable / VaultRefused (nothing changed) or WriteConflict.
        """
        own_txns: set[str] = set()
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                await asyncio.sleep(random.uniform(0, CAS_BACKOFF_SECONDS * attempt))
            if isinstance(before, _Unread):
                before = await self.read_metadata(paths)
            base = before.version if before else 0
            txn = secrets.token_hex(8)
            own_txns.add(txn)
            committed = _slot(before.custom_metadata, base) if before else {}
            if committed.get(f"v{base}.txn") in own_txns:
                committed = {}  # our own staged slot from a lost race: not this data's facts
            try:
                await self._post_metadata(paths, {**committed, **facts.to_slot(base + 1, txn)})
            except (VaultUnavailable, VaultRefused) as exc:
                # The stage may or may not have landed; undo it if it did.
                await self._undo_or_defer(paths, before, base, txn, exc)
                raise
            try:
                created_time = await self._write_data(paths, data, cas=base)
            except _CasMismatch:
                before = _UNREAD
                continue
            except (VaultUnavailable, VaultRefused):
                created_time = await self._retry_write(paths, data, before, base, txn)
            return await self._finish(paths, facts, before, base, created_time)
        await self._drop_lost_stages(paths, own_txns)
        raise WriteConflict("the key kept changing while it was being replaced; retry")

    async def _drop_lost_stages(self, paths: KeyPaths, own_txns: set[str]) -> None:
        """Every round was lost, so our last stage now labels another writer's version:
        remove our slots, so that version shows no facts rather than ours. Best effort: a
        failure here leaves the labels until the key's next write, as the docstring says."""
        try:
            now = await self.read_metadata(paths)
            if now is None:
                return
            ours = {
                key.split(".", 1)[0]
                for key, value in now.custom_metadata.items()
                if key.endswith(".txn") and value in own_txns
            }
            if ours:
                kept = {
                    k: v for k, v in now.custom_metadata.items() if k.split(".", 1)[0] not in ours
                }
                await self._post_metadata(paths, kept)
        except (VaultUnavailable, VaultRefused):
            pass

    async def _finish(
        self,
        paths: KeyPaths,
        facts: KeyFacts,
        before: StoredKey | None,
        base: int,
        created_time: str,
    ) -> WriteResult:
        version = base + 1
        stale = [v for v in (before.live_versions if before else ()) if v <= base]
        pending = False
        if stale:
            try:
                await self._destroy(paths, stale)
            except (VaultUnavailable, VaultRefused):
                pending = True  # the new version stands; the next write destroys these
        stored = StoredKey(
            version=version,
            created_at=before.created_at if before else created_time,
            updated_at=created_time,
            facts=facts,
            live_versions=(*stale, version) if pending else (version,),
            custom_metadata=facts.to_slot(version),
        )
        return WriteResult(stored=stored, created=base == 0, cleanup_pending=pending)

    async def _retry_write(
        self,
        paths: KeyPaths,
        data: dict[str, str],
        before: StoredKey | None,
        base: int,
        txn: str,
    ) -> str:
        """The data write failed, maybe after Vault applied it (lost answer). Repeat it
        once with the same cas, which makes a repeat harmless: success means the first
        attempt had not landed. A cas mismatch means that it, or another writer, did:
        when the new current version still carries our stage (our txn), it was ours and
        the write goes on to its end; otherwise answer 503 and leave the key as it is
        (the client's retry replaces it cleanly). Any other failure undoes the stage."""
        try:
            return await self._write_data(paths, data, cas=base)
        except _CasMismatch:
            now = await self.read_metadata(paths)
            if (
                now
                and now.version == base + 1
                and now.custom_metadata.get(f"v{base + 1}.txn") == txn
            ):
                return now.updated_at  # our first attempt landed; its answer was lost
            raise VaultUnavailable("Vault failed while the key was being written") from None
        except (VaultUnavailable, VaultRefused) as exc:
            await self._undo_or_defer(paths, before, base, txn, exc)
            raise

    async def _undo_or_defer(
        self,
        paths: KeyPaths,
        before: StoredKey | None,
        base: int,
        txn: str,
        failure: Exception,
    ) -> None:
        """Put the metadata back as it was; if Vault refuses that too, hand the undo to
        the caller (`StagingLeft.undo`) to retry later."""

        async def undo() -> None:
            await self.undo_staging(paths, before, base, txn)

        try:
            await undo()
        except (VaultUnavailable, VaultRefused):
            raise StagingLeft(str(failure), undo) from None

    async def undo_staging(
        self, paths: KeyPaths, before: StoredKey | None, base: int, txn: str
    ) -> None:
        """Remove our staged slot unless the key moved on since (idempotent)."""
        now = await self.read_metadata(paths)
        if now is None or now.version != base:
            return  # nothing staged, or a version was committed since: not ours to touch
        if now.custom_metadata.get(f"v{base + 1}.txn") != txn:
            return  # not our stage (it never landed, or another attempt restaged)
        if before is None or before.version == 0:
            await self._delete_metadata(paths)  # no version was ever written: no entry either
        else:
            await self._post_metadata(paths, before.custom_metadata)

    # ----------------------------------------------------------------- delete
    async def delete(self, paths: KeyPaths) -> bool:
        """Destroy every version and the metadata. False when there was no key."""
        stored = await self.read_metadata(paths)
        if stored is None:
            return False
        await self._delete_metadata(paths)
        return stored.version > 0 and stored.version in stored.live_versions

    # ------------------------------------------------------------ Vault calls
    async def _post_metadata(self, paths: KeyPaths, custom: dict[str, str]) -> None:
        # Only custom_metadata is sent, so max_versions and other settings stay as they are.
        await self._session.request(
            "write_metadata", "POST", f"/v1/{paths.metadata}", json={"custom_metadata": custom}
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


def _slot(custom: dict[str, str], version: int) -> dict[str, str]:
    prefix = f"v{version}."
    return {k: v for k, v in custom.items() if k.startswith(prefix)}
