"""Failures halfway: Vault down or sealed at each intake step, the exchange down or slow,
concurrent replacements. A failure before the commit answers 503 with the contract's
code, Retry-After and whether anything may be stored (X-Keybroker-Write-Outcome); the
reconciler then settles the write's intent, and Vault ends as it was. A failure after the
commit leaves the new key live and the reconciler finishes it (docs/broker.md).

Vault faults come from devvault's fault injection (`fail_next`, `drop_next`, `seal`),
armed at the exact step: a thin wrapper around the broker's VaultSession arms the fault
right before the step's own Vault request goes out. These tests need devvault and skip
on a real Vault.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import hvac.exceptions
import pytest

from keybroker_dev.sandbox.keys import ROBOT_EGRESS_IP, new_key
from tests.broker.helpers import assert_envelope, key_body
from tests.fixtures.broker import BrokerEnv, new_account

# Each fault hits two requests to the step's own Vault path: the step's and the one
# retry the broker (the data write, safe under cas) or aiohttp (an idempotent read on a
# dropped connection) makes. Bound to the path, so that the reconciler's background
# requests never use them up. Single faults are absorbed; test_single_* pin that.
FAULTS: dict[str, Callable[[Any, str], None]] = {
    "fail_503": lambda dv, path: dv.faults.fail_next(2, status=503, path_prefix=path),
    "fail_500": lambda dv, path: dv.faults.fail_next(2, status=500, path_prefix=path),
    "drop": lambda dv, path: dv.faults.drop_next(2, path_prefix=path),
    "seal": lambda dv, path: dv.faults.seal(),
}
# The Vault requests of one intake up to the commit, in order (broker/keystore.py), and
# what a 503 there says about the outcome.
NEW_KEY_STEPS = ["read_metadata", "write_intent", "write_data"]
OUTCOME = {"read_metadata": "not_stored", "write_intent": "not_stored", "write_data": "unknown"}
# After the commit point.
FINISH_STEPS = ["write_metadata", "destroy", "delete_intent"]


def hook_requests(
    env: BrokerEnv, before: Callable[[str, str], Awaitable[None]]
) -> Callable[[], None]:
    """Await `before(op, path)` ahead of each of the broker's VaultSession requests;
    returns the call that takes the hook out again."""
    session = env.running.app.state.broker.session
    original = session.request

    async def request(op: str, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        await before(op, path)
        return await original(op, method, path, *args, **kwargs)

    session.request = request  # type: ignore[method-assign]
    return lambda: setattr(session, "request", original)


@contextmanager
def data_write_answers_lost(env: BrokerEnv, most: int | None = None) -> Iterator[dict[str, int]]:
    """While inside, Vault applies each data write but its answer never reaches the
    broker (the first `most`, or all); yields the running count of answers lost."""
    from broker.vault_session import VaultUnavailable

    session = env.running.app.state.broker.session
    original = session._send
    lost = {"n": 0}

    async def send(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        answer = await original(method, url, *args, **kwargs)
        if method == "POST" and "/data/" in url and (most is None or lost["n"] < most):
            lost["n"] += 1
            raise VaultUnavailable("connection lost after Vault applied the write")
        return answer

    session._send = send  # type: ignore[method-assign]
    try:
        yield lost
    finally:
        session._send = original  # type: ignore[method-assign]


def store_first_version(
    http: httpx.Client, sandbox: Any, name: str = "Main key"
) -> tuple[str, Any, str]:
    """A new account holding version 1 of a binance site key: (account, key, key URL path)."""
    account = new_account()
    key = sandbox.key("binance", "read_only")
    path = f"/v1/accounts/{account}/keys/binance/site"
    assert http.put(path, json=key_body(key, name)).status_code == 201
    return account, key, path


def arm_at(env: BrokerEnv, devvault: Any, operation: str, fault: str) -> None:
    """Arm `fault` right before the broker's first `operation` call to Vault (for the
    rest of the test: each test has its own broker)."""
    armed = {"done": False}

    async def before(op: str, path: str) -> None:
        if op == operation and not armed["done"]:
            armed["done"] = True
            FAULTS[fault](devvault, path.removeprefix("/v1/"))

    hook_requests(env, before)


def snapshot(env: BrokerEnv, account: str) -> dict[str, Any] | None:
    meta = env.metadata("site", account, "binance")
    if meta is None:
        return None
    return {
        "current_version": meta["current_version"],
        "versions": {n: v["destroyed"] for n, v in meta["versions"].items()},
        "custom_metadata": meta["custom_metadata"],
        "data": env.read_key("site", account, "binance"),
    }


def intents(env: BrokerEnv) -> list[str]:
    try:
        listed = env.root.secrets.kv.v2.list_secrets("intents", mount_point=env.mount)
    except hvac.exceptions.InvalidPath:
        return []
    return list(listed["data"]["keys"])


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll for the broker's reconciler (it settles intents older than its grace)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("step", NEW_KEY_STEPS)
def test_vault_failure_while_storing_a_new_key(faulty_broker, fresh_sandbox, step, fault) -> None:
    env, devvault = faulty_broker
    account = new_account()
    key = fresh_sandbox.key("binance", "read_only")
    with env.http() as http:
        http.get(f"/v1/accounts/{account}/keys")  # caches the caller: auth is not the step
        arm_at(env, devvault, step, fault)
        response = http.put(f"/v1/accounts/{account}/keys/binance/site", json=key_body(key))
    devvault.faults.reset()
    assert_envelope(response, 503, "vault_unavailable")
    assert response.headers["retry-after"] == "2"
    assert response.headers["x-keybroker-write-outcome"] == OUTCOME[step]
    # Nothing stored: no data, no metadata entry, and (once reconciled) no intent.
    assert env.read_key("site", account, "binance") is None
    assert snapshot(env, account) is None
    assert wait_for(lambda: not intents(env))
    if step == "write_data":  # the unknown outcome was settled, and audited
        assert any(
            line["event"] == "key.write_abandoned" and line["account"] == account
            for line in env.audit_lines()
        )
    with env.http() as http:
        assert http.get(f"/v1/accounts/{account}/keys").json() == {"keys": []}
        assert (
            http.put(f"/v1/accounts/{account}/keys/binance/site", json=key_body(key)).status_code
            == 201
        )


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("step", NEW_KEY_STEPS)
def test_vault_failure_while_replacing_leaves_the_old_key(
    faulty_broker, fresh_sandbox, step, fault
) -> None:
    env, devvault = faulty_broker
    account = new_account()
    old = fresh_sandbox.key("binance", "read_only")
    new = fresh_sandbox.key("binance", "read_only_no_whitelist")
    with env.http() as http:
        assert (
            http.put(
                f"/v1/accounts/{account}/keys/binance/site", json=key_body(old, "Old")
            ).status_code
            == 201
        )
        before = snapshot(env, account)
        view_before = http.get(f"/v1/accounts/{account}/keys/binance/site").json()
        arm_at(env, devvault, step, fault)
        response = http.put(f"/v1/accounts/{account}/keys/binance/site", json=key_body(new, "New"))
        devvault.faults.reset()
        assert_envelope(response, 503, "vault_unavailable")
        assert response.headers["x-keybroker-write-outcome"] == OUTCOME[step]
        assert wait_for(lambda: not intents(env))
        assert snapshot(env, account) == before
        assert http.get(f"/v1/accounts/{account}/keys/binance/site").json() == view_before


def test_single_dropped_read_is_retried(faulty_broker, fresh_sandbox) -> None:
    env, devvault = faulty_broker
    account = new_account()
    key = fresh_sandbox.key("binance", "read_only")
    with env.http() as http:
        http.get(f"/v1/accounts/{account}/keys")

        async def before(op: str, _path: str) -> None:
            if op == "read_metadata":
                devvault.faults.drop_next(1)

        hook_requests(env, before)
        response = http.put(f"/v1/accounts/{account}/keys/binance/site", json=key_body(key))
    assert response.status_code == 201, response.text
    assert snapshot(env, account)["current_version"] == 1


@pytest.mark.parametrize("fault", ["fail", "drop"])
def test_single_failed_data_write_is_retried_under_cas(faulty_broker, fresh_sandbox, fault) -> None:
    env, devvault = faulty_broker
    with env.http() as http:
        account, key, path = store_first_version(http, fresh_sandbox)
        armed = {"done": False}

        async def before(op: str, _path: str) -> None:
            if op == "write_data" and not armed["done"]:
                armed["done"] = True
                if fault == "fail":
                    devvault.faults.fail_next(1, status=503)
                else:
                    devvault.faults.drop_next(1)

        hook_requests(env, before)
        replaced = http.put(path, json=key_body(key, "Second"))
    assert armed["done"], "the fault was never injected: the test proves nothing"
    assert replaced.status_code == 200, replaced.text
    assert snapshot(env, account)["versions"] == {"1": True, "2": False}


@pytest.mark.parametrize("fault", ["fail_503", "seal", "drop"])
@pytest.mark.parametrize("step", FINISH_STEPS)
def test_failure_after_commit_keeps_the_new_key_and_the_reconciler_finishes_it(
    faulty_broker, fresh_sandbox, step, fault
) -> None:
    """Steps after the commit point (facts slot, destroying old versions, deleting the
    intent): the replacement stands (200) and shows its facts at once; the reconciler
    then finishes it: one live version, its facts in metadata, no intent left."""
    env, devvault = faulty_broker
    account = new_account()
    key = fresh_sandbox.key("binance", "read_only")
    path = f"/v1/accounts/{account}/keys/binance/site"
    with env.http() as http:
        http.put(path, json=key_body(key))
        arm_at(env, devvault, step, fault)
        replaced = http.put(path, json=key_body(key, "Second"))
        devvault.faults.reset()
        assert replaced.status_code == 200 and replaced.json()["version"] == 2, replaced.text
        assert http.get(path).json()["name"] == "Second"
        assert wait_for(lambda: not intents(env))
        assert http.get(path).json()["name"] == "Second"
    snap = snapshot(env, account)
    assert snap["versions"] == {"1": True, "2": False}
    assert {k.split(".")[0] for k in snap["custom_metadata"]} == {"v2"}
    assert snap["custom_metadata"]["v2.name"] == "Second"
    lines = [line for line in env.audit_lines() if line.get("account") == account]
    assert any(line["event"] == "key.replaced" and line["version"] == 2 for line in lines)


@pytest.mark.parametrize("fault", sorted(FAULTS))
@pytest.mark.parametrize("step", ["read_metadata", "delete"])
def test_vault_failure_while_deleting_keeps_the_key(faulty_broker, fresh_sandbox, step, fault):
    env, devvault = faulty_broker
    account = new_account()
    path = f"/v1/accounts/{account}/keys/binance/site"
    with env.http() as http:
        # The setup write runs with the fixture's short Vault timeout: on a loaded machine it
        # may answer 503 itself, which is not what this test is about, so retry it (bounded).
        body = key_body(fresh_sandbox.key("binance", "read_only"))
        statuses = []
        for _ in range(5):
            statuses.append(http.put(path, json=body).status_code)
            if statuses[-1] in (200, 201):
                break
        assert statuses[-1] in (200, 201), statuses
        assert wait_for(lambda: not intents(env))
        before = snapshot(env, account)
        arm_at(env, devvault, step, fault)
        response = http.delete(path)
        devvault.faults.reset()
        assert_envelope(response, 503, "vault_unavailable")
        assert snapshot(env, account) == before
        assert http.delete(path).status_code == 204


@pytest.mark.parametrize("fault", ["fail_503", "seal", "drop"])
def test_vault_down_during_caller_lookup_is_503_not_401(faulty_broker, fault) -> None:
    env, devvault = faulty_broker
    arm_at(env, devvault, "lookup_caller", fault)
    with env.http() as http:
        response = http.get(f"/v1/accounts/{new_account()}/keys")
    devvault.faults.reset()
    assert_envelope(response, 503, "vault_unavailable")


def test_sealed_vault_everywhere(faulty_broker, fresh_sandbox) -> None:
    env, devvault = faulty_broker
    account = new_account()
    key = fresh_sandbox.key("binance", "read_only")
    with env.http() as http:
        http.get(f"/v1/accounts/{account}/keys")
        devvault.faults.seal()
        assert_envelope(http.get("/readyz"), 503, "vault_unavailable")
        for response in (
            http.put(f"/v1/accounts/{account}/keys/binance/site", json=key_body(key)),
            http.get(f"/v1/accounts/{account}/keys"),
            http.get(f"/v1/accounts/{account}/keys/binance/site"),
            http.delete(f"/v1/accounts/{account}/keys/binance/site"),
            http.post(
                "/v1/site-tokens", json={}, headers={"Authorization": f"Bearer {env.both_token}"}
            ),
        ):
            assert_envelope(response, 503, "vault_unavailable")
        devvault.faults.unseal()
        assert http.get("/readyz").status_code == 200
    assert snapshot(env, account) is None


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("outage", "exchange_unavailable"),
        ("unavailable", "exchange_unavailable"),
        ("rate_limited", "rate_limited"),
        ("slow", "exchange_unavailable"),
        ("timeout", "exchange_unavailable"),
    ],
)
def test_exchange_down_or_slow_is_503_and_nothing_stored(
    faulty_broker, fresh_sandbox, fault, reason
) -> None:
    env, _ = faulty_broker
    account = new_account()
    key = fresh_sandbox.key("binance", "read_only")
    if fault == "outage":
        fresh_sandbox.set_outage("binance", True)
    elif fault == "slow":
        fresh_sandbox.set_latency(3.0, "binance")  # beyond the 1 s check timeout
    elif fault == "timeout":
        fresh_sandbox.set_hang(3.0)
        fresh_sandbox.inject("binance", "timeout")
    else:
        fresh_sandbox.inject("binance", fault, count=5)
    with env.http() as http:
        started = time.monotonic()
        response = http.put(f"/v1/accounts/{account}/keys/binance/site", json=key_body(key))
        elapsed = time.monotonic() - started
        check = http.post(
            "/v1/keys/check",
            json={"exchange": "binance", "role": "site", **key_body(key)} | {"name": None},
        )
    body = assert_envelope(response, 503, "exchange_unavailable")
    assert response.headers["retry-after"] == "5"
    assert reason in {r["code"] for r in body["reasons"]}
    assert elapsed < 2.5  # bounded by check_timeout, not by the exchange
    assert check.status_code in {400, 503}
    assert snapshot(env, account) is None


def test_check_endpoint_503_when_exchange_down(faulty_broker, fresh_sandbox) -> None:
    env, _ = faulty_broker
    key = fresh_sandbox.key("binance", "read_only")
    fresh_sandbox.set_outage("binance", True)
    with env.http() as http:
        response = http.post(
            "/v1/keys/check",
            json={
                "exchange": "binance",
                "role": "site",
                "api_key": key.api_key,
                "secret": key.secret,
            },
        )
    assert_envelope(response, 503, "exchange_unavailable")
    assert response.headers["retry-after"] == "5"


def test_concurrent_replacements_end_with_one_consistent_version(
    faulty_broker, fresh_sandbox
) -> None:
    """20 replacements of one key at once, through two brokers (two processes' worth of
    state: separate locks, separate caches) on the same Vault."""
    from broker.api.server import start_in_thread

    env, _ = faulty_broker
    second = start_in_thread(env.settings, audit_stream=env.audit)
    account = new_account()
    keys = [
        new_key("binance", f"concurrent-{account}-{i}", read=True, ip_whitelist=(ROBOT_EGRESS_IP,))
        for i in range(20)
    ]
    for key in keys:
        fresh_sandbox.add_key(key)

    async def submit_all() -> list[httpx.Response]:
        headers = {"Authorization": f"Bearer {env.intake_token}"}
        async with (
            httpx.AsyncClient(base_url=env.url, headers=headers, timeout=60) as one,
            httpx.AsyncClient(base_url=second.url, headers=headers, timeout=60) as two,
        ):
            return await asyncio.gather(
                *(
                    (one if i % 2 else two).put(
                        f"/v1/accounts/{account}/keys/binance/site",
                        json=key_body(key, f"writer {i}"),
                    )
                    for i, key in enumerate(keys)
                )
            )

    try:
        responses = asyncio.run(submit_all())
    finally:
        second.stop()
    assert sorted(r.status_code for r in responses) == [200] * 19 + [201]
    assert sorted(r.json()["version"] for r in responses) == list(range(1, 21))
    meta = env.metadata("site", account, "binance")
    assert meta["current_version"] == 20
    assert [n for n, v in meta["versions"].items() if not v["destroyed"]] == ["20"]
    # The stored secret, the facts in metadata and the last response describe one key.
    stored = env.read_key("site", account, "binance")
    winner = next(r.json() for r in responses if r.json()["version"] == 20)
    writer = keys[int(winner["name"].split()[-1])]
    assert stored == {"api_key": writer.api_key, "secret": writer.secret}
    with env.http() as http:
        view = http.get(f"/v1/accounts/{account}/keys/binance/site").json()
    assert view["name"] == winner["name"] and view["version"] == 20
    assert view["api_key_masked"] == f"{writer.api_key[:4]}...{writer.api_key[-4:]}"


def test_a_key_that_keeps_changing_gives_up_with_503_and_writes_nothing(
    faulty_broker, fresh_sandbox, monkeypatch
) -> None:
    """Another writer commits before every one of the broker's cas writes: after its
    bounded rounds the broker answers 503 and the other writer's data stands untouched."""
    import broker.keystore as keystore

    monkeypatch.setattr(keystore, "CAS_BACKOFF_SECONDS", 0.0)
    env, _ = faulty_broker
    account = new_account()
    key = fresh_sandbox.key("binance", "read_only")
    relative = f"site/{account}/binance"
    interloper = {"api_key": "someone-else", "secret": "not-ours"}
    rounds = {"n": 0}

    async def before(op: str, _path: str) -> None:
        if op == "write_data":
            rounds["n"] += 1
            await asyncio.to_thread(
                env.root.secrets.kv.v2.create_or_update_secret,
                relative,
                interloper,
                mount_point=env.mount,
            )

    hook_requests(env, before)
    with env.http() as http:
        response = http.put(f"/v1/accounts/{account}/keys/binance/site", json=key_body(key))
    body = assert_envelope(response, 503, "vault_unavailable")
    assert "concurrently" in body["message"] and response.headers["Retry-After"]
    assert rounds["n"] == keystore.CAS_ATTEMPTS
    assert env.read_key("site", account, "binance") == interloper
    # Nothing of the refused submission labels the other writer's version.
    with env.http() as http:
        view = http.get(f"/v1/accounts/{account}/keys/binance/site").json()
    assert view["status"] == "unknown" and view["name"] == "", view


def test_a_data_write_whose_answer_is_lost_still_completes(faulty_broker, fresh_sandbox) -> None:
    """Vault applies the data write but the answer never arrives: the repeat meets a cas
    mismatch, the broker recognises its own stage on the new version, and finishes the
    replacement (old version destroyed, 200) instead of leaving it half done."""
    env, _ = faulty_broker
    with env.http() as http:
        account, key, path = store_first_version(http, fresh_sandbox)
        with data_write_answers_lost(env, most=1) as lost:
            replaced = http.put(path, json=key_body(key, "Second"))
    assert lost["n"] == 1
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["version"] == 2 and replaced.json()["name"] == "Second"
    assert snapshot(env, account)["versions"] == {"1": True, "2": False}
