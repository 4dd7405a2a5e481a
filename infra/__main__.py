"""keybroker's Pulumi program: wires the components together from stack configuration.

Run by the Pulumi CLI (`make up STACK=dev`); tests call `main()` under
`pulumi.runtime.set_mocks`. Resource logic lives in infra/components and
infra/providers; the Vault layout comes from broker/layout.py.
"""

from __future__ import annotations

from pathlib import Path

import pulumi
import yaml

from broker.layout import build_layout
from infra import vault_hcl
from infra.components.broker_service import BrokerService, BrokerServiceArgs
from infra.components.network import Network, NetworkArgs
from infra.components.vault_cluster import VaultCluster, VaultClusterArgs
from infra.components.vault_setup import VaultSetup, VaultSetupArgs
from infra.config import StackConfig, load_config
from infra.layout_props import layout_to_props
from infra.providers.kms import KmsKey

REPO_ROOT = Path(__file__).resolve().parent.parent


def broker_settings(cfg: StackConfig, site_token_role: str) -> dict[str, str]:
    """The broker's non-secret KEYBROKER_* settings (docs/contracts.md §7)."""
    settings = {
        "KEYBROKER_KV_MOUNT": cfg.kv_mount,
        "KEYBROKER_SITE_TOKEN_TTL": f"{cfg.site_token_ttl:g}",
        "KEYBROKER_SITE_TOKEN_MAX_TTL": f"{cfg.site_token_max_ttl:g}",
        "KEYBROKER_SITE_TOKEN_ROLE": site_token_role,
        "KEYBROKER_ALLOW_FUTURES": str(cfg.allow_futures).lower(),
        "KEYBROKER_ROBOT_EGRESS_IPS": ",".join(cfg.robot_egress_ips),
        "KEYBROKER_SITE_EGRESS_IPS": ",".join(cfg.site_egress_ips),
    }
    if cfg.exchanges:
        settings["KEYBROKER_EXCHANGES"] = ",".join(cfg.exchanges)
    return settings


def main() -> None:
    cfg = load_config()
    prefix = f"keybroker-{pulumi.get_stack()}"

    network = Network("network", NetworkArgs(prefix=prefix, environment=cfg.environment))
    kms = KmsKey(
        "unseal-key",
        region=cfg.aws_region,
        endpoint_url=cfg.aws_endpoint_url,
        alias=f"alias/{prefix}-vault-unseal",
        description=f"{prefix}: Vault awskms auto-unseal and init secrets",
        existing_key_arn=cfg.kms_key_arn,
        deletion_window_days=cfg.kms_deletion_window_days,
    )
    vault = VaultCluster(
        "vault",
        VaultClusterArgs(
            prefix=prefix,
            environment=cfg.environment,
            nodes=cfg.vault_nodes,
            image=cfg.vault_image,
            disable_mlock=cfg.disable_mlock,
            memory_mb=cfg.vault_memory_mb,
            tls_validity_days=cfg.tls_validity_days,
            publish_address=cfg.publish_address,
            vault_port=cfg.vault_port,
            internal_network=network.internal_name,
            edge_network=network.edge_name,
            kms_key_arn=kms.arn,
            aws_region=cfg.aws_region,
            aws_endpoint_url=cfg.aws_endpoint_url,
            aws_credentials_file=cfg.aws_credentials_file,
        ),
    )
    layout = build_layout(
        mount=cfg.kv_mount,
        site_token_ttl=cfg.site_token_ttl,
        site_token_max_ttl=cfg.site_token_max_ttl,
        site_token_cidrs=cfg.site_token_cidrs,
        robot_cidrs=cfg.robot_cidrs,
        audit_devices=vault_hcl.audit_devices(),
    )
    setup = VaultSetup(
        "vault-setup",
        VaultSetupArgs(
            address=vault.address,
            ca_cert_pem=vault.ca_cert_pem,
            kms_key_arn=kms.arn,
            aws_region=cfg.aws_region,
            aws_endpoint_url=cfg.aws_endpoint_url,
            secrets_prefix=cfg.secrets_prefix,
            recovery_shares=cfg.recovery_shares,
            recovery_threshold=cfg.recovery_threshold,
            recovery_window_days=cfg.secrets_recovery_window_days,
            layout=layout_to_props(layout),
            secret_id_wrap_ttl_s=cfg.secret_id_wrap_ttl,
            secret_id_rotation=cfg.broker_secret_id_rotation,
            revoke_root_token=cfg.revoke_root_token,
            depends_on=list(vault.containers),
        ),
    )
    secret_settings = (
        cfg.audit_hmac_key.apply(lambda key: yaml.safe_dump({"audit_hmac_key": key}))
        if cfg.audit_hmac_key is not None
        else None
    )
    broker = BrokerService(
        "broker",
        BrokerServiceArgs(
            prefix=prefix,
            environment=cfg.environment,
            context_dir=str(REPO_ROOT),
            vault_address=vault.internal_address,
            ca_cert_pem=vault.ca_cert_pem,
            role_id=setup.broker_role_id,
            wrapped_secret_id=setup.wrapped_secret_id,
            internal_network=network.internal_name,
            edge_network=network.edge_name,
            publish_address=cfg.publish_address,
            port=cfg.broker_port,
            memory_mb=cfg.broker_memory_mb,
            cpus=cfg.broker_cpus,
            settings=broker_settings(cfg, layout.site_token_role.name),
            secret_settings=secret_settings,
        ),
    )

    pulumi.export("vault_address", vault.address)
    pulumi.export("vault_ca_cert_pem", vault.ca_cert_pem)
    pulumi.export("broker_url", broker.url)
    pulumi.export("site_token_role", setup.site_token_role)
    pulumi.export("robot_role_id", setup.robot_role_id)
    pulumi.export("kms_key_arn", kms.arn)
    pulumi.export("root_token_secret_arn", setup.root_token_secret_arn)
    pulumi.export("recovery_keys_secret_arn", setup.recovery_keys_secret_arn)
    pulumi.export("broker_container", broker.container.name)


if __name__ == "__main__":
    main()
