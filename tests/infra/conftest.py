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

from infra.providers.clients import AwsTarget
from infra.providers.kms import KmsKeyProvider
from infra.providers.vault_init import VaultInitProvider
from keybroker_dev.devvault.server import DevVaultServer
from tests.fixtures.vault import real_vault_from_env

REGION = "eu-west-1"
PREFIX = "keybroker/test"


def _kms(aws: AwsTarget) -> str:
    return (
        KmsKeyProvider()
        .create({"region": REGION, "alias": "alias/kb-test", "description": "t"})
        .outs["arn"]
    )


def _init_props(address: str, kms_arn: str, **extra: Any) -> dict[str, Any]:
    return {
        "address": address,
        "ca_cert_pem": None,
        "kms_key_arn": kms_arn,
        "region": REGION,
        "endpoint_url": None,
        "secrets_prefix": PREFIX,
        "recovery_shares": 5.0,
        "recovery_threshold": 3.0,
        "recovery_window_days": 0.0,
        "wait_timeout_s": 5.0,
        **extra,
    }


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
