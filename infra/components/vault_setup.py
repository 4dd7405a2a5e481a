"""Vault set-up after the containers run: init, the layout, the broker's secret-id, and
(in prod) revocation of the initial root token, in that order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from broker.layout import BROKER_POLICY
from infra.providers.approle import BrokerSecretId
from infra.providers.root_token import RootTokenRevocation
from infra.providers.vault_config import VaultConfig
from infra.providers.vault_init import VaultInit


def broker_role_name(layout_props: dict[str, Any]) -> str:
    """The AppRole whose tokens carry the broker policy (declared in broker/layout.py)."""
    for role in layout_props["approles"]:
        if BROKER_POLICY in role["token_policies"]:
            return str(role["name"])
    raise ValueError("the layout has no AppRole holding the broker policy")


@dataclass(frozen=True)
class VaultSetupArgs:
    address: pulumi.Input[str]
    ca_cert_pem: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    aws_region: str
    aws_endpoint_url: str | None
    secrets_prefix: str
    recovery_shares: int
    recovery_threshold: int
    recovery_window_days: int
    layout: dict[str, Any]  # infra.layout_props.layout_to_props(build_layout(...))
    secret_id_wrap_ttl_s: float
    secret_id_rotation: str
    revoke_root_token: bool
    depends_on: list[pulumi.Resource]


class VaultSetup(pulumi.ComponentResource):
    root_token_secret_arn: pulumi.Output[str]
    recovery_keys_secret_arn: pulumi.Output[str]
    site_token_role: pulumi.Output[str]
    robot_role_id: pulumi.Output[str]
    broker_role_id: pulumi.Output[str]
    wrapped_secret_id: pulumi.Output[str]  # secret

    def __init__(
        self, name: str, args: VaultSetupArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("keybroker:infra:VaultSetup", name, None, opts)
        init = VaultInit(
            f"{name}-init",
            address=args.address,
            ca_cert_pem=args.ca_cert_pem,
            region=args.aws_region,
            endpoint_url=args.aws_endpoint_url,
            kms_key_arn=args.kms_key_arn,
            secrets_prefix=args.secrets_prefix,
            recovery_shares=args.recovery_shares,
            recovery_threshold=args.recovery_threshold,
            recovery_window_days=args.recovery_window_days,
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.depends_on),
        )
        token_arn = init.root_token_secret_arn
        config = VaultConfig(
            f"{name}-config",
            address=args.address,
            ca_cert_pem=args.ca_cert_pem,
            region=args.aws_region,
            endpoint_url=args.aws_endpoint_url,
            token_secret_arn=token_arn,
            layout=args.layout,
            opts=pulumi.ResourceOptions(parent=self),
        )
        secret_id = BrokerSecretId(
            f"{name}-broker-secret-id",
            address=args.address,
            ca_cert_pem=args.ca_cert_pem,
            region=args.aws_region,
            endpoint_url=args.aws_endpoint_url,
            token_secret_arn=token_arn,
            role_name=broker_role_name(args.layout),
            wrap_ttl_s=args.secret_id_wrap_ttl_s,
            rotation=args.secret_id_rotation,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[config]),
        )
        if args.revoke_root_token:
            RootTokenRevocation(
                f"{name}-revoke-root-token",
                address=args.address,
                ca_cert_pem=args.ca_cert_pem,
                region=args.aws_region,
                endpoint_url=args.aws_endpoint_url,
                token_secret_arn=token_arn,
                after=[config.id, secret_id.id],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[config, secret_id]),
            )
        self.root_token_secret_arn = token_arn
        self.recovery_keys_secret_arn = init.recovery_keys_secret_arn
        self.site_token_role = config.site_token_role
        self.robot_role_id = config.robot_role_id
        self.broker_role_id = secret_id.role_id
        self.wrapped_secret_id = pulumi.Output.secret(secret_id.wrapped_secret_id)
        self.register_outputs(
            {
                "root_token_secret_arn": self.root_token_secret_arn,
                "site_token_role": self.site_token_role,
                "robot_role_id": self.robot_role_id,
            }
        )
