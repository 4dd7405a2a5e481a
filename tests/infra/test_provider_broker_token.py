"""The broker's credential for real (devvault + moto): a periodic token minted by an
issuer that is neither root nor the broker, delivered wrapped, surviving time,
container replacement and root-token revocation; refresh sees a dead token.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest

from broker.layout import BROKER_POLICY
from infra.providers.broker_token import (
    ISSUER_POLICY,
    BrokerTokenIssuerProvider,
    BrokerTokenProvider,
    issuer_secret_name,
)
from infra.providers.clients import AwsTarget
from infra.providers.root_token import RootTokenRevocationProvider
from keybroker_dev.devvault.server import DevVaultServer
from tests.infra.conftest import DAY, PREFIX, _issuer_props, _revocation_props, _token_props


def _unwrap(vault: DevVaultServer, wrapped: str) -> dict[str, Any]:
    return hvac.Client(url=vault.addr, token=wrapped).sys.unwrap()["auth"]


def test_issuer_is_neither_root_nor_the_broker(
    aws: AwsTarget, fresh_vault: DevVaultServer, issuer: dict[str, Any]
) -> None:
    record = json.loads(
        aws.client("secretsmanager").get_secret_value(SecretId=issuer["issuer_secret_arn"])[
            "SecretString"
        ]
    )
    token = record["token"]
    assert token != fresh_vault.root_token and token not in json.dumps(issuer)
    looked = hvac.Client(url=fresh_vault.addr, token=token).auth.token.lookup_self()["data"]
    assert looked["policies"] == [ISSUER_POLICY] and looked["period"] > 0
    # It cannot read or write keys, nor touch policies.
    client = hvac.Client(url=fresh_vault.addr, token=token)
    with pytest.raises(hvac.exceptions.Forbidden):
        client.sys.create_or_update_acl_policy("x", 'path "*" { capabilities = ["read"] }')
    with pytest.raises(hvac.exceptions.Forbidden):
        client.secrets.kv.v2.read_secret_version(
            "site/a/b", mount_point="exchange-keys", raise_on_deleted_version=True
        )
    assert issuer["issuer_ttl_s"] > 0
    assert (
        aws.client("secretsmanager").describe_secret(SecretId=issuer_secret_name(PREFIX))[
            "KmsKeyId"
        ]
        == issuer["kms_key_arn"]
    )


def test_broker_token_is_periodic_broker_only_and_renews_past_any_max_ttl(
    aws: AwsTarget, fresh_vault: DevVaultServer, issuer: dict[str, Any]
) -> None:
    outs = BrokerTokenProvider().create(_token_props(issuer, fresh_vault)).outs
    assert "client_token" not in json.dumps(outs)
    auth = _unwrap(fresh_vault, outs["wrapped_token"])
    assert auth["policies"] == [BROKER_POLICY] and auth["renewable"] is True
    assert auth["accessor"] == outs["accessor"]
    broker = hvac.Client(url=fresh_vault.addr, token=auth["client_token"])
    data = broker.auth.token.lookup_self()["data"]
    assert data["period"] == DAY and data["orphan"] is True
    # Time: 30 days of renewals every 16h; a periodic token never reaches a max TTL.
    for _ in range(45):
        fresh_vault.clock.advance(16 * 3600)
        assert broker.auth.token.renew_self()["auth"]["lease_duration"] == DAY
    assert broker.auth.token.lookup_self()["data"]["policies"] == [BROKER_POLICY]


def test_a_new_delivery_replaces_the_credential(
    aws: AwsTarget, fresh_vault: DevVaultServer, issuer: dict[str, Any]
) -> None:
    provider = BrokerTokenProvider()
    olds = provider.create(_token_props(issuer, fresh_vault)).outs
    assert provider.diff("id", olds, _token_props(issuer, fresh_vault)).changes is False
    diff = provider.diff("id", olds, _token_props(issuer, fresh_vault, delivery="d2"))
    assert diff.replaces == ["delivery"]
    new = provider.create(_token_props(issuer, fresh_vault, delivery="d2")).outs
    assert new["wrapped_token"] != olds["wrapped_token"]
    # Deleting the replaced, never-unwrapped one uses it up and revokes the token inside.
    provider.delete("id", olds)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        hvac.Client(url=fresh_vault.addr, token=olds["wrapped_token"]).sys.unwrap()
    root = hvac.Client(url=fresh_vault.addr, token=fresh_vault.root_token)
    with pytest.raises(hvac.exceptions.InvalidRequest):
        root.auth.token.lookup_accessor(olds["accessor"])
    assert _unwrap(fresh_vault, new["wrapped_token"])["policies"] == [BROKER_POLICY]


def test_new_credentials_after_the_root_token_is_revoked(
    aws: AwsTarget, fresh_vault: DevVaultServer, initialised: dict[str, Any], issuer: dict
) -> None:
    """Issue 14: in prod a new broker credential needed a root token; the issuer does not."""
    RootTokenRevocationProvider().create(_revocation_props(fresh_vault, initialised))
    with pytest.raises(hvac.exceptions.Forbidden):
        hvac.Client(url=fresh_vault.addr, token=fresh_vault.root_token).auth.token.lookup_self()
    outs = BrokerTokenProvider().create(_token_props(issuer, fresh_vault, delivery="d9")).outs
    assert _unwrap(fresh_vault, outs["wrapped_token"])["policies"] == [BROKER_POLICY]
    # An `up` after half the issuer's period renews it, without the root token.
    provider = BrokerTokenIssuerProvider()
    props = _issuer_props(fresh_vault, initialised)
    assert provider.diff("id", issuer, props).changes is False
    fresh_vault.clock.advance(17 * DAY)
    assert provider.diff("id", issuer, props).changes is True
    renewed = provider.update("id", issuer, props).outs
    assert renewed["issuer_ttl_s"] > 31 * DAY
    assert provider.diff("id", renewed, props).changes is False


def test_refresh_sees_a_dead_broker_token_and_the_next_up_replaces_it(
    aws: AwsTarget, fresh_vault: DevVaultServer, issuer: dict[str, Any]
) -> None:
    provider = BrokerTokenProvider()
    outs = provider.create(_token_props(issuer, fresh_vault)).outs
    auth = _unwrap(fresh_vault, outs["wrapped_token"])
    assert provider.read("id", outs).outs["alive"] is True
    root = hvac.Client(url=fresh_vault.addr, token=fresh_vault.root_token)
    root.auth.token.revoke(auth["client_token"])  # e.g. an operator revoked it
    refreshed = provider.read("id", outs).outs
    assert refreshed["alive"] is False
    assert "alive" in provider.diff("id", refreshed, _token_props(issuer, fresh_vault)).replaces


def test_refresh_sees_a_lapsed_issuer(
    aws: AwsTarget, fresh_vault: DevVaultServer, initialised: dict[str, Any], issuer: dict
) -> None:
    provider = BrokerTokenIssuerProvider()
    fresh_vault.clock.advance(33 * DAY)  # nobody deployed for longer than its period
    refreshed = provider.read("id", issuer).outs
    assert refreshed["issuer_ttl_s"] == 0
    props = _issuer_props(fresh_vault, initialised)
    assert provider.diff("id", refreshed, props).changes is True
    # With the root token still at hand (dev), the update makes a new issuer.
    renewed = provider.update("id", refreshed, props).outs
    assert renewed["issuer_ttl_s"] > 0
    BrokerTokenProvider().create(_token_props(renewed, fresh_vault, delivery="d3"))


# --- the launcher: the credential survives restarts and time -----------------------------


def test_launcher_keeps_the_token_across_restarts_and_renews_it(
    aws: AwsTarget, fresh_vault: DevVaultServer, issuer: dict[str, Any], tmp_path: Path
) -> None:
    """Issue 14: a restarted or replaced container found its single-use wrapping token
    used and exited. The unwrapped token is kept (0600) in the replica's volume, and a
    new delivery (a replacement) wins over it."""
    from broker import launcher

    outs = BrokerTokenProvider().create(_token_props(issuer, fresh_vault)).outs
    wrapped, sink = tmp_path / "credential.wrap", tmp_path / "token"
    wrapped.write_text(outs["wrapped_token"])
    first = launcher.obtain_credential(wrapped, sink, fresh_vault.addr, None)
    assert first is not None and first.kind == "token"
    assert not wrapped.exists() and sink.read_text() == first.value
    assert oct(sink.stat().st_mode & 0o777) == "0o600"
    # A restart of the same container: no wrap file, the kept token.
    again = launcher.obtain_credential(wrapped, sink, fresh_vault.addr, None)
    assert again == first
    # Time: the launcher's renewals keep it alive with no request at all for 3 days.
    for _ in range(5):
        fresh_vault.clock.advance(16 * 3600)
        assert launcher.renew_period_s(fresh_vault.addr, None, first.value) == DAY / 3
    # A replacement delivers a new wrapped token, which wins.
    newer = BrokerTokenProvider().create(_token_props(issuer, fresh_vault, delivery="d2")).outs
    wrapped.write_text(newer["wrapped_token"])
    replaced = launcher.obtain_credential(wrapped, sink, fresh_vault.addr, None)
    assert replaced is not None and replaced.value != first.value
    assert sink.read_text() == replaced.value


def test_launcher_renewal_thread_and_refusal(
    aws: AwsTarget, fresh_vault: DevVaultServer, issuer: dict[str, Any], tmp_path: Path
) -> None:
    import threading

    from broker import launcher

    outs = BrokerTokenProvider().create(_token_props(issuer, fresh_vault)).outs
    token = _unwrap(fresh_vault, outs["wrapped_token"])["client_token"]
    broker = hvac.Client(url=fresh_vault.addr, token=token)
    stop = threading.Event()
    fresh_vault.clock.advance(20 * 3600)
    before = broker.auth.token.lookup_self()["data"]["ttl"]
    thread = launcher.keep_renewed(fresh_vault.addr, None, token, 0.01, stop)
    deadline = time.monotonic() + 5
    while broker.auth.token.lookup_self()["data"]["ttl"] <= before:
        assert time.monotonic() < deadline
    stop.set()
    thread.join(timeout=5)
    hvac.Client(url=fresh_vault.addr, token=fresh_vault.root_token).auth.token.revoke(token)
    with pytest.raises(launcher.LaunchError, match="refused the broker's token") as err:
        launcher.renew_period_s(fresh_vault.addr, None, token)
    assert token not in str(err.value)
    # A missing credential says what to do.
    with pytest.raises(launcher.LaunchError, match="brokerCredentialRotation"):
        launcher.obtain_credential(
            tmp_path / "none.wrap", tmp_path / "none", fresh_vault.addr, None
        )


def test_launcher_serves_with_a_kept_token_while_vault_is_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A restart while Vault is unreachable: the kept token is used, renewal retried."""
    from broker import launcher

    sink = tmp_path / "token"
    sink.write_text("hvs.CANARY-kept-token")
    waits: list[float] = []
    monkeypatch.setattr(launcher, "keep_renewed", lambda *args: waits.append(args[3]))
    monkeypatch.setattr("broker.api.server.serve", lambda: 0)
    monkeypatch.setenv(launcher.SINK_FILE_ENV, str(sink))
    monkeypatch.setenv("KEYBROKER_VAULT_ADDR", "http://127.0.0.1:9")  # nothing listens
    monkeypatch.delenv("KEYBROKER_VAULT_TOKEN", raising=False)
    assert launcher.main() == 0
    assert waits == [60.0]
    import os

    assert os.environ.pop("KEYBROKER_VAULT_TOKEN") == "hvs.CANARY-kept-token"
    assert "CANARY" not in capsys.readouterr().err
