"""`keybroker keys migrate-custody`: kv keys move into Transit, dry run changes nothing,
a second run changes nothing, a run stopped halfway resumes, the secret leaves KV."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

import broker.custody.migrate as migrate_module
from broker.audit import AuditLog
from broker.bootstrap import apply_layout, issue_approle_credentials
from broker.client import RobotKeyClient
from broker.custody.migrate import migrate
from broker.custody.transit import TransitCustody
from broker.keystore import KeyStore
from broker.layout import layout_from_settings, transit_key_name
from broker.recovery import Reconciler
from broker.vault_session import VaultSession
from keybroker_dev.sandbox import SandboxServer
from tests.fixtures.broker import BrokerEnv, build_broker_env
from tests.sandbox.ccxt_client import _rewrite
from tests.sandbox.specs import BY_NAME

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(devvault: Any, sandbox: SandboxServer) -> Iterator[BrokerEnv]:
    # `kv` custody (the fixture's default); OKX reports trade keys as futures-capable.
    broker = build_broker_env(
        devvault.addr, devvault.root_token, sandbox.exchange_urls, allow_futures=True
    )
    apply_layout(
        broker.root, layout_from_settings(broker.settings, robot_login_cidrs=("127.0.0.1/32",))
    )
    yield broker
    broker.running.stop()


def _put(env: BrokerEnv, sandbox: SandboxServer, exchange: str, role: str, label: str) -> Any:
    key = sandbox.key(exchange, label)
    with env.http("intake") as http:
        answer = http.put(
            f"/v1/accounts/alice/keys/{exchange}/{role}",
            json={"name": f"alice {role}", **key.credentials()},
        )
    assert answer.status_code == 201, answer.text
    return key


async def test_migration_moves_kv_keys_into_transit(env: BrokerEnv, sandbox: SandboxServer) -> None:
    site = _put(env, sandbox, "binance", "site", "read_only")
    robot = _put(env, sandbox, "okx", "robot", "trade_whitelisted")
    settings = env.settings.model_copy(update={"vault_role_id": None, "vault_secret_id": None})
    token = env.root.token
    lines: list[str] = []

    dry = await migrate(settings, token, dry_run=True, out=lines.append)
    assert dry.migrated == [] and env.read_key("robot", "alice", "okx")["secret"] == robot.secret
    assert any("would import as hmac" in line for line in lines)

    # Stopped halfway: the robot key's KV data write fails after its import.
    real_write_data = KeyStore._write_data

    async def failing_write_data(self: KeyStore, paths: Any, *args: Any, **kw: Any) -> Any:
        if paths.role == "robot":
            raise migrate_module.VaultUnavailable("Vault is unavailable (503)")
        return await real_write_data(self, paths, *args, **kw)

    KeyStore._write_data = failing_write_data  # type: ignore[method-assign]
    try:
        first = await migrate(settings, token, out=lines.append)
    finally:
        KeyStore._write_data = real_write_data  # type: ignore[method-assign]
    assert first.migrated == ["site/alice/binance"] and first.failed == ["robot/alice/okx"]
    assert env.read_key("robot", "alice", "okx")["secret"] == robot.secret  # untouched
    # The import happened and its intent names it; the broker's reconciler deletes the
    # Transit key KV never named (docs/custody.md "Crash safety").
    orphan = f"{settings.transit_mount}/keys/{transit_key_name('robot', 'alice', 'okx')}"
    assert env.root.read(orphan) is not None
    assert await _reconcile(settings, token) == 1
    assert env.root.read(orphan) is None  # hvac answers None for a 404

    second = await migrate(settings, token, out=lines.append)
    assert second.migrated == ["robot/alice/okx"] and second.already == ["site/alice/binance"]
    third = await migrate(settings, token, out=lines.append)
    assert third.migrated == [] and sorted(third.already) == [
        "robot/alice/okx",
        "site/alice/binance",
    ]

    for role, exchange in (("site", "binance"), ("robot", "okx")):
        stored = env.read_key(role, "alice", exchange)
        assert stored is not None and "secret" not in stored and stored["custody"] == "transit"
        meta = env.metadata(role, "alice", exchange)
        current = meta["current_version"]
        old = [v for n, v in meta["versions"].items() if int(n) < current]
        assert old and all(v["destroyed"] for v in old)  # the secret is gone from KV
    assert robot.secret not in json.dumps(lines) and site.secret not in json.dumps(lines)
    # The resumed key was imported afresh (the first import was removed).
    assert env.read_key("robot", "alice", "okx")["transit_version"] == "1"

    creds = issue_approle_credentials(env.root, "keybroker-robot")
    client = RobotKeyClient(env.root.url, creds.role_id, creds.secret_id)
    instance = client.signing_exchange("alice", "okx", asynchronous=True)
    instance.urls["api"] = _rewrite(instance.urls["api"], sandbox.exchange_urls["okx"], None)
    try:
        answer = await instance.private_get_account_config()
    finally:
        await instance.close()
    assert BY_NAME["okx"].rights(answer, robot)[0] is True


async def _reconcile(settings: Any, token: str) -> int:
    """One reconciler round, with no grace, as a broker replica would run it."""
    session = VaultSession(settings.model_copy(update={"vault_token": SecretStr(token)}))
    try:
        store = KeyStore(session, settings.kv_mount)
        reconciler = Reconciler(
            store,
            AuditLog(settings, io.StringIO()),
            lambda paths: asyncio.Lock(),
            grace=0,
            interval=1,
            custody=TransitCustody(session, settings.transit_mount),
        )
        return await reconciler.run_once()
    finally:
        await session.aclose()


def test_cli_needs_an_operator_token() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEYBROKER_", "VAULT_"))}
    command = [sys.executable, "-m", "broker", "keys", "migrate-custody", "--dry-run"]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "VAULT_TOKEN" in done.stderr


def test_cli_dry_run_prints_progress(env: BrokerEnv, sandbox: SandboxServer) -> None:
    _put(env, sandbox, "okx", "robot", "trade_whitelisted")
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("KEYBROKER_")}
    run_env |= {"VAULT_TOKEN": env.root.token, "KEYBROKER_VAULT_ADDR": env.root.url}
    command = [sys.executable, "-m", "broker", "keys", "migrate-custody", "--dry-run"]
    done = subprocess.run(
        command, env=run_env, cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "[1/1] robot/alice/okx: would import as hmac (hmac)" in done.stdout
    assert "Dry run: 0 migrated" in done.stdout
