"""broker/config.py: docs/contracts.md §7 settings, their parsing and their error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.config import ConfigError, load_settings
from broker.durations import format_duration, parse_duration

CANARY = "hvs.CANARY-config-token-0123456789"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("KEYBROKER_"):
            monkeypatch.delenv(name)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("300", 300), ("90s", 90), ("5m", 300), ("1h", 3600), ("250ms", 0.25), (15, 15)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "5 minutes", "-1s", "1y"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_format_duration_is_the_shortest_exact_spelling() -> None:
    assert [format_duration(s) for s in (300, 90, 3600, 5400, 0)] == [
        "5m",
        "90s",
        "1h",
        "90m",
        "0s",
    ]


def test_defaults_match_the_contract() -> None:
    settings = load_settings()
    assert settings.kv_mount == "exchange-keys"
    assert settings.listen == "127.0.0.1:8080"
    assert (settings.site_token_ttl, settings.site_token_max_ttl) == (300, 900)
    assert settings.check_timeout == 10 and settings.allow_futures == frozenset()
    assert settings.accept_unverifiable == frozenset() and settings.api_docs is False
    assert settings.require_site_ip_restriction is False
    assert settings.health_resync_interval == 300
    assert settings.account_bound_reports == ["site"]


def test_environment_is_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYBROKER_EXCHANGES", "binance, okx")
    monkeypatch.setenv("KEYBROKER_EXCHANGE_URLS", '{"okx": "http://127.0.0.1:9/okx"}')
    monkeypatch.setenv("KEYBROKER_ROBOT_EXCHANGE_EGRESS_IPS", "203.0.113.10,198.51.100.0/24")
    monkeypatch.setenv("KEYBROKER_SITE_TOKEN_TTL", "2m")
    monkeypatch.setenv("KEYBROKER_HEALTH_RESYNC_INTERVAL", "10m")
    monkeypatch.setenv("KEYBROKER_ACCOUNT_BOUND_REPORTS", "site, robot")
    settings = load_settings()
    assert settings.account_bound_reports == ["robot", "site"]
    assert settings.health_resync_interval == 600
    assert settings.exchanges == ["binance", "okx"]
    assert settings.exchange_urls == {"okx": "http://127.0.0.1:9/okx"}
    assert settings.robot_exchange_egress_ips == ["203.0.113.10", "198.51.100.0/24"]
    assert settings.robot_vault_cidrs == []  # the two meanings are separate settings
    assert settings.site_token_ttl == 120


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("KEYBROKER_ROBOT_EGRESS_IPS", "not-an-ip", "KEYBROKER_ROBOT_EGRESS_IPS"),
        ("KEYBROKER_SITE_VAULT_CIDRS", "10.0.0.0/33", "KEYBROKER_SITE_VAULT_CIDRS"),
        (
            "KEYBROKER_ROBOT_EXCHANGE_EGRESS_IPS",
            "203.0.113.300",
            "KEYBROKER_ROBOT_EXCHANGE_EGRESS_IPS",
        ),
        ("KEYBROKER_ACCEPT_UNVERIFIABLE", "mexc,nasdaq", "KEYBROKER_ACCEPT_UNVERIFIABLE"),
        ("KEYBROKER_ALLOW_FUTURES", "maybe", "KEYBROKER_ALLOW_FUTURES"),
        ("KEYBROKER_EXCHANGE_URLS", '{"okx": "ftp://x"}', "KEYBROKER_EXCHANGE_URLS"),
        ("KEYBROKER_KV_MOUNT", "a/b", "KEYBROKER_KV_MOUNT"),
        ("KEYBROKER_CHECK_TIMEOUT", "soon", "KEYBROKER_CHECK_TIMEOUT"),
        ("KEYBROKER_BROKER_EGRESS_IP", "10.0.0.0/8", "KEYBROKER_BROKER_EGRESS_IP"),
        ("KEYBROKER_HEALTH_RESYNC_INTERVAL", "-5s", "KEYBROKER_HEALTH_RESYNC_INTERVAL"),
        ("KEYBROKER_ACCOUNT_BOUND_REPORTS", "site,admin", "KEYBROKER_ACCOUNT_BOUND_REPORTS"),
    ],
)
def test_errors_name_the_key(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, key: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=key):
        load_settings()


def test_ttl_above_its_maximum_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYBROKER_SITE_TOKEN_TTL", "20m")
    with pytest.raises(ConfigError, match="SITE_TOKEN_MAX_TTL"):
        load_settings()


def test_config_file_then_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "keybroker.yaml"
    config.write_text(
        "kv_mount: from-file\nKEYBROKER_LISTEN: 127.0.0.1:9999\nallow_futures: true\n"
    )
    monkeypatch.setenv("KEYBROKER_CONFIG_FILE", str(config))
    monkeypatch.setenv("KEYBROKER_ALLOW_FUTURES", "false")
    settings = load_settings()
    assert settings.kv_mount == "from-file" and settings.listen == "127.0.0.1:9999"
    assert settings.allow_futures == frozenset()  # the environment wins


@pytest.mark.parametrize(
    ("old", "exchange_side", "vault_side"),
    [
        ("SITE_EGRESS_IPS", "SITE_EXCHANGE_EGRESS_IPS", "SITE_VAULT_CIDRS"),
        ("ROBOT_EGRESS_IPS", "ROBOT_EXCHANGE_EGRESS_IPS", "ROBOT_VAULT_CIDRS"),
    ],
)
def test_old_egress_names_set_both_new_ones_and_warn(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    old: str,
    exchange_side: str,
    vault_side: str,
) -> None:
    monkeypatch.setenv(f"KEYBROKER_{old}", "203.0.113.10")
    settings = load_settings()
    assert getattr(settings, exchange_side.lower()) == ["203.0.113.10"]
    assert getattr(settings, vault_side.lower()) == ["203.0.113.10"]
    warning = caplog.text
    assert f"KEYBROKER_{old} is deprecated" in warning
    assert f"KEYBROKER_{exchange_side}" in warning and f"KEYBROKER_{vault_side}" in warning


def test_a_new_name_wins_over_the_old_one(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("KEYBROKER_SITE_EGRESS_IPS", "203.0.113.10")
    monkeypatch.setenv("KEYBROKER_SITE_VAULT_CIDRS", "10.1.0.0/24")
    settings = load_settings()
    assert settings.site_vault_cidrs == ["10.1.0.0/24"]
    assert settings.site_exchange_egress_ips == ["203.0.113.10"]
    assert "it set KEYBROKER_SITE_EXCHANGE_EGRESS_IPS." in caplog.text
    assert "SITE_EGRESS_IPS" not in repr(settings.model_dump())  # not a setting any more


def test_the_rules_read_the_exchange_side_and_the_layout_the_vault_side() -> None:
    from broker.layout import layout_from_settings

    settings = load_settings(
        site_exchange_egress_ips=["203.0.113.10"], site_vault_cidrs=["10.1.0.0/24"]
    )
    assert settings.egress_for("site") == ["203.0.113.10"]
    layout = layout_from_settings(settings)
    assert "10.1.0.0/24" in repr(layout) and "203.0.113.10" not in repr(layout)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("true", {"binance", "deribit", "mexc"}),  # a subset check below: every exchange
        ("false", set()),
        ("deribit", {"deribit"}),
        ("OKX, deribit", {"okx", "deribit"}),
    ],
)
def test_exchange_sets(monkeypatch: pytest.MonkeyPatch, text: str, expected: set[str]) -> None:
    monkeypatch.setenv("KEYBROKER_ALLOW_FUTURES", text)
    monkeypatch.setenv("KEYBROKER_ACCEPT_UNVERIFIABLE", text)
    settings = load_settings()
    for value in (settings.allow_futures, settings.accept_unverifiable):
        assert expected <= value if text == "true" else value == expected
    assert settings.futures_allowed("deribit") is ("deribit" in settings.allow_futures)
    assert settings.unverifiable_accepted("mexc") is ("mexc" in settings.accept_unverifiable)


@pytest.mark.parametrize(
    "text",
    [f'vault_token: "{CANARY}\n', f"vault_token: {CANARY}: x\n", f"[{CANARY}\n"],
)
def test_a_broken_config_file_never_echoes_its_content(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str
) -> None:
    config = tmp_path / "keybroker.yaml"
    config.write_text(text)
    monkeypatch.setenv("KEYBROKER_CONFIG_FILE", str(config))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "KEYBROKER_CONFIG_FILE" in message and "line" in message
    assert CANARY not in message and "CANARY" not in message


def test_secrets_stay_out_of_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYBROKER_VAULT_TOKEN", CANARY)
    monkeypatch.setenv("KEYBROKER_VAULT_SECRET_ID", CANARY + "-sid")
    settings = load_settings()
    assert CANARY not in repr(settings) and CANARY not in str(settings.model_dump())
    assert settings.vault_token is not None and settings.vault_token.get_secret_value() == CANARY
