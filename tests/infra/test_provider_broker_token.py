"""The broker's credential for real (devvault + moto): a periodic token minted by an
issuer that is neither root nor the broker, delivered wrapped, surviving time,
container replacement and root-token revocation; refresh sees a dead token.
"""

from __future__ import annotations

import json
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
from infra.providers.vault_config import VaultConfigProvider
from keybroker_dev.devvault.server import DevVaultServer
from tests.infra.conftest import PREFIX, REGION
from tests.infra.test_provider_vault import _config_props, _layout

DAY = 24 * 3600


def _issuer_props(vault: DevVaultServer, init: dict[str, Any], period_s: float = DAY) -> dict:
    return {
        "address": vault.addr,
        "ca_cert_pem": None,
        "token_secret_arn": init["root_token_secret_arn"],
        "region": REGION,
        "endpoint_url": None,
        "kms_key_arn": init["kms_key_arn"],
        "secrets_prefix": PREFIX,
        "broker_policy": BROKER_POLICY,
        "period_s": period_s,
    }


def _token_props(issuer: dict[str, Any], vault: DevVaultServer, delivery: str = "d1") -> dict:
    return {
        "address": vault.addr,
        "ca_cert_pem": None,
        "issuer_secret_arn": issuer["issuer_secret_arn"],
        "role_name": issuer["role_name"],
        "region": REGION,
        "endpoint_url": None,
        "replica": "keybroker-test-broker-0",
        "wrap_ttl_s": 600.0,
        "rotation": "1",
        "delivery": delivery,
    }


@pytest.fixture
def issuer(aws: AwsTarget, fresh_vault: DevVaultServer, initialised: dict[str, Any]) -> dict:
    VaultConfigProvider().create(_config_props(fresh_vault, initialised, _layout()))
    return BrokerTokenIssuerProvider().create(_issuer_props(fresh_vault, initialised)).outs


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
        client.secrets.kv.v2.read_secret_version("site/a/b", mount_point="exchange-keys")
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
