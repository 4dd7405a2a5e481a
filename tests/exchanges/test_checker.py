"""KeyChecker and the client factory: URL redirection (docs/contracts.md §7), timeouts,
concurrency on one shared session, isolation between concurrent checks, secrets kept
out of logs. Network traffic goes only to the loopback sandbox."""

from __future__ import annotations

import asyncio
import logging

import pytest

from broker.config import Settings
from broker.exchanges.base import Credentials
from broker.exchanges.checker import KeyChecker
from broker.exchanges.client import ClientFactory, redirect_urls
from keybroker_dev.sandbox import SandboxServer
from keybroker_dev.sandbox.keys import ROBOT_EGRESS_IP


def creds(sandbox: SandboxServer, exchange: str, label: str) -> Credentials:
    key = sandbox.key(exchange, label)
    return Credentials(key.api_key, key.secret, key.passphrase)


def settings(sandbox: SandboxServer, **extra: object) -> Settings:
    values: dict[str, object] = {
        "exchange_urls": sandbox.exchange_urls,
        "robot_exchange_egress_ips": [ROBOT_EGRESS_IP],
        "check_timeout": 2.0,
    }
    values.update(extra)
    return Settings(**values)  # type: ignore[arg-type]


# --- URL redirection ------------------------------------------------------------------------


def test_redirect_replaces_origin_and_prefixes_path() -> None:
    api = {
        "sapi": "https://api.binance.com/sapi/v1",
        "nested": {"private": "https://{hostname}/api/v4?x=1"},
        "ws": "wss://stream.binance.com/ws",
        "other": 42,
    }
    moved = redirect_urls(api, "http://127.0.0.1:9/binance/", "example.com")
    assert moved == {
        "sapi": "http://127.0.0.1:9/binance/sapi/v1",
        "nested": {"private": "http://127.0.0.1:9/binance/api/v4?x=1"},
        "ws": "wss://stream.binance.com/ws",  # not a REST endpoint
        "other": 42,
    }


def test_redirect_without_path_keeps_endpoint_paths() -> None:
    moved = redirect_urls({"rest": "https://www.okx.com"}, "https://testnet.example:8443", None)
    assert moved == {"rest": "https://testnet.example:8443"}


async def test_factory_points_every_exchange_at_its_base() -> None:
    factory = ClientFactory({"htx": "http://127.0.0.1:1/htx", "okx": "http://127.0.0.1:1/okx"}, 1)
    try:
        htx = factory.template("htx")
        # HTX signs the host it talks to, so hostname follows the base URL
        assert htx.hostname == "127.0.0.1:1"
        assert htx.urls["api"]["v2Private"] == "http://127.0.0.1:1/htx"
        assert factory.template("okx").urls["api"]["rest"] == "http://127.0.0.1:1/okx"
        # no base configured: the real endpoint stays
        assert factory.template("kraken").urls["api"]["private"] == "https://api.kraken.com"
        assert htx.enableRateLimit is False
        assert htx.options["adjustForTimeDifference"] is False
    finally:
        await factory.aclose()


async def test_per_check_copies_do_not_share_credentials() -> None:
    factory = ClientFactory({}, 1)
    try:
        a = factory.client("okx", Credentials("key-a", "secret-a", "pass-a"))
        b = factory.client("okx", Credentials("key-b", "secret-b", "pass-b"))
        assert (a.apiKey, a.secret, a.password) == ("key-a", "secret-a", "pass-a")
        assert (b.apiKey, b.secret, b.password) == ("key-b", "secret-b", "pass-b")
        assert a.options is not b.options
        assert factory.template("okx").apiKey in (None, "")
        factory.release(a)
        assert a.session is None and a.secret == ""
        assert b.session is not None
    finally:
        await factory.aclose()


# --- checks -----------------------------------------------------------------------------------


async def test_unknown_and_disabled_exchanges_are_unsupported(sandbox: SandboxServer) -> None:
    async with KeyChecker(settings(sandbox, exchanges=["bybit"])) as checker:
        for exchange in ("nope", "okx"):
            result = await checker.check(exchange, "site", Credentials("k", "s", "p"))
            assert [r.code.value for r in result.reasons] == ["unsupported_exchange"]
            assert not result.accepted and not result.retryable


async def test_missing_passphrase_refused_before_any_request(fresh_sandbox: SandboxServer) -> None:
    key = fresh_sandbox.key("okx", "read_only")
    async with KeyChecker(settings(fresh_sandbox)) as checker:
        result = await checker.check("okx", "site", Credentials(key.api_key, key.secret))
    assert [r.code.value for r in result.reasons] == ["invalid_credentials"]
    assert fresh_sandbox.request_count(key.api_key) == 0


async def test_slow_exchange_is_bounded_by_check_timeout(fresh_sandbox: SandboxServer) -> None:
    fresh_sandbox.set_latency(2.0, "bybit")
    async with KeyChecker(settings(fresh_sandbox, check_timeout=0.2)) as checker:
        started = asyncio.get_running_loop().time()
        result = await checker.check("bybit", "robot", creds(fresh_sandbox, "bybit", "read_only"))
        elapsed = asyncio.get_running_loop().time() - started
    assert [r.code.value for r in result.reasons] == ["exchange_unavailable"]
    assert result.retryable
    assert elapsed < 1.5  # bounded by the 0.2 s timeout, not the 2 s latency


async def test_connection_refused_is_retryable() -> None:
    unused = Settings(exchange_urls={"bybit": "http://127.0.0.1:9/bybit"}, check_timeout=1)
    async with KeyChecker(unused) as checker:
        result = await checker.check("bybit", "site", Credentials("k", "s"))
    assert [r.code.value for r in result.reasons] == ["exchange_unavailable"]
    assert result.retryable


async def test_concurrent_checks_share_one_session_and_stay_apart(
    fresh_sandbox: SandboxServer,
) -> None:
    """Many checks at once, different keys and exchanges: each gets its own verdict.

    Kraken is checked once per key: concurrent requests of one key race for its nonce
    order (a real Kraken key refuses them too unless given a nonce window), which made
    this test fail under load."""
    pairs = (("read_only", "site", True), ("withdraw_enabled", "robot", False))
    plan = [
        (exchange, label, role, accepted)
        for exchange in ("binance", "okx", "kucoin", "gate", "bitget", "bingx")
        for label, role, accepted in pairs
    ] * 5
    plan += [("kraken", label, role, accepted) for label, role, accepted in pairs]
    async with KeyChecker(settings(fresh_sandbox)) as checker:
        results = await asyncio.gather(
            *(
                checker.check(exchange, role, creds(fresh_sandbox, exchange, label))
                for exchange, label, role, _ in plan
            )
        )
    for (exchange, label, _, accepted), result in zip(plan, results, strict=True):
        assert result.exchange == exchange
        assert result.accepted is accepted, (exchange, label, result.reasons)
        assert result.permissions.withdraw is (label == "withdraw_enabled")
    for exchange in ("binance", "okx"):
        assert fresh_sandbox.request_count(fresh_sandbox.key(exchange, "read_only").api_key) == 5
    assert fresh_sandbox.request_count(fresh_sandbox.key("kraken", "read_only").api_key) == 1


async def test_rate_limit_is_not_retried(fresh_sandbox: SandboxServer) -> None:
    fresh_sandbox.inject("bitget", "rate_limited", count=3)
    key = fresh_sandbox.key("bitget", "read_only")
    async with KeyChecker(settings(fresh_sandbox)) as checker:
        result = await checker.check("bitget", "site", creds(fresh_sandbox, "bitget", "read_only"))
    assert [r.code.value for r in result.reasons] == ["rate_limited"]
    assert fresh_sandbox.request_count(key.api_key) == 1


async def test_secrets_never_reach_logs(
    fresh_sandbox: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    """ccxt logs request headers at DEBUG; with every logger at DEBUG, nothing leaks."""
    caplog.set_level(logging.DEBUG)
    for name in ("ccxt", "ccxt.base.exchange", "broker"):
        caplog.set_level(logging.DEBUG, logger=name)
    checks = [("okx", "read_only"), ("htx", "read_only"), ("kucoin", "ip_refused")]
    async with KeyChecker(settings(fresh_sandbox)) as checker:
        for exchange, label in checks:
            await checker.check(exchange, "site", creds(fresh_sandbox, exchange, label))
        wrong = creds(fresh_sandbox, "bitget", "read_only")
        # A wrong secret and passphrase are presented too: they are canaries as well.
        wrong = Credentials(wrong.api_key, "wrong-bitget-secret-canary-7f3a9c", "wrong-pass-canary")
        await checker.check("bitget", "site", wrong)
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    for exchange, label in checks:
        key = fresh_sandbox.key(exchange, label)
        for secret in filter(None, (key.api_key, key.secret, key.passphrase)):
            assert secret not in logged
    for secret in (wrong.api_key, wrong.secret, wrong.passphrase):
        assert secret not in logged
    assert "exchange check failed" in logged  # the failure itself is logged, safely


async def test_result_never_carries_secrets(fresh_sandbox: SandboxServer) -> None:
    c = creds(fresh_sandbox, "bybit", "trade_whitelisted")
    async with KeyChecker(settings(fresh_sandbox)) as checker:
        result = await checker.check("bybit", "robot", c)
    dumped = result.model_dump_json() + repr(result)
    assert c.secret not in dumped and c.api_key not in dumped


@pytest.mark.parametrize(
    ("robot_egress", "broker_egress", "warned"),
    [
        ([ROBOT_EGRESS_IP], ROBOT_EGRESS_IP, False),  # the call itself proves the listing
        ([ROBOT_EGRESS_IP], None, True),  # broker egress unknown
        (["192.0.2.55"], ROBOT_EGRESS_IP, True),  # proves the broker's address, not the robot's
        ([ROBOT_EGRESS_IP, "192.0.2.55"], ROBOT_EGRESS_IP, True),  # one of two proven
    ],
)
async def test_binance_restriction_proven_only_for_the_broker_egress(
    fresh_sandbox: SandboxServer, robot_egress: list[str], broker_egress: str | None, warned: bool
) -> None:
    """Binance shows only ipRestrict (docs/facts/exchanges.md): the sandbox sees the
    broker at 203.0.113.10, so a successful call proves exactly that address."""
    config = settings(fresh_sandbox, robot_exchange_egress_ips=robot_egress)
    async with KeyChecker(config, broker_egress_ip=broker_egress) as checker:
        result = await checker.check(
            "binance", "robot", creds(fresh_sandbox, "binance", "trade_whitelisted")
        )
    assert result.accepted
    codes = {r.code.value for r in result.reasons}
    assert ("ip_whitelist_unverifiable" in codes) is warned


async def test_any_adapter_failure_becomes_a_reason(
    fresh_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug or a surprise inside an adapter is "not checked" (retryable), never a crash
    and never acceptance."""
    from broker.exchanges.registry import ADAPTERS

    async def broken(exchange: object, credentials: Credentials) -> None:
        raise KeyError("data")

    monkeypatch.setattr(ADAPTERS["gate"], "inspect", broken)
    async with KeyChecker(settings(fresh_sandbox)) as checker:
        result = await checker.check("gate", "site", creds(fresh_sandbox, "gate", "read_only"))
    assert not result.accepted and result.retryable
    assert [r.code.value for r in result.reasons] == ["exchange_unavailable"]


async def test_cancellation_propagates(fresh_sandbox: SandboxServer) -> None:
    fresh_sandbox.set_latency(5.0, "okx")
    async with KeyChecker(settings(fresh_sandbox, check_timeout=10)) as checker:
        task = asyncio.create_task(
            checker.check("okx", "site", creds(fresh_sandbox, "okx", "read_only"))
        )
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    return [value] if isinstance(value, str) else []


async def test_every_rest_endpoint_of_every_exchange_is_redirected() -> None:
    """No REST URL of any supported exchange escapes KEYBROKER_EXCHANGE_URLS."""
    from broker.exchanges.registry import ADAPTERS

    base = "http://127.0.0.1:1/prefix"
    factory = ClientFactory({exchange: f"{base}/{exchange}" for exchange in ADAPTERS}, 1)
    try:
        for exchange in ADAPTERS:
            urls = _strings(factory.template(exchange).urls["api"])
            rest = [u for u in urls if u.startswith(("http://", "https://"))]
            assert rest, exchange
            assert all(u.startswith(f"{base}/{exchange}") for u in rest), (exchange, rest)
            assert not any("{hostname}" in u for u in urls), exchange
    finally:
        await factory.aclose()
