"""The whole story through the real broker, the sandbox and a fresh devvault, as the
services live it (issue 5 acceptance): keys submitted through the broker, the site reads
its key with a broker-minted token, the robot reads its own, notices a replacement,
survives a deletion and picks up the new key.
"""

from __future__ import annotations

from collections.abc import Iterator

import hvac
import pytest
import requests

from broker.bootstrap import apply_layout, issue_approle_credentials
from broker.client import KeyNotFound, RobotKeyClient, SiteKeyClient
from broker.layout import layout_from_settings
from tests.fixtures.broker import BrokerEnv, build_broker_env


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
def env(devvault, sandbox) -> Iterator[BrokerEnv]:
    broker = build_broker_env(devvault.addr, devvault.root_token, sandbox.exchange_urls)
    # The robot reaches this Vault from loopback, not from its exchange egress address.
    apply_layout(
        broker.root, layout_from_settings(broker.settings, robot_login_cidrs=("127.0.0.1/32",))
    )
    yield broker
    broker.running.stop()


def _submit(env: BrokerEnv, sandbox, role: str, label: str) -> int:
    key = sandbox.key("binance", label)
    with env.http("intake") as http:
        answer = http.put(
            f"/v1/accounts/alice/keys/binance/{role}",
            json={"name": f"alice {role}", **key.credentials()},
        )
    assert answer.status_code in (200, 201), answer.text
    return int(answer.json()["version"])


def test_site_and_robot_read_their_keys_and_the_robot_rides_out_a_deletion(
    env: BrokerEnv, sandbox
) -> None:
    site_key = sandbox.key("binance", "read_only")
    robot_key = sandbox.key("binance", "trade_whitelisted")
    _submit(env, sandbox, "site", "read_only")
    _submit(env, sandbox, "robot", "trade_whitelisted")

    site = SiteKeyClient(env.url, env.site_backend_token, env.settings.vault_addr)
    got = site.get_key("alice", "binance")
    assert (got.api_key, got.secret) == (site_key.api_key, site_key.secret)

    creds = issue_approle_credentials(env.root, "keybroker-robot")
    fake = FakeTime()
    robot = RobotKeyClient(
        env.settings.vault_addr,
        creds.role_id,
        creds.secret_id,
        clock=fake.clock,
        sleep=fake.sleep,
    )
    key = robot.get_key("alice", "binance")
    assert (key.api_key, key.secret, key.version) == (robot_key.api_key, robot_key.secret, 1)
    assert key.metadata  # the broker's non-secret facts come along
    assert robot_key.secret not in repr(key)

    # The user replaces the robot key: a new version; the robot notices.
    assert _submit(env, sandbox, "robot", "trade_whitelisted") == 2
    assert robot.has_new_version(key)
    key = robot.get_key("alice", "binance")
    assert key.version == 2 and not robot.has_new_version(key)

    # The user deletes it: the robot keeps running and waits for the next one.
    with env.http("intake") as http:
        assert http.delete("/v1/accounts/alice/keys/binance/robot").status_code == 204
    assert robot.has_new_version(key)
    with pytest.raises(KeyNotFound):
        robot.get_key("alice", "binance")
    fake.on_sleep = [lambda: None, lambda: _submit(env, sandbox, "robot", "trade_whitelisted")]
    key = robot.wait_for_key("alice", "binance", timeout=600)
    assert key.secret == robot_key.secret

    # Site tokens from the broker still cannot reach robot keys.
    with env.http("site_backend") as http:
        token = http.post("/v1/site-tokens", json={}).json()["token"]
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac.Client(url=env.settings.vault_addr, token=token).secrets.kv.v2.read_secret_version(
            "robot/alice/binance", mount_point=env.mount, raise_on_deleted_version=True
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
