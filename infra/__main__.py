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
from infra.components.hosts import host_resources
from infra.components.vault_cluster import VaultCluster, VaultClusterArgs
from infra.components.vault_setup import VaultSetup, VaultSetupArgs
from infra.config import ConfigError, StackConfig, load_config
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
        # What each key's IP whitelist must hold, and what Vault binds logins and site
        # tokens to (docs/broker.md: exchange egress vs Vault source networks).
        "KEYBROKER_ROBOT_EXCHANGE_EGRESS_IPS": ",".join(cfg.robot_egress_ips),
        "KEYBROKER_SITE_EXCHANGE_EGRESS_IPS": ",".join(cfg.site_egress_ips),
        "KEYBROKER_ROBOT_VAULT_CIDRS": ",".join(cfg.robot_cidrs),
        "KEYBROKER_SITE_VAULT_CIDRS": ",".join(cfg.site_token_cidrs),
    }
    if cfg.exchanges:
        settings["KEYBROKER_EXCHANGES"] = ",".join(cfg.exchanges)
    return settings


def seal_credentials(path: str | None) -> pulumi.Output[str] | None:
    """The AWS shared-credentials file for Vault's seal, read on the deploying machine
    and kept secret (uploaded into the Vault containers, never bind-mounted)."""
    if path is None:
        return None
    file = Path(path).expanduser()
    try:
        return pulumi.Output.secret(file.read_text())
    except OSError:
        raise ConfigError(
            "awsCredentialsFile", f"a readable AWS shared-credentials file ({file} is not)"
        ) from None


def main() -> None:
    cfg = load_config()
    prefix = f"keybroker-{pulumi.get_stack()}"

    hosts = host_resources(cfg.docker_hosts, prefix, cfg.environment)
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
            telemetry_retention_s=int(cfg.telemetry_retention),
            vault_port=cfg.vault_port,
            hosts=hosts,
            kms_key_arn=kms.arn,
            aws_region=cfg.aws_region,
            aws_endpoint_url=cfg.aws_seal_endpoint_url,
            aws_credentials=seal_credentials(cfg.aws_credentials_file),
            seal_disabled=cfg.seal_migrate_to_shamir,
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
            broker_token_period_s=cfg.broker_token_period,
            credential_wrap_ttl_s=cfg.broker_credential_wrap_ttl,
            credential_rotation=cfg.broker_credential_rotation,
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
            hosts=hosts,
            replicas=cfg.broker_replicas,
            vault_hosts=frozenset(p.name for p in vault.placement),
            vault_internal_address=vault.internal_address,
            vault_published_address=vault.address,
            ca_cert_pem=vault.ca_cert_pem,
            issue_credential=setup.issue_broker_token,
            base_image=cfg.broker_base_image,
            load_balancer=cfg.load_balancer,
            load_balancer_image=cfg.load_balancer_image,
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
    pulumi.export("broker_containers", [c.name for c in broker.containers])
    pulumi.export("vault_image", vault.image_ref)


if __name__ == "__main__":
    main()
