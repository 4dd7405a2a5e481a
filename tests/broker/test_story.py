"""The whole story over loopback HTTP (issue 5 acceptance): submit a site key and a robot
key, the web site gets a site token that reads the site key and is refused the robot key,
the robot reads its key, the user replaces and then deletes a key."""

from __future__ import annotations

import hvac
import hvac.exceptions
import pytest

from broker.bootstrap import create_caller_token
from broker.layout import ROBOT_READ_POLICY
from broker.vault_session import VaultRefused
from tests.broker.helpers import key_body
from tests.fixtures.broker import BrokerEnv, new_account


def test_site_and_robot_keys_end_to_end(broker_env: BrokerEnv, sandbox) -> None:
    account = new_account("story")
    mount = broker_env.mount
    site_key = sandbox.key("binance", "read_only")
    robot_key = sandbox.key("binance", "trade_whitelisted")
    with broker_env.http("intake") as intake:
        assert (
            intake.put(f"/v1/accounts/{account}/keys/binance/site", json=key_body(site_key))
        ).status_code == 201
        assert (
            intake.put(f"/v1/accounts/{account}/keys/binance/robot", json=key_body(robot_key))
        ).status_code == 201

    # The web site: a short-lived token from the broker, then straight to Vault.
    with broker_env.http("site_backend") as backend:
        token = backend.post("/v1/site-tokens", json={"ttl": "5m"}).json()["token"]
    site = hvac.Client(url=broker_env.root.url, token=token)
    read = site.secrets.kv.v2.read_secret_version(
        f"site/{account}/binance", mount_point=mount, raise_on_deleted_version=True
    )
    assert read["data"]["data"] == {"api_key": site_key.api_key, "secret": site_key.secret}
    with pytest.raises(hvac.exceptions.Forbidden):
        site.secrets.kv.v2.read_secret_version(
            f"robot/{account}/binance", mount_point=mount, raise_on_deleted_version=True
        )
    with pytest.raises(hvac.exceptions.Forbidden):
        site.secrets.kv.v2.list_secrets(f"robot/{account}", mount_point=mount)

    # The robot reads its own key, and cannot read the site key.
    robot = hvac.Client(
        url=broker_env.root.url, token=create_caller_token(broker_env.root, [ROBOT_READ_POLICY])
    )
    robot_read = robot.secrets.kv.v2.read_secret_version(
        f"robot/{account}/binance", mount_point=mount, raise_on_deleted_version=True
    )
    assert robot_read["data"]["data"]["api_key"] == robot_key.api_key
    with pytest.raises(hvac.exceptions.Forbidden):
        robot.secrets.kv.v2.read_secret_version(
            f"site/{account}/binance", mount_point=mount, raise_on_deleted_version=True
        )

    # Replace the robot key: the robot sees version 2, version 1 is gone for good.
    new_robot_key = sandbox.key("binance", "expiring_soon")
    with broker_env.http("intake") as intake:
        replaced = intake.put(
            f"/v1/accounts/{account}/keys/binance/robot", json=key_body(new_robot_key, "Robot 2")
        )
    assert replaced.status_code == 200, replaced.text
    assert "key_expiring" in {w["code"] for w in replaced.json()["warnings"]}
    latest = robot.secrets.kv.v2.read_secret_version(
        f"robot/{account}/binance", mount_point=mount, raise_on_deleted_version=True
    )
    assert latest["data"]["metadata"]["version"] == 2
    assert latest["data"]["data"]["api_key"] == new_robot_key.api_key
    with pytest.raises(hvac.exceptions.InvalidPath):
        robot.secrets.kv.v2.read_secret_version(
            f"robot/{account}/binance",
            version=1,
            mount_point=mount,
            raise_on_deleted_version=True,
        )

    # Delete it: nothing of it remains in Vault.
    with broker_env.http("intake") as intake:
        assert intake.delete(f"/v1/accounts/{account}/keys/binance/robot").status_code == 204
        remaining = intake.get(f"/v1/accounts/{account}/keys").json()["keys"]
    assert [(k["exchange"], k["role"]) for k in remaining] == [("binance", "site")]
    assert broker_env.metadata("robot", account, "binance") is None

    events = [line["event"] for line in broker_env.audit_lines() if line.get("account") == account]
    # The replacement expires within 14 days: its health goes connected -> expires_soon.
    assert events == [
        "key.accepted",
        "key.accepted",
        "key.replaced",
        "key.status_changed",
        "key.deleted",
    ]
    assert "site_token.minted" in {line["event"] for line in broker_env.audit_lines()}


def test_the_broker_itself_cannot_read_key_data(broker_env: BrokerEnv, sandbox) -> None:
    """docs/contracts.md §2: the broker's own policy writes keys but never reads them back."""
    account = new_account()
    key = sandbox.key("binance", "read_only")
    with broker_env.http() as http:
        stored = http.put(f"/v1/accounts/{account}/keys/binance/site", json=key_body(key))
    # The key must really be there, or the refused read below proves nothing.
    assert stored.status_code == 201, stored.text
    state = broker_env.running.app.state.broker
    with pytest.raises(VaultRefused):
        state.session.call_blocking(
            "probe",
            lambda c: c.secrets.kv.v2.read_secret_version(
                f"site/{account}/binance",
                mount_point=broker_env.mount,
                raise_on_deleted_version=True,
            ),
        )
