""" "Check now" end to end in `keybroker dev` (issue 15): the consumers' schedule is an
hour, so only the request can cause a second check. The user presses the key page's
button (a form POST with its CSRF token, as a browser without JavaScript sends it); dev
mode's robot polls the broker every second, verifies the key through the sandbox with
trigger `demand`, and its report clears the request, all within a few seconds."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from keybroker_dev.devmode import DevStack
from tests.health.conftest import wait_for

ACCOUNT = "dora"
ARRIVES_WITHIN_S = 5.0


def test_check_now_on_the_key_page_reaches_the_robot(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="keybroker.verifier")
    said: list[str] = []
    stack = DevStack(tmp_path / "dev.json", "devvault", said.append, verify_interval=3600)
    state = stack.start()
    try:
        key = state.sandbox_keys["okx"]["trade_whitelisted"]
        headers = {"Authorization": f"Bearer {state.intake_token}"}
        url = f"{state.broker_url}/v1/accounts/{ACCOUNT}/keys/okx/robot"

        def health() -> dict[str, Any]:
            return dict(requests.get(url, headers=headers, timeout=10).json()["health"])

        def demand_checks() -> list[str]:
            return [
                r.getMessage()
                for r in caplog.records
                if f"robot key {ACCOUNT}/okx" in r.getMessage() and "(demand)" in r.getMessage()
            ]

        stored = requests.put(url, json={"name": "bot", **key}, headers=headers, timeout=30)
        assert stored.status_code == 201, stored.text
        first = wait_for("the robot's load check", lambda: health()["verified_at"], 30)

        with requests.Session() as browser:
            page = browser.get(f"{state.ui_url}/accounts/{ACCOUNT}", timeout=10)
            token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text)
            assert token
            time.sleep(1.0)  # reports carry whole seconds: the next check is visibly later
            asked = time.monotonic()
            answer = browser.post(
                f"{state.ui_url}/accounts/{ACCOUNT}/keys/okx/robot/check",
                data={"csrf_token": token.group(1)},
                timeout=10,
            )
            assert answer.status_code == 200 and "Check requested" in answer.text
            verified = wait_for(
                "the demanded check",
                lambda: h if (h := health())["verified_at"] != first else None,
                ARRIVES_WITHIN_S,
            )
            took = time.monotonic() - asked
        assert verified["requested_at"] is None and verified["status"] == "connected"
        assert len(demand_checks()) == 1, demand_checks()
        audit = stack.audit_log.read_text()
        assert '"event":"verification.requested"' in audit
        seen = "\n".join(said) + audit + answer.text + caplog.text
        assert key["secret"] not in seen and key["passphrase"] not in seen
        print(f"check now -> robot's verification at the broker in {took:.2f}s")
    finally:
        stack.stop()
