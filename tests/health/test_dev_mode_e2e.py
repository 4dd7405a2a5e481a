"""Issue 15's acceptance in `keybroker dev` itself: the dev stack's own reference robot
(the runtime client with its verifier, signing through its Transit key) verifies a stored
key on a shortened schedule; the key is changed through the sandbox's admin endpoint over
HTTP, as a user would change it at the exchange. Status, the robot stopping and waiting,
the audit log, the signed webhook (first attempt refused, retried) and no secret anywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from broker.webhooks import SIGNATURE_HEADER, verify_signature
from keybroker_dev.devmode import DevStack
from keybroker_dev.sandbox.keys import OTHER_IP, ROBOT_EGRESS_IP
from tests.health.conftest import WEBHOOK_SECRET, Receiver, wait_for

INTERVAL = 1.5  # the reference consumers' schedule, shortened from dev mode's 60 s
ACCOUNT = "carol"


def test_dev_mode_robot_reports_changes_made_at_the_exchange(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KEYBROKER_WEBHOOK_URLS", receiver.url)
    monkeypatch.setenv("KEYBROKER_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("KEYBROKER_WEBHOOK_RETRY_DELAYS", "50ms,100ms,200ms")
    said: list[str] = []
    stack = DevStack(tmp_path / "dev.json", "devvault", said.append, verify_interval=INTERVAL)
    state = stack.start()
    try:
        key = state.sandbox_keys["okx"]["trade_whitelisted"]
        headers = {"Authorization": f"Bearer {state.intake_token}"}
        url = f"{state.broker_url}/v1/accounts/{ACCOUNT}/keys/okx/robot"

        def health() -> dict[str, Any]:
            return dict(requests.get(url, headers=headers, timeout=10).json()["health"])

        def status_is(status: str) -> Callable[[], dict[str, Any] | None]:
            return lambda: found if (found := health())["status"] == status else None

        def exchange_admin(action: str, **body: Any) -> None:
            answer = requests.post(
                f"{state.sandbox_url}/_sandbox/{action}",
                json={"exchange": "okx", "api_key": key["api_key"], **body},
                timeout=10,
            )
            assert answer.status_code == 200, answer.text

        stored = requests.put(url, json={"name": "bot", **key}, headers=headers, timeout=30)
        assert stored.status_code == 201, stored.text
        wait_for("the robot's first verification", lambda: health()["verified_at"])
        wait_for(
            "the robot to use the key", lambda: f"robot: using {ACCOUNT}/okx v1" in "\n".join(said)
        )

        # Withdrawals enabled at the exchange: rights_changed, and the robot stops.
        exchange_admin("key-update", changes={"withdraw": True})
        changed = wait_for("rights_changed", status_is("rights_changed"))
        assert changed["rights"] == ["withdraw"] and changed["stop"] is True
        wait_for(
            "the robot to stop", lambda: f"robot: stopped using {ACCOUNT}/okx v1" in " ".join(said)
        )
        audit = [json.loads(line) for line in stack.audit_log.read_text().splitlines()]
        changes = [a for a in audit if a["event"] == "key.status_changed"]
        assert changes[-1]["status"] == "rights_changed" and changes[-1]["caller"]
        delivered = wait_for(
            "the webhook",
            lambda: [b for b in receiver.bodies() if b["status"] == "rights_changed"],
        )
        assert delivered[0]["account"] == ACCOUNT and receiver.answered[0] == 500
        index = receiver.answered.index(200)
        headers_in, raw = receiver.received[index]
        assert verify_signature(WEBHOOK_SECRET.encode(), headers_in[SIGNATURE_HEADER], raw)

        # Withdrawals off again: connected. The whitelist without the robot's address:
        # ip_not_allowed; restored: connected. Deleted at the exchange: revoked.
        exchange_admin("key-update", changes={"withdraw": False})
        assert wait_for("connected", status_is("connected"))["stop"] is False
        exchange_admin("key-update", changes={"ip_whitelist": [OTHER_IP]})
        wait_for("ip_not_allowed", status_is("ip_not_allowed"))
        exchange_admin("key-update", changes={"ip_whitelist": [ROBOT_EGRESS_IP]})
        wait_for("connected again", status_is("connected"))
        exchange_admin("key-delete")
        wait_for("revoked_at_exchange", status_is("revoked_at_exchange"))

        # Every change was delivered, in order. Under load a verification may come later
        # than twice the (1 s) schedule, so `unverified` (and the `connected` after it)
        # may slip in between; the sweep never hides a stopping status.
        statuses: list[str] = []
        for body in receiver.bodies():
            if body["status"] != "unverified" and statuses[-1:] != [body["status"]]:
                statuses.append(body["status"])
        assert statuses == [
            "rights_changed",
            "connected",
            "ip_not_allowed",
            "connected",
            "revoked_at_exchange",
        ]
        metrics = requests.get(f"{state.broker_url}/metrics", headers=headers, timeout=10).text
        seen = "\n".join(said) + stack.audit_log.read_text() + metrics
        seen += "".join(body.decode() for _, body in receiver.received)
        assert key["secret"] not in seen and key["passphrase"] not in seen
    finally:
        stack.stop()
