"""KMS key for Vault's `awskms` auto-unseal (docs/facts/vault.md §6), via boto3.

Either the stack creates a symmetric key with an alias (and owns it: deleting the
resource schedules the key's deletion), or config names an existing key ARN, which is
checked (enabled, symmetric, encrypt/decrypt) and never deleted. A second `create`
for an alias that already points at an enabled key adopts that key instead of making
a new one, so re-running after a lost state changes nothing.

Moving to another key (`kmsKeyArn`) is an in-place update, never a replacement: Vault
needs the old key until its seal migration is done (docs/deploy.md "Rotate"), so the
old key is kept, listed in `retired_key_arns`, and deleted by hand afterwards. `read`
reports the key's state, so `pulumi refresh` shows a disabled or deleted key.
"""

from __future__ import annotations

import contextlib
from typing import Any

import pulumi
from pulumi import dynamic

from infra.providers.clients import AwsTarget, ProviderError
from infra.providers.diffs import changed, diff_result

_REPLACE_ON = ("region", "endpoint_url", "alias")


class KmsKeyProvider(dynamic.ResourceProvider):
    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        aws = AwsTarget.from_props(props)
        kms = aws.client("kms")
        existing = props.get("existing_key_arn")
        if existing:
            meta = _check_usable(kms, existing)
            return dynamic.CreateResult(meta["KeyId"], _outs(props, meta, managed=False))
        alias = props["alias"]
        adopted = _alias_target(kms, alias)
        if adopted is not None:  # a second create (e.g. after a lost state) adopts the key
            meta = _check_usable(kms, adopted["Arn"])
        else:
            meta = kms.create_key(
                Description=props["description"],
                KeyUsage="ENCRYPT_DECRYPT",
                KeySpec="SYMMETRIC_DEFAULT",
                Tags=[{"TagKey": "managed-by", "TagValue": "keybroker-pulumi"}],
            )["KeyMetadata"]
            kms.enable_key_rotation(KeyId=meta["KeyId"])
            kms.create_alias(AliasName=alias, TargetKeyId=meta["KeyId"])
        return dynamic.CreateResult(meta["KeyId"], _outs(props, meta, managed=True))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        updates = changed(olds, news, ("description", "deletion_window_days"))
        updates += changed(olds, news, ("existing_key_arn",), blank_is_none=True)
        if olds.get("key_state") not in (None, "Enabled"):
            updates.append("key_state")  # refresh found the key unusable: check it again
        return diff_result(changed(olds, news, _REPLACE_ON, blank_is_none=True), updates)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        kms = AwsTarget.from_props(news).client("kms")
        retired = list(olds.get("retired_key_arns") or [])
        if (olds.get("existing_key_arn") or None) != (news.get("existing_key_arn") or None):
            # Another key: the old one stays (Vault's seal migration needs both).
            retired.append(olds["arn"])
            new_key = news.get("existing_key_arn") or news["alias"]
            meta = _check_usable(kms, new_key)
            managed = not news.get("existing_key_arn") and bool(olds.get("managed"))
            outs = _outs(news, meta, managed=managed)
        else:
            if olds.get("managed"):
                kms.update_key_description(KeyId=olds["key_id"], Description=news["description"])
            kept: dict[str, Any] = {k: olds[k] for k in ("arn", "key_id", "managed") if k in olds}
            outs = {**news, **kept, "key_state": _check_usable(kms, olds["arn"])["KeyState"]}
        return dynamic.UpdateResult({**outs, "retired_key_arns": retired})

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        kms = AwsTarget.from_props(props).client("kms")
        try:
            state = kms.describe_key(KeyId=props["arn"])["KeyMetadata"].get("KeyState")
        except kms.exceptions.NotFoundException:
            state = "NotFound"
        return dynamic.ReadResult(id_, {**props, "key_state": state})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        if not props.get("managed"):
            return  # an existing key named in config is not ours to delete
        kms = AwsTarget.from_props(props).client("kms")
        with contextlib.suppress(kms.exceptions.NotFoundException):
            kms.delete_alias(AliasName=props["alias"])
        kms.schedule_key_deletion(
            KeyId=props.get("key_id") or _id,
            PendingWindowInDays=int(props.get("deletion_window_days") or 30),
        )


def _outs(props: dict[str, Any], meta: dict[str, Any], *, managed: bool) -> dict[str, Any]:
    return {
        **props,
        "arn": meta["Arn"],
        "key_id": meta["KeyId"],
        "managed": managed,
        "key_state": meta.get("KeyState"),
    }


def _alias_target(kms: Any, alias: str) -> dict[str, Any] | None:
    try:
        return kms.describe_key(KeyId=alias)["KeyMetadata"]
    except kms.exceptions.NotFoundException:
        return None


def _check_usable(kms: Any, key: str) -> dict[str, Any]:
    try:
        meta = kms.describe_key(KeyId=key)["KeyMetadata"]
    except kms.exceptions.NotFoundException:
        raise ProviderError(f"KMS key {key} does not exist (config keybroker:kmsKeyArn)") from None
    if meta.get("KeyState") != "Enabled":
        raise ProviderError(f"KMS key {key} is {meta.get('KeyState')}, not Enabled")
    # KeyUsage defaults to ENCRYPT_DECRYPT when a key is created without it; some
    # emulators leave the field out of DescribeKey then.
    usage = meta.get("KeyUsage") or "ENCRYPT_DECRYPT"
    spec = meta.get("KeySpec") or meta.get("CustomerMasterKeySpec") or "SYMMETRIC_DEFAULT"
    if usage != "ENCRYPT_DECRYPT" or spec != "SYMMETRIC_DEFAULT":
        raise ProviderError(f"KMS key {key} must be a symmetric ENCRYPT_DECRYPT key for awskms")
    return meta


class KmsKey(dynamic.Resource, module="keybroker", name="KmsKey"):
    """The auto-unseal key; `arn` is what Vault's seal stanza and Secrets Manager use."""

    arn: pulumi.Output[str]
    key_id: pulumi.Output[str]
    managed: pulumi.Output[bool]

    def __init__(
        self,
        name: str,
        *,
        region: str,
        alias: str,
        description: str,
        endpoint_url: str | None = None,
        existing_key_arn: str | None = None,
        deletion_window_days: int = 30,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "region": region,
            "endpoint_url": endpoint_url,
            "alias": alias,
            "description": description,
            "existing_key_arn": existing_key_arn,
            "deletion_window_days": deletion_window_days,
            "arn": None,
            "key_id": None,
            "managed": None,
            "key_state": None,
            "retired_key_arns": None,
        }
        super().__init__(KmsKeyProvider(), name, props, opts)
