"""Real ccxt (async) against the sandbox, for every exchange: a correctly signed request is
accepted and answered in the documented shape; wrong secret, wrong passphrase, unknown
key, stale timestamp, refused IP and expired key make ccxt raise what the real exchange
would make it raise (tests/sandbox/specs.py, from docs/facts/exchanges.md); injected faults,
outages and timeouts too; and the sandbox counts exactly one request per call.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import ccxt.async_support as ccxt_async
import pytest

from keybroker_dev.sandbox import SandboxKey, SandboxServer
from tests.sandbox.ccxt_client import client
from tests.sandbox.specs import BY_NAME, SPECS, Outcome, Spec

each_exchange = pytest.mark.parametrize("spec", SPECS, ids=str)
# Transport-level behaviour (timeouts, latency) is one code path for all exchanges; three
# exchanges with different signing styles and methods (header, query, POST body) suffice.
some_exchanges = pytest.mark.parametrize(
    "spec", [BY_NAME["okx"], BY_NAME["htx"], BY_NAME["kraken"]], ids=str
)


@contextlib.asynccontextmanager
async def exchange(
    sandbox: SandboxServer, spec: Spec, key: SandboxKey, **overrides: Any
) -> AsyncIterator[ccxt_async.Exchange]:
    instance = client(spec.exchange, sandbox.exchange_urls[spec.exchange], key, **overrides)
    try:
        yield instance
    finally:
        await instance.close()


async def call(instance: ccxt_async.Exchange, spec: Spec, key: SandboxKey) -> Any:
    return await getattr(instance, spec.method)(spec.params(key))


async def expect(
    sandbox: SandboxServer, spec: Spec, key: SandboxKey, outcome: Outcome, **overrides: Any
) -> None:
    error, code = outcome
    async with exchange(sandbox, spec, key, **overrides) as instance:
        with pytest.raises(error) as info:
            await call(instance, spec, key)
    assert code in str(info.value)


@each_exchange
async def test_signed_request_is_accepted_and_rights_are_rendered(
    fresh_sandbox: SandboxServer, spec: Spec
) -> None:
    read_only = fresh_sandbox.key(spec.exchange, "read_only")
    withdraw = fresh_sandbox.key(spec.exchange, "withdraw_enabled")
    robot = fresh_sandbox.key(spec.exchange, "trade_whitelisted")
    async with exchange(fresh_sandbox, spec, read_only) as instance:
        answer = await call(instance, spec, read_only)
        trade, can_withdraw, ips = spec.rights(answer, read_only)
        assert (trade, can_withdraw) == (False, False)
        if ips is not None and not isinstance(ips, bool):
            assert "203." in str(ips)  # KuCoin masks it as 203.**.10
        for key, expected in ((withdraw, (True, True)), (robot, (True, False))):
            instance.apiKey, instance.secret = key.api_key, key.secret
            instance.password = key.passphrase
            answer = await call(instance, spec, key)
            assert spec.rights(answer, key)[:2] == expected
    assert fresh_sandbox.request_count(read_only.api_key) == 1
    assert fresh_sandbox.request_count(withdraw.api_key) == 1


@each_exchange
async def test_wrong_secret_is_refused_by_the_signature_check(
    fresh_sandbox: SandboxServer, spec: Spec
) -> None:
    key = fresh_sandbox.key(spec.exchange, "read_only")
    # Same length and alphabet as the real secret (Kraken's must stay valid base64).
    wrong = key.secret[::-1] if spec.exchange != "kraken" else "QUJD" * (len(key.secret) // 4)
    await expect(fresh_sandbox, spec, key, spec.bad_secret, secret=wrong)
    assert fresh_sandbox.request_count(key.api_key) == 1


@pytest.mark.parametrize("spec", [s for s in SPECS if s.bad_passphrase], ids=str)
async def test_wrong_passphrase_is_refused(fresh_sandbox: SandboxServer, spec: Spec) -> None:
    assert spec.bad_passphrase is not None
    key = fresh_sandbox.key(spec.exchange, "read_only")
    await expect(fresh_sandbox, spec, key, spec.bad_passphrase, password="not-the-passphrase")


@each_exchange
async def test_unknown_key_is_refused(fresh_sandbox: SandboxServer, spec: Spec) -> None:
    key = fresh_sandbox.key(spec.exchange, "read_only")
    await expect(fresh_sandbox, spec, key, spec.unknown_key, apiKey="Zk9" + key.api_key[3:])


# Kraken signs nonces, not timestamps: test_signing.py replays a nonce instead.
@pytest.mark.parametrize("spec", [s for s in SPECS if s.stale], ids=str)
async def test_stale_timestamp_is_refused(fresh_sandbox: SandboxServer, spec: Spec) -> None:
    assert spec.stale is not None
    key = fresh_sandbox.key(spec.exchange, "read_only")
    async with exchange(fresh_sandbox, spec, key) as instance:
        # Every ccxt exchange derives its timestamp or nonce from milliseconds().
        real = instance.milliseconds
        instance.milliseconds = lambda: real() - 5 * 60_000
        instance.seconds = lambda: (real() - 5 * 60_000) // 1000
        with pytest.raises(spec.stale[0]) as info:
            await call(instance, spec, key)
    assert spec.stale[1] in str(info.value)


@each_exchange
async def test_caller_ip_outside_the_whitelist_is_refused(
    fresh_sandbox: SandboxServer, spec: Spec
) -> None:
    key = fresh_sandbox.key(spec.exchange, "ip_refused")
    await expect(fresh_sandbox, spec, key, spec.ip_refused)


@each_exchange
async def test_client_ip_decides_the_whitelist_check(
    fresh_sandbox: SandboxServer, spec: Spec
) -> None:
    key = fresh_sandbox.key(spec.exchange, "read_only")  # whitelist: 203.0.113.10 only
    fresh_sandbox.set_client_ip("192.0.2.99")
    await expect(fresh_sandbox, spec, key, spec.ip_refused)
    fresh_sandbox.set_client_ip("203.0.113.10")
    async with exchange(fresh_sandbox, spec, key) as instance:
        await call(instance, spec, key)


@each_exchange
async def test_expired_key_is_refused(fresh_sandbox: SandboxServer, spec: Spec) -> None:
    key = fresh_sandbox.key(spec.exchange, "expired")
    await expect(fresh_sandbox, spec, key, spec.expired)


@each_exchange
async def test_injected_faults(fresh_sandbox: SandboxServer, spec: Spec) -> None:
    key = fresh_sandbox.key(spec.exchange, "read_only")
    fresh_sandbox.inject(spec.exchange, "rate_limited")
    await expect(fresh_sandbox, spec, key, spec.rate_limited)
    fresh_sandbox.inject(spec.exchange, "ip_refused")
    await expect(fresh_sandbox, spec, key, spec.ip_refused)
    fresh_sandbox.inject(spec.exchange, "unavailable", count=2)
    async with exchange(fresh_sandbox, spec, key) as instance:
        for _ in range(2):
            with pytest.raises(spec.unavailable):
                await call(instance, spec, key)
        await call(instance, spec, key)  # the fault is used up
    assert fresh_sandbox.request_count(key.api_key) == 5


@each_exchange
async def test_outage_drops_the_connection(fresh_sandbox: SandboxServer, spec: Spec) -> None:
    key = fresh_sandbox.key(spec.exchange, "read_only")
    fresh_sandbox.set_outage(spec.exchange, True)
    async with exchange(fresh_sandbox, spec, key) as instance:
        with pytest.raises(ccxt_async.NetworkError):
            await call(instance, spec, key)
        fresh_sandbox.set_outage(spec.exchange, False)
        await call(instance, spec, key)


@some_exchanges
async def test_timeout_fault_outlasts_the_client_timeout(
    fresh_sandbox: SandboxServer, spec: Spec
) -> None:
    key = fresh_sandbox.key(spec.exchange, "read_only")
    fresh_sandbox.set_hang(2.0)
    fresh_sandbox.inject(spec.exchange, "timeout")
    started = time.monotonic()
    await expect(fresh_sandbox, spec, key, (ccxt_async.RequestTimeout, ""), timeout_ms=300)
    assert time.monotonic() - started < 2.0  # the client gave up; nothing waited the hang out


@some_exchanges
async def test_per_exchange_latency_overrides_the_global_one(
    fresh_sandbox: SandboxServer, spec: Spec
) -> None:
    key = fresh_sandbox.key(spec.exchange, "read_only")
    fresh_sandbox.set_latency(8.0)  # every exchange...
    fresh_sandbox.set_latency(0.25, exchange=spec.exchange)  # ...but this one
    async with exchange(fresh_sandbox, spec, key) as instance:
        started = time.monotonic()
        await call(instance, spec, key)
    elapsed = time.monotonic() - started
    assert 0.25 <= elapsed < 8.0
