"""Issue 15 acceptance, end to end in process: devvault, the sandbox (real ccxt signing),
the broker, and the robot as the runtime client signing through its Transit key.

A stored robot key is changed at the sandbox; the robot's next scheduled (shortened)
verification reports it; the broker's status, audit line and webhook follow; the robot
stops using a dangerous key and resumes once it is safe again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from broker.client import RobotKeyClient
from broker.verifier import KeyStopped, KeyVerifier
from broker.webhooks import SIGNATURE_HEADER, verify_signature
from keybroker_dev.sandbox import SandboxServer
from keybroker_dev.sandbox.keys import OTHER_IP, ROBOT_EGRESS_IP, SandboxKey
from tests.fixtures.broker import new_account
from tests.health.conftest import (
    WEBHOOK_SECRET,
    HealthEnv,
    Receiver,
    Recording,
    own_key,
    wait_for,
)

INTERVAL = 0.3  # the robot's verification schedule, shortened from 6 h


@pytest.fixture
def robot(health_env: HealthEnv) -> Iterator[tuple[RobotKeyClient, KeyVerifier, Recording]]:
    env = health_env.broker
    client = RobotKeyClient(
        env.settings.vault_addr, health_env.robot_role_id, health_env.robot_secret_id
    )
    session = Recording()
    verifier = KeyVerifier(
        client,
        env.url,
        settings=env.settings,
        egress_ip=ROBOT_EGRESS_IP,
        interval=INTERVAL,
        session=session,
    ).start()
    yield client, verifier, session
    verifier.close()


def health_of(env: Any, account: str) -> dict[str, Any]:
    with env.http("intake") as http:
        answer = http.get(f"/v1/accounts/{account}/keys/okx/robot")
    assert answer.status_code == 200, answer.text
    return answer.json()["health"]


def status_is(env: Any, account: str, status: str) -> Callable[[], Any]:
    return lambda: (h := health_of(env, account))["status"] == status and h


def test_rights_changed_stops_the_robot_then_revoked_ip_and_restore(
    health_env: HealthEnv,
    sandbox: SandboxServer,
    receiver: Receiver,
    robot: tuple[RobotKeyClient, KeyVerifier, Recording],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    env = health_env.broker
    _, verifier, session = robot
    key = own_key(sandbox)
    account = new_account("health")
    with env.http("intake") as http:
        stored = http.put(
            f"/v1/accounts/{account}/keys/okx/robot", json={"name": "bot", **key.credentials()}
        )
    assert stored.status_code == 201, stored.text
    assert stored.json()["health"]["status"] == "connected"
    assert stored.json()["health"]["verified_at"] is None

    # First load: verified at once, from the robot's own address, through Transit.
    accepted_at = time.monotonic()
    in_use = verifier.key_for_use(account, "okx")
    first = wait_for("the first verification", lambda: health_of(env, account)["verified_at"])
    assert first and time.monotonic() - accepted_at < 30
    assert in_use.transit, "the robot signs through Vault Transit"

    # The user enables withdrawals: the next scheduled verification reports it.
    sandbox.update_key("okx", key.api_key, withdraw=True)
    health = wait_for("rights_changed", status_is(env, account, "rights_changed"))
    assert health["rights"] == ["withdraw"] and health["stop"] is True
    wait_for("the robot to stop", lambda: verifier.stopped(in_use))
    with pytest.raises(KeyStopped):
        verifier.key_for_use(account, "okx")  # waits as for a deleted key; timeout 0 here
    changes = [
        line
        for line in env.audit_lines()
        if line["event"] == "key.status_changed" and line["account"] == account
    ]
    assert changes[-1]["status"] == "rights_changed" and changes[-1]["previous"] == "connected"
    assert changes[-1]["reasons"] == ["withdraw_enabled"] and changes[-1]["caller"]
    # The webhook: the first attempt answered 500, the retry delivered it, signed.
    delivered = wait_for(
        "the webhook", lambda: [b for b in receiver.bodies() if b["status"] == "rights_changed"]
    )
    assert delivered[0]["account"] == account and delivered[0]["detail"] == "withdraw"
    assert receiver.answered[:2] == [500, 200]
    headers, raw = receiver.received[1]
    assert verify_signature(WEBHOOK_SECRET.encode(), headers[SIGNATURE_HEADER], raw)
    assert not verify_signature(b"another secret", headers[SIGNATURE_HEADER], raw)
    attempts = [line for line in env.audit_lines() if line["event"] == "webhook.delivery"]
    assert [a["ok"] for a in attempts[:2]] == [False, True]
    # Operators read the same delivery log from the broker, newest first, hosts only.
    with env.http("intake") as http:
        log = http.get("/v1/webhook-deliveries", params={"limit": 1000}).json()
        refused = http.get("/v1/webhook-deliveries", params={"limit": 0})
    oldest = log["deliveries"][::-1][:2]
    assert [(d["attempt"], d["status"], d["ok"]) for d in oldest] == [
        (1, 500, False),
        (2, 200, True),
    ]
    assert oldest[0]["event_id"] == delivered[0]["id"] and isinstance(log["in_flight"], int)
    assert all(d["host"] == receiver.url.split("/")[2] for d in log["deliveries"])
    assert refused.status_code == 400
    with env.http(robot[0].vault_token(account)) as http:
        assert http.get("/v1/webhook-deliveries").status_code == 403

    # Withdrawals off again: connected, and the robot may use the key again.
    sandbox.update_key("okx", key.api_key, withdraw=False)
    wait_for("connected", status_is(env, account, "connected"))
    wait_for("the robot to resume", lambda: not verifier.stopped(in_use))
    assert verifier.key_for_use(account, "okx").version == in_use.version

    # The robot's address leaves the whitelist: the exchange refuses it.
    sandbox.update_key("okx", key.api_key, ip_whitelist=[OTHER_IP])
    wait_for("ip_not_allowed", status_is(env, account, "ip_not_allowed"))
    sandbox.update_key("okx", key.api_key, ip_whitelist=[ROBOT_EGRESS_IP])
    wait_for("connected", status_is(env, account, "connected"))

    # The user deletes the key at the exchange.
    sandbox.remove_key("okx", key.api_key)
    wait_for("revoked_at_exchange", status_is(env, account, "revoked_at_exchange"))
    sandbox.add_key(key)
    wait_for("connected", status_is(env, account, "connected"))

    # Listing by status, the gauge, and the key's custom metadata.
    with env.http("intake") as http:
        listed = http.get("/v1/keys", params={"status": "connected", "role": "robot"}).json()
        metrics = http.get("/metrics").text
        filtered = http.get(f"/v1/accounts/{account}/keys", params={"status": "connected"})
    assert [(k["account"], k["exchange"]) for k in listed["keys"]] == [(account, "okx")]
    assert listed["counts"]["connected"]["okx"] == 1 and listed["index_complete"] is True
    assert 'keybroker_keys{exchange="okx",status="connected"} 1.0' in metrics
    assert [k["exchange"] for k in filtered.json()["keys"]] == ["okx"]
    custom = env.metadata("robot", account, "okx")["custom_metadata"]  # type: ignore[index]
    assert custom["health.status"] == "connected" and custom["health.version"] == "1"

    # Canaries: no secret, passphrase or whole api key anywhere the health feature writes.
    with env.http("intake") as http:
        view = http.get(f"/v1/accounts/{account}/keys/okx/robot").text
    places = {
        "verification requests": "\n".join(session.bodies),
        "key view": view,
        "status list": str(listed),
        "webhook bodies": "\n".join(body.decode() for _, body in receiver.received),
        "metrics": metrics,
        "audit": env.audit.text(),
        "metadata": str(custom),
        "logs": "\n".join(r.getMessage() for r in caplog.records),
    }
    for secret in _secrets(key):
        for place, text in places.items():
            assert secret not in text, f"a secret reached the {place}"


def _secrets(key: SandboxKey) -> list[str]:
    return [key.secret, key.api_key, *([key.passphrase] if key.passphrase else [])]


def test_expiry_and_outage_reach_the_status(
    health_env: HealthEnv,
    sandbox: SandboxServer,
    robot: tuple[RobotKeyClient, KeyVerifier, Recording],
) -> None:
    """A Binance key whose trading authority now lapses in 5 days: expires_soon (5d); the
    exchange answering 5xx: temporarily_unavailable, then connected again."""
    env = health_env.broker
    _, verifier, _ = robot
    key = own_key(sandbox, "binance")
    account = new_account("expiry")
    url = f"/v1/accounts/{account}/keys/binance/robot"
    with env.http("intake") as http:
        assert http.put(url, json={"name": "bot", **key.credentials()}).status_code == 201

    def status() -> dict[str, Any]:
        with env.http("intake") as http:
            return http.get(url).json()["health"]

    verifier.key_for_use(account, "binance")
    wait_for("the first verification", lambda: status()["verified_at"])
    lapse = datetime.now(UTC) + timedelta(days=5, hours=1)
    sandbox.update_key("binance", key.api_key, expires_at=lapse)
    health = wait_for("expires_soon", lambda: (h := status())["status"] == "expires_soon" and h)
    assert health["expires_in_days"] == 5 and health["detail"] == "5d" and not health["stop"]
    sandbox.update_key("binance", key.api_key, expires_at=None)
    wait_for("connected", lambda: status()["status"] == "connected")
    sandbox.inject("binance", "unavailable", count=3)
    wait_for(
        "temporarily_unavailable",
        lambda: any(
            line["event"] == "key.status_changed"
            and line["account"] == account
            and line["status"] == "temporarily_unavailable"
            for line in env.audit_lines()
        ),
    )
    wait_for("connected again", lambda: status()["status"] == "connected")
