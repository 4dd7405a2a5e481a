"""Vault on Docker: 1 node, or 3 nodes forming a Raft HA cluster.

Per node: a data volume (Raft), a log volume (file audit device), and a container that
runs `vault server` explicitly (the official image's default command is dev mode,
docs/facts/pulumi.md §7) with the HCL from infra/vault_hcl.py and the node's TLS
material uploaded (the key as a secret input). The image is pinned by digest.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from infra import vault_hcl
from infra.addresses import deploy_host, url_host
from infra.components.labels import labels
from infra.providers.tls import TlsBundle

VAULT_UID = "100"  # the `vault` user of the official image
VAULT_GID = "1000"
AWS_CREDENTIALS_PATH = "/vault/aws/credentials"
# Capabilities the official entrypoint never needs (it chowns, setcaps, su-execs).
VAULT_DROPPED_CAPS = ["NET_RAW", "MKNOD", "AUDIT_WRITE", "SYS_CHROOT", "NET_BIND_SERVICE"]


@dataclass(frozen=True)
class VaultClusterArgs:
    prefix: str
    environment: str
    nodes: int
    image: str  # repo@sha256:...
    disable_mlock: bool
    memory_mb: int
    tls_validity_days: int
    publish_address: str
    vault_port: int
    internal_network: pulumi.Input[str]
    edge_network: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    aws_region: str
    aws_endpoint_url: str | None = None
    aws_credentials_file: str | None = None


class VaultCluster(pulumi.ComponentResource):
    address: pulumi.Output[str]  # published, for operators and the dynamic providers
    internal_address: str  # what the broker uses on the internal network
    ca_cert_pem: pulumi.Output[str]
    containers: list[docker.Container]

    def __init__(
        self, name: str, args: VaultClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("keybroker:infra:VaultCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        shared_alias = f"{args.prefix}-vault"
        host = deploy_host(args.publish_address)
        hosts = [
            [vault_hcl.node_host(args.prefix, i), shared_alias, "localhost", "127.0.0.1", host]
            for i in range(args.nodes)
        ]
        tls = TlsBundle(
            f"{name}-tls",
            ca_name=f"{args.prefix} Vault CA",
            nodes=[list(dict.fromkeys(h)) for h in hosts],
            validity_days=args.tls_validity_days,
            opts=child,
        )
        image = docker.RemoteImage(f"{name}-image", name=args.image, keep_locally=True, opts=child)
        self.containers = [
            self._node(name, args, i, tls, image, shared_alias, child) for i in range(args.nodes)
        ]
        self.address = pulumi.Output.from_input(f"https://{url_host(host)}:{args.vault_port}")
        self.internal_address = f"https://{shared_alias}:{vault_hcl.API_PORT}"
        self.ca_cert_pem = tls.ca_cert_pem
        self.register_outputs({"address": self.address, "ca_cert_pem": self.ca_cert_pem})

    def _node(
        self,
        name: str,
        args: VaultClusterArgs,
        index: int,
        tls: TlsBundle,
        image: docker.RemoteImage,
        shared_alias: str,
        child: pulumi.ResourceOptions,
    ) -> docker.Container:
        node = vault_hcl.node_host(args.prefix, index)
        data = docker.Volume(
            f"{name}-{index}-data",
            name=f"{node}-data",
            labels=labels(docker.VolumeLabelArgs, args.environment, "vault"),
            opts=child,
        )
        logs = docker.Volume(
            f"{name}-{index}-logs",
            name=f"{node}-logs",
            labels=labels(docker.VolumeLabelArgs, args.environment, "vault"),
            opts=child,
        )
        hcl = pulumi.Output.from_input(args.kms_key_arn).apply(
            lambda arn: vault_hcl.render(
                vault_hcl.ServerConfig(
                    node_index=index,
                    nodes=args.nodes,
                    host_prefix=args.prefix,
                    disable_mlock=args.disable_mlock,
                    kms_key_id=arn,
                    aws_region=args.aws_region,
                    aws_endpoint_url=args.aws_endpoint_url,
                )
            )
        )
        node_key: pulumi.Output[str] = tls.key_pems.apply(lambda keys: keys[index])
        key_pem: pulumi.Output[str] = pulumi.Output.secret(node_key)
        envs = [
            f"VAULT_ADDR=https://127.0.0.1:{vault_hcl.API_PORT}",  # for the health check CLI
            f"VAULT_CACERT={vault_hcl.CA_FILE}",
        ]
        volumes = [
            docker.ContainerVolumeArgs(volume_name=data.name, container_path=vault_hcl.DATA_DIR),
            docker.ContainerVolumeArgs(volume_name=logs.name, container_path=vault_hcl.LOG_DIR),
        ]
        if args.aws_credentials_file:
            envs.append(f"AWS_SHARED_CREDENTIALS_FILE={AWS_CREDENTIALS_PATH}")
            volumes.append(
                docker.ContainerVolumeArgs(
                    host_path=args.aws_credentials_file,
                    container_path=AWS_CREDENTIALS_PATH,
                    read_only=True,
                )
            )
        security_opts = []
        if args.disable_mlock:
            # With mlock on, Vault gains IPC_LOCK through a file capability after
            # dropping root, which no-new-privileges would forbid.
            security_opts.append("no-new-privileges:true")
        return docker.Container(
            f"{name}-{index}",
            name=node,
            hostname=node,
            image=args.image,
            command=["server"],  # never the image default (`server -dev`)
            envs=envs,
            uploads=[
                docker.ContainerUploadArgs(
                    file="/vault/config/vault.hcl",
                    content=hcl,
                    permissions="0440",
                    owner=VAULT_UID,
                    group=VAULT_GID,
                ),
                docker.ContainerUploadArgs(
                    file=vault_hcl.CA_FILE,
                    content=tls.ca_cert_pem,
                    permissions="0444",
                ),
                docker.ContainerUploadArgs(
                    file=vault_hcl.CERT_FILE,
                    content=tls.cert_pems.apply(lambda certs: certs[index]),
                    permissions="0444",
                ),
                docker.ContainerUploadArgs(
                    file=vault_hcl.KEY_FILE,
                    content=key_pem,
                    permissions="0400",
                    owner=VAULT_UID,
                    group=VAULT_GID,
                ),
            ],
            volumes=volumes,
            networks_advanced=[
                docker.ContainerNetworksAdvancedArgs(
                    name=args.internal_network, aliases=[node, shared_alias]
                ),
                docker.ContainerNetworksAdvancedArgs(name=args.edge_network),
            ],
            ports=[
                docker.ContainerPortArgs(
                    internal=vault_hcl.API_PORT,
                    external=args.vault_port + index,
                    ip=args.publish_address,
                    protocol="tcp",
                )
            ],
            capabilities=docker.ContainerCapabilitiesArgs(
                adds=["IPC_LOCK"], drops=VAULT_DROPPED_CAPS
            ),
            security_opts=security_opts,
            ulimits=[docker.ContainerUlimitArgs(name="core", soft=0, hard=0)],
            memory=args.memory_mb,
            memory_swap=args.memory_mb,  # no swap: secrets never paged out
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=["CMD", "vault", "status"],  # exit 0 only when unsealed
                interval="10s",
                timeout="5s",
                retries=3,
                start_period="30s",
            ),
            restart="unless-stopped",
            must_run=True,
            labels=labels(docker.ContainerLabelArgs, args.environment, "vault"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[image]),
        )
