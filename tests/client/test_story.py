"""The whole story through the real broker, the sandbox and Vault, as the services live it
(issue 5 acceptance): keys submitted through the broker, the site reads its key with a
broker-minted token, the robot reads its own, notices a replacement, survives a deletion
and picks up the new key.

The story runs on the session broker (`broker_env`: a real Vault too when
KEYBROKER_TEST_VAULT_ADDR/TOKEN are set) with a unique account and its own robot AppRole;
only the expired-token test needs a fresh devvault (it moves Vault's clock).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator

import hvac
import pytest
import requests

from broker.bootstrap import apply_layout, issue_approle_credentials
from broker.client import KeyNotFound, RobotKeyClient, SiteKeyClient
from broker.layout import ROBOT_READ_POLICY, build_layout, layout_from_settings
from tests.fixtures.broker import BrokerEnv, build_broker_env
from tests.fixtures.vault import unique_name


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.on_sleep: list = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.on_sleep:
            self.on_sleep.pop(0)()


@pytest.fixture
def robot_approle(broker_env: BrokerEnv) -> Iterator[str]:
    """The shipped robot AppRole under a unique name, bound to loopback (the robot reaches
    this Vault from 127.0.0.1, not from its exchange egress address); deleted afterwards.
    The shared keybroker-robot role is left as the layout has it."""
    (shipped,) = [r for r in build_layout().approles if ROBOT_READ_POLICY in r.token_policies]
    role = dataclasses.replace(
        shipped,
        name=unique_name("keybroker-robot"),
        token_bound_cidrs=("127.0.0.1/32",),
        secret_id_bound_cidrs=("127.0.0.1/32",),
    )
    broker_env.root.write_data(f"auth/approle/role/{role.name}", data=role.vault_payload())
    yield role.name
    broker_env.root.auth.approle.delete_role(role.name)


@pytest.fixture
def env(devvault, sandbox) -> Iterator[BrokerEnv]:
    broker = build_broker_env(devvault.addr, devvault.root_token, sandbox.exchange_urls)
    # The robot reaches this Vault from loopback, not from its exchange egress address.
    apply_layout(
        broker.root, layout_from_settings(broker.settings, robot_login_cidrs=("127.0.0.1/32",))
    )
    yield broker
    broker.running.stop()


def _submit(env: BrokerEnv, sandbox, role: str, label: str, account: str = "alice") -> int:
    key = sandbox.key("binance", label)
    with env.http("intake") as http:
        answer = http.put(
            f"/v1/accounts/{account}/keys/binance/{role}",
            json={"name": f"{account} {role}", **key.credentials()},
        )
    assert answer.status_code in (200, 201), answer.text
    return int(answer.json()["version"])


def test_site_and_robot_read_their_keys_and_the_robot_rides_out_a_deletion(
    broker_env: BrokerEnv, robot_approle: str, sandbox
) -> None:
    env, account = broker_env, f"alice-{uuid.uuid4().hex[:10]}"
    site_key = sandbox.key("binance", "read_only")
    robot_key = sandbox.key("binance", "trade_whitelisted")
    _submit(env, sandbox, "site", "read_only", account)
    _submit(env, sandbox, "robot", "trade_whitelisted", account)

    site = SiteKeyClient(env.url, env.site_backend_token, env.settings.vault_addr)
    got = site.get_key(account, "binance")
    assert (got.api_key, got.secret) == (site_key.api_key, site_key.secret)

    creds = issue_approle_credentials(env.root, robot_approle)
    fake = FakeTime()
    robot = RobotKeyClient(
        env.settings.vault_addr,
        creds.role_id,
        creds.secret_id,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    key = robot.get_key(account, "binance")
    assert (key.api_key, key.secret, key.version) == (robot_key.api_key, robot_key.secret, 1)
    assert key.metadata  # the broker's non-secret facts come along
    assert robot_key.secret not in repr(key)

    # The user replaces the robot key: a new version; the robot notices.
    assert _submit(env, sandbox, "robot", "trade_whitelisted", account) == 2
    assert robot.has_new_version(key)
    key = robot.get_key(account, "binance")
    assert key.version == 2 and not robot.has_new_version(key)

    # The user deletes it: the robot keeps running and waits for the next one.
    with env.http("intake") as http:
        assert http.delete(f"/v1/accounts/{account}/keys/binance/robot").status_code == 204
    assert robot.has_new_version(key)
    with pytest.raises(KeyNotFound):
        robot.get_key(account, "binance")
    fake.on_sleep = [
        lambda: None,
        lambda: _submit(env, sandbox, "robot", "trade_whitelisted", account),
    ]
    key = robot.wait_for_key(account, "binance", timeout=600)
    assert key.secret == robot_key.secret

    # Site tokens from the broker still cannot reach robot keys.
    with env.http("site_backend") as http:
        token = http.post("/v1/site-tokens", json={}).json()["token"]
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac.Client(url=env.settings.vault_addr, token=token).secrets.kv.v2.read_secret_version(
            f"robot/{account}/binance", mount_point=env.mount, raise_on_deleted_version=True
        )


def test_site_client_replaces_a_token_vault_has_expired(env: BrokerEnv, devvault, sandbox) -> None:
    _submit(env, sandbox, "site", "read_only")
    posts: list[str] = []

    class Counting(requests.Session):
        def post(self, url, *args, **kwargs):  # type: ignore[override]
            posts.append(url)
            return super().post(url, *args, **kwargs)

    site = SiteKeyClient(
        env.url, env.site_backend_token, env.settings.vault_addr, session=Counting()
    )
    assert site.get_key("alice", "binance").version == 1
    # Vault's clock moves past the 5 min site token; the client's own clock does not,
    # so only the 403 tells it: it fetches a new token once and reads again.
    devvault.clock.advance(600)
    assert site.get_key("alice", "binance").version == 1
    assert len(posts) == 2
