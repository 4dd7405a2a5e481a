"""Crash-safe intake under `transit` custody: no Transit key or version outlives its write.

The secret is imported into Transit before KV names it (docs/custody.md "Crash safety").
Per fault, the answer, the end state and the audit line (the table in docs/custody.md):

- a new key whose data write fails (503 `unknown`), or whose broker is killed (kill -9)
  before the reconciler runs: the write's intent names the Transit key it created; the
  reconciler (of any broker process) deletes that key; `key.write_abandoned` with
  `transit_deleted: true`;
- a replacement whose data write fails: KV still names the version it had, which still
  signs; the imported version stays (Vault cannot remove a version above the live one)
  and is audited as `transit_unused_version`;
- a deletion whose Transit delete fails: 503; KV is gone at once, the Transit key is
  deleted by the reconciler; `key.deleted` with `transit_pending: true`, then
  `key.transit_deleted`.

On the code before this change, the Transit key of a failed new key stayed forever with
no KV record, the abandoned replacement's audit line did not name the unused version,
and a failed Transit delete was never retried. Needs devvault (faults).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hvac
import hvac.exceptions
import pytest

from broker.bootstrap import create_caller_token, issue_approle_credentials
from broker.intents import DamagedIntent, Intent
from broker.layout import INTAKE_POLICY, KeyPaths, transit_key_name
from keybroker_dev.sandbox.keys import ROBOT_EGRESS_IP
from tests.broker.helpers import assert_envelope, key_body
from tests.broker.test_crash import BrokerProcess, _warm_up
from tests.broker.test_failures import arm_at, intents, wait_for
from tests.fixtures.broker import (
    BrokerEnv,
    build_broker_env,
    build_faulty_broker_env,
    new_account,
)


@pytest.fixture
def transit_broker(devvault: Any, fresh_sandbox: Any) -> Iterator[tuple[BrokerEnv, Any]]:
    """faulty_broker (tests/fixtures/broker.py) under `transit` custody."""
    env = build_faulty_broker_env(
        devvault, fresh_sandbox, site_custody="transit", robot_custody="transit"
    )
    # Vault makes the mount's RSA-4096 wrapping key on its first request, which can take
    # longer than this broker's 0.3 s Vault timeout: make it before the test starts.
    env.root.read(f"{env.settings.transit_mount}/wrapping_key")
    yield env, devvault
    devvault.faults.reset()
    env.running.stop()


def transit_key(root: hvac.Client, mount: str, account: str) -> dict[str, Any] | None:
    """The Transit key of `account`'s binance site key as root reads it (None: none)."""
    try:
        answer = root.read(f"{mount}/keys/{transit_key_name('site', account, 'binance')}")
    except hvac.exceptions.InvalidPath:
        return None
    return answer["data"] if answer else None


def intent_records(root: hvac.Client, mount: str) -> list[dict[str, str]]:
    try:
        names = root.secrets.kv.v2.list_secrets("intents", mount_point=mount)["data"]["keys"]
    except hvac.exceptions.InvalidPath:
        return []
    return [
        root.secrets.kv.v2.read_secret_metadata(f"intents/{n}", mount_point=mount)["data"][
            "custom_metadata"
        ]
        for n in names
    ]


def events(env: BrokerEnv, account: str) -> list[dict[str, Any]]:
    return [line for line in env.audit_lines() if line.get("account") == account]


def test_a_new_key_whose_write_fails_leaves_no_transit_key(transit_broker, fresh_sandbox):
    env, devvault = transit_broker
    mount = env.settings.transit_mount
    account = new_account()
    path = f"/v1/accounts/{account}/keys/binance/site"
    with env.http() as http:
        http.get(f"/v1/accounts/{account}/keys")  # caches the caller
        arm_at(env, devvault, "write_data", "fail_503")
        response = http.put(path, json=key_body(fresh_sandbox.key("binance", "read_only")))
        devvault.faults.reset()
        assert_envelope(response, 503, "vault_unavailable")
        assert response.headers["x-keybroker-write-outcome"] == "unknown"
        # Before the reconciler: the imported key exists, and the intent names it.
        assert transit_key(env.root, mount, account) is not None
        (record,) = [r for r in intent_records(env.root, env.mount) if account in r["intent.key"]]
        assert record["intent.transit_key"] == transit_key_name("site", account, "binance")
        assert (record["intent.transit_base"], record["intent.transit_version"]) == ("0", "1")
        assert wait_for(lambda: not intents(env))
        assert http.get(path).status_code == 404
    assert transit_key(env.root, mount, account) is None
    (line,) = [line for line in events(env, account) if line["event"] == "key.write_abandoned"]
    assert line["transit_deleted"] is True and line["transit_key"] == record["intent.transit_key"]


def test_an_abandoned_replacement_keeps_signing_with_the_live_version(
    transit_broker, fresh_sandbox
):
    env, devvault = transit_broker
    mount = env.settings.transit_mount
    account = new_account()
    path = f"/v1/accounts/{account}/keys/binance/site"
    first = fresh_sandbox.key("binance", "read_only")
    with env.http() as http:
        assert http.put(path, json=key_body(first)).status_code == 201
        arm_at(env, devvault, "write_data", "fail_503")
        response = http.put(path, json=key_body(fresh_sandbox.key("binance", "read_only")))
        devvault.faults.reset()
        assert response.headers["x-keybroker-write-outcome"] == "unknown"
        assert wait_for(lambda: not intents(env))
        assert http.get(path).json()["version"] == 1
    # KV still names Transit version 1; the key still signs with it, as the first secret.
    data = env.read_key("site", account, "binance")
    assert data is not None and data["transit_version"] == "1"
    described = transit_key(env.root, mount, account)
    assert described is not None and described["latest_version"] == 2
    challenge = b"after an abandoned replacement"
    signed = env.root.write(
        f"{mount}/hmac/{data['transit_key']}",
        input=base64.b64encode(challenge).decode(),
        key_version=1,
    )["data"]["hmac"]
    expected = hmac.new(first.secret.encode(), challenge, hashlib.sha256).digest()
    assert signed == f"vault:v1:{base64.b64encode(expected).decode()}"
    (line,) = [line for line in events(env, account) if line["event"] == "key.write_abandoned"]
    assert line["transit_unused_version"] == 2 and "transit_deleted" not in line


def test_a_failed_transit_delete_is_finished_by_the_reconciler(transit_broker, fresh_sandbox):
    env, devvault = transit_broker
    mount = env.settings.transit_mount
    account = new_account()
    path = f"/v1/accounts/{account}/keys/binance/site"
    with env.http() as http:
        assert (
            http.put(path, json=key_body(fresh_sandbox.key("binance", "read_only"))).status_code
            == 201
        )
        arm_at(env, devvault, "transit_delete", "fail_503")
        response = http.delete(path)
        devvault.faults.reset()
        assert_envelope(response, 503, "vault_unavailable")
        assert env.metadata("site", account, "binance") is None  # KV went at once
        assert transit_key(env.root, mount, account) is not None  # still signs, for now
        assert wait_for(lambda: transit_key(env.root, mount, account) is None)
        assert wait_for(lambda: not intents(env))
        assert http.get(path).status_code == 404
    assert [(line["event"], line.get("transit_pending")) for line in events(env, account)] == [
        ("key.accepted", None),
        ("key.deleted", True),
        ("key.transit_deleted", None),
    ]


def test_a_deletion_is_clean_and_leaves_no_intent(transit_broker, fresh_sandbox) -> None:
    env, _ = transit_broker
    account = new_account()
    path = f"/v1/accounts/{account}/keys/binance/site"
    with env.http() as http:
        assert (
            http.put(path, json=key_body(fresh_sandbox.key("binance", "read_only"))).status_code
            == 201
        )
        assert http.delete(path).status_code == 204
        assert http.delete(path).status_code == 404
    assert transit_key(env.root, env.settings.transit_mount, account) is None
    assert not intents(env)
    assert [line["event"] for line in events(env, account)] == ["key.accepted", "key.deleted"]


def test_kill_9_after_a_failed_write_then_restart(devvault, fresh_sandbox, tmp_path: Path):
    """The broker answers 503 `unknown` for a new key, then dies (kill -9) before its
    reconciler ran; the next process, reading the intent from Vault, deletes the key's
    Transit key."""
    env = build_broker_env(devvault.addr, devvault.root_token, fresh_sandbox.exchange_urls)
    env.running.stop()  # only the layout and its root client are used here
    root, mount = env.root, env.settings.transit_mount
    creds = issue_approle_credentials(root, "keybroker-broker")
    token = create_caller_token(root, [INTAKE_POLICY], "1h")
    process_env = {
        **os.environ,
        "KEYBROKER_VAULT_ADDR": devvault.addr,
        "KEYBROKER_VAULT_ROLE_ID": creds.role_id,
        "KEYBROKER_VAULT_SECRET_ID": creds.secret_id,
        "KEYBROKER_EXCHANGE_URLS": json.dumps(fresh_sandbox.exchange_urls),
        "KEYBROKER_ROBOT_EXCHANGE_EGRESS_IPS": ROBOT_EGRESS_IP,
        "KEYBROKER_ROBOT_VAULT_CIDRS": ROBOT_EGRESS_IP,
        "KEYBROKER_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
        "KEYBROKER_AUDIT_HMAC_KEY": "orphan-test-audit-key",
        "KEYBROKER_INTENT_GRACE": "60s",  # the first process must not reconcile
        "KEYBROKER_SITE_CUSTODY": "transit",
    }
    process_env.pop("KEYBROKER_CONFIG_FILE", None)
    account = new_account("kill")
    log = tmp_path / "broker.log"
    broker = BrokerProcess(process_env, log)
    try:
        _warm_up(broker.url, token, fresh_sandbox)
        data_path = f"{env.mount}/data/site/{account}/binance"
        devvault.faults.fail_next(4, status=503, path_prefix=data_path)
        answer = httpx.put(
            f"{broker.url}/v1/accounts/{account}/keys/binance/site",
            json=key_body(fresh_sandbox.key("binance", "read_only")),
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert answer.status_code == 503
        assert answer.headers["x-keybroker-write-outcome"] == "unknown"
    finally:
        broker.kill9()
        devvault.faults.reset()
    assert transit_key(root, mount, account) is not None  # the orphan the crash left
    restarted = BrokerProcess({**process_env, "KEYBROKER_INTENT_GRACE": "200ms"}, log)
    try:
        deadline = time.monotonic() + 15
        while transit_key(root, mount, account) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        restarted.stop()
    assert transit_key(root, mount, account) is None
    assert not [r for r in intent_records(root, env.mount) if account in r["intent.key"]]
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    (line,) = [
        x for x in lines if x.get("account") == account and x["event"] == "key.write_abandoned"
    ]
    assert line["transit_deleted"] is True


def _intent(**transit: Any) -> Intent:
    paths = KeyPaths("exchange-keys", "site", "alice", "binance")
    return Intent(paths, "ab12", 3, time.time(), "c", "k", {}, **transit)


def test_an_intent_carries_its_transit_key_and_refuses_a_foreign_one() -> None:
    intent = _intent(transit_key="site-alice-binance", transit_base=2, transit_version=3)
    back = Intent.from_metadata("exchange-keys", intent.to_metadata())
    assert (back.transit_key, back.transit_base, back.transit_version) == (
        "site-alice-binance",
        2,
        3,
    )
    assert Intent.from_metadata("exchange-keys", _intent().to_metadata()).transit_key == ""
    # An intent naming another key's Transit key is never acted on.
    foreign = {**intent.to_metadata(), "intent.transit_key": "robot-bob-binance"}
    with pytest.raises(DamagedIntent):
        Intent.from_metadata("exchange-keys", foreign)


def test_vault_failing_halfway_through_the_import_leaves_no_transit_key(
    transit_broker, fresh_sandbox
) -> None:
    """The import lands but the config that allows its deletion fails: 503 `not_stored`;
    the reconciler allows and deletes the key."""
    env, devvault = transit_broker
    mount = env.settings.transit_mount
    account = new_account()
    path = f"/v1/accounts/{account}/keys/binance/site"
    with env.http() as http:
        http.get(f"/v1/accounts/{account}/keys")
        arm_at(env, devvault, "transit_config", "fail_503")
        response = http.put(path, json=key_body(fresh_sandbox.key("binance", "read_only")))
        assert_envelope(response, 503, "vault_unavailable")
        assert response.headers["x-keybroker-write-outcome"] == "not_stored"
        assert transit_key(env.root, mount, account) is not None
        devvault.faults.reset()
        assert wait_for(lambda: not intents(env))
        assert http.get(path).status_code == 404
    assert transit_key(env.root, mount, account) is None
    (line,) = [line for line in events(env, account) if line["event"] == "key.write_abandoned"]
    assert line["transit_deleted"] is True


def test_a_failed_kv_delete_keeps_the_key_and_its_transit_key(transit_broker, fresh_sandbox):
    env, devvault = transit_broker
    account = new_account()
    path = f"/v1/accounts/{account}/keys/binance/site"
    with env.http() as http:
        first = http.put(path, json=key_body(fresh_sandbox.key("binance", "read_only")))
        assert first.status_code == 201
        arm_at(env, devvault, "delete", "fail_503")
        assert_envelope(http.delete(path), 503, "vault_unavailable")
        devvault.faults.reset()
        assert wait_for(lambda: not intents(env))
        assert http.get(path).json()["version"] == 1
    assert transit_key(env.root, env.settings.transit_mount, account) is not None
    assert [line["event"] for line in events(env, account)] == [
        "key.accepted",
        "key.delete_abandoned",
    ]


def test_a_replacement_whose_import_fails_is_not_stored(transit_broker, fresh_sandbox) -> None:
    env, devvault = transit_broker
    account = new_account()
    path = f"/v1/accounts/{account}/keys/binance/site"
    with env.http() as http:
        assert (
            http.put(path, json=key_body(fresh_sandbox.key("binance", "read_only"))).status_code
            == 201
        )
        arm_at(env, devvault, "transit_import_version", "fail_503")
        response = http.put(path, json=key_body(fresh_sandbox.key("binance", "read_only")))
        devvault.faults.reset()
        assert_envelope(response, 503, "vault_unavailable")
        assert response.headers["x-keybroker-write-outcome"] == "not_stored"
        assert wait_for(lambda: not intents(env))
        assert http.get(path).json()["version"] == 1
    described = transit_key(env.root, env.settings.transit_mount, account)
    assert described is not None and described["latest_version"] == 1
    (line,) = [line for line in events(env, account) if line["event"] == "key.write_abandoned"]
    assert line["transit_import_unconfirmed"] is True
