"""The sandbox server itself: lifecycle, keys, counters, controls (in-process and HTTP)."""

from __future__ import annotations

import json
import subprocess
import sys

import aiohttp
import pytest

from keybroker_dev.sandbox import SandboxKey, SandboxKeyError, SandboxServer, SandboxStateError
from keybroker_dev.sandbox.keys import EXCHANGES, PASSPHRASE_EXCHANGES, new_key

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
        ({"secret": ""}, "non-empty string"),
        ({"withdraw": "false"}, "true or false"),
        ({"ip_whitelist": "203.0.113.10"}, "list of IPs"),
        ({"key_type": "pgp"}, "key_type"),
        ({"uid": -1}, "non-negative"),
        ({"expires_at": "2030-01-01"}, "timezone-aware"),
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
    from keybroker_dev.sandbox.keys import load_keys_file

    loaded = load_keys_file(path)
    assert loaded == keys


def test_keys_file_errors_are_typed(tmp_path) -> None:
    from keybroker_dev.sandbox.keys import load_keys_file

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


# --- HTTP controls (for dev mode and benches in other processes) ---------------------------


async def _post(session: aiohttp.ClientSession, url: str, body: dict) -> tuple[int, dict]:
    async with session.post(url, json=body) as response:
        return response.status, await response.json()


async def test_http_controls_drive_the_same_state(fresh_sandbox: SandboxServer) -> None:
    control = f"{fresh_sandbox.base_url}/_sandbox"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{control}/health") as response:
            assert response.status == 200
        assert (await _post(session, f"{control}/inject", {"exchange": "okx", "fault": "timeout"}))[
            0
        ] == 200
        assert fresh_sandbox.state.take_fault("okx") is not None
        status, _ = await _post(session, f"{control}/latency", {"seconds": 0.5, "exchange": "gate"})
        assert status == 200 and fresh_sandbox.state.latency_for("gate") == 0.5
        status, _ = await _post(session, f"{control}/outage", {"exchange": "kraken", "down": True})
        assert status == 200 and fresh_sandbox.state.is_down("kraken")
        key = fresh_sandbox.key("mexc", "read_only")
        fresh_sandbox.state.count(key.api_key)
        status, body = await _post(session, f"{control}/request-count", {"api_key": key.api_key})
        assert (status, body) == (200, {"count": 1})
        status, _ = await _post(session, f"{control}/reset", {})
        assert status == 200
        assert not fresh_sandbox.state.is_down("kraken")
        assert fresh_sandbox.state.latency_for("gate") == 0.0
        assert fresh_sandbox.request_count(key.api_key) == 0


async def test_http_controls_refuse_bad_input(fresh_sandbox: SandboxServer) -> None:
    control = f"{fresh_sandbox.base_url}/_sandbox"
    async with aiohttp.ClientSession() as session:
        for name, body in (
            ("inject", {"exchange": "okx", "fault": "meteor"}),
            ("inject", {"exchange": "nasdaq", "fault": "timeout"}),
            ("inject", {"fault": "timeout"}),
            ("latency", {"seconds": "soon"}),
            ("latency", {"seconds": 3600}),
            ("client-ip", {"ip": "not-an-ip"}),
            ("keys", {"exchange": "okx", "label": "x", "api_key": "k", "secret": "s"}),
        ):
            status, answer = await _post(session, f"{control}/{name}", body)
            assert status == 400, (name, body)
            assert answer["error"]
        async with session.post(f"{control}/reset", data=b"[1, 2") as response:
            assert response.status == 400


async def test_keys_can_be_added_over_http(fresh_sandbox: SandboxServer) -> None:
    key = new_key("bybit", "added_over_http", spot_trade=True, ip_whitelist=["203.0.113.10"])
    async with aiohttp.ClientSession() as session:
        status, body = await _post(
            session, f"{fresh_sandbox.base_url}/_sandbox/keys", key.to_json()
        )
    assert (status, body) == (200, {"exchange": "bybit", "label": "added_over_http"})
    assert fresh_sandbox.key("bybit", "added_over_http") == key


def test_reset_clears_faults_latency_outages_counters_and_client_ip(sandbox: SandboxServer) -> None:
    key = sandbox.key("okx", "read_only")
    sandbox.inject("okx", "rate_limited", count=3)
    sandbox.set_latency(1.0)
    sandbox.set_outage("okx", True)
    sandbox.set_client_ip("192.0.2.1")
    sandbox.state.count(key.api_key)
    sandbox.reset()
    assert sandbox.state.take_fault("okx") is None
    assert sandbox.state.latency_for("okx") == 0.0
    assert not sandbox.state.is_down("okx")
    assert sandbox.state.client_ip == "203.0.113.10"
    assert sandbox.request_count(key.api_key) == 0
    assert sandbox.key("okx", "read_only") == key  # keys survive a reset


def test_unknown_exchange_path_is_404(sandbox: SandboxServer) -> None:
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{sandbox.base_url}/nasdaq/api/v1/whatever", timeout=5)
    assert info.value.code == 404


# --- `keybroker sandbox` -----------------------------------------------------------------


def test_cli_prints_the_description_as_its_first_line(tmp_path) -> None:
    keys = [
        new_key("okx", "mine", spot_trade=True),
        new_key("binance", "theirs"),
    ]
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(json.dumps([key.to_json() for key in keys]))
    process = subprocess.Popen(
        [sys.executable, "-m", "broker", "sandbox", "--port", "0", "--keys", str(keys_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = json.loads(process.stdout.readline())
        assert first["base_url"].startswith("http://127.0.0.1:")
        assert first["exchange_urls"]["okx"] == first["base_url"] + "/okx"
        assert set(first["exchange_urls"]) == set(EXCHANGES)
        assert first["keys"] == {
            "okx": {"mine": keys[0].credentials()},
            "binance": {"theirs": keys[1].credentials()},
        }
        assert "passphrase" in first["keys"]["okx"]["mine"]
        assert "passphrase" not in first["keys"]["binance"]["theirs"]
        import urllib.request

        with urllib.request.urlopen(first["base_url"] + "/_sandbox/health", timeout=5) as answer:
            assert answer.status == 200
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert process.returncode == 0


def test_run_forever_refuses_a_bad_keys_file(tmp_path, capsys) -> None:
    from keybroker_dev.sandbox import run_forever

    keys_file = tmp_path / "keys.json"
    keys_file.write_text('{"not": "a list"}')
    assert run_forever(host="127.0.0.1", port=0, keys_file=keys_file) == 2
    captured = capsys.readouterr()
    assert "expected a JSON list" in captured.err
    assert captured.out == ""
    assert run_forever(host="10.1.2.3", port=0, keys_file=None) == 2
    assert "loopback only" in capsys.readouterr().err


async def test_latency_is_not_serialised(fresh_sandbox: SandboxServer) -> None:
    # 200 requests held 0.5 s each: one after the other they would take 100 s; the
    # bound below only proves they overlap (the timing figures live in the bench).
    import asyncio
    import time

    fresh_sandbox.set_latency(0.5, exchange="okx")
    url = f"{fresh_sandbox.base_url}/okx/api/v5/account/config"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one() -> int:
            async with session.get(url) as response:
                return response.status

        started = time.monotonic()
        statuses = await asyncio.gather(*(one() for _ in range(200)))
        elapsed = time.monotonic() - started
    assert statuses == [401] * 200  # no OK-ACCESS-* headers: OKX's 50103
    assert 0.5 <= elapsed < 20


def test_server_can_stop_and_start_again() -> None:
    import urllib.request

    server = SandboxServer(keys=[new_key("okx", "only")])
    for _ in range(2):
        with server, urllib.request.urlopen(f"{server.base_url}/_sandbox/health", timeout=5) as r:
            assert r.status == 200
        with pytest.raises(OSError):
            urllib.request.urlopen(f"{server.base_url}/_sandbox/health", timeout=5)


@pytest.mark.parametrize(
    "whitelist, allowed",
    [
        (None, True),
        (("203.0.113.10",), True),
        (("198.51.100.7",), False),
        (("203.0.113.0/24",), True),
        (("203.0.114.0/24", "not-an-ip"), False),
        ((), False),
    ],
)
def test_whitelist_matching(whitelist: tuple[str, ...] | None, allowed: bool) -> None:
    key = new_key("bybit", "w", ip_whitelist=whitelist)
    assert key.allows_ip("203.0.113.10") is allowed


def test_sandbox_settings_point_the_broker_at_the_sandbox(
    sandbox: SandboxServer, sandbox_settings
) -> None:
    assert sandbox_settings.exchange_urls == sandbox.exchange_urls
    assert sandbox_settings.robot_exchange_egress_ips == ["203.0.113.10"]


def test_fresh_sandbox_is_the_session_server_reset(
    sandbox: SandboxServer, fresh_sandbox: SandboxServer
) -> None:
    assert fresh_sandbox is sandbox
    assert fresh_sandbox.state.take_fault("okx") is None
