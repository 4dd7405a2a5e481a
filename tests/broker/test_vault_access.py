"""The broker's own Vault access (AppRole or token, renewal, re-login, reconnect) and the
caller lookup cache.

Tests on `shared` run on the session endpoint (a real Vault too when
KEYBROKER_TEST_VAULT_ADDR/TOKEN are set), with the default layout applied as everyone
sharing that Vault does. Tests that age tokens or inject faults use a fresh `devvault`
(`laid_out`), whose clock can be advanced."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import hvac
import pytest
from pydantic import SecretStr

from broker.bootstrap import apply_layout, create_caller_token, issue_approle_credentials
from broker.callers import CallerDirectory, UnknownCaller
from broker.config import Settings
from broker.layout import (
    BROKER_POLICY,
    BROKER_TRANSIT_POLICY,
    INTAKE_POLICY,
    build_layout,
    layout_from_settings,
)
from broker.vault_session import VaultRefused, VaultSession, VaultUnavailable

T = TypeVar("T")


@pytest.fixture
def shared(vault_client: hvac.Client) -> hvac.Client:
    """The session endpoint (root client) with the default layout in place."""
    apply_layout(vault_client, build_layout())
    return vault_client


@pytest.fixture
def laid_out(devvault) -> hvac.Client:
    """A fresh devvault (root client) with the layout: for clock and fault tests."""
    root = hvac.Client(url=devvault.addr, token=devvault.root_token)
    apply_layout(root, layout_from_settings(Settings()))
    return root


def approle_session(root: hvac.Client) -> VaultSession:
    """A session logged in with the broker's AppRole on `root`'s Vault."""
    creds = issue_approle_credentials(root, "keybroker-broker")
    return VaultSession(
        Settings(
            vault_addr=root.url,
            vault_role_id=creds.role_id,
            vault_secret_id=SecretStr(creds.secret_id),
        )
    )


def run_closing(session: VaultSession, scenario: Callable[[], Awaitable[T]]) -> T:
    """asyncio.run(scenario()), then close the session's connection pool on that loop."""

    async def main() -> T:
        try:
            return await scenario()
        finally:
            await session.aclose()

    return asyncio.run(main())


def own_token(session: VaultSession) -> str:
    return session.call_blocking("test", lambda c: c.token)


def whoami(session: VaultSession) -> list[str]:
    return session.call_blocking("test", lambda c: c.auth.token.lookup_self()["data"]["policies"])


def test_approle_login_holds_only_the_broker_policy(shared: hvac.Client) -> None:
    session = approle_session(shared)
    assert whoami(session) == [BROKER_POLICY, BROKER_TRANSIT_POLICY]


def test_revoked_token_triggers_one_fresh_approle_login(shared: hvac.Client) -> None:
    session = approle_session(shared)
    first = own_token(session)
    shared.auth.token.revoke(first)
    assert whoami(session) == [BROKER_POLICY, BROKER_TRANSIT_POLICY]  # 403, re-login, retried
    assert own_token(session) != first


def test_renewal_before_expiry_and_relogin_past_max_ttl(devvault, laid_out) -> None:
    session = approle_session(laid_out)
    token = own_token(session)
    devvault.clock.advance(3000)  # token_ttl 1h: 10 minutes left
    assert laid_out.auth.token.lookup(token)["data"]["ttl"] <= 600
    session.expire_now()  # as if two thirds of the TTL had passed on our clock too
    whoami(session)
    assert own_token(session) == token  # renewed, not replaced
    assert laid_out.auth.token.lookup(token)["data"]["ttl"] > 3000

    devvault.clock.advance(4 * 3600)  # beyond token_max_ttl: renewal fails, log in again
    session.expire_now()
    assert whoami(session) == [BROKER_POLICY, BROKER_TRANSIT_POLICY]
    assert own_token(session) != token


def test_static_token_mode(shared: hvac.Client) -> None:
    token = create_caller_token(shared, [BROKER_POLICY], "1h")
    session = VaultSession(Settings(vault_addr=shared.url, vault_token=SecretStr(token)))
    assert whoami(session) == [BROKER_POLICY]
    shared.auth.token.revoke(token)
    with pytest.raises(VaultRefused):  # no way to log in again with a static token
        whoami(session)


def test_unreachable_and_sealed_vault_are_unavailable(devvault, laid_out) -> None:
    session = approle_session(laid_out)
    whoami(session)
    devvault.faults.seal()
    with pytest.raises(VaultUnavailable):
        whoami(session)
    assert session.health() == (False, "Vault is sealed")
    devvault.faults.unseal()
    devvault.faults.drop_next(1)
    with pytest.raises(VaultUnavailable):
        whoami(session)
    assert whoami(session) == [BROKER_POLICY, BROKER_TRANSIT_POLICY]  # reconnects on the next call
    assert session.health() == (True, "ok")
    nowhere = VaultSession(Settings(vault_addr="http://127.0.0.1:9", vault_token="x"))
    assert nowhere.health()[0] is False
    with pytest.raises(VaultUnavailable):
        whoami(nowhere)


def test_settings_without_credentials_are_refused() -> None:
    with pytest.raises(ValueError, match="KEYBROKER_VAULT_TOKEN"):
        VaultSession(Settings())


def test_caller_cache_is_short_and_bounded(shared: hvac.Client) -> None:
    session = approle_session(shared)
    callers = CallerDirectory(session, ttl=0.3, max_size=2)
    tokens = [create_caller_token(shared, [INTAKE_POLICY], "1h") for _ in range(3)]

    async def scenario() -> None:
        caller = await callers.resolve(tokens[0])
        assert caller.has(INTAKE_POLICY) and not caller.has("keybroker-site-backend")
        shared.auth.token.revoke(tokens[0])
        assert (await callers.resolve(tokens[0])).has(INTAKE_POLICY)  # cached
        for token in tokens[1:]:
            await callers.resolve(token)
        assert len(callers) == 2  # bounded: the oldest entry went first
        with pytest.raises(UnknownCaller):
            await callers.resolve(tokens[0])  # evicted, and Vault says it is revoked
        shared.auth.token.revoke(tokens[1])
        await asyncio.sleep(0.35)
        with pytest.raises(UnknownCaller):
            await callers.resolve(tokens[1])  # cache entry expired
        for bad in ("", "x" * 600, "tok\nen", "tökén"):
            with pytest.raises(UnknownCaller):
                await callers.resolve(bad)

    run_closing(session, scenario)


def test_caller_cache_never_outlives_the_token(devvault, laid_out) -> None:
    session = approle_session(laid_out)
    callers = CallerDirectory(session, ttl=3600)
    token = create_caller_token(laid_out, [INTAKE_POLICY], "1s")

    async def scenario() -> None:
        await callers.resolve(token)
        devvault.clock.advance(5)
        with pytest.raises(UnknownCaller):
            await callers.resolve(token)

    run_closing(session, scenario)


def test_a_burst_with_a_new_token_costs_one_lookup(shared: hvac.Client) -> None:
    session = approle_session(shared)
    callers = CallerDirectory(session, ttl=5)
    token = create_caller_token(shared, [INTAKE_POLICY], "1h")
    lookups = []
    original = session.request

    async def counting(op, *args, **kwargs):  # type: ignore[no-untyped-def]
        if op == "lookup_caller":
            lookups.append(op)
        return await original(op, *args, **kwargs)

    session.request = counting  # type: ignore[method-assign]

    async def burst() -> list:
        return await asyncio.gather(*(callers.resolve(token) for _ in range(30)))

    resolved = run_closing(session, burst)
    assert len(lookups) == 1 and all(c.has(INTAKE_POLICY) for c in resolved)
