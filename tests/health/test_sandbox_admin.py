"""The sandbox's run-time key changes over its HTTP controls (other processes use these):
rights, whitelist, expiry and existence, each seen by the next signed request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import requests

from keybroker_dev.sandbox import SandboxServer
from tests.health.conftest import own_key


def test_key_update_and_delete_controls(sandbox: SandboxServer) -> None:
    key = own_key(sandbox, "binance")
    control = f"{sandbox.base_url}/_sandbox"
    expires = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    changed = requests.post(
        f"{control}/key-update",
        json={
            "exchange": "binance",
            "api_key": key.api_key,
            "changes": {"withdraw": True, "ip_whitelist": ["198.51.100.7"], "expires_at": expires},
        },
        timeout=10,
    )
    assert changed.status_code == 200, changed.text
    now = sandbox.key("binance", key.label)
    assert now.withdraw and now.ip_whitelist == ("198.51.100.7",) and now.expires_at
    for bad in (
        {"exchange": "binance", "api_key": key.api_key, "changes": {"secret": "x"}},
        {"exchange": "binance", "api_key": key.api_key, "changes": {"withdraw": "yes"}},
        {"exchange": "binance", "api_key": "unknown", "changes": {"withdraw": True}},
        {"exchange": "nowhere", "api_key": key.api_key, "changes": {}},
    ):
        answer = requests.post(f"{control}/key-update", json=bad, timeout=10)
        assert answer.status_code == 400, bad
        assert key.secret not in answer.text
    deleted = requests.post(
        f"{control}/key-delete", json={"exchange": "binance", "api_key": key.api_key}, timeout=10
    )
    assert deleted.status_code == 200
    assert sandbox.state.find_key("binance", key.api_key) is None
    again = requests.post(
        f"{control}/key-delete", json={"exchange": "binance", "api_key": key.api_key}, timeout=10
    )
    assert again.status_code == 400
