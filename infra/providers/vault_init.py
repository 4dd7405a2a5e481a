"""Vault initialisation with auto-unseal (docs/facts/vault.md §6, `PUT /v1/sys/init`).

`create` first makes both Secrets Manager records (marked pending, encrypted with the
unseal KMS key), so that the recovery keys and the initial root token have somewhere to
go before Vault hands them out once; only then does it initialise Vault with recovery
shares (the awskms seal unseals it) and write them, retrying a failed write. A failure
before init leaves Vault uninitialised, and the next run adopts the pending records.
Only the two secret ARNs are outputs: the key material never reaches Pulumi state. On
a Vault that is already initialised, `create` adopts complete records under the same
names (a second run changes nothing) and refuses when they are missing or pending.
`read` reports whether Vault is initialised and both records hold their material.
"""

from __future__ import annotations

import json
import time
from typing import Any

import hvac.exceptions
import pulumi
import requests
from botocore.exceptions import BotoCoreError, ClientError
from pulumi import dynamic

from infra.providers.clients import (
    AwsTarget,
    ProviderError,
    VaultAccess,
    props_vault_client,
    root_token_record,
    vault_client,
)
from infra.providers.diffs import changed, diff_result
from infra.providers.secrets import (
    PENDING_RECORD,
    PUT_ATTEMPTS,
    create_secret,
    delete_secret,
    find_secret,
    is_pending,
    put_with_retries,
)

# Init happens once per Vault: the resource is never replaced (a replacement would
# delete the only copy of the recovery keys). Where the records live cannot change.
_FIXED = ("secrets_prefix", "region", "endpoint_url")
_UPDATABLE = ("address", "ca_cert_pem", "kms_key_arn", "recovery_window_days")


def secret_names(prefix: str) -> tuple[str, str]:
    """(root-token, recovery-keys) secret names under `prefix`."""
    return f"{prefix}/vault-root-token", f"{prefix}/vault-recovery-keys"


class VaultInitProvider(dynamic.ResourceProvider):
    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        aws = AwsTarget.from_props(props)
        sm = aws.client("secretsmanager")
        root_name, recovery_name = secret_names(props["secrets_prefix"])
        timeout = props.get("wait_timeout_s")
        initialized = _wait_for_vault(
            props["address"], props.get("ca_cert_pem"), 120.0 if timeout is None else float(timeout)
        )
        if initialized:
            root_arn, recovery_arn = find_secret(sm, root_name), find_secret(sm, recovery_name)
            if root_arn is None or recovery_arn is None:
                raise ProviderError(
                    f"Vault at {props['address']} is already initialised but its init secrets"
                    f" are not in Secrets Manager as {root_name} and {recovery_name}:"
                    " it was initialised outside this stack"
                )
            if is_pending(sm, root_arn) or is_pending(sm, recovery_arn):
                raise ProviderError(
                    f"Vault at {props['address']} is initialised but {root_name} or"
                    f" {recovery_name} is still pending: the init answer was lost (see"
                    " docs/deploy.md, 'Init records pending')"
                )
            return dynamic.CreateResult(root_name, _outs(props, root_arn, recovery_arn))
        kms_key = props["kms_key_arn"]
        # Both places exist (and are writable) before Vault shows its keys, once.
        root_arn = _prepare(
            sm, root_name, kms_key, "keybroker: initial Vault root token (revoked in prod)"
        )
        recovery_arn = _prepare(
            sm, recovery_name, kms_key, "keybroker: Vault recovery keys (rekey, generate-root)"
        )
        with props_vault_client(props) as client:
            answer = client.sys.initialize(
                recovery_shares=int(props["recovery_shares"]),
                recovery_threshold=int(props["recovery_threshold"]),
            )
        recovery = {
            "recovery_keys_base64": answer.get("recovery_keys_base64") or [],
            "recovery_threshold": int(props["recovery_threshold"]),
        }
        _store(sm, recovery_arn, json.dumps(recovery), props["address"])
        _store(sm, root_arn, root_token_record(answer["root_token"]), props["address"])
        return dynamic.CreateResult(root_name, _outs(props, root_arn, recovery_arn))

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        """Drift for `pulumi refresh`: Vault initialised, both records complete."""
        sm = AwsTarget.from_props(props).client("secretsmanager")
        complete = all(
            find_secret(sm, str(props.get(key) or "")) is not None
            and not is_pending(sm, str(props[key]))
            for key in ("root_token_secret_arn", "recovery_keys_secret_arn")
        )
        with vault_client(props["address"], props.get("ca_cert_pem")) as client:
            try:
                initialized: bool | None = bool(client.sys.is_initialized())
            except (requests.exceptions.ConnectionError, hvac.exceptions.VaultDown):
                initialized = None  # unreachable: unknown, not drift
        return dynamic.ReadResult(
            id_, {**props, "records_complete": complete, "vault_initialized": initialized}
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        return diff_result([], changed(olds, news, _FIXED + _UPDATABLE, blank_is_none=True))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        """Same Vault, same records: follow a new address or CA, re-encrypt under a new key."""
        moved = changed(olds, news, _FIXED, blank_is_none=True)
        if moved:
            raise ProviderError(
                f"{', '.join(moved)} cannot change once Vault is initialised: the recovery"
                " keys and root-token records stay where they are; move them by hand and"
                " import the resource again"
            )
        arns = (olds["root_token_secret_arn"], olds["recovery_keys_secret_arn"])
        if olds.get("kms_key_arn") != news.get("kms_key_arn"):
            sm = AwsTarget.from_props(news).client("secretsmanager")
            for arn in arns:
                sm.update_secret(SecretId=arn, KmsKeyId=news["kms_key_arn"])
        return dynamic.UpdateResult(_outs(news, *arns))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        sm = AwsTarget.from_props(props).client("secretsmanager")
        window = int(props.get("recovery_window_days") or 0)
        for key in ("root_token_secret_arn", "recovery_keys_secret_arn"):
            if props.get(key):
                delete_secret(sm, props[key], window)


def _outs(props: dict[str, Any], root_arn: str, recovery_arn: str) -> dict[str, Any]:
    return {
        **props,
        "root_token_secret_arn": root_arn,
        "recovery_keys_secret_arn": recovery_arn,
        "records_complete": True,
        "vault_initialized": True,
    }


def _prepare(sm: Any, name: str, kms_key: str, description: str) -> str:
    """The ARN of a pending record `name`: created, or adopted from a failed earlier run.
    A complete record of that name is refused (it may hold another Vault's keys)."""
    arn = find_secret(sm, name)
    if arn is None:
        arn = create_secret(sm, name, PENDING_RECORD, kms_key, description)
    elif not is_pending(sm, arn):
        raise ProviderError(
            f"secret {name} already exists but Vault is not initialised: delete it"
            " or choose another keybroker:secretsPrefix"
        )
    else:
        sm.update_secret(SecretId=arn, KmsKeyId=kms_key)
    # The same call that later writes the material: proves the permission before init.
    sm.put_secret_value(SecretId=arn, SecretString=PENDING_RECORD)
    return arn


def _store(sm: Any, arn: str, value: str, address: str) -> None:
    try:
        put_with_retries(sm, arn, value)
    except (ClientError, BotoCoreError) as exc:
        raise ProviderError(
            f"Vault at {address} was initialised but writing {arn} failed"
            f" {PUT_ATTEMPTS} times ({type(exc).__name__}); see docs/deploy.md,"
            " 'Init records pending'"
        ) from None


def _wait_for_vault(address: str, ca_cert_pem: str | None, timeout_s: float) -> bool:
    """Whether Vault is initialised, once it answers `GET /v1/sys/init`."""
    deadline = time.monotonic() + timeout_s
    with vault_client(address, ca_cert_pem) as client:
        while True:
            try:
                return bool(client.sys.is_initialized())
            except (requests.exceptions.ConnectionError, hvac.exceptions.VaultDown):
                if time.monotonic() >= deadline:
                    raise ProviderError(
                        f"Vault at {address} did not answer within {timeout_s:.0f}s"
                    ) from None
                time.sleep(1.0)


class VaultInit(dynamic.Resource, module="keybroker", name="VaultInit"):
    """Initialised Vault; outputs are Secrets Manager ARNs only."""

    root_token_secret_arn: pulumi.Output[str]
    recovery_keys_secret_arn: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        vault: VaultAccess,
        kms_key_arn: pulumi.Input[str],
        secrets_prefix: str,
        recovery_shares: int,
        recovery_threshold: int,
        recovery_window_days: int,
        wait_timeout_s: float = 120.0,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = vault.props(
            kms_key_arn=kms_key_arn,
            secrets_prefix=secrets_prefix,
            recovery_shares=recovery_shares,
            recovery_threshold=recovery_threshold,
            recovery_window_days=recovery_window_days,
            wait_timeout_s=wait_timeout_s,
            root_token_secret_arn=None,
            recovery_keys_secret_arn=None,
            records_complete=None,
            vault_initialized=None,
        )
        super().__init__(VaultInitProvider(), name, props, opts)
