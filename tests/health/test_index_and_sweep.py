"""The broker's side over time: keys nobody verifies become `unverified`; a restarted broker
rebuilds its index from the `health.*` custom metadata."""

from __future__ import annotations

import time
from typing import Any

from broker.api.server import start_in_thread
from keybroker_dev.sandbox import SandboxServer
from tests.fixtures.broker import AuditCapture, build_broker_env, new_account
from tests.health.conftest import own_key, report_body, robot_read_token


def test_unverified_after_twice_the_schedule_then_rebuilt_on_restart(
    devvault: Any, sandbox: SandboxServer
) -> None:
    env = build_broker_env(
        devvault.addr, devvault.root_token, sandbox.exchange_urls, verify_interval=0.5
    )
    try:
        account = new_account("sweep")
        key = own_key(sandbox)
        with env.http("intake") as http:
            put = http.put(
                f"/v1/accounts/{account}/keys/okx/robot", json={"name": "r", **key.credentials()}
            )
        assert put.json()["health"]["status"] == "connected"
        deadline = time.monotonic() + 10
        status = "connected"
        while time.monotonic() < deadline and status != "unverified":
            time.sleep(0.1)
            with env.http("intake") as http:
                status = http.get(f"/v1/accounts/{account}/keys/okx/robot").json()["health"][
                    "status"
                ]
        assert status == "unverified"
        line = [x for x in env.audit_lines() if x["event"] == "key.status_changed"][-1]
        assert (line["account"], line["status"], line["previous"]) == (
            account,
            "unverified",
            "connected",
        )
        custom = env.metadata("robot", account, "okx")["custom_metadata"]  # type: ignore[index]
        assert custom["health.status"] == "unverified"
    finally:
        env.running.stop()

    # A new broker process on the same Vault: the index comes back from metadata.
    restarted = start_in_thread(
        env.settings.model_copy(update={"verify_interval": 3600.0}), audit_stream=AuditCapture()
    )
    try:
        headers = {"Authorization": f"Bearer {env.intake_token}"}
        deadline = time.monotonic() + 10
        while True:
            listed = _get(restarted.url + "/v1/keys?status=unverified", headers)
            if listed["index_complete"] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert [(k["account"], k["role"]) for k in listed["keys"]] == [(account, "robot")]
        # A verification brings it back (the robot's own token; status from its report).
        robot = robot_read_token(env.root)
        report = report_body()
        answer = _post(
            f"{restarted.url}/v1/accounts/{account}/keys/okx/robot/verifications", robot, report
        )
        assert answer["health"]["status"] == "connected"
    finally:
        restarted.stop()


def test_a_stopping_status_is_not_swept_to_unverified(
    devvault: Any, sandbox: SandboxServer
) -> None:
    """Withdrawals found enabled, then no verification for longer than twice the schedule:
    the key stays `rights_changed` (stop) rather than turning `unverified`, which would
    hide the finding and lift the stop. (On the code before, the sweep marked it.)"""
    env = build_broker_env(
        devvault.addr, devvault.root_token, sandbox.exchange_urls, verify_interval=0.5
    )
    try:
        account = new_account("stopped")
        with env.http("intake") as http:
            put = http.put(
                f"/v1/accounts/{account}/keys/okx/robot",
                json={"name": "r", **own_key(sandbox).credentials()},
            )
        assert put.status_code == 201, put.text
        report = report_body(
            accepted=False, reasons=[{"code": "withdraw_enabled", "severity": "error"}]
        )
        url = f"{env.url}/v1/accounts/{account}/keys/okx/robot/verifications"
        answer = _post(url, robot_read_token(env.root), report)
        assert (answer["health"]["status"], answer["health"]["stop"]) == ("rights_changed", True)
        time.sleep(2.0)  # four times the 1 s threshold; the sweep runs every 0.5 s
        with env.http("intake") as http:
            health = http.get(f"/v1/accounts/{account}/keys/okx/robot").json()["health"]
        assert (health["status"], health["detail"], health["stop"]) == (
            "rights_changed",
            "withdraw",
            True,
        )
    finally:
        env.running.stop()


def _get(url: str, headers: dict[str, str]) -> Any:
    import httpx

    return httpx.get(url, headers=headers, timeout=10).json()


def _post(url: str, token: str, body: dict[str, Any]) -> Any:
    import httpx

    answer = httpx.post(url, headers={"Authorization": f"Bearer {token}"}, json=body, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()
