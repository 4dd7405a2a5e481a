"""The broker: N replicas built from the repository's Dockerfile, spread over the hosts,
behind a load balancer when N > 1.

Each replica is hardened: non-root user, read-only root filesystem, no-new-privileges,
every capability dropped, memory and CPU limits, a health check. Replicas share nothing
but Vault: each has its own volume and its own Vault credential (a periodic token,
infra/providers/broker_token.py), delivered response-wrapped as a file (a secret input)
and unwrapped at start by `broker.launcher`. No secret is ever a container environment
variable.

Why a seed container: the Docker provider uploads files by copying a tar to "/" of
the container before it starts (kreuzwerker/terraform-provider-docker,
resource_docker_container_funcs.go), and Docker refuses copies to "/" of a container
with a read-only root filesystem. So a never-started seed container (same image, no
network, nothing running) receives the uploads into the replica's volume, and the
read-only broker mounts that volume.

Replacement: a wrapping token works once. Each replica's credential takes a digest of
the replica's definition (`delivery`), so anything that replaces the container (a new
image, a setting, a new CA) also issues a new credential through a new seed.

Load balancer: with two or more replicas, an HAProxy container (image by tag, resolved
to its digest like Vault's) on the first host publishes the broker port and sends
requests to the replicas that answer GET /readyz with 200 (readiness includes Vault).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_docker as docker

from infra.addresses import deploy_host, url_host
from infra.components.hosts import HostResources
from infra.components.labels import HOST_LABEL, labels
from infra.images import pinned_image
from infra.placement import place

BROKER_UID = "10001"  # the user the Dockerfile creates
RUN_DIR = "/run/keybroker"
WRAPPED_CREDENTIAL_FILE = f"{RUN_DIR}/credential.wrap"
TOKEN_SINK_FILE = f"{RUN_DIR}/token"
CA_FILE = f"{RUN_DIR}/vault-ca.pem"
SECRET_CONFIG_FILE = f"{RUN_DIR}/secrets.yaml"
CONTAINER_PORT = 8080
HAPROXY_CONFIG = "/usr/local/etc/haproxy/haproxy.cfg"
# What goes into the image (Dockerfile COPY lines); a change to any of these rebuilds it.
SOURCE_PATHS = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "broker", "policies")

# (replica name, delivery digest) -> the wrapped credential (a secret Output).
IssueCredential = Callable[[str, pulumi.Output[str]], pulumi.Output[str]]


def source_digest(root: Path) -> str:
    """sha256 over the image's sources, so that `pulumi up` rebuilds on any change."""
    digest = hashlib.sha256()
    for entry in SOURCE_PATHS:
        path = root / entry
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in files:
            if file.is_file() and "__pycache__" not in file.parts:
                digest.update(str(file.relative_to(root)).encode())
                digest.update(file.read_bytes())
    return digest.hexdigest()


def haproxy_config(backends: list[tuple[str, str]]) -> str:
    """HAProxy config: HTTP on CONTAINER_PORT, round robin over ready replicas."""
    lines = [
        "global",
        "  maxconn 4096",
        "defaults",
        "  mode http",
        "  timeout connect 5s",
        "  timeout client 30s",
        "  timeout server 30s",
        # Replicas resolved at start when they exist, later when they appear.
        "  default-server init-addr last,libc,none check inter 5s fall 2 rise 2",
        "frontend broker",
        f"  bind :{CONTAINER_PORT}",
        "  default_backend replicas",
        "backend replicas",
        "  balance roundrobin",
        "  option httpchk GET /readyz",
        "  http-check expect status 200",
    ]
    lines += [f"  server {name} {address}" for name, address in backends]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class BrokerServiceArgs:
    prefix: str
    environment: str
    context_dir: str
    hosts: list[HostResources]
    replicas: int
    vault_hosts: frozenset[str]  # hosts running a Vault node (reached on their network)
    vault_internal_address: str
    vault_published_address: pulumi.Input[str]  # for replicas on hosts without a node
    ca_cert_pem: pulumi.Input[str]
    issue_credential: IssueCredential
    port: int
    memory_mb: int
    cpus: float
    base_image: str | None = None
    load_balancer: bool = True  # False: the platform's balancer in front of the replicas
    load_balancer_image: str = "haproxy:3.0"
    settings: Mapping[str, str] = field(default_factory=dict)  # non-secret KEYBROKER_* values
    secret_settings: pulumi.Output[str] | None = None  # YAML, secret


class BrokerService(pulumi.ComponentResource):
    url: pulumi.Output[str]
    containers: list[docker.Container]

    def __init__(
        self, name: str, args: BrokerServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("keybroker:infra:BrokerService", name, None, opts)
        root = Path(args.context_dir)
        triggers = {"sources": source_digest(root)}
        placement = place(args.replicas, tuple(h.host for h in args.hosts))
        by_name = {h.host.name: h for h in args.hosts}
        images = {
            res.host.name: docker.RemoteImage(
                f"{name}-image{res.suffix()}",
                name=f"{args.prefix}-broker:local",
                build=docker.RemoteImageBuildArgs(
                    context=str(root),
                    dockerfile="Dockerfile",
                    labels={"org.keybroker": "broker"},
                    build_args={"BASE_IMAGE": args.base_image} if args.base_image else None,
                ),
                triggers=triggers,
                keep_locally=True,
                opts=res.opts(self),
            )
            for res in args.hosts
            if res.host in placement
        }
        lb_host = args.hosts[0]
        balanced = args.replicas > 1 and args.load_balancer
        self.containers = []
        backends: list[tuple[str, str]] = []
        for r, host in enumerate(placement):
            res = by_name[host.name]
            replica = f"{args.prefix}-broker-{r}"
            published: int | None = args.port + r  # alone, or for the platform's balancer
            if balanced and res is not lb_host:
                published = args.port + 1 + r  # our balancer reaches it across hosts
                backends.append((replica, f"{host.address}:{published}"))
            elif balanced:
                published = None  # our balancer reaches it on the host's edge network
                backends.append((replica, f"{replica}:{CONTAINER_PORT}"))
            self.containers.append(
                self._replica(f"{name}-{r}", replica, args, res, images[host.name], published)
            )
        if balanced:
            self._load_balancer(name, args, lb_host, backends)
        entry = url_host(deploy_host(lb_host.host.address))
        self.url = pulumi.Output.from_input(f"http://{entry}:{args.port}")
        self.register_outputs({"url": self.url})

    def _replica(
        self,
        name: str,
        replica: str,
        args: BrokerServiceArgs,
        res: HostResources,
        image: docker.RemoteImage,
        published: int | None,
    ) -> docker.Container:
        child = res.opts(self)
        run = docker.Volume(
            f"{name}-run",
            name=f"{replica}-run",
            labels=labels(docker.VolumeLabelArgs, args.environment, "broker"),
            opts=child,
        )
        vault_address: pulumi.Input[str] = (
            args.vault_internal_address
            if res.host.name in args.vault_hosts
            else args.vault_published_address
        )
        envs: dict[str, pulumi.Input[str]] = {
            "KEYBROKER_VAULT_ADDR": vault_address,
            "KEYBROKER_VAULT_CACERT": CA_FILE,
            "KEYBROKER_VAULT_WRAPPED_CREDENTIAL_FILE": WRAPPED_CREDENTIAL_FILE,
            "KEYBROKER_VAULT_TOKEN_SINK_FILE": TOKEN_SINK_FILE,
            "KEYBROKER_LISTEN": f"0.0.0.0:{CONTAINER_PORT}",  # published on the host's address
            **args.settings,
        }
        if args.secret_settings is not None:
            envs["KEYBROKER_CONFIG_FILE"] = SECRET_CONFIG_FILE
        env_list = pulumi.Output.all(*[pulumi.Output.concat(k, "=", v) for k, v in envs.items()])
        env_sorted: pulumi.Output[list[str]] = env_list.apply(sorted)
        ports = []
        if published is not None:
            ip = res.host.address  # publishAddress on the default host
            ports.append(
                docker.ContainerPortArgs(
                    internal=CONTAINER_PORT, external=published, ip=ip, protocol="tcp"
                )
            )
        limits = {"memory": args.memory_mb, "cpus": args.cpus, "ports": published}
        # Everything that replaces the container, so that it comes with a new credential.
        delivery = pulumi.Output.all(image.image_id, env_sorted, args.ca_cert_pem).apply(
            lambda parts: hashlib.sha256(
                json.dumps([*parts, limits], sort_keys=True).encode()
            ).hexdigest()
        )
        wrapped = args.issue_credential(replica, delivery)
        uploads = [
            docker.ContainerUploadArgs(
                file=WRAPPED_CREDENTIAL_FILE,
                content=pulumi.Output.secret(wrapped),
                permissions="0400",
                owner=BROKER_UID,
                group=BROKER_UID,
            ),
            docker.ContainerUploadArgs(file=CA_FILE, content=args.ca_cert_pem, permissions="0444"),
        ]
        if args.secret_settings is not None:
            uploads.append(
                docker.ContainerUploadArgs(
                    file=SECRET_CONFIG_FILE,
                    content=pulumi.Output.secret(args.secret_settings),
                    permissions="0400",
                    owner=BROKER_UID,
                    group=BROKER_UID,
                )
            )
        run_volume = [docker.ContainerVolumeArgs(volume_name=run.name, container_path=RUN_DIR)]
        host_label = docker.ContainerLabelArgs(label=HOST_LABEL, value=res.host.name)
        seed = docker.Container(
            f"{name}-seed",
            name=f"{replica}-seed",
            image=image.image_id,
            command=["true"],
            start=False,  # only a carrier for the uploads; never runs
            must_run=False,
            user=f"{BROKER_UID}:{BROKER_UID}",
            network_mode="none",
            security_opts=["no-new-privileges:true"],
            capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
            uploads=uploads,
            volumes=run_volume,
            labels=[
                *labels(docker.ContainerLabelArgs, args.environment, "broker-seed"),
                host_label,
            ],
            opts=child,
        )
        return docker.Container(
            name,
            name=replica,
            hostname=replica,
            image=image.image_id,  # the built image's content id: pinned by digest
            envs=env_sorted,
            user=f"{BROKER_UID}:{BROKER_UID}",
            read_only=True,
            security_opts=["no-new-privileges:true"],
            capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
            memory=args.memory_mb,
            memory_swap=args.memory_mb,
            cpus=f"{args.cpus:g}",
            tmpfs={"/tmp": "rw,noexec,nosuid,nodev,size=16m"},  # noqa: S108 (container path)
            volumes=run_volume,
            networks_advanced=[
                docker.ContainerNetworksAdvancedArgs(name=res.internal_network),
                docker.ContainerNetworksAdvancedArgs(name=res.edge_network),
            ],
            ports=ports,
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=[
                    "CMD",
                    "python",
                    "-c",
                    "import urllib.request; urllib.request.urlopen("
                    f"'http://127.0.0.1:{CONTAINER_PORT}/healthz', timeout=3)",
                ],
                interval="15s",
                timeout="5s",
                retries=3,
                start_period="20s",
            ),
            restart="on-failure",
            max_retry_count=3,
            must_run=True,
            labels=[
                *labels(docker.ContainerLabelArgs, args.environment, "broker"),
                host_label,
                # A new seed (a new credential, a new CA) must restart the broker,
                # which reads the files once at start: tie the broker to the seed.
                docker.ContainerLabelArgs(label="keybroker.seed", value=seed.id),
            ],
            opts=res.opts(self, depends_on=[seed]),
        )

    def _load_balancer(
        self,
        name: str,
        args: BrokerServiceArgs,
        res: HostResources,
        backends: list[tuple[str, str]],
    ) -> docker.Container:
        image_ref = pinned_image(args.load_balancer_image, res.provider)
        image = docker.RemoteImage(
            f"{name}-lb-image", name=image_ref, keep_locally=True, opts=res.opts(self)
        )
        return docker.Container(
            f"{name}-lb",
            name=f"{args.prefix}-broker-lb",
            hostname=f"{args.prefix}-broker-lb",
            image=image_ref,
            uploads=[
                docker.ContainerUploadArgs(
                    file=HAPROXY_CONFIG, content=haproxy_config(backends), permissions="0444"
                )
            ],
            security_opts=["no-new-privileges:true"],
            capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
            memory=128,
            memory_swap=128,
            networks_advanced=[docker.ContainerNetworksAdvancedArgs(name=res.edge_network)],
            ports=[
                docker.ContainerPortArgs(
                    internal=CONTAINER_PORT,
                    external=args.port,
                    ip=res.host.address,
                    protocol="tcp",
                )
            ],
            restart="unless-stopped",
            must_run=True,
            labels=[
                *labels(docker.ContainerLabelArgs, args.environment, "broker-lb"),
                docker.ContainerLabelArgs(label=HOST_LABEL, value=res.host.name),
            ],
            opts=res.opts(self, depends_on=[image]),
        )
