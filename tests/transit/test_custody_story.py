"""The `transit` custody story through the real broker, devvault and the sandbox.

Keys for all twelve exchanges (and every extra signing scheme) go in through the broker;
the site and the robot trade/read through Vault-signed ccxt objects; no readable path
holds a secret (canaries); the site cannot sign with robot keys; nobody can export or
back up; a replaced key signs with its new version; a deleted key stops signing and the
robot resumes with a new one.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import hvac
import hvac.exceptions
import pytest

from broker.bootstrap import apply_layout, create_caller_token, issue_approle_credentials
from broker.client import KeyNotFound, RobotKeyClient, SiteKeyClient
from broker.layout import (
    BROKER_POLICY,
    BROKER_TRANSIT_POLICY,
    layout_from_settings,
)
from keybroker_dev.sandbox import SandboxServer
from tests.fixtures.broker import BrokerEnv, build_broker_env
from tests.sandbox.ccxt_client import _rewrite
from tests.sandbox.specs import BY_NAME

MOUNT = "exchange-signing"
# The broker refuses every MEXC key (its API cannot show a key's rights: `unverifiable`),
# so MEXC signing is proven in test_signing_identical.py only.
ACCEPTED = [exchange for exchange in BY_NAME if exchange != "mexc"]
# account -> (exchange, sandbox label): further schemes the broker accepts. The broker's
# exchange check still refuses asymmetric secrets (`non_hmac_key`, docs/exchanges.md), so
# Binance RSA/Ed25519 and Coinbase CDP custody is proven in test_custody_import.py.
EXTRA = {"kcv2": ("kucoin", "key_v2")}


@pytest.fixture
def env(devvault: Any, sandbox: SandboxServer) -> Iterator[BrokerEnv]:
    broker = build_broker_env(
        devvault.addr,
        devvault.root_token,
        sandbox.exchange_urls,
        site_custody="transit",
        robot_custody="transit",
        allow_futures=True,  # some exchanges report trade keys as futures-capable
    )
    # The robot reaches this Vault from loopback, not from its exchange egress address.
    apply_layout(
        broker.root, layout_from_settings(broker.settings, robot_login_cidrs=("127.0.0.1/32",))
    )
    yield broker
    broker.running.stop()


def _put(
    env: BrokerEnv, sandbox: SandboxServer, account: str, exchange: str, role: str, label: str
) -> Any:
    key = sandbox.key(exchange, label)
    with env.http("intake") as http:
        answer = http.put(
            f"/v1/accounts/{account}/keys/{exchange}/{role}",
            json={"name": f"{account} {role}", **key.credentials()},
        )
    assert answer.status_code in (200, 201), answer.text
    return key


async def _call(instance: Any, sandbox: SandboxServer, exchange: str, key: Any) -> Any:
    instance.urls["api"] = _rewrite(
        instance.urls["api"], sandbox.exchange_urls[exchange], getattr(instance, "hostname", None)
    )
    instance.enableRateLimit = False
    spec = BY_NAME[exchange]
    try:
        return spec.rights(await getattr(instance, spec.method)(spec.params(key)), key)
    finally:
        await instance.close()


def _forms(secret: str) -> list[str]:
    raw = secret.encode()
    return [secret, base64.b64encode(raw).decode(), raw.hex()]


async def test_transit_custody_story(env: BrokerEnv, sandbox: SandboxServer, devvault: Any) -> None:
    root = env.root
    site_keys = {ex: _put(env, sandbox, "alice", ex, "site", "read_only") for ex in ACCEPTED}
    robot_keys = {
        ex: _put(env, sandbox, "alice", ex, "robot", "trade_whitelisted") for ex in ACCEPTED
    }
    extra = {acct: _put(env, sandbox, acct, ex, "robot", lbl) for acct, (ex, lbl) in EXTRA.items()}
    secrets = [k.secret for k in [*site_keys.values(), *robot_keys.values(), *extra.values()]]

    # 1. No KV path and no Transit read holds a secret (root reads a superset of every
    #    principal's reach); the broker's audit lines neither.
    readable: list[Any] = [env.read_key(*path.split("/")) for path in env.all_paths()]
    for name in root.list(f"{MOUNT}/keys")["data"]["keys"]:
        readable.append(root.read(f"{MOUNT}/keys/{name}"))
    readable.append(env.audit_lines())
    dump = json.dumps(readable)
    for secret in secrets:
        for form in _forms(secret):
            assert form not in dump
    assert all("secret" not in (env.read_key(*p.split("/")) or {}) for p in env.all_paths())

    # 2. The site reads through Vault-signed ccxt objects, on every exchange.
    site = SiteKeyClient(env.url, env.site_backend_token, root.url, verify=False)
    for exchange, key in site_keys.items():
        instance = site.signing_exchange("alice", exchange, asynchronous=True)
        assert (await _call(instance, sandbox, exchange, key))[0] is False  # read-only key

    # 2b. The site token expires (5 min) under a signing object: the next request gets a
    #     403 from Vault, the client asks the broker for a new token and signs again.
    before = site._vault.token
    instance = site.signing_exchange("alice", "okx", asynchronous=True)
    devvault.clock.advance(600)
    assert (await _call(instance, sandbox, "okx", site_keys["okx"]))[0] is False
    assert site._vault.token != before

    # 3. The robot trades through them, on every exchange and every scheme.
    creds = issue_approle_credentials(root, "keybroker-robot")
    robot = RobotKeyClient(root.url, creds.role_id, creds.secret_id)
    for exchange, key in robot_keys.items():
        instance = robot.signing_exchange("alice", exchange, asynchronous=True)
        assert (await _call(instance, sandbox, exchange, key))[0] is True
    for account, (exchange, _) in EXTRA.items():
        instance = robot.signing_exchange(account, exchange, asynchronous=True)
        assert (await _call(instance, sandbox, exchange, extra[account]))[0] is True

    # 4. Role separation and no export, for every principal (403 from Vault).
    site_token = site._vault.token  # the broker-minted batch token the client holds
    robot_token = robot._vault.token
    broker_token = create_caller_token(root, [BROKER_POLICY, BROKER_TRANSIT_POLICY], "10m")
    as_site = hvac.Client(url=root.url, token=site_token)
    with pytest.raises(hvac.exceptions.Forbidden):
        as_site.write_data(f"{MOUNT}/hmac/robot-alice-okx", data={"input": "eA=="})
    as_broker = hvac.Client(url=root.url, token=broker_token)
    with pytest.raises(hvac.exceptions.Forbidden):
        as_broker.write_data(f"{MOUNT}/hmac/site-alice-okx", data={"input": "eA=="})
    for token in (site_token, robot_token, broker_token):
        who = hvac.Client(url=root.url, token=token)
        for path in ("export/hmac-key/robot-alice-okx", "backup/robot-alice-okx"):
            with pytest.raises(hvac.exceptions.Forbidden):
                who.read(f"{MOUNT}/{path}")

    # 5. Replace the robot's OKX key: the rebuilt object signs with Transit version 2.
    old = robot.get_key("alice", "okx")
    replacement = _put(env, sandbox, "alice", "okx", "robot", "expiring_soon")
    assert robot.has_new_version(old)
    new = robot.get_key("alice", "okx")
    assert new.transit["transit_version"] == "2" and new.api_key == replacement.api_key
    instance = robot.signing_exchange("alice", "okx", asynchronous=True, key=new)
    assert (await _call(instance, sandbox, "okx", replacement))[0] is True

    # 6. Delete it: signing fails (the Transit key is gone), the robot waits for a new one.
    stale = robot.signing_exchange("alice", "okx", asynchronous=True, key=new)
    with env.http("intake") as http:
        assert http.delete("/v1/accounts/alice/keys/okx/robot").status_code == 204
    assert root.read(f"{MOUNT}/keys/robot-alice-okx") is None
    with pytest.raises(KeyNotFound):
        await _call(stale, sandbox, "okx", replacement)
    with pytest.raises(KeyNotFound):
        robot.get_key("alice", "okx")
    resumed_key = _put(env, sandbox, "alice", "okx", "robot", "trade_whitelisted")
    resumed = robot.wait_for_key("alice", "okx", timeout=5)
    instance = robot.signing_exchange("alice", "okx", asynchronous=True, key=resumed)
    assert (await _call(instance, sandbox, "okx", resumed_key))[0] is True
    site.close()
