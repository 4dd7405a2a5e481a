"""Shared helpers of the broker tests."""

from __future__ import annotations

from typing import Any

from keybroker_dev.sandbox.keys import SandboxKey


def key_body(key: SandboxKey, name: str = "Main key") -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "api_key": key.api_key, "secret": key.secret}
    if key.passphrase:
        body["passphrase"] = key.passphrase
    return body


def check_body(key: SandboxKey, role: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "exchange": key.exchange,
        "role": role,
        "api_key": key.api_key,
        "secret": key.secret,
    }
    if key.passphrase:
        body["passphrase"] = key.passphrase
    return body


def assert_envelope(response: Any, status: int, error: str) -> dict[str, Any]:
    """docs/contracts.md §3: every failure is {"error", "message", "reasons"}."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message", "reasons"}, body
    assert body["error"] == error, body
    assert isinstance(body["message"], str) and body["message"]
    for reason in body["reasons"]:
        assert set(reason) == {"code", "severity", "message"}
        assert reason["severity"] in {"error", "warning"}
    return body


KEY_VIEW_FIELDS = {
    "account",
    "exchange",
    "role",
    "name",
    "api_key_masked",
    "status",
    "permissions",
    "ip_restricted",
    "ip_whitelist",
    "expires_at",
    "warnings",
    "version",
    "created_at",
    "updated_at",
    "health",  # extension: the key's health status (docs/key-health.md)
}
PERMISSION_FIELDS = {"read", "spot_trade", "margin", "futures", "withdraw", "transfer"}
CHECK_RESULT_FIELDS = {
    "accepted",
    "exchange",
    "role",
    "permissions",
    "ip_restricted",
    "ip_whitelist",
    "expires_at",
    "reasons",
}
