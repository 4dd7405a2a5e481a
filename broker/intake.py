"""The intake workflow: what happens to a key between the HTTP edge and Vault.

    validate identifiers -> inspect the key at its exchange (bounded by check_timeout)
    -> retryable? 503, nothing stored -> rejected? 422, nothing stored
    -> write to Vault (broker/keystore.py: cas, facts in custom_metadata, old versions
       destroyed) under a per-key lock -> audit -> the stored key's view

Nothing here knows about HTTP; the API maps the exceptions below onto the error
envelope of docs/contracts.md §3. Secrets live only in the `Credentials` object and the
dict handed to the key store; they are never logged, audited or put in a message.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from broker import ids
from broker.audit import AuditLog
from broker.config import Settings
from broker.custody.material import NotImportable
from broker.custody.transit import TransitCustody
from broker.exchanges.base import Credentials, mask_api_key
from broker.keystore import KeyFacts, KeyStore, StagingLeft, StoredKey
from broker.layout import KeyPaths
from broker.metrics import BrokerMetrics
from broker.reasons import CheckResult, Reason, ReasonCode, Severity
from broker.vault_session import VaultRefused, VaultUnavailable

EXCHANGE_RETRY_AFTER = 5
# Seconds between attempts to undo a half-done write once Vault is back (about 2 min).
UNDO_RETRY_DELAYS = (0.2, 0.5, 1, 2, 4, 8, 15, 30, 60)
_CREDENTIAL_LIMITS = {"api_key": 512, "secret": 8192, "passphrase": 512}


class Checker(Protocol):
    async def check(self, exchange: str, role: str, credentials: Credentials) -> CheckResult: ...


class IntakeError(Exception):
    """Base of the workflow's typed failures; messages never hold a secret."""


class InvalidRequest(IntakeError):
    pass


class KeyNotFound(IntakeError):
    pass


class KeyRejected(IntakeError):
    def __init__(self, result: CheckResult) -> None:
        super().__init__("the exchange key was not accepted")
        self.result = result


class ExchangeUnavailable(IntakeError):
    retry_after = EXCHANGE_RETRY_AFTER

    def __init__(self, message: str, reasons: list[Reason]) -> None:
        super().__init__(message)
        self.reasons = reasons


@dataclass(frozen=True)
class KeyRecord:
    """A stored key as the API shows it: identifiers plus its metadata."""

    account: str
    exchange: str
    role: str
    stored: StoredKey


@dataclass(frozen=True)
class SubmitOutcome:
    record: KeyRecord
    created: bool
    warnings: list[Reason]


class Intake:
    def __init__(
        self,
        settings: Settings,
        checker: Checker,
        store: KeyStore,
        audit: AuditLog,
        metrics: BrokerMetrics,
        custody: TransitCustody | None = None,
    ) -> None:
        self._settings = settings
        self._custody = custody
        self._checker = checker
        self._store = store
        self._audit = audit
        self._metrics = metrics
        self._enabled = frozenset(settings.exchanges)
        # One lock per key path: replacements of one key in this process never interleave.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        # Undos of half-done writes waiting for Vault to come back (see _retry_undo).
        self._background: set[asyncio.Task[None]] = set()

    # ----------------------------------------------------------- validation
    def key_paths(self, account: str, exchange: str, role: str) -> KeyPaths:
        try:
            return KeyPaths(
                self._settings.kv_mount,
                ids.validate_role(role),
                ids.validate_account(account),
                ids.validate_exchange(exchange, self._enabled),
            )
        except ids.InvalidIdentifier as exc:
            raise InvalidRequest(str(exc)) from None

    @staticmethod
    def credentials(api_key: str, secret: str, passphrase: str | None) -> Credentials:
        for field, value in (("api_key", api_key), ("secret", secret), ("passphrase", passphrase)):
            if value is None:
                continue
            if not value or len(value) > _CREDENTIAL_LIMITS[field]:
                raise InvalidRequest(f"{field} must be 1 to {_CREDENTIAL_LIMITS[field]} characters")
            if "\x00" in value:
                raise InvalidRequest(f"{field} must not contain NUL characters")
        return Credentials(api_key=api_key, secret=secret, passphrase=passphrase or None)

    # ------------------------------------------------------------- actions
    async def check(
        self, exchange: str, role: str, credentials: Credentials, *, caller: str
    ) -> CheckResult:
        """Inspect without storing. Retryable outcomes raise ExchangeUnavailable."""
        try:
            valid_role = ids.validate_role(role)
            valid_exchange = ids.validate_exchange(exchange, self._enabled)
        except ids.InvalidIdentifier as exc:
            raise InvalidRequest(str(exc)) from None
        result = await self._inspect(valid_exchange, valid_role, credentials)
        self._audit.emit(
            "key.checked",
            caller=caller,
            exchange=valid_exchange,
            role=valid_role,
            key_id=self._audit.fingerprint(credentials.api_key),
            accepted=result.accepted,
            reasons=_codes(result.reasons),
        )
        if result.retryable:
            raise ExchangeUnavailable(
                "the exchange could not be reached; retry later", result.reasons
            )
        return result

    async def submit(
        self,
        account: str,
        exchange: str,
        role: str,
        name: str,
        credentials: Credentials,
        *,
        caller: str,
    ) -> SubmitOutcome:
        paths = self.key_paths(account, exchange, role)
        try:
            ids.validate_name(name)
        except ids.InvalidIdentifier as exc:
            raise InvalidRequest(str(exc)) from None
        audit_ids = {
            "caller": caller,
            "account": paths.account,
            "exchange": paths.exchange,
            "role": paths.role,
            "key_id": self._audit.fingerprint(credentials.api_key),
        }

        async with self._lock(paths):
            # 1. Inspect at the exchange; meanwhile read the key's metadata (for cas).
            result, before = await asyncio.gather(
                self._inspect(paths.exchange, paths.role, credentials),
                self._store.read_metadata(paths),
                return_exceptions=True,
            )
            if isinstance(result, BaseException):
                raise result
            # Retryable or rejected: stop here, nothing is written.
            if result.retryable:
                self._count(paths, "exchange_unavailable")
                self._audit.emit("key.unchecked", **audit_ids, reasons=_codes(result.reasons))
                raise ExchangeUnavailable(
                    "the exchange could not be reached; retry later", result.reasons
                )
            if not result.accepted:
                self._count(paths, "rejected")
                self._audit.emit("key.rejected", **audit_ids, reasons=_codes(result.reasons))
                raise KeyRejected(result)
            if isinstance(before, BaseException):
                self._count(paths, "vault_unavailable")
                raise before

            # 2. Store: the secret goes to Vault's data, only non-secret facts to metadata.
            warnings = [r for r in result.reasons if r.severity == Severity.WARNING]
            facts = KeyFacts(
                name=name,
                api_key_masked=mask_api_key(credentials.api_key),
                status="active",
                checked_at=datetime.now(UTC).replace(microsecond=0),
                permissions=result.permissions,
                ip_restricted=result.ip_restricted,
                ip_whitelist=result.ip_whitelist,
                expires_at=result.expires_at,
                warnings=tuple(r.code for r in warnings),
            )
            data = await self._custody_data(paths, credentials, audit_ids)
            try:
                written = await self._store.write(paths, facts, data, before=before)
            except StagingLeft as exc:
                self._count(paths, "vault_unavailable")
                self._spawn(self._retry_undo(paths, exc))
                raise
            except Exception:
                self._count(paths, "vault_unavailable")
                raise

        outcome = "accepted" if written.created else "replaced"
        self._count(paths, outcome)
        self._audit.emit(
            f"key.{outcome}",
            **audit_ids,
            version=written.version,
            warnings=_codes(warnings),
            cleanup_pending=written.cleanup_pending,
        )
        return SubmitOutcome(
            KeyRecord(paths.account, paths.exchange, paths.role, written.stored),
            created=written.created,
            warnings=warnings,
        )

    async def _custody_data(
        self, paths: KeyPaths, credentials: Credentials, audit_ids: dict[str, str]
    ) -> dict[str, str]:
        """The KV data for the checked key: the secret itself under `kv` custody; under
        `transit` the secret goes into a Transit key first (broker/custody/transit.py)
        and KV keeps only the api key, passphrase and the Transit reference."""
        if self._settings.custody(paths.role) == "transit" and self._custody is not None:
            try:
                return await self._custody.store(paths, credentials)
            except NotImportable as exc:
                if not self._settings.custody_fallback_kv:
                    self._count(paths, "rejected")
                    reason = Reason.error(ReasonCode.SECRET_NOT_IMPORTABLE, str(exc))
                    self._audit.emit("key.rejected", **audit_ids, reasons=[reason.code.value])
                    raise KeyRejected(
                        CheckResult.refused(paths.exchange, paths.role, reason)
                    ) from None
            except (VaultUnavailable, VaultRefused):
                self._count(paths, "vault_unavailable")
                raise
        data = {"api_key": credentials.api_key, "secret": credentials.secret}
        if credentials.passphrase:
            data["passphrase"] = credentials.passphrase
        return data

    async def get(self, account: str, exchange: str, role: str) -> KeyRecord:
        paths = self.key_paths(account, exchange, role)
        stored = await self._store.read(paths)
        if stored is None:
            raise KeyNotFound(
                f"no {paths.role} key for {paths.exchange} in account {paths.account}"
            )
        return KeyRecord(paths.account, paths.exchange, paths.role, stored)

    async def list(self, account: str) -> list[KeyRecord]:
        try:
            ids.validate_account(account)
        except ids.InvalidIdentifier as exc:
            raise InvalidRequest(str(exc)) from None
        found: list[KeyPaths] = []
        for role in ids.ROLES:
            for name in await self._store.list_exchanges(role, account):
                if name in self._enabled:  # ignore anything the broker would not have written
                    found.append(KeyPaths(self._settings.kv_mount, role, account, name))
        stored = await asyncio.gather(*(self._store.read(p) for p in found))
        return [
            KeyRecord(p.account, p.exchange, p.role, s)
            for p, s in zip(found, stored, strict=True)
            if s is not None
        ]

    async def delete(self, account: str, exchange: str, role: str, *, caller: str) -> None:
        paths = self.key_paths(account, exchange, role)
        async with self._lock(paths):
            existed = await self._store.delete(paths)
            if self._custody is not None:  # the Transit key of a `transit` key, if any
                existed = await self._custody.delete(paths) or existed
        if not existed:
            raise KeyNotFound(
                f"no {paths.role} key for {paths.exchange} in account {paths.account}"
            )
        self._audit.emit(
            "key.deleted",
            caller=caller,
            account=paths.account,
            exchange=paths.exchange,
            role=paths.role,
        )

    async def aclose(self) -> None:
        """Stop pending background undos (Vault is left as the last attempt found it)."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)

    # -------------------------------------------------------------- helpers
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _retry_undo(self, paths: KeyPaths, left: StagingLeft) -> None:
        """Vault failed mid-write and refused the undo: retry it until Vault is back."""
        for delay in UNDO_RETRY_DELAYS:
            await asyncio.sleep(delay)
            try:
                async with self._lock(paths):
                    await left.undo()
            except (VaultUnavailable, VaultRefused):
                continue
            self._audit.emit(
                "key.write_undone", account=paths.account, exchange=paths.exchange, role=paths.role
            )
            return
        self._audit.emit(
            "key.write_undo_abandoned",
            account=paths.account,
            exchange=paths.exchange,
            role=paths.role,
        )

    async def _inspect(self, exchange: str, role: str, credentials: Credentials) -> CheckResult:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._settings.check_timeout):
                return await self._checker.check(exchange, role, credentials)
        except TimeoutError:
            reason = Reason.error(
                ReasonCode.EXCHANGE_UNAVAILABLE,
                f"{exchange} did not answer within {self._settings.check_timeout:g}s",
            )
            return CheckResult.refused(exchange, role, reason)  # type: ignore[arg-type]
        finally:
            self._metrics.check_seconds.labels(exchange=exchange).observe(
                time.perf_counter() - started
            )

    def key_lock(self, paths: KeyPaths) -> asyncio.Lock:
        """The per-key lock writes of this key hold (key health's metadata writes too)."""
        return self._lock(paths)

    def _lock(self, paths: KeyPaths) -> asyncio.Lock:
        lock = self._locks.get(paths.data)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[paths.data] = lock
        return lock

    def _count(self, paths: KeyPaths, outcome: str) -> None:
        self._metrics.intake.labels(exchange=paths.exchange, role=paths.role, outcome=outcome).inc()


def _codes(reasons: Iterable[Reason]) -> list[str]:
    return [r.code.value for r in reasons]
