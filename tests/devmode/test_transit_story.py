"""Issue 13's acceptance story in `keybroker dev` (in-process, as `keybroker dev` runs it).

Dev mode runs `transit` custody, the broker's default. Site and robot keys for all
twelve exchanges go in through the dev broker, plus site and robot keys of every further
signing scheme (robot: KuCoin v2 passphrase; both: Binance RSA and Ed25519, Bybit RSA,
Coinbase CDP ES256 and EdDSA; the read-only asymmetric site keys are added to the
sandbox through its key API).
The site (site tokens the broker mints) and the robot (its AppRole from the state file)
read and trade through their Vault-signed ccxt objects against the sandbox, which
verifies every signature. Then the robot's OKX key is replaced (the next request signs
with Transit version 2), and deleted (signing fails, the robot waits; a new key resumes
it). Vault is read back after each step.

The developer's shell may hold KEYBROKER_* settings of another deployment: here
KEYBROKER_TRANSIT_MOUNT names a mount the dev layout never creates. On the code before,
dev mode let it reach the broker, so intake imported into a mount that does not exist
and every submission failed (503); and every Binance RSA/Ed25519 and Bybit RSA key was refused
(`non_hmac_key`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import hvac
import pytest
import requests

from broker.client import ExchangeKey, KeyNotFound, RobotKeyClient, SiteKeyClient
from broker.exchanges.registry import ADAPTERS
from broker.names import DEFAULT_TRANSIT_MOUNT
from keybroker_dev.devmode import DevStack, DevState
from keybroker_dev.sandbox import SandboxKey
from tests.transit.helpers import (
    ROBOT_SCHEMES,
    SITE_SCHEMES,
    assert_no_secret,
    call_sandbox,
    site_scheme_keys,
)

EXCHANGES = sorted(ADAPTERS)


@pytest.fixture
def dev(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[DevStack, DevState]]:
    monkeypatch.setenv("KEYBROKER_TRANSIT_MOUNT", "not-the-dev-layouts-mount")
    for role in ("SITE", "ROBOT"):
        monkeypatch.delenv(f"KEYBROKER_{role}_CUSTODY", raising=False)
    said: list[str] = []
    stack = DevStack(tmp_path / "dev.json", "devvault", said.append)
    state = stack.start()
    try:
        assert "  custody: site transit, robot transit (docs/custody.md)" in said
        yield stack, state
    finally:
        stack.stop()


def _put(state: DevState, account: str, exchange: str, role: str, label: str) -> dict[str, str]:
    key = state.sandbox_keys[exchange][label]
    answer = requests.put(
        f"{state.broker_url}/v1/accounts/{account}/keys/{exchange}/{role}",
        json={"name": f"{label} key", **key},
        headers={"Authorization": f"Bearer {state.intake_token}"},
        timeout=30,
    )
    assert answer.status_code in (200, 201), (exchange, role, label, answer.text)
    return key


def _add_sandbox_key(state: DevState, key: SandboxKey) -> None:
    added = requests.post(f"{state.sandbox_url}/_sandbox/keys", json=key.to_json(), timeout=10)
    assert added.status_code == 200, added.text
    state.sandbox_keys[key.exchange][key.label] = key.credentials()


def _delete(state: DevState, account: str, exchange: str, role: str) -> None:
    answer = requests.delete(
        f"{state.broker_url}/v1/accounts/{account}/keys/{exchange}/{role}",
        headers={"Authorization": f"Bearer {state.intake_token}"},
        timeout=30,
    )
    assert answer.status_code == 204, answer.text


async def _read(instance: Any, state: DevState, exchange: str, key: dict[str, str]) -> Any:
    url = state.check_settings["exchange_urls"][exchange]
    return await call_sandbox(instance, url, exchange, SimpleNamespace(api_key=key["api_key"]))


async def test_transit_story_in_dev_mode(dev: tuple[DevStack, DevState]) -> None:
    _, state = dev
    root = hvac.Client(url=state.vault_addr, token=state.root_token)
    site_keys = {ex: _put(state, "alice", ex, "site", "read_only") for ex in EXCHANGES}
    robot_keys = {ex: _put(state, "alice", ex, "robot", "trade_whitelisted") for ex in EXCHANGES}
    extra = {acct: _put(state, acct, ex, "robot", lbl) for acct, (ex, lbl) in ROBOT_SCHEMES.items()}
    for made in site_scheme_keys():  # read-only asymmetric keys, through the sandbox's API
        _add_sandbox_key(state, made)
    site_extra = {
        acct: _put(state, acct, ex, "site", lbl) for acct, (ex, lbl) in SITE_SCHEMES.items()
    }
    every = [*site_keys.values(), *robot_keys.values(), *extra.values(), *site_extra.values()]
    secrets = [k["secret"] for k in every]
    names = root.list(f"{DEFAULT_TRANSIT_MOUNT}/keys")["data"]["keys"]
    assert len(names) == len(every) == 12 * 2 + len(ROBOT_SCHEMES) + len(SITE_SCHEMES)

    # The site reads through site tokens, the robot trades through its AppRole: every
    # request signed by Vault, verified by the sandbox.
    site = SiteKeyClient(state.broker_url, state.site_backend_token, state.vault_addr)
    robot = RobotKeyClient(state.vault_addr, state.robot_role_id, state.robot_secret_id)
    for (account, exchange), key in [
        *((("alice", ex), k) for ex, k in site_keys.items()),
        *(((acct, SITE_SCHEMES[acct][0]), k) for acct, k in site_extra.items()),
    ]:
        stored = site.get_key(account, exchange)
        assert stored.transit is not None and stored.secret == ""
        instance = site.signing_exchange(account, exchange, asynchronous=True, key=stored)
        assert (await _read(instance, state, exchange, key))[0] is False  # read-only
    for (account, exchange), key in [
        *((("alice", ex), k) for ex, k in robot_keys.items()),
        *(((acct, ROBOT_SCHEMES[acct][0]), k) for acct, k in extra.items()),
    ]:
        instance = robot.signing_exchange(account, exchange, asynchronous=True)
        assert instance.secret != key["secret"]  # a stand-in: the secret never left Vault
        assert (await _read(instance, state, exchange, key))[0] is True
    for role, client in (("site", site), ("robot", robot)):
        records = [client.get_key("alice", exchange) for exchange in EXCHANGES]
        assert_no_secret([repr(r.__dict__) for r in records], secrets, f"{role} records")

    # Replace the robot's OKX key: the next request signs with the new Transit version.
    old = robot.get_key("alice", "okx")
    replacement = _put(state, "alice", "okx", "robot", "expiring_soon")
    assert robot.has_new_version(old)
    new = robot.get_key("alice", "okx")
    assert (old.transit or {})["transit_version"] == "1"
    assert (new.transit or {})["transit_version"] == "2"
    assert new.api_key == replacement["api_key"] != old.api_key
    instance = robot.signing_exchange("alice", "okx", asynchronous=True, key=new)
    assert (await _read(instance, state, "okx", replacement))[0] is True

    # Delete it: Vault holds neither record nor Transit key, signing fails, and the robot
    # waits until a new key is submitted, then trades with it.
    stale = robot.signing_exchange("alice", "okx", asynchronous=True, key=new)
    _delete(state, "alice", "okx", "robot")
    assert root.read(f"{DEFAULT_TRANSIT_MOUNT}/keys/robot-alice-okx") is None
    with pytest.raises(KeyNotFound):
        await _read(stale, state, "okx", replacement)
    waited: list[ExchangeKey | BaseException] = []

    def wait() -> None:
        try:
            waited.append(robot.wait_for_key("alice", "okx", timeout=20, initial_delay=0.05))
        except BaseException as exc:  # reported below
            waited.append(exc)

    waiter = threading.Thread(target=wait)
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and not waited  # no key: the robot is still waiting
    resumed_key = _put(state, "alice", "okx", "robot", "trade_whitelisted")
    waiter.join(20)
    (resumed,) = waited
    assert isinstance(resumed, ExchangeKey) and resumed.api_key == resumed_key["api_key"]
    instance = robot.signing_exchange("alice", "okx", asynchronous=True, key=resumed)
    assert (await _read(instance, state, "okx", resumed_key))[0] is True
    site.close()
