"""Vault configuration: the one declarative layout, applied by broker.bootstrap.

The provider has no Vault logic of its own: it rebuilds the VaultLayout from its
properties and calls `broker.bootstrap.apply_layout` (idempotent, conflict-checked),
the same function `keybroker vault bootstrap` and dev mode use. The token is the
initial root token, read from Secrets Manager at run time.
"""

from __future__ import annotations

from typing import Any

import hvac
import hvac.exceptions
import pulumi
from pulumi import dynamic

from broker.bootstrap import _same_settings, apply_layout
from broker.layout import ROBOT_READ_POLICY
from infra.layout_props import layout_from_props
from infra.providers.clients import (
    VaultAccess,
    props_root_token,
    props_vault_client,
    root_token_for_cleanup,
    wait_until_active,
)
from infra.providers.diffs import changed, diff_result


def robot_role_name(layout_props: dict[str, Any]) -> str:
    """The AppRole whose tokens carry the robot-read policy (declared in broker/layout.py)."""
    for role in layout_props["approles"]:
        if ROBOT_READ_POLICY in role["token_policies"]:
            return str(role["name"])
    raise ValueError("the layout has no AppRole holding the robot-read policy")


class VaultConfigProvider(dynamic.ResourceProvider):
    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        return dynamic.CreateResult(f"{props['address']}#{props['layout']['mount']}", _apply(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        keys = ("address", "ca_cert_pem", "token_secret_arn", "layout")
        updates = changed(olds, news, keys)
        if olds.get("drift"):
            updates.append("drift")  # refresh saw Vault differ from the layout: re-apply
        return diff_result([], updates)

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        """What in Vault differs from the layout (`drift`, shown by `pulumi refresh`);
        unknown (None) once the root token is revoked."""
        token = root_token_for_cleanup(props, "Vault layout drift not checked")
        if token is None:
            return dynamic.ReadResult(id_, {**props, "drift": None})
        with props_vault_client(props, token) as client:
            drift = layout_drift(client, layout_from_props(props["layout"]))
        return dynamic.ReadResult(id_, {**props, "drift": drift})

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(_apply(news))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Remove the roles and policies the layout created.

        The KV mount (the keys themselves) and the audit devices are left in place on
        purpose: Pulumi never destroys stored keys nor switches auditing off.
        """
        layout = layout_from_props(props["layout"])
        token = root_token_for_cleanup(props, "Vault layout left in place")
        if token is None:
            return
        with props_vault_client(props, token) as client:
            for role in layout.approles:
                client.delete(f"auth/approle/role/{role.name}")
            client.delete(f"auth/token/roles/{layout.site_token_role.name}")
            for name in layout.policies:
                client.sys.delete_acl_policy(name)


def layout_drift(client: hvac.Client, layout: Any) -> list[str]:
    """The policies and roles whose Vault state differs from `layout` (read-only)."""
    drift = []
    for name, text in layout.policies.items():
        try:
            current = client.sys.read_acl_policy(name)["data"].get("policy")
        except hvac.exceptions.InvalidPath:
            current = None
        if current != text:
            drift.append(f"policy {name}")
    roles = [(f"auth/token/roles/{layout.site_token_role.name}", layout.site_token_role)]
    roles += [(f"auth/approle/role/{role.name}", role) for role in layout.approles]
    for path, role in roles:
        current = client.read(path)
        if current is None or not _same_settings(current.get("data") or {}, role.vault_payload()):
            drift.append(path)
    return drift


def _apply(props: dict[str, Any]) -> dict[str, Any]:
    layout = layout_from_props(props["layout"])
    with props_vault_client(props, props_root_token(props)) as client:
        wait_until_active(client)
        report = apply_layout(client, layout)
        try:
            answer = client.auth.approle.read_role_id(robot_role_name(props["layout"]))
        except hvac.exceptions.InvalidPath:
            answer = {"data": {"role_id": None}}
    return {
        **props,
        "site_token_role": layout.site_token_role.name,
        "robot_role_id": answer["data"]["role_id"],
        "changed_steps": [str(step) for step in report.changed_steps],
        "drift": [],
    }


class VaultConfig(dynamic.Resource, module="keybroker", name="VaultConfig"):
    """Vault holding the keybroker layout; outputs are names and the robot's role-id."""

    site_token_role: pulumi.Output[str]
    robot_role_id: pulumi.Output[str]
    changed_steps: pulumi.Output[list[str]]

    def __init__(
        self,
        name: str,
        *,
        vault: VaultAccess,
        token_secret_arn: pulumi.Input[str],
        layout: dict[str, Any],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = vault.props(
            token_secret_arn=token_secret_arn,
            layout=layout,
            site_token_role=None,
            robot_role_id=None,
            changed_steps=None,
            drift=None,
        )
        super().__init__(VaultConfigProvider(), name, props, opts)
