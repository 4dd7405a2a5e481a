"""`keybroker check-key` through the real typer command (docs/contracts.md §5): credentials
from flags or KEYBROKER_API_* variables, exchanges reached through KEYBROKER_EXCHANGE_URLS,
exit codes 0/1/2/3, JSON output a CheckResult, text output without secrets."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from broker.cli import app
from broker.reasons import CheckResult
from keybroker_dev.sandbox import SandboxServer
from keybroker_dev.sandbox.keys import ROBOT_EGRESS_IP

runner = CliRunner()


@pytest.fixture
def env(fresh_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    for name in ("KEYBROKER_API_KEY", "KEYBROKER_API_SECRET", "KEYBROKER_API_PASSPHRASE",
                 "KEYBROKER_CONFIG_FILE", "KEYBROKER_EXCHANGES"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KEYBROKER_EXCHANGE_URLS", json.dumps(fresh_sandbox.exchange_urls))
    monkeypatch.setenv("KEYBROKER_ROBOT_EXCHANGE_EGRESS_IPS", ROBOT_EGRESS_IP)
    monkeypatch.setenv("KEYBROKER_CHECK_TIMEOUT", "2s")
    return fresh_sandbox


def invoke(*args: str, env_vars: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["check-key", *args], env=env_vars)


def test_accepted_key_from_environment_json(env: SandboxServer) -> None:
    key = env.key("okx", "read_only")
    result = invoke(
        "--exchange", "okx", "--role", "site", "--format", "json",
        env_vars={"KEYBROKER_API_KEY": key.api_key, "KEYBROKER_API_SECRET": key.secret,
                  "KEYBROKER_API_PASSPHRASE": key.passphrase or ""},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    parsed = CheckResult.model_validate_json(result.stdout)
    assert parsed.accepted and parsed.exchange == "okx" and parsed.role == "site"
    assert set(json.loads(result.stdout)) == {
        "accepted", "exchange", "role", "permissions", "ip_restricted",
        "ip_whitelist", "expires_at", "reasons",
    }  # fmt: skip
    assert env.request_count(key.api_key) == 1


def test_rejected_key_text_output(env: SandboxServer) -> None:
    key = env.key("bybit", "withdraw_enabled")
    result = invoke("--exchange", "bybit", "--role", "robot", "--api-key", key.api_key,
                    "--secret", key.secret)  # fmt: skip
    assert result.exit_code == 1
    assert "REJECTED" in result.stdout
    assert "withdraw_enabled" in result.stdout
    assert key.secret not in result.output and key.api_key not in result.output
    assert f"{key.api_key[:4]}...{key.api_key[-4:]}" in result.stdout


def test_retryable_exit_3(env: SandboxServer) -> None:
    env.set_outage("gate", True)
    key = env.key("gate", "read_only")
    result = invoke("--exchange", "gate", "--role", "site", "--api-key", key.api_key,
                    "--secret", key.secret, "--format", "json")  # fmt: skip
    assert result.exit_code == 3
    assert json.loads(result.stdout)["reasons"][0]["code"] == "exchange_unavailable"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--exchange", "bybit", "--role", "site", "--secret", "s"], "--api-key"),
        (["--exchange", "bybit", "--role", "site", "--api-key", "k"], "--secret"),
        (["--exchange", "okx", "--role", "site", "--api-key", "k", "--secret", "s"],
         "--passphrase"),
        (["--exchange", "nosuch", "--role", "site", "--api-key", "k", "--secret", "s"],
         "unknown exchange"),
    ],
)  # fmt: skip
def test_usage_errors_exit_2(env: SandboxServer, args: list[str], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_disabled_exchange_is_usage_error(env: SandboxServer) -> None:
    only = {"KEYBROKER_EXCHANGES": "bybit,binance"}
    result = invoke("--exchange", "okx", "--role", "site", "--api-key", "k", "--secret", "s",
                    "--passphrase", "p", env_vars=only)  # fmt: skip
    assert result.exit_code == 2
    assert "not enabled" in result.stderr


def test_bad_configuration_is_usage_error(env: SandboxServer) -> None:
    result = invoke("--exchange", "bybit", "--role", "site", "--api-key", "k", "--secret", "s",
                    env_vars={"KEYBROKER_EXCHANGE_URLS": '{"bybit": "ftp://x"}'})  # fmt: skip
    assert result.exit_code == 2
    assert "KEYBROKER_EXCHANGE_URLS" in result.stderr


def test_bad_role_is_rejected_by_the_cli(env: SandboxServer) -> None:
    result = invoke("--exchange", "bybit", "--role", "admin", "--api-key", "k", "--secret", "s")
    assert result.exit_code == 2
