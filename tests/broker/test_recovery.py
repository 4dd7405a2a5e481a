"""Writes whose outcome Vault leaves unknown, damaged metadata and debris (issue 17).

Per fault, the answer, the end state and the audit line (the table in docs/broker.md):

- Vault slower than the broker's timeout during the data write, or both answers of the
  data write lost: 503 with outcome `unknown`; then the new version live, older ones
  destroyed, its facts in metadata; `key.replaced` with `recovered: true`.
- both data writes refused before Vault applied them: 503 `unknown`; then the key as it
  was; `key.write_abandoned`.
- damaged custom metadata: 200 with status `damaged` and warning `metadata_damaged`;
  the key is unchanged until replaced or deleted through the API; `key.metadata_damaged`.
- a metadata-only entry or stray slots left by an older broker: removed when the
  account is listed; `key.repaired`.

On the code before issue 17, the first two ended with version 2 live, version 1 not
destroyed and no `key.replaced` line; damaged metadata gave 500 on GET, LIST and PUT;
debris stayed. Needs devvault (faults): skipped on a real Vault.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest

from broker.intents import Intent
from broker.keystore import KeyFacts
from broker.layout import KeyPaths
from broker.reasons import Permissions
from tests.broker.helpers import assert_envelope, key_body
from tests.broker.test_failures import (
    arm_at,
    data_write_answers_lost,
    hook_requests,
    intents,
    snapshot,
    store_first_version,
    wait_for,
)
from tests.fixtures.broker import FAULTY_VAULT_TIMEOUT, BrokerEnv, new_account


def _replaced_after_unknown_outcome(env: BrokerEnv, account: str, response: Any) -> None:
    """The checks shared by the unknown-outcome faults: 503 saying so, then the truth."""
    assert_envelope(response, 503, "vault_unavailable")
    assert response.headers["x-keybroker-write-outcome"] == "unknown"
    assert wait_for(lambda: not intents(env))
    snap = snapshot(env, account)
    assert snap["current_version"] == 2
    assert snap["versions"] == {"1": True, "2": False}  # v1 no longer readable
    assert {k.split(".")[0] for k in snap["custom_metadata"]} == {"v2"}
    with env.http() as http:
        view = http.get(f"/v1/accounts/{account}/keys/binance/site").json()
    assert view["version"] == 2 and view["name"] == "Second"
    recovered = [
        line
        for line in env.audit_lines()
        if line.get("account") == account and line["event"] == "key.replaced"
    ]
    assert [(line["version"], line.get("recovered")) for line in recovered] == [(2, True)]


def test_vault_slower_than_the_timeout_during_the_data_write(faulty_broker, fresh_sandbox):
    env, devvault = faulty_broker
    with env.http() as http:
        account, key, path = store_first_version(http, fresh_sandbox)

        async def before(op: str, _path: str) -> None:
            # Vault applies each data write, but later than the broker waits for it.
            devvault.faults.latency(FAULTY_VAULT_TIMEOUT + 0.1 if op == "write_data" else 0)

        unhook = hook_requests(env, before)
        response = http.put(path, json=key_body(key, "Second"))
        unhook()
        devvault.faults.reset()
    _replaced_after_unknown_outcome(env, account, response)


def test_both_answers_of_the_data_write_lost(faulty_broker, fresh_sandbox) -> None:
    env, _ = faulty_broker
    with env.http() as http:
        account, key, path = store_first_version(http, fresh_sandbox)
        # Vault applies (or cas-refuses) each data write; no answer ever arrives.
        with data_write_answers_lost(env) as lost:
            response = http.put(path, json=key_body(key, "Second"))
    assert lost["n"] == 2
    _replaced_after_unknown_outcome(env, account, response)


def test_an_intent_whose_data_never_landed_is_abandoned(faulty_broker, fresh_sandbox) -> None:
    """Both data writes fail before Vault applies them: 503 unknown, then the reconciler
    finds no new version, drops the intent and audits `key.write_abandoned`."""
    env, devvault = faulty_broker
    with env.http() as http:
        account, key, path = store_first_version(http, fresh_sandbox)
        before = snapshot(env, account)
        arm_at(env, devvault, "write_data", "fail_503")
        response = http.put(path, json=key_body(key, "Second"))
    devvault.faults.reset()
    assert response.headers["x-keybroker-write-outcome"] == "unknown"
    assert wait_for(lambda: not intents(env))
    assert snapshot(env, account) == before
    events = [line["event"] for line in env.audit_lines() if line.get("account") == account]
    assert events == ["key.accepted", "key.write_abandoned"]


DAMAGE = {
    "checked_at": "yesterday-ish",
    "ip_whitelist": "[not json",
    "permissions": "read,everything",
    "name": "",
}


@pytest.mark.parametrize("field", sorted(DAMAGE))
def test_damaged_metadata_is_reported_and_replaceable(faulty_broker, fresh_sandbox, field):
    env, _ = faulty_broker
    account = new_account()
    key = fresh_sandbox.key("binance", "read_only")
    other = fresh_sandbox.key("okx", "read_only")
    base = f"/v1/accounts/{account}/keys"
    with env.http() as http:
        assert http.put(f"{base}/binance/site", json=key_body(key)).status_code == 201
        assert http.put(f"{base}/okx/site", json=key_body(other)).status_code == 201
        meta = env.metadata("site", account, "binance")
        custom = dict(meta["custom_metadata"])
        if DAMAGE[field]:
            custom[f"v1.{field}"] = DAMAGE[field]
        else:
            del custom[f"v1.{field}"]
            custom["v1.status"] = "active"  # the slot still exists, without its name
            custom["v1.checked_at"] = "2026-01-01T00:00:00+00:00"
        env.root.secrets.kv.v2.update_metadata(
            f"site/{account}/binance", custom_metadata=custom, mount_point=env.mount
        )
        got = http.get(f"{base}/binance/site")
        listed = http.get(base)
        if field != "name":  # without a name the slot reads as absent, not damaged
            assert got.status_code == 200, got.text
            assert got.json()["status"] == "damaged"
            codes = [w["code"] for w in got.json()["warnings"]]
            assert "metadata_damaged" in codes
            assert DAMAGE[field] not in got.text  # the reason names the field, not the value
            assert any(
                line["event"] == "key.metadata_damaged" and line["account"] == account
                for line in env.audit_lines()
            )
        assert got.status_code == 200
        assert listed.status_code == 200
        assert {k["exchange"] for k in listed.json()["keys"]} == {"binance", "okx"}
        replaced = http.put(f"{base}/binance/site", json=key_body(key, "Repaired"))
        assert replaced.status_code == 200, replaced.text
        assert http.get(f"{base}/binance/site").json()["status"] == "active"
        assert http.delete(f"{base}/binance/site").status_code == 204


def test_debris_of_older_brokers_is_repaired(faulty_broker, fresh_sandbox) -> None:
    """A metadata-only entry (facts staged, then kill -9 before the data) shows in the
    LIST site tokens may run; a stray staged slot describes no version. Listing the
    account removes both (and audits it); the key itself is untouched."""
    env, _ = faulty_broker
    account = new_account()
    key = fresh_sandbox.key("binance", "read_only")
    kv = env.root.secrets.kv.v2
    with env.http() as http:
        assert http.put(f"/v1/accounts/{account}/keys/binance/site", json=key_body(key)).is_success
        staged = dict(env.metadata("site", account, "binance")["custom_metadata"])
        staged |= {"v2.name": "staged", "v2.txn": "abc", "v2.status": "active"}
        kv.update_metadata(f"site/{account}/binance", custom_metadata=staged, mount_point=env.mount)
        kv.update_metadata(
            f"site/{account}/okx",
            custom_metadata={"v1.name": "staged", "v1.txn": "def"},
            mount_point=env.mount,
        )
        assert sorted(env.account_paths(account)) == [
            f"site/{account}/binance",
            f"site/{account}/okx",
        ]
        listed = http.get(f"/v1/accounts/{account}/keys").json()["keys"]
    assert [k["exchange"] for k in listed] == ["binance"]
    assert env.account_paths(account) == [f"site/{account}/binance"]
    custom = env.metadata("site", account, "binance")["custom_metadata"]
    assert {k.split(".")[0] for k in custom} == {"v1"}
    repaired = [line for line in env.audit_lines() if line["event"] == "key.repaired"]
    assert {line["exchange"] for line in repaired if line["account"] == account} == {
        "binance",
        "okx",
    }


def test_an_unlanded_intent_is_not_taken_for_a_later_writers_version(
    faulty_broker, fresh_sandbox
) -> None:
    """A writer died after its intent (base 1) and before its data; another writer then
    committed version 2 and a third version 3 (whose slot replaces version 2's). The
    reconciler must not claim version 2 for the dead writer: slots remember their
    predecessors' writers. Before this, it audited a `recovered` line for version 2 with
    the dead writer's key_id."""
    env, _ = faulty_broker
    with env.http() as http:
        account, key, path = store_first_version(http, fresh_sandbox, "v1")
        dead = Intent(
            KeyPaths(env.mount, "site", account, "binance"),
            txn="0" * 16,  # sorts first: the old rule took the lowest txn
            base=1,
            started_at=time.time(),
            caller="",
            key_id="dead-writer",
            slot=KeyFacts(
                name="never landed",
                api_key_masked="dead...beef",
                status="active",
                checked_at=datetime.now(UTC),
                permissions=Permissions(read=True),
                ip_restricted=True,
                ip_whitelist=None,
                expires_at=None,
            ).to_slot(2, "0" * 16),
        )
        env.root.secrets.kv.v2.update_metadata(
            f"intents/{dead.name}", custom_metadata=dead.to_metadata(), mount_point=env.mount
        )
        assert http.put(path, json=key_body(key, "v2")).status_code == 200
        assert http.put(path, json=key_body(key, "v3")).status_code == 200
    assert wait_for(lambda: not intents(env))
    mine = [line for line in env.audit_lines() if line.get("account") == account]
    abandoned = [line for line in mine if line["event"] == "key.write_abandoned"]
    assert [line["txn"] for line in abandoned] == ["0" * 16]
    assert not any(line.get("recovered") for line in mine)
    assert snapshot(env, account)["versions"] == {"1": True, "2": True, "3": False}
