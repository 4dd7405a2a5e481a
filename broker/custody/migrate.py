"""`keybroker keys migrate-custody`: move keys stored under `kv` custody into Transit.

The broker cannot read a stored secret back (docs/contracts.md §2), so this runs with
an operator's Vault token (VAULT_TOKEN) that may read `<kv mount>/data/`. For each key of
the chosen roles it reads the current version, imports the secret exactly as intake does
(broker/custody/transit.py: BYOK import, proof), then writes the new KV version through
the key store (cas on the version it read, facts carried over, older versions destroyed
so the secret is gone from KV).

- Idempotent and resumable: a key whose current version is already `transit` is
  skipped; a run stopped between the import and the KV write leaves KV as it was and
  the write's intent, whose Transit key the broker's reconciler deletes (KV never
  named it); the next run imports again and finishes.
- `--dry-run` reads and classifies, and changes nothing.
- Progress: one line per key on stdout, never a secret. Exit 1 when any key failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from broker import ids
from broker.config import Settings
from broker.custody.material import NotImportable, classify
from broker.custody.transit import CustodyProofFailed, TransitCustody
from broker.keystore import KeyStore, WriteConflict
from broker.layout import KeyPaths
from broker.names import ROLES
from broker.vault_session import VaultRefused, VaultSession, VaultUnavailable


@dataclass
class MigrationReport:
    migrated: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # nothing to move or cannot be moved
    failed: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def summary(self) -> str:
        return (
            f"{len(self.migrated)} migrated, {len(self.already)} already transit, "
            f"{len(self.skipped)} skipped, {len(self.failed)} failed"
        )


async def _list(session: VaultSession, path: str) -> list[str]:
    answer = await session.request("list", "LIST", path, missing_ok=True)
    return [str(k) for k in ((answer or {}).get("data") or {}).get("keys", [])]


async def _key_paths(
    session: VaultSession, mount: str, roles: tuple[str, ...], enabled: list[str]
) -> list[KeyPaths]:
    found: list[KeyPaths] = []
    for role in roles:
        for account in await _list(session, f"/v1/{mount}/metadata/{role}/"):
            account = account.rstrip("/")
            for exchange in await _list(session, f"/v1/{mount}/metadata/{role}/{account}/"):
                if exchange.endswith("/"):
                    continue
                try:
                    found.append(
                        KeyPaths(
                            mount,
                            ids.validate_role(role),
                            ids.validate_account(account),
                            ids.validate_exchange(exchange, enabled),
                        )
                    )
                except ids.InvalidIdentifier:
                    continue  # nothing the broker would have written
    return found


async def migrate(
    settings: Settings,
    token: str,
    *,
    roles: tuple[str, ...] = ROLES,
    dry_run: bool = False,
    out: Callable[[str], None] = print,
) -> MigrationReport:
    session = VaultSession(settings.model_copy(update={"vault_token": SecretStr(token)}))
    store = KeyStore(session, settings.kv_mount)
    custody = TransitCustody(session, settings.transit_mount)
    report = MigrationReport()
    try:
        keys = await _key_paths(session, settings.kv_mount, roles, settings.exchanges)
        verb = "Checking" if dry_run else "Migrating"
        out(f"{verb} {len(keys)} key(s) to transit custody (mount {settings.transit_mount}/)")
        for number, paths in enumerate(keys, 1):
            line = await _one(session, store, custody, paths, dry_run, report)
            out(f"  [{number}/{len(keys)}] {paths.relative}: {line}")
        out(("Dry run: " if dry_run else "Done: ") + report.summary())
    finally:
        await session.aclose()
    return report


async def _one(
    session: VaultSession,
    store: KeyStore,
    custody: TransitCustody,
    paths: KeyPaths,
    dry_run: bool,
    report: MigrationReport,
) -> str:
    name = paths.relative
    try:
        before = await store.read_metadata(paths)
        answer = await session.request("read_key", "GET", f"/v1/{paths.data}", missing_ok=True)
        data: dict[str, Any] = ((answer or {}).get("data") or {}).get("data") or {}
        if before is None or before.facts is None or not data:
            report.skipped.append(name)
            return "skipped (no live version)"
        if data.get("custody") == "transit":
            report.already.append(name)
            return "already transit"
        secret = str(data.get("secret") or "")
        form = classify(paths.exchange, secret)
        if dry_run:
            report.skipped.append(name)
            return f"would import as {form.transit_type} ({form.scheme})"
        plan = await custody.plan(paths, form)

        async def prepare() -> dict[str, str]:
            record = await custody.import_secret(paths, form, plan)
            moved = {"api_key": str(data.get("api_key", "")), **record.kv_fields()}
            if data.get("passphrase"):
                moved["passphrase"] = str(data["passphrase"])
            return moved

        # The write protocol of broker/keystore.py: intent (naming the Transit key) before
        # the import, cas write, slot, destroy; then settle the intent (no caller or key
        # HMAC here: this tool writes no audit lines). A run stopped after the import
        # leaves the intent, and the broker's reconciler removes what it imported.
        written = await store.write(
            paths, before.facts, prepare, caller="", key_id="", before=before, transit=plan
        )
        await store.settle(written.intent, written.cleanup_pending)
    except NotImportable as exc:
        report.skipped.append(name)
        return f"kept in kv ({exc.code}: {exc})"
    except (VaultUnavailable, VaultRefused, WriteConflict, CustodyProofFailed) as exc:
        report.failed.append(name)
        return f"FAILED ({type(exc).__name__}: {exc}); run again to resume"
    report.migrated.append(name)
    return f"migrated (transit v{written.intent.transit_version}, kv v{written.version})"


def run_migrate(roles: tuple[str, ...], dry_run: bool) -> int:
    """The CLI entry: settings from KEYBROKER_*, operator token from VAULT_TOKEN."""
    import os
    import sys

    from broker.config import ConfigError, load_settings

    token = os.environ.get("VAULT_TOKEN", "").strip()
    if not token:
        print("VAULT_TOKEN is not set: an operator token that may read key data", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    report = asyncio.run(
        migrate(settings, token, roles=roles, dry_run=dry_run, out=lambda s: print(s, flush=True))
    )
    return report.exit_code
