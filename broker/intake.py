"""The intake workflow: what happens to a key between the HTTP edge and Vault.

    validate identifiers and credentials -> inspect the key at its exchange (bounded by
    check_timeout and the exchange's rate limit) -> retryable? 503, nothing stored
    -> rejected? 422, nothing stored -> write to Vault under a per-key lock
    (broker/keystore.py: intent, cas data write, facts, old versions destroyed)
    -> audit -> settle the intent -> the stored key's view

A write whose outcome Vault left unknown is finished or abandoned by the reconciler
(broker/recovery.py), which audits the end state it reaches.

Nothing here knows about HTTP; the API maps the exceptions below onto the error
envelope of docs/contracts.md §3. Secrets live only in the `Credentials` object and the
dict handed to the key store; they are never logged, audited or put in a message.
"""

from __future__ import annotations

import asyncio
import functools
import re
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from broker import ids
from broker.audit import AuditLog
from broker.config import Settings
from broker.custody.material import NotImportable, classify
from broker.custody.transit import TransitCustody, TransitPlan
from broker.exchanges.base import Credentials, mask_api_key
from broker.intents import PHASE_DELETING, Intent, new_txn
from broker.keystore import KeyFacts, KeyStore, NotStored, Prepare, StoredKey
from broker.layout import KeyPaths, transit_key_name
from broker.metrics import BrokerMetrics
from broker.ratelimit import RateLimited
from broker.reasons import CheckResult, Reason, ReasonCode, Severity
from broker.recovery import Reconciler
from broker.vault_session import VaultRefused, VaultUnavailable

EXCHANGE_RETRY_AFTER = 5
CREDENTIAL_LIMITS = {"api_key": 512, "secret": 8192, "passphrase": 512}
# api_key and passphrase travel in HTTP headers (or query strings): printable ASCII
# only, or the HTTP client fails before the exchange is reached (which would look like
# an outage). A secret only feeds a signature, but PEM secrets hold line breaks.
# (The OpenAPI document states the same patterns: broker/api/schemas.py.)
CREDENTIAL_PATTERNS = {
    "api_key": "^[ -~]+$",
    "passphrase": "^[ -~]+$",
    "secret": "^[ -~\\r\\n]+$",
}
_CREDENTIAL_RE = {field: re.compile(pattern) for field, pattern in CREDENTIAL_PATTERNS.items()}


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
        self.reconciler = Reconciler(
            store,
            audit,
            self._lock,
            grace=settings.intent_grace,
            interval=settings.reconcile_interval,
            on_outcome=self._count,
            metrics=metrics,
            custody=custody,
        )

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
            if not value or len(value) > CREDENTIAL_LIMITS[field]:
                raise InvalidRequest(f"{field} must be 1 to {CREDENTIAL_LIMITS[field]} characters")
            if not _CREDENTIAL_RE[field].fullmatch(value):
                allowed = "printable ASCII" + (" and line breaks" if field == "secret" else "")
                raise InvalidRequest(f"{field} must hold {allowed} only (no control characters)")
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
        try:
            result = await self._inspect(valid_exchange, valid_role, credentials)
        except RateLimited:
            self._metrics.rate_limited("exchange", valid_exchange)
            raise
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
            if isinstance(result, RateLimited):
                self._count(paths, "rate_limited")
                self._metrics.rate_limited("exchange", paths.exchange)
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
                raise NotStored(str(before)) from None

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
            data, plan = await self._custody_data(paths, credentials, audit_ids)
            try:
                written = await self._store.write(
                    paths,
                    facts,
                    data,
                    caller=caller,
                    key_id=audit_ids["key_id"],
                    before=before,
                    transit=plan,
                )
            except Exception:
                self._count(paths, "vault_unavailable")
                raise

            # 3. Audit the version that went live, then settle its intent.
            outcome = "accepted" if written.created else "replaced"
            self._count(paths, outcome)
            self._audit.emit(
                f"key.{outcome}",
                **audit_ids,
                version=written.version,
                txn=written.intent.txn,
                warnings=_codes(warnings),
                cleanup_pending=written.cleanup_pending,
            )
            await self._store.settle(written.intent, written.cleanup_pending)
        return SubmitOutcome(
            KeyRecord(paths.account, paths.exchange, paths.role, written.stored),
            created=written.created,
            warnings=warnings,
        )

    async def _custody_data(
        self, paths: KeyPaths, credentials: Credentials, audit_ids: dict[str, str]
    ) -> tuple[dict[str, str] | Prepare, TransitPlan | None]:
        """The KV data for the checked key: the secret itself under `kv` custody; under
        `transit` an import of the secret into a Transit key (broker/custody/transit.py),
        which the key store runs once the write's intent names that key, giving the KV
        data with only the api key, passphrase and the Transit reference."""
        custody = self._custody
        if self._settings.custody(paths.role) == "transit" and custody is not None:
            try:
                form = classify(paths.exchange, credentials.secret)
                plan = await custody.plan(paths, form)
            except NotImportable as exc:
                if not self._settings.custody_fallback_kv:
                    self._count(paths, "rejected")
                    reason = Reason.error(ReasonCode.SECRET_NOT_IMPORTABLE, str(exc))
                    self._audit.emit("key.rejected", **audit_ids, reasons=[reason.code.value])
                    raise KeyRejected(
                        CheckResult.refused(paths.exchange, paths.role, reason)
                    ) from None
            except (VaultUnavailable, VaultRefused) as exc:
                self._count(paths, "vault_unavailable")
                raise NotStored(str(exc)) from None
            else:
                return functools.partial(custody.store, paths, credentials, form, plan), plan
        data = {"api_key": credentials.api_key, "secret": credentials.secret}
        if credentials.passphrase:
            data["passphrase"] = credentials.passphrase
        return data, None

    async def get(self, account: str, exchange: str, role: str) -> KeyRecord:
        paths = self.key_paths(account, exchange, role)
        stored = await self._store.read(paths)
        if stored is None:
            raise KeyNotFound(
                f"no {paths.role} key for {paths.exchange} in account {paths.account}"
            )
        self._report_damage(paths, stored)
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
        stored = await asyncio.gather(*(self._store.read_metadata(p) for p in found))
        records = []
        for paths, raw in zip(found, stored, strict=True):
            if raw is None:
                continue
            if raw.version == 0 or raw.has_debris:
                await self._repair(paths, raw)
            if raw.version == 0 or raw.version not in raw.live_versions:
                continue
            key = await self._store.read(paths) if raw.facts is None and not raw.damage else raw
            if key is None:
                continue
            self._report_damage(paths, key)
            records.append(KeyRecord(paths.account, paths.exchange, paths.role, key))
        return records

    async def delete(self, account: str, exchange: str, role: str, *, caller: str) -> None:
        """Delete the KV key, then its Transit key (if any). A deletion intent is put
        first, so that a Transit delete that fails (or a crash) is finished by the
        reconciler: no Transit key outlives its KV record (docs/custody.md)."""
        paths = self.key_paths(account, exchange, role)
        ids_ = {"account": paths.account, "exchange": paths.exchange, "role": paths.role}
        async with self._lock(paths):
            intent = await self._deletion_intent(paths, caller)
            existed = await self._store.delete(paths)
            if self._custody is not None:  # the Transit key of a `transit` key, if any
                try:
                    existed = await self._custody.delete(paths) or existed
                except (VaultUnavailable, VaultRefused):
                    # The KV key is gone; the Transit key still signs until the
                    # reconciler (or a repeated DELETE) removes it: say so with 503.
                    self._audit.emit("key.deleted", caller=caller, **ids_, transit_pending=True)
                    raise
            if intent is not None:
                await self._store.settle(intent, cleanup_pending=False)
        if not existed:
            raise KeyNotFound(
                f"no {paths.role} key for {paths.exchange} in account {paths.account}"
            )
        self._audit.emit("key.deleted", caller=caller, **ids_)

    async def _deletion_intent(self, paths: KeyPaths, caller: str) -> Intent | None:
        if self._custody is None:
            return None
        intent = Intent(
            paths,
            new_txn(),
            0,
            time.time(),
            caller,
            "",
            {},
            phase=PHASE_DELETING,
            transit_key=transit_key_name(paths.role, paths.account, paths.exchange),
        )
        try:
            await self._store.intents.put(intent)
        except (VaultUnavailable, VaultRefused) as exc:
            raise NotStored(str(exc)) from None
        return intent

    async def start(self) -> None:
        """Start the reconciler (its first round runs at once: start-up recovery)."""
        self.reconciler.start()

    async def aclose(self) -> None:
        await self.reconciler.stop()

    # -------------------------------------------------------------- helpers
    def _report_damage(self, paths: KeyPaths, stored: StoredKey) -> None:
        if stored.damage:
            self._audit.emit(
                "key.metadata_damaged",
                account=paths.account,
                exchange=paths.exchange,
                role=paths.role,
                version=stored.version,
                damage=stored.damage,
            )

    async def _repair(self, paths: KeyPaths, stored: StoredKey) -> None:
        """Debris from older brokers (see KeyStore.repair); best effort, under the key's lock."""
        try:
            async with self._lock(paths):
                now = await self._store.read_metadata(paths)
                if now is not None and await self._store.repair(paths, now):
                    self._audit.emit(
                        "key.repaired",
                        account=paths.account,
                        exchange=paths.exchange,
                        role=paths.role,
                        version=now.version,
                    )
        except (VaultUnavailable, VaultRefused):
            pass

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
