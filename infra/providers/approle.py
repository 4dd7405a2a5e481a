"""The broker's AppRole secret-id, issued response-wrapped (docs/facts/vault.md §4.4, §5).

`broker.bootstrap.issue_approle_credentials` asks Vault for a fresh secret-id with a
wrap TTL, so neither this provider nor Pulumi ever sees the secret-id itself: only a
single-use wrapping token, marked secret in state, which the broker's launcher unwraps
at start. Any input change (notably `rotation`) replaces the resource, which issues a
new secret-id. Deleting an unused one unwraps it and destroys the secret-id.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import hvac.exceptions
import pulumi
from pulumi import dynamic

from broker.bootstrap import issue_approle_credentials
from infra.providers.clients import (
    props_root_token,
    props_vault_client,
    root_token_for_cleanup,
    vault_access_props,
)
from infra.providers.diffs import changed, diff_result

WRAPPED_OUTPUT = "wrapped_secret_id"


class BrokerSecretIdProvider(dynamic.ResourceProvider):
    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        with props_vault_client(props, props_root_token(props)) as client:
            creds = issue_approle_credentials(
                client, props["role_name"], wrap_ttl=int(float(props["wrap_ttl_s"]))
            )
        issued_at = datetime.now(UTC).isoformat()
        outs = {
            **props,
            "role_id": creds.role_id,
            WRAPPED_OUTPUT: creds.secret_id,
            "issued_at": issued_at,
        }
        return dynamic.CreateResult(f"{props['role_name']}/{uuid.uuid4()}", outs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        keys = ("address", "role_name", "rotation", "wrap_ttl_s", "token_secret_arn")
        # A CA change alone (same Vault, new certificates) needs no new secret-id.
        return diff_result(changed(olds, news, keys), changed(olds, news, ("ca_cert_pem",)))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        kept = {k: olds.get(k) for k in ("role_id", WRAPPED_OUTPUT, "issued_at")}
        return dynamic.UpdateResult({**news, **kept})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Destroy the secret-id if it was never unwrapped; a used one expires by its TTL."""
        wrapped = props.get(WRAPPED_OUTPUT)
        if not wrapped:
            return
        with props_vault_client(props, wrapped) as client:
            try:
                answer = client.sys.unwrap()
            except (hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest):
                return  # already unwrapped by the broker, or expired
        accessor = (answer.get("data") or {}).get("secret_id_accessor")
        if not accessor:
            return
        token = root_token_for_cleanup(props, "unused broker secret-id left to expire")
        if token is None:
            return
        with props_vault_client(props, token) as client:
            client.auth.approle.destroy_secret_id_accessor(props["role_name"], accessor)


class BrokerSecretId(dynamic.Resource, module="keybroker", name="BrokerSecretId"):
    role_id: pulumi.Output[str]
    wrapped_secret_id: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        address: pulumi.Input[str],
        ca_cert_pem: pulumi.Input[str],
        token_secret_arn: pulumi.Input[str],
        region: str,
        role_name: str,
        wrap_ttl_s: float,
        rotation: str,
        endpoint_url: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            **vault_access_props(
                address=address,
                ca_cert_pem=ca_cert_pem,
                token_secret_arn=token_secret_arn,
                region=region,
                endpoint_url=endpoint_url,
            ),
            "role_name": role_name,
            "wrap_ttl_s": wrap_ttl_s,
            "rotation": rotation,
            "role_id": None,
            WRAPPED_OUTPUT: None,
            "issued_at": None,
        }
        secret_opts = pulumi.ResourceOptions(additional_secret_outputs=[WRAPPED_OUTPUT])
        super().__init__(
            BrokerSecretIdProvider(), name, props, pulumi.ResourceOptions.merge(secret_opts, opts)
        )
