"""SiteKeyClient against the real broker (`broker_env`: uvicorn on loopback, AppRole
login, the layout applied to the session Vault) and Vault.

Pins docs/contracts.md §3 `POST /v1/site-tokens` (201 {"token", "ttl", ...}; 401/403 for bad
callers) and §2 (site tokens read `exchange-keys/data/site/<account>/<exchange>`).
"""

from __future__ import annotations

import logging
import socket

import pytest
import requests

from broker.client import (
    AccessDenied,
    BrokerUnavailable,
    KeyNotFound,
    SiteKeyClient,
)
from tests.fixtures.broker import BrokerEnv, new_account

CANARY_SECRET = "CANARY-site-secret-93e1"
CANARY_KEY = "CANARYSITEKEY0123456789"


class CountingSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self.posts: list[str] = []

    def post(self, url, *args, **kwargs):  # type: ignore[override]
        self.posts.append(url)
        return super().post(url, *args, **kwargs)


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def _store_site_key(env: BrokerEnv, account: str, exchange: str = "binance") -> None:
    env.root.secrets.kv.v2.create_or_update_secret(
        f"site/{account}/{exchange}",
        {"api_key": CANARY_KEY, "secret": CANARY_SECRET},
        mount_point=env.mount,
    )


def _client(env: BrokerEnv, token: str | None = None, **kwargs) -> SiteKeyClient:
    vault_addr = env.settings.vault_addr
    return SiteKeyClient(env.url, token or env.site_backend_token, vault_addr, **kwargs)


def test_reads_a_site_key_with_a_token_from_the_broker(broker_env: BrokerEnv, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    account = new_account("site")
    _store_site_key(broker_env, account)
    site = _client(broker_env)
    key = site.get_key(account, "binance")
    assert (key.api_key, key.secret, key.passphrase) == (CANARY_KEY, CANARY_SECRET, None)
    assert (key.role, key.version) == ("site", 1)
    assert site.list_exchanges(account) == ["binance"]
    assert site.list_exchanges(new_account("empty")) == []
    shown = repr(key) + str(key) + repr(site) + caplog.text
    assert CANARY_SECRET not in shown and CANARY_KEY not in shown
    assert broker_env.site_backend_token not in shown


def test_site_token_is_reminted_before_it_expires(broker_env: BrokerEnv) -> None:
    account = new_account("site")
    _store_site_key(broker_env, account)
    session, clock = CountingSession(), FakeClock()
    site = _client(broker_env, session=session, clock=clock, renew_margin=30)
    site.get_key(account, "binance")
    site.get_key(account, "binance")
    assert len(session.posts) == 1
    assert session.posts[0] == f"{broker_env.url}/v1/site-tokens"
    clock.now += 300 - 31  # default site token TTL 5m, renewed 30 s before the end
    site.get_key(account, "binance")
    assert len(session.posts) == 1
    clock.now += 2
    site.get_key(account, "binance")
    assert len(session.posts) == 2


def test_each_account_is_read_with_a_token_bound_to_it(broker_env: BrokerEnv) -> None:
    """One site token per account, minted with the account in its Vault metadata (the
    broker accepts that account's verification reports from it and no other's)."""
    alice, bob = new_account("alice"), new_account("bob")
    for account in (alice, bob):
        _store_site_key(broker_env, account)
    session = CountingSession()
    site = _client(broker_env, session=session)
    for account in (alice, bob, alice, bob):
        site.get_key(account, "binance")
    assert len(session.posts) == 2
    tokens = {account: site.vault_token(account) for account in (alice, bob)}
    assert len(set(tokens.values())) == 2 and len(session.posts) == 2
    for account, token in tokens.items():
        lookup = broker_env.root.auth.token.lookup(token)["data"]
        assert lookup["meta"] == {"account": account}
        assert "keybroker-site-read" in lookup["policies"]


def test_requested_ttl_is_used(broker_env: BrokerEnv) -> None:
    account = new_account("site")
    _store_site_key(broker_env, account)
    session, clock = CountingSession(), FakeClock()
    site = _client(broker_env, ttl="90s", session=session, clock=clock, renew_margin=60)
    site.get_key(account, "binance")
    clock.now += 59  # margin is capped at a third of the 90 s life
    site.get_key(account, "binance")
    assert len(session.posts) == 1
    clock.now += 2
    site.get_key(account, "binance")
    assert len(session.posts) == 2


def test_missing_site_key_is_key_not_found(broker_env: BrokerEnv) -> None:
    with pytest.raises(KeyNotFound):
        _client(broker_env).get_key(new_account("none"), "binance")


@pytest.mark.parametrize("which", ["intake", "unknown"])
def test_a_caller_without_the_site_backend_policy_is_denied(
    broker_env: BrokerEnv, which: str
) -> None:
    token = broker_env.intake_token if which == "intake" else "hvs.CANARY-unknown-token"
    with pytest.raises(AccessDenied) as caught:
        _client(broker_env, token).get_key("alice", "binance")
    assert token not in str(caught.value)
    assert str(caught.value).endswith("(403)" if which == "intake" else "(401)")


def test_broker_down_is_broker_unavailable(broker_env: BrokerEnv) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    site = SiteKeyClient(
        f"http://127.0.0.1:{port}", "hvs.CANARY", broker_env.settings.vault_addr, timeout=2
    )
    with pytest.raises(BrokerUnavailable) as caught:
        site.get_key("alice", "binance")
    assert "CANARY" not in str(caught.value)
