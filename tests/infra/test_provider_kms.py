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


def test_moving_to_another_key_keeps_the_old_one(aws: AwsTarget) -> None:
    """Issue 14: a new kmsKeyArn replaced the resource, which scheduled the old key's
    deletion in the same run, while Vault's seal migration still needs it."""
    provider = KmsKeyProvider()
    created = provider.create(dict(PROPS))
    new_key = aws.client("kms").create_key()["KeyMetadata"]["Arn"]
    moved = {**PROPS, "existing_key_arn": new_key}
    diff = provider.diff(created.id, created.outs, moved)
    assert diff.changes is True and diff.replaces == []  # an update, never a replacement
    outs = provider.update(created.id, created.outs, moved).outs
    assert outs["arn"] == new_key and outs["managed"] is False
    assert outs["retired_key_arns"] == [created.outs["arn"]]
    state = aws.client("kms").describe_key(KeyId=created.id)["KeyMetadata"]["KeyState"]
    assert state == "Enabled"  # still there for the migration
    provider.delete(created.id, outs)  # destroy never deletes a key it no longer uses
    assert aws.client("kms").describe_key(KeyId=created.id)["KeyMetadata"]["KeyState"] == (
        "Enabled"
    )


def test_read_shows_a_disabled_key_and_the_next_up_checks_it(aws: AwsTarget) -> None:
    provider = KmsKeyProvider()
    created = provider.create(dict(PROPS))
    assert provider.read(created.id, created.outs).outs["key_state"] == "Enabled"
    aws.client("kms").disable_key(KeyId=created.id)
    refreshed = provider.read(created.id, created.outs).outs
    assert refreshed["key_state"] == "Disabled"
    assert provider.diff(created.id, refreshed, dict(PROPS)).changes is True
    with pytest.raises(ProviderError, match="Disabled, not Enabled"):
        provider.update(created.id, refreshed, dict(PROPS))


def test_every_dynamic_provider_implements_read() -> None:
    """Issue 14: without `read`, `pulumi refresh` saw no drift."""
    from pulumi import dynamic

    for provider in PROVIDERS:
        assert provider.read is not dynamic.ResourceProvider.read, provider


PROVIDERS = [
    KmsKeyProvider,
    VaultInitProvider,
    VaultConfigProvider,
    BrokerTokenIssuerProvider,
    BrokerTokenProvider,
    RootTokenRevocationProvider,
    TlsBundleProvider,
]


@pytest.mark.parametrize(
    "provider",
    PROVIDERS,
)
def test_providers_pickle_by_reference(provider: type) -> None:
    """docs/facts/pulumi.md §2: the engine dill-pickles the provider; it must round-trip
    and carry no state (no client, no credential)."""
    blob = serialize_provider(provider())
    restored = dill.loads(base64.b64decode(blob))
    assert type(restored).__qualname__ == provider.__qualname__
    assert vars(restored) == {}
