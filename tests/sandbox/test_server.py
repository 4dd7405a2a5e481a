"""The sandbox server itself: lifecycle, keys, counters, controls (in-process and HTTP)."""

from __future__ import annotations

import json
import subprocess
import sys

import aiohttp
import pytest

from broker.sandbox import SandboxKey, SandboxKeyError, SandboxServer, SandboxStateError
from broker.sandbox.keys import EXCHANGES, PASSPHRASE_EXCHANGES, new_key

LABELS = {
    "read_only",
    "trade_whitelisted",
    "withdraw_enabled",
    "transfer_enabled",
    "no_whitelist",
    "futures_enabled",
}


def test_every_exchange_is_served_under_its_own_path(sandbox: SandboxServer) -> None:
    assert set(sandbox.exchange_urls) == set(EXCHANGES)
    for exchange, url in sandbox.exchange_urls.items():
        assert url == f"{sandbox.base_url}/{exchange}"
    assert sandbox.base_url.startswith("http://127.0.0.1:")


def test_default_keys_cover_the_contract_labels(sandbox: SandboxServer) -> None:
    for exchange in EXCHANGES:
        labels = sandbox.keys[exchange]
        assert labels.keys() >= LABELS
        assert labels["read_only"].ip_whitelist == ("203.0.113.10",)
        assert not labels["read_only"].spot_trade
        assert labels["trade_whitelisted"].ip_whitelist == ("203.0.113.10", "198.51.100.7")
        assert labels["no_whitelist"].ip_whitelist is None
        assert labels["withdraw_enabled"].withdraw
        assert labels["transfer_enabled"].transfer
        assert labels["futures_enabled"].futures
        for key in labels.values():
            assert (key.passphrase is not None) == (exchange in PASSPHRASE_EXCHANGES)
    assert sandbox.keys["coinbase"]["cdp"].key_type == "cdp"


def test_keys_are_random_per_server() -> None:
    first = SandboxServer().keys["okx"]["read_only"]
    second = SandboxServer().keys["okx"]["read_only"]
    assert first.api_key != second.api_key
    assert first.secret != second.secret
    assert first.passphrase != second.passphrase


def test_repr_never_shows_secret_or_passphrase() -> None:
    key = SandboxKey(
        exchange="okx",
        label="canary",
        api_key="CANARY-API-KEY-0001",
        secret="CANARY-SECRET-0001",
        passphrase="CANARY-PASSPHRASE-0001",
    )
    text = repr(key) + str(key)
    assert "CANARY-SECRET" not in text
    assert "CANARY-PASSPHRASE" not in text
    assert "CANARY-API-KEY" not in text
    assert "okx" in text and "canary" in text


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"exchange": "nasdaq"}, "not sandboxed"),
        ({"exchange": "okx", "passphrase": None}, "needs passphrase"),
        ({"exchange": "binance", "passphrase": "p"}, "has no passphrase"),
        ({"key_version": 4}, "key_version"),
        ({"secret": ""}, "required"),
    ],
)
def test_bad_key_definitions_are_refused_without_echoing_secrets(
    fields: dict[str, object], message: str
) -> None:
    base: dict[str, object] = {
        "exchange": "binance",
        "label": "x",
        "api_key": "k",
        "secret": "CANARY-SECRET-0002",
    }
    with pytest.raises(SandboxKeyError, match=message) as info:
        SandboxKey(**(base | fields))  # type: ignore[arg-type]
    assert "CANARY-SECRET" not in str(info.value)


def test_keys_file_round_trip(tmp_path) -> None:
    keys = [new_key("kucoin", "mine", key_version=1, ip_whitelist=["203.0.113.10"])]
    path = tmp_path / "keys.json"
    path.write_text(json.dumps([key.to_json() for key in keys]))
    from broker.sandbox.keys import load_keys_file

    loaded = load_keys_file(path)
    assert loaded == keys


def test_keys_file_errors_are_typed(tmp_path) -> None:
    from broker.sandbox.keys import load_keys_file

    path = tmp_path / "keys.json"
    path.write_text("{not json")
    with pytest.raises(SandboxKeyError, match="not JSON"):
        load_keys_file(path)
    path.write_text(json.dumps([{"exchange": "okx", "label": "x", "bogus": 1}]))
    with pytest.raises(SandboxKeyError, match="unknown key fields"):
        load_keys_file(path)


def test_controls_reject_unknown_names(sandbox: SandboxServer) -> None:
    with pytest.raises(SandboxStateError):
        sandbox.inject("nasdaq", "rate_limited")
    with pytest.raises(SandboxStateError):
        sandbox.inject("okx", "meteor")
    with pytest.raises(SandboxStateError):
        sandbox.set_latency(-1)


def test_listens_on_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        SandboxServer(host="0.0.0.0")
