"""Revocation of Vault's initial root token at the end of a prod deployment.

HashiCorp's hardening guide: avoid root tokens, revoke the initial one after setup.
`create` revokes the token (`POST auth/token/revoke-self`) and overwrites its Secrets
Manager record with a revocation marker; a second `create` finds the marker and does
nothing. Deletion cannot un-revoke anything and only forgets the resource.

Checked on every `up`: `diff` reads the record each time, and a token found there (one
an operator generated for a later change, docs/deploy.md "Rotate") is a change, so the
update revokes it again after the resources that needed it. `read` shows the same for
`pulumi refresh` (`token_present`).
"""

from __future__ import annotations

import contextlib
from typing import Any

import hvac.exceptions
import pulumi
from pulumi import dynamic

from infra.providers.clients import (
    AwsTarget,
    VaultAccess,
    props_vault_client,
    revoked_record,
)
from infra.providers.diffs import changed, diff_result
from infra.providers.secrets import read_record


def _record(props: dict[str, Any]) -> dict[str, Any]:
    sm = AwsTarget.from_props(props).client("secretsmanager")
    return read_record(sm, props["token_secret_arn"]) or {}


def _revoke(props: dict[str, Any]) -> dict[str, Any]:
    """Revoke the token in the record, if any; the outputs."""
    sm = AwsTarget.from_props(props).client("secretsmanager")
    arn = props["token_secret_arn"]
    record = _record(props)
    token = record.get("root_token")
    if token:
        # Forbidden: already revoked by hand; recorded below all the same.
        with (
            props_vault_client(props, token) as client,
            contextlib.suppress(hvac.exceptions.Forbidden),
        ):
            client.auth.token.revoke_self()
        sm.put_secret_value(SecretId=arn, SecretString=revoked_record())
        record = _record(props)
    return {**props, "revoked_at": record.get("revoked_at"), "token_present": False}


class RootTokenRevocationProvider(dynamic.ResourceProvider):
    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        return dynamic.CreateResult(props["token_secret_arn"], _revoke(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        updates = changed(olds, news, ("address", "ca_cert_pem", "after"))
        if olds.get("token_present") or _record(olds).get("root_token"):
            updates.append("token_present")  # a root token is back in the record: revoke it
        return diff_result(changed(olds, news, ("token_secret_arn",)), updates)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(_revoke(news))

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        record = _record(props)
        return dynamic.ReadResult(
            id_,
            {
                **props,
                "revoked_at": record.get("revoked_at"),
                "token_present": bool(record.get("root_token")),
            },
        )


class RootTokenRevocation(dynamic.Resource, module="keybroker", name="RootTokenRevocation"):
    revoked_at: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        vault: VaultAccess,
        token_secret_arn: pulumi.Input[str],
        after: list[pulumi.Input[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`after`: ids of the resources that need the root token (ordering and diff)."""
        props = vault.props(
            token_secret_arn=token_secret_arn, after=after, revoked_at=None, token_present=None
        )
        super().__init__(RootTokenRevocationProvider(), name, props, opts)
