"""KmsKeyProvider CRUD for real against moto's KMS (AWS KMS API semantics)."""

from __future__ import annotations

import base64

import dill
import pytest
from pulumi.dynamic.dynamic import serialize_provider

from infra.providers.broker_token import BrokerTokenIssuerProvider, BrokerTokenProvider
from infra.providers.clients import AwsTarget, ProviderError
from infra.providers.kms import KmsKeyProvider
from infra.providers.root_token import RootTokenRevocationProvider
from infra.providers.tls import TlsBundleProvider
from infra.providers.vault_config import VaultConfigProvider
from infra.providers.vault_init import VaultInitProvider
from tests.infra.conftest import REGION

PROPS = {
    "region": REGION,
    "endpoint_url": None,
    "alias": "alias/keybroker-test-vault-unseal",
    "description": "test unseal key",
    "existing_key_arn": None,
    "deletion_window_days": 7.0,  # the engine hands numbers over as floats
}


def test_create_makes_a_symmetric_rotating_key_with_alias(aws: AwsTarget) -> None:
    created = KmsKeyProvider().create(dict(PROPS))
    kms = aws.client("kms")
    meta = kms.describe_key(KeyId=PROPS["alias"])["KeyMetadata"]
    assert created.outs["arn"] == meta["Arn"] and created.id == meta["KeyId"]
    assert meta["KeyUsage"] == "ENCRYPT_DECRYPT" and meta["KeyState"] == "Enabled"
    assert kms.get_key_rotation_status(KeyId=created.id)["KeyRotationEnabled"] is True
    assert created.outs["managed"] is True


def test_second_create_adopts_the_same_key(aws: AwsTarget) -> None:
    first = KmsKeyProvider().create(dict(PROPS))
    second = KmsKeyProvider().create(dict(PROPS))
    assert second.outs["arn"] == first.outs["arn"]
    assert len(aws.client("kms").list_keys()["Keys"]) == 1


def test_existing_key_is_checked_and_never_deleted(aws: AwsTarget) -> None:
    kms = aws.client("kms")
    arn = kms.create_key(Description="ops-owned")["KeyMetadata"]["Arn"]
    created = KmsKeyProvider().create({**PROPS, "existing_key_arn": arn})
    assert created.outs["arn"] == arn and created.outs["managed"] is False
    KmsKeyProvider().delete(created.id, created.outs)
    assert kms.describe_key(KeyId=arn)["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.list_aliases(KeyId=created.id)["Aliases"] == []  # no alias made either


def test_existing_key_must_be_enabled_and_symmetric(aws: AwsTarget) -> None:
    kms = aws.client("kms")
    disabled = kms.create_key()["KeyMetadata"]
    kms.disable_key(KeyId=disabled["KeyId"])
    with pytest.raises(ProviderError, match="Disabled, not Enabled"):
        KmsKeyProvider().create({**PROPS, "existing_key_arn": disabled["Arn"]})
    signing = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]
    with pytest.raises(ProviderError, match="symmetric"):
        KmsKeyProvider().create({**PROPS, "existing_key_arn": signing["Arn"]})


def test_diff_and_update(aws: AwsTarget) -> None:
    provider = KmsKeyProvider()
    created = provider.create(dict(PROPS))
    olds = created.outs
    assert provider.diff(created.id, olds, dict(PROPS)).changes is False
    renamed = provider.diff(created.id, olds, {**PROPS, "alias": "alias/other"})
    assert renamed.changes is True and renamed.replaces == ["alias"]
    described = {**PROPS, "description": "new words"}
    diff = provider.diff(created.id, olds, described)
    assert diff.changes is True and diff.replaces == []
    updated = provider.update(created.id, olds, described)
    assert updated.outs["arn"] == olds["arn"]
    meta = aws.client("kms").describe_key(KeyId=created.id)["KeyMetadata"]
    assert meta["Description"] == "new words"


def test_delete_schedules_deletion_and_removes_the_alias(aws: AwsTarget) -> None:
    created = KmsKeyProvider().create(dict(PROPS))
    KmsKeyProvider().delete(created.id, created.outs)
    kms = aws.client("kms")
    assert kms.describe_key(KeyId=created.id)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    aliases = [a["AliasName"] for a in kms.list_aliases()["Aliases"]]
    assert PROPS["alias"] not in aliases


@pytest.mark.parametrize(
    "provider",
    [
        KmsKeyProvider,
        VaultInitProvider,
        VaultConfigProvider,
        BrokerTokenIssuerProvider,
        BrokerTokenProvider,
        RootTokenRevocationProvider,
        TlsBundleProvider,
    ],
)
def test_providers_pickle_by_reference(provider: type) -> None:
    """docs/facts/pulumi.md §2: the engine dill-pickles the provider; it must round-trip
    and carry no state (no client, no credential)."""
    blob = serialize_provider(provider())
    restored = dill.loads(base64.b64decode(blob))
    assert type(restored).__qualname__ == provider.__qualname__
    assert vars(restored) == {}
