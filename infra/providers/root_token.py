"""Revocation of Vault's initial root token at the end of a prod deployment.

HashiCorp's hardening guide: avoid root tokens, revoke the initial one after setup.
`create` revokes the token (`POST auth/token/revoke-self`) and overwrites its Secrets
Manager record with a revocation marker; a second `create` finds the marker and does
nothing. Deletion cannot un-revoke anything and only forgets the resource.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import hvac.exceptions
import pulumi
from pulumi import dynamic

from infra.providers.clients import (
    AwsTarget,
    props_vault_client,
    revoked_record,
    vault_access_props,
)
from infra.providers.diffs import changed, diff_result


class RootTokenRevocationProvider(dynamic.ResourceProvider):
    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        aws = AwsTarget.from_props(props)
        sm = aws.client("secretsmanager")
        arn = props["token_secret_arn"]
        record = json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])
        token = record.get("root_token")
        if token:
            # Forbidden: already revoked by hand; recorded below all the same.
            with (
                props_vault_client(props, token) as client,
                contextlib.suppress(hvac.exceptions.Forbidden),
            ):
                client.auth.token.revoke_self()
            sm.put_secret_value(SecretId=arn, SecretString=revoked_record())
            record = json.loads(sm.get_secret_value(SecretId=arn)["SecretString"])
        return dynamic.CreateResult(arn, {**props, "revoked_at": record.get("revoked_at")})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        return diff_result(
            changed(olds, news, ("token_secret_arn",)),
            changed(olds, news, ("address", "ca_cert_pem", "after")),
        )

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult({**news, "revoked_at": olds.get("revoked_at")})


class RootTokenRevocation(dynamic.Resource, module="keybroker", name="RootTokenRevocation"):
    revoked_at: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        address: pulumi.Input[str],
        ca_cert_pem: pulumi.Input[str],
        token_secret_arn: pulumi.Input[str],
        region: str,
        after: list[pulumi.Input[str]],
        endpoint_url: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """`after`: ids of the resources that need the root token (ordering and diff)."""
        props = {
            **vault_access_props(
                address=address,
                ca_cert_pem=ca_cert_pem,
                token_secret_arn=token_secret_arn,
                region=region,
                endpoint_url=endpoint_url,
            ),
            "after": after,
            "revoked_at": None,
        }
        super().__init__(RootTokenRevocationProvider(), name, props, opts)
