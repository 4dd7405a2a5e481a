"""Fixtures for the dynamic-provider tests: moto for AWS, devvault for Vault.

moto's `mock_aws` (moto 5) intercepts boto3 in-process and follows the AWS KMS and
Secrets Manager APIs; devvault speaks Vault's HTTP API on loopback
(docs/facts/vault.md §4.5 for sys/init with auto-unseal). Non-AWS HTTP (hvac to
devvault) passes through moto untouched.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from broker.layout import BROKER_POLICY, build_layout
from infra import vault_hcl
from infra.layout_props import layout_to_props
from infra.providers.broker_token import BrokerTokenIssuerProvider
from infra.providers.clients import AwsTarget, VaultAccess
from infra.providers.kms import KmsKeyProvider
from infra.providers.vault_config import VaultConfigProvider
from infra.providers.vault_init import VaultInitProvider
from keybroker_dev.devvault.server import DevVaultServer
from tests.fixtures.vault import real_vault_from_env

REGION = "eu-west-1"
DAY = 24 * 3600
PREFIX = "keybroker/test"


def _kms(aws: AwsTarget) -> str:
    return (
        KmsKeyProvider()
        .create({"region": REGION, "alias": "alias/kb-test", "description": "t"})
        .outs["arn"]
    )


def _access(address: str) -> VaultAccess:
    """The Vault-facing inputs of the test resources: devvault, no CA, moto's region."""
    return VaultAccess(address, None, REGION)


def _init_props(address: str, kms_arn: str, **extra: Any) -> dict[str, Any]:
    own = {
        "kms_key_arn": kms_arn,
        "secrets_prefix": PREFIX,
        "recovery_shares": 5.0,
        "recovery_threshold": 3.0,
        "recovery_window_days": 0.0,
        "wait_timeout_s": 5.0,
    }
    return _access(address).props(**(own | extra))


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsTarget]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield AwsTarget(REGION)


@pytest.fixture
def fresh_vault(tmp_path: Path) -> Iterator[DevVaultServer]:
    """An uninitialised devvault with a KMS-like seal: `sys/init` gives recovery keys."""
    if real_vault_from_env() is not None:
        # These provider tests initialise Vault, which a given (already initialised)
        # Vault cannot do again: they run on a fresh devvault only, and say so.
        pytest.skip("needs a fresh, uninitialised Vault (sys/init): runs on devvault only")
    server = DevVaultServer(audit_dir=tmp_path / "audit", initialized=False, auto_unseal=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def initialised(aws: AwsTarget, fresh_vault: DevVaultServer) -> dict[str, Any]:
    """A Vault initialised by the provider; the init resource's outputs."""
    return VaultInitProvider().create(_init_props(fresh_vault.addr, _kms(aws))).outs


def _layout(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "site_token_cidrs": ("10.0.0.0/24",),
        "robot_cidrs": ("10.1.0.5/32",),
        "audit_devices": vault_hcl.audit_devices(),
    }
    return layout_to_props(build_layout(**(args | overrides)))


def _config_props(vault: DevVaultServer, init: dict[str, Any], layout: dict[str, Any]) -> dict:
    return _access(vault.addr).props(token_secret_arn=init["root_token_secret_arn"], layout=layout)


def _revocation_props(vault: DevVaultServer, init: dict[str, Any]) -> dict:
    return _access(vault.addr).props(token_secret_arn=init["root_token_secret_arn"], after=["x"])


def _issuer_props(vault: DevVaultServer, init: dict[str, Any], period_s: float = DAY) -> dict:
    return _access(vault.addr).props(
        token_secret_arn=init["root_token_secret_arn"],
        kms_key_arn=init["kms_key_arn"],
        secrets_prefix=PREFIX,
        broker_policy=BROKER_POLICY,
        period_s=period_s,
    )


def _token_props(issuer: dict[str, Any], vault: DevVaultServer, delivery: str = "d1") -> dict:
    return _access(vault.addr).props(
        issuer_secret_arn=issuer["issuer_secret_arn"],
        token_secret_arn=issuer["token_secret_arn"],
        role_name=issuer["role_name"],
        replica="keybroker-test-broker-0",
        wrap_ttl_s=600.0,
        rotation="1",
        delivery=delivery,
    )


@pytest.fixture
def issuer(aws: AwsTarget, fresh_vault: DevVaultServer, initialised: dict[str, Any]) -> dict:
    VaultConfigProvider().create(_config_props(fresh_vault, initialised, _layout()))
    return BrokerTokenIssuerProvider().create(_issuer_props(fresh_vault, initialised)).outs
