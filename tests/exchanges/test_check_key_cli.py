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


# --- issue 11: --dev, --exchange-url, nothing learned ---------------------------------------


def _dev_state_file(sandbox: SandboxServer, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A state file as `keybroker dev` writes it, for this sandbox."""
    from keybroker_dev.devmode import dev_check_settings

    state = {
        "sandbox_url": sandbox.base_url,
        "sandbox_keys": {
            exchange: {label: key.credentials() for label, key in labels.items()}
            for exchange, labels in sandbox.keys.items()
        },
        "check_settings": dev_check_settings(dict(sandbox.exchange_urls)),
    }
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(state))
    return str(path)


@pytest.mark.parametrize(
    ("exchange", "role", "label"),
    [("binance", "site", "read_only"), ("mexc", "robot", "trade_whitelisted"),
     ("deribit", "robot", "trade_whitelisted")],
)  # fmt: skip
def test_dev_reads_the_sandbox_and_its_keys_from_the_state_file(
    fresh_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path, exchange, role, label
) -> None:
    for name in ("KEYBROKER_EXCHANGE_URLS", "KEYBROKER_ROBOT_EXCHANGE_EGRESS_IPS"):
        monkeypatch.delenv(name, raising=False)
    state = _dev_state_file(fresh_sandbox, tmp_path)
    result = invoke("--dev", "--state-file", state, "--exchange", exchange, "--role", role,
                    "--sandbox-key", label, "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert CheckResult.model_validate_json(result.stdout).accepted
    assert fresh_sandbox.request_count(fresh_sandbox.key(exchange, label).api_key) >= 1


def test_dev_without_a_running_dev_mode_says_what_to_do(env: SandboxServer, tmp_path) -> None:
    result = invoke("--dev", "--state-file", str(tmp_path / "none.json"), "--exchange", "okx",
                    "--role", "site", "--sandbox-key", "read_only")  # fmt: skip
    assert result.exit_code == 2
    assert "start `keybroker dev`" in result.stderr


def test_sandbox_key_needs_dev(env: SandboxServer) -> None:
    result = invoke("--exchange", "okx", "--role", "site", "--sandbox-key", "read_only")
    assert result.exit_code == 2 and "add --dev" in result.stderr


def test_exchange_url_aims_one_exchange(
    fresh_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KEYBROKER_EXCHANGE_URLS", raising=False)
    monkeypatch.setenv("KEYBROKER_ROBOT_EXCHANGE_EGRESS_IPS", ROBOT_EGRESS_IP)
    key = fresh_sandbox.key("bybit", "trade_whitelisted")
    result = invoke("--exchange", "bybit", "--role", "robot", "--exchange-url",
                    fresh_sandbox.exchange_urls["bybit"], "--format", "json",
                    env_vars={"KEYBROKER_API_KEY": key.api_key,
                              "KEYBROKER_API_SECRET": key.secret})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert fresh_sandbox.request_count(key.api_key) == 1
    bad = invoke("--exchange", "bybit", "--role", "robot", "--exchange-url", "ftp://x",
                 env_vars={"KEYBROKER_API_KEY": "k", "KEYBROKER_API_SECRET": "s"})  # fmt: skip
    assert bad.exit_code == 2 and "KEYBROKER_EXCHANGE_URLS" in bad.stderr


@pytest.mark.parametrize(
    ("spoil", "code", "step"),
    [("secret", "invalid_credentials", "check the api key, secret and passphrase"),
     ("outage", "exchange_unavailable", "check that the exchange answers at its URL")],
)  # fmt: skip
def test_nothing_learned_is_said_instead_of_an_all_no_table(
    env: SandboxServer, spoil: str, code: str, step: str
) -> None:
    key = env.key("bybit", "trade_whitelisted")
    secret = key.secret
    if spoil == "secret":
        secret = secret[:-1] + ("0" if secret[-1] != "0" else "1")
    else:
        env.set_outage("bybit", True)
    result = invoke("--exchange", "bybit", "--role", "robot", "--api-key", key.api_key,
                    "--secret", secret)  # fmt: skip
    assert result.exit_code in (1, 3)
    out = result.stdout
    assert "nothing was learned about its rights" in out
    assert code in out and f"What to do: {step}" in out
    assert "spot_trade" not in out and " no " not in out  # no table of unknown rights
    assert secret not in result.output
