"""Vault on Docker: 1 node, or 3 nodes forming a Raft HA cluster, on one or more hosts.

Per node: a data volume (Raft), a log volume (file audit device), and a container that
runs `vault server` explicitly (the official image's default command is dev mode,
docs/facts/pulumi.md §7) with the HCL from infra/vault_hcl.py and the node's TLS
material uploaded (the key as a secret input). The image is pinned by the digest the
registry gives for the configured tag (infra/images.py).

Nodes are spread round-robin over the stack's Docker hosts (infra/placement.py). On
several hosts, each node publishes its API and cluster ports on its host's address and
advertises them; the cluster port carries Raft over Vault's mutual TLS.

AWS credentials for the seal: with `awsCredentialsFile`, the file's content (a secret
input) is uploaded as /vault/aws/credentials owned by Vault's user, mode 0400. A bind
mount would keep the host file's owner and mode, which Vault's uid 100 cannot read.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from infra import vault_hcl
from infra.addresses import deploy_host, url_host
from infra.components.hosts import HostResources
from infra.components.labels import HOST_LABEL, labels
from infra.config import DockerHost
from infra.images import pinned_image
from infra.placement import place
from infra.providers.tls import TlsBundle

VAULT_UID = "100"  # the `vault` user of the official image
VAULT_GID = "1000"
AWS_CREDENTIALS_PATH = "/vault/aws/credentials"
# Capabilities the official entrypoint never needs (it chowns, setcaps, su-execs).
VAULT_DROPPED_CAPS = ["NET_RAW", "MKNOD", "AUDIT_WRITE", "SYS_CHROOT", "NET_BIND_SERVICE"]
# Across hosts, node i publishes its cluster port here (API: vault_port + i).
CLUSTER_PORT_OFFSET = 100


@dataclass(frozen=True)
class VaultClusterArgs:
    prefix: str
    environment: str
    nodes: int
    image: str  # repo:tag (resolved to its digest) or repo@sha256:...
    disable_mlock: bool
    memory_mb: int
    tls_validity_days: int
    telemetry_retention_s: int
    vault_port: int
    hosts: list[HostResources]
    kms_key_arn: pulumi.Input[str]
    aws_region: str
    aws_endpoint_url: str | None = None  # as seen from inside the containers
    aws_credentials: pulumi.Output[str] | None = None  # shared-credentials file, secret
    seal_disabled: bool = False


class VaultCluster(pulumi.ComponentResource):
    address: pulumi.Output[str]  # published, for operators and the dynamic providers
    internal_address: str  # what the broker uses on the internal network
    ca_cert_pem: pulumi.Output[str]
    containers: list[docker.Container]
    placement: list[DockerHost]  # the host of node 0, 1, ...
    image_ref: pulumi.Output[str]  # repo:tag@sha256:<digest>, what runs

    def __init__(
        self, name: str, args: VaultClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("keybroker:infra:VaultCluster", name, None, opts)
        shared_alias = f"{args.prefix}-vault"
        self.placement = place(args.nodes, tuple(h.host for h in args.hosts))
        by_name = {h.host.name: h for h in args.hosts}
        spread = len(args.hosts) > 1
        addresses = tuple(
            vault_hcl.published_address(
                args.prefix,
                i,
                host.address,
                args.vault_port + i,
                args.vault_port + CLUSTER_PORT_OFFSET + i,
            )
            if spread
            else vault_hcl.internal_address(args.prefix, i)
            for i, host in enumerate(self.placement)
        )
        # Ports are published on each host's address (publishAddress on the default host).
        host = deploy_host(self.placement[0].address)
        names = [
            [
                vault_hcl.node_host(args.prefix, i),
                shared_alias,
                "localhost",
                "127.0.0.1",
                deploy_host(placed.address),
            ]
            for i, placed in enumerate(self.placement)
        ]
        tls = TlsBundle(
            f"{name}-tls",
            ca_name=f"{args.prefix} Vault CA",
            nodes=[list(dict.fromkeys(n)) for n in names],
            validity_days=args.tls_validity_days,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.image_ref = pinned_image(args.image, args.hosts[0].provider)
        images = {  # one pull per host that runs a node
            res.host.name: docker.RemoteImage(
                f"{name}-image{res.suffix()}",
                name=self.image_ref,
                keep_locally=True,
                opts=res.opts(self),
            )
            for res in args.hosts
            if res.host in self.placement
        }
        self.containers = [
            self._node(name, args, i, tls, addresses, images[p.name], by_name[p.name], spread)
            for i, p in enumerate(self.placement)
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
        addresses: tuple[vault_hcl.NodeAddress, ...],
        image: docker.RemoteImage,
        res: HostResources,
        spread: bool,
    ) -> docker.Container:
        node = vault_hcl.node_host(args.prefix, index)
        shared_alias = f"{args.prefix}-vault"
        child = res.opts(self)
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
                    addresses=addresses,
                    host_prefix=args.prefix,
                    disable_mlock=args.disable_mlock,
                    kms_key_id=arn,
                    aws_region=args.aws_region,
                    aws_endpoint_url=args.aws_endpoint_url,
                    telemetry_retention_s=args.telemetry_retention_s,
                    seal_disabled=args.seal_disabled,
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
        credential_uploads = []
        if args.aws_credentials is not None:
            envs.append(f"AWS_SHARED_CREDENTIALS_FILE={AWS_CREDENTIALS_PATH}")
            credential_uploads.append(
                docker.ContainerUploadArgs(
                    file=AWS_CREDENTIALS_PATH,
                    content=pulumi.Output.secret(args.aws_credentials),
                    permissions="0400",
                    owner=VAULT_UID,
                    group=VAULT_GID,
                )
            )
        publish_ip = res.host.address
        ports = [
            docker.ContainerPortArgs(
                internal=vault_hcl.API_PORT,
                external=args.vault_port + index,
                ip=publish_ip,
                protocol="tcp",
            )
        ]
        if spread:
            ports.append(
                docker.ContainerPortArgs(
                    internal=vault_hcl.CLUSTER_PORT,
                    external=args.vault_port + CLUSTER_PORT_OFFSET + index,
                    ip=publish_ip,
                    protocol="tcp",
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
            image=self.image_ref,
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
                *credential_uploads,
            ],
            volumes=volumes,
            networks_advanced=[
                docker.ContainerNetworksAdvancedArgs(
                    name=res.internal_network, aliases=[node, shared_alias]
                ),
                docker.ContainerNetworksAdvancedArgs(name=res.edge_network),
            ],
            ports=ports,
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
            labels=[
                *labels(docker.ContainerLabelArgs, args.environment, "vault"),
                docker.ContainerLabelArgs(label=HOST_LABEL, value=res.host.name),
            ],
            opts=res.opts(self, depends_on=[image]),
        )
