"""The `transit` custody story through the real broker, devvault and the sandbox.

Site and robot keys for all twelve exchanges, and of every further signing scheme
(KuCoin v2, Binance RSA and Ed25519, Bybit RSA, Coinbase CDP ES256 and EdDSA), go in
through the broker; the site and the robot trade/read through Vault-signed ccxt objects;
every keybroker principal (broker, intake, site backend, site token, robot) reads every
KV path and Transit read endpoint and no answer holds a secret (canaries); export and
backup are 403 for each of them; the site cannot sign with robot keys, the robot not
with site keys, the broker with none; a replaced key signs with its new version; a
deleted key stops signing and the robot resumes with a new one.

On the code before issue 13's completion the Binance RSA/Ed25519 and Bybit RSA
submissions were refused (`non_hmac_key`, 422), so this test failed at its first PUT of
a ROBOT_SCHEMES key.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import hvac
import pytest
import requests

from broker.bootstrap import apply_layout, issue_approle_credentials
from broker.client import KeyNotFound, RobotKeyClient, SiteKeyClient
from broker.layout import layout_from_settings
from keybroker_dev.sandbox import SandboxServer
from tests.fixtures.broker import BrokerEnv, build_broker_env
from tests.sandbox.specs import BY_NAME
from tests.transit.helpers import (
    MOUNT,
    ROBOT_SCHEMES,
    SITE_SCHEMES,
    assert_no_secret,
    call_sandbox,
    site_scheme_keys,
)

# All twelve exchanges: MEXC's rights it cannot report are accepted with a warning, as
# dev mode does (ACCEPT_UNVERIFIABLE=mexc).
EXCHANGES = sorted(BY_NAME)
EXPORT_TYPES = ("encryption-key", "signing-key", "hmac-key", "public-key", "certificate-chain")


@pytest.fixture
def env(devvault: Any, sandbox: SandboxServer) -> Iterator[BrokerEnv]:
    broker = build_broker_env(
        devvault.addr,
        devvault.root_token,
        sandbox.exchange_urls,
        site_custody="transit",
        robot_custody="transit",
        allow_futures=True,  # some exchanges report trade keys as futures-capable
        accept_unverifiable=["mexc"],
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


def _approle_token(root: hvac.Client, role: str) -> str:
    creds = issue_approle_credentials(root, role)
    login = hvac.Client(url=root.url).auth.approle.login(
        role_id=creds.role_id, secret_id=creds.secret_id, use_token=False
    )
    return str(login["auth"]["client_token"])


def _readable_paths(env: BrokerEnv) -> list[tuple[str, str]]:
    """(method, path) of every read of the KV mount and the Transit mount: every key's
    data (each version), metadata, each list level, every Transit read endpoint."""
    kv = env.mount
    reads: list[tuple[str, str]] = [("LIST", f"{kv}/metadata/"), ("GET", f"{kv}/config")]
    listed: set[str] = set()
    for path in sorted(env.all_paths()):
        parts = path.split("/")
        for depth in range(1, len(parts)):
            listed.add("/".join(parts[:depth]) + "/")
        meta = env.metadata(*parts) or {}
        reads += [("GET", f"{kv}/data/{path}"), ("GET", f"{kv}/metadata/{path}")]
        reads += [("GET", f"{kv}/data/{path}?version={v}") for v in meta.get("versions", {})]
    reads += [("LIST", f"{kv}/metadata/{prefix}") for prefix in sorted(listed)]
    reads += [("LIST", f"{MOUNT}/keys/"), ("GET", f"{MOUNT}/wrapping_key")]
    for name in env.root.list(f"{MOUNT}/keys")["data"]["keys"]:
        reads.append(("GET", f"{MOUNT}/keys/{name}"))
        reads.append(("GET", f"{MOUNT}/backup/{name}"))
        reads += [("GET", f"{MOUNT}/export/{kind}/{name}") for kind in EXPORT_TYPES]
        reads += [("GET", f"{MOUNT}/export/{kind}/{name}/1") for kind in EXPORT_TYPES]
    return reads


def _scan(addr: str, token: str, reads: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
    """(method, path) -> (status, body) as this token sees them."""
    seen = {}
    for method, path in reads:
        answer = requests.request(
            method, f"{addr}/v1/{path}", headers={"X-Vault-Token": token}, timeout=10
        )
        seen[(method, path)] = (answer.status_code, answer.text)
    return seen


def _sign_status(addr: str, token: str, path: str) -> int:
    answer = requests.post(
        f"{addr}/v1/{MOUNT}/{path}",
        headers={"X-Vault-Token": token},
        json={"input": base64.b64encode(b"order").decode()},
        timeout=10,
    )
    return answer.status_code


async def test_transit_custody_story(env: BrokerEnv, sandbox: SandboxServer, devvault: Any) -> None:
    root = env.root
    site_keys = {ex: _put(env, sandbox, "alice", ex, "site", "read_only") for ex in EXCHANGES}
    robot_keys = {
        ex: _put(env, sandbox, "alice", ex, "robot", "trade_whitelisted") for ex in EXCHANGES
    }
    extra = {
        acct: _put(env, sandbox, acct, ex, "robot", lbl)
        for acct, (ex, lbl) in ROBOT_SCHEMES.items()
    }
    for key in site_scheme_keys():
        sandbox.add_key(key)
    site_extra = {
        acct: _put(env, sandbox, acct, ex, "site", lbl) for acct, (ex, lbl) in SITE_SCHEMES.items()
    }
    every = [*site_keys.values(), *robot_keys.values(), *extra.values(), *site_extra.values()]
    secrets = [k.secret for k in every]

    # 1. The site reads through Vault-signed ccxt objects, on every exchange and scheme.
    site = SiteKeyClient(env.url, env.site_backend_token, root.url, verify=False)
    site_reads = [(("alice", ex), k) for ex, k in site_keys.items()]
    site_reads += [((acct, SITE_SCHEMES[acct][0]), k) for acct, k in site_extra.items()]
    for (account, exchange), key in site_reads:
        instance = site.signing_exchange(account, exchange, asynchronous=True)
        assert (await call_sandbox(instance, sandbox, exchange, key))[0] is False  # read-only

    # 1b. The site token expires (5 min) under a signing object: the next request gets a
    #     403 from Vault, the client asks the broker for a new token and signs again.
    before = site.vault_token("alice")
    instance = site.signing_exchange("alice", "okx", asynchronous=True)
    devvault.clock.advance(600)
    assert (await call_sandbox(instance, sandbox, "okx", site_keys["okx"]))[0] is False
    assert site.vault_token("alice") != before

    # 2. The robot trades through them, on every exchange and every scheme.
    creds = issue_approle_credentials(root, "keybroker-robot")
    robot = RobotKeyClient(root.url, creds.role_id, creds.secret_id)
    for exchange, key in robot_keys.items():
        instance = robot.signing_exchange("alice", exchange, asynchronous=True)
        assert (await call_sandbox(instance, sandbox, exchange, key))[0] is True
    for account, (exchange, _) in ROBOT_SCHEMES.items():
        instance = robot.signing_exchange(account, exchange, asynchronous=True)
        assert (await call_sandbox(instance, sandbox, exchange, extra[account]))[0] is True

    # 3. Every keybroker principal reads every KV path and Transit read endpoint; no
    #    answer (whatever its status) holds any form of any secret. Root too (a superset).
    principals = {
        "broker": _approle_token(root, "keybroker-broker"),
        "intake": env.intake_token,
        "site-backend": env.site_backend_token,
        "site token": site.vault_token("alice"),  # minted by the broker's token role
        "robot": _approle_token(root, "keybroker-robot"),
        "root": root.token,
    }
    reads = _readable_paths(env)
    # per key: data, version 1, metadata, the Transit key, backup, 10 exports
    assert len(reads) > len(secrets) * 15
    answered: dict[str, int] = {}
    for who, token in principals.items():
        seen = _scan(root.url, token, reads)
        assert_no_secret([body for _, body in seen.values()], secrets, f"{who}'s reads")
        answered[who] = sum(1 for status, _ in seen.values() if status == 200)
        # export and backup: 403 for every keybroker principal, on every key
        if who != "root":
            refused = {path: st for (_, path), (st, _) in seen.items() if "/export/" in path}
            refused |= {path: st for (_, path), (st, _) in seen.items() if "/backup/" in path}
            assert refused and set(refused.values()) == {403}, who
    # The scan reached what each may read: the site its keys' records, the robot its own,
    # root all; the broker, intake and site backend no key data.
    assert answered["site token"] >= len(site_reads) and answered["robot"] >= len(robot_keys)
    assert answered["root"] > answered["site token"] + answered["robot"]
    assert_no_secret(env.audit_lines(), secrets, "the broker's audit lines")
    with env.http("intake") as http:
        listing = http.get("/v1/accounts/alice/keys")
    assert listing.status_code == 200 and len(listing.json()["keys"]) == 24
    assert_no_secret(listing.text, secrets, "the broker's key listing")
    assert all("secret" not in (env.read_key(*p.split("/")) or {}) for p in env.all_paths())

    # 4. Role separation: the site token cannot HMAC/sign with any robot key, the robot
    #    with any site key, the broker with any key; intake and site backend with none.
    robot_names = [f"robot-alice-{ex}" for ex in EXCHANGES] + [
        f"robot-{acct}-{ex}" for acct, (ex, _) in ROBOT_SCHEMES.items()
    ]
    site_names = [f"site-alice-{ex}" for ex in EXCHANGES] + [
        f"site-{acct}-{ex}" for acct, (ex, _) in SITE_SCHEMES.items()
    ]
    denied = {
        "site token": robot_names,
        "robot": site_names,
        "broker": robot_names + site_names,
        "intake": robot_names + site_names,
        "site-backend": robot_names + site_names,
    }
    for who, names in denied.items():
        for name in names:
            for op in ("hmac", "sign"):
                status = _sign_status(root.url, principals[who], f"{op}/{name}")
                assert status == 403, (who, op, name)
    assert _sign_status(root.url, principals["site token"], "hmac/site-alice-okx") == 200
    assert _sign_status(root.url, principals["robot"], "hmac/robot-alice-okx") == 200

    # 5. Replace the robot's OKX key: the rebuilt object signs with Transit version 2.
    old = robot.get_key("alice", "okx")
    replacement = _put(env, sandbox, "alice", "okx", "robot", "expiring_soon")
    assert robot.has_new_version(old)
    new = robot.get_key("alice", "okx")
    assert new.transit["transit_version"] == "2" and new.api_key == replacement.api_key
    instance = robot.signing_exchange("alice", "okx", asynchronous=True, key=new)
    assert (await call_sandbox(instance, sandbox, "okx", replacement))[0] is True

    # 6. Delete it: signing fails (the Transit key is gone), the robot waits for a new one.
    stale = robot.signing_exchange("alice", "okx", asynchronous=True, key=new)
    with env.http("intake") as http:
        assert http.delete("/v1/accounts/alice/keys/okx/robot").status_code == 204
    assert root.read(f"{MOUNT}/keys/robot-alice-okx") is None
    with pytest.raises(KeyNotFound):
        await call_sandbox(stale, sandbox, "okx", replacement)
    with pytest.raises(KeyNotFound):
        robot.get_key("alice", "okx")
    resumed_key = _put(env, sandbox, "alice", "okx", "robot", "trade_whitelisted")
    resumed = robot.wait_for_key("alice", "okx", timeout=5)
    instance = robot.signing_exchange("alice", "okx", asynchronous=True, key=resumed)
    assert (await call_sandbox(instance, sandbox, "okx", resumed_key))[0] is True
    site.close()
