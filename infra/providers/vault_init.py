"""Vault initialisation with auto-unseal (docs/facts/vault.md §6, `PUT /v1/sys/init`).

`create` initialises an uninitialised Vault with recovery shares (the awskms seal
unseals it), and writes the recovery keys and the initial root token to Secrets
Manager, encrypted with the unseal KMS key. Only the two secret ARNs are outputs: the
key material never reaches Pulumi state. On a Vault that is already initialised,
`create` adopts the records under the same names (a second run changes nothing) and
refuses when they are missing, since the stack cannot know that Vault's keys.
"""

from __future__ import annotations

import json
import time
from typing import Any

import hvac.exceptions
import pulumi
import requests
from pulumi import dynamic

from infra.providers.clients import (
    AwsTarget,
    ProviderError,
    props_vault_client,
    root_token_record,
    vault_client,
)
from infra.providers.diffs import changed, diff_result
from infra.providers.secrets import create_secret, delete_secret, find_secret

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
            return dynamic.CreateResult(root_name, _outs(props, root_arn, recovery_arn))
        # Refuse before init if a record is in the way: init secrets are shown only once.
        for name in (root_name, recovery_name):
            if find_secret(sm, name) is not None:
                raise ProviderError(
                    f"secret {name} already exists but Vault is not initialised: delete it"
                    " or choose another keybroker:secretsPrefix"
                )
        with props_vault_client(props) as client:
            answer = client.sys.initialize(
                recovery_shares=int(props["recovery_shares"]),
                recovery_threshold=int(props["recovery_threshold"]),
            )
        kms_key = props["kms_key_arn"]
        root_arn = create_secret(
            sm,
            root_name,
            root_token_record(answer["root_token"]),
            kms_key,
            "keybroker: initial Vault root token (revoked after setup in prod)",
        )
        recovery = {
            "recovery_keys_base64": answer.get("recovery_keys_base64") or [],
            "recovery_threshold": int(props["recovery_threshold"]),
        }
        recovery_arn = create_secret(
            sm,
            recovery_name,
            json.dumps(recovery),
            kms_key,
            "keybroker: Vault recovery keys (rekey, generate-root)",
        )
        return dynamic.CreateResult(root_name, _outs(props, root_arn, recovery_arn))

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
    return {**props, "root_token_secret_arn": root_arn, "recovery_keys_secret_arn": recovery_arn}


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
        address: pulumi.Input[str],
        ca_cert_pem: pulumi.Input[str],
        kms_key_arn: pulumi.Input[str],
        region: str,
        secrets_prefix: str,
        recovery_shares: int,
        recovery_threshold: int,
        recovery_window_days: int,
        endpoint_url: str | None = None,
        wait_timeout_s: float = 120.0,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "address": address,
            "ca_cert_pem": ca_cert_pem,
            "kms_key_arn": kms_key_arn,
            "region": region,
            "endpoint_url": endpoint_url,
            "secrets_prefix": secrets_prefix,
            "recovery_shares": recovery_shares,
            "recovery_threshold": recovery_threshold,
            "recovery_window_days": recovery_window_days,
            "wait_timeout_s": wait_timeout_s,
            "root_token_secret_arn": None,
            "recovery_keys_secret_arn": None,
        }
        super().__init__(VaultInitProvider(), name, props, opts)
