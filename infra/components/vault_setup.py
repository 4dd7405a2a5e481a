"""Vault set-up after the containers run: init, the layout, the broker-token issuer, and
(in prod) revocation of the initial root token, in that order. Broker tokens are issued
afterwards, per replica (`issue_broker_token`), by the issuer: no root token needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi

from broker.layout import BROKER_POLICY
from infra.providers.broker_token import BrokerToken, BrokerTokenIssuer
from infra.providers.clients import VaultAccess
from infra.providers.root_token import RootTokenRevocation
from infra.providers.vault_config import VaultConfig
from infra.providers.vault_init import VaultInit


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
    broker_token_period_s: float
    credential_wrap_ttl_s: float
    credential_rotation: str
    revoke_root_token: bool
    depends_on: list[pulumi.Resource]

    def vault_access(self) -> VaultAccess:
        return VaultAccess(self.address, self.ca_cert_pem, self.aws_region, self.aws_endpoint_url)


class VaultSetup(pulumi.ComponentResource):
    root_token_secret_arn: pulumi.Output[str]
    recovery_keys_secret_arn: pulumi.Output[str]
    site_token_role: pulumi.Output[str]
    robot_role_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: VaultSetupArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("keybroker:infra:VaultSetup", name, None, opts)
        vault = args.vault_access()
        init = VaultInit(
            f"{name}-init",
            vault=vault,
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
            vault=vault,
            token_secret_arn=token_arn,
            layout=args.layout,
            opts=pulumi.ResourceOptions(parent=self),
        )
        issuer = BrokerTokenIssuer(
            f"{name}-broker-token-issuer",
            vault=vault,
            token_secret_arn=token_arn,
            kms_key_arn=args.kms_key_arn,
            secrets_prefix=args.secrets_prefix,
            broker_policy=BROKER_POLICY,
            period_s=args.broker_token_period_s,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[config]),
        )
        if args.revoke_root_token:
            RootTokenRevocation(
                f"{name}-revoke-root-token",
                vault=vault,
                token_secret_arn=token_arn,
                after=[config.id, issuer.id],
                opts=pulumi.ResourceOptions(parent=self, depends_on=[config, issuer]),
            )
        self._args = args
        self._issuer = issuer
        self.root_token_secret_arn = token_arn
        self.recovery_keys_secret_arn = init.recovery_keys_secret_arn
        self.site_token_role = config.site_token_role
        self.robot_role_id = config.robot_role_id
        self.register_outputs(
            {
                "root_token_secret_arn": self.root_token_secret_arn,
                "site_token_role": self.site_token_role,
                "robot_role_id": self.robot_role_id,
            }
        )

    def issue_broker_token(self, replica: str, delivery: pulumi.Output[str]) -> pulumi.Output[str]:
        """A wrapped periodic token for broker replica `replica` (a secret Output); a new
        one whenever `delivery` (the replica container's digest) changes."""
        token = BrokerToken(
            f"{replica}-token",
            vault=self._args.vault_access(),
            issuer_secret_arn=self._issuer.issuer_secret_arn,
            token_secret_arn=self.root_token_secret_arn,
            role_name=self._issuer.role_name,
            replica=replica,
            wrap_ttl_s=self._args.credential_wrap_ttl_s,
            rotation=self._args.credential_rotation,
            delivery=delivery,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return pulumi.Output.secret(token.wrapped_token)
