"""The broker container, built from the repository's Dockerfile.

Hardened: non-root user, read-only root filesystem, no-new-privileges, every
capability dropped, memory and CPU limits, a health check. Its Vault credentials are
an AppRole role-id (not secret, an env var) and a secret-id that only exists
response-wrapped: the single-use wrapping token is a file (a secret input) in a small
volume, and `broker.launcher` unwraps it at start and deletes it. No secret is ever a
container environment variable.

Why a seed container: the Docker provider uploads files by copying a tar to "/" of
the container before it starts (kreuzwerker/terraform-provider-docker,
resource_docker_container_funcs.go), and Docker refuses copies to "/" of a container
with a read-only root filesystem. So a never-started seed container (same image, no
network, nothing running) receives the uploads into the shared volume, and the
read-only broker mounts that volume.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_docker as docker

from infra.addresses import deploy_host, url_host
from infra.components.labels import labels

BROKER_UID = "10001"  # the user the Dockerfile creates
RUN_DIR = "/run/keybroker"
WRAPPED_SECRET_ID_FILE = f"{RUN_DIR}/secret-id.wrap"
CA_FILE = f"{RUN_DIR}/vault-ca.pem"
SECRET_CONFIG_FILE = f"{RUN_DIR}/secrets.yaml"
CONTAINER_PORT = 8080
# What goes into the image; a change to any of these rebuilds it.
SOURCE_PATHS = ("Dockerfile", ".dockerignore", "pyproject.toml", "broker", "policies", "infra")


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


@dataclass(frozen=True)
class BrokerServiceArgs:
    prefix: str
    environment: str
    context_dir: str
    vault_address: str  # on the internal network
    ca_cert_pem: pulumi.Input[str]
    role_id: pulumi.Input[str]
    wrapped_secret_id: pulumi.Output[str]  # secret
    internal_network: pulumi.Input[str]
    edge_network: pulumi.Input[str]
    publish_address: str
    port: int
    memory_mb: int
    cpus: float
    settings: Mapping[str, str] = field(default_factory=dict)  # non-secret KEYBROKER_* values
    secret_settings: pulumi.Output[str] | None = None  # YAML, secret


class BrokerService(pulumi.ComponentResource):
    url: pulumi.Output[str]
    container: docker.Container

    def __init__(
        self, name: str, args: BrokerServiceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("keybroker:infra:BrokerService", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        root = Path(args.context_dir)
        image = docker.RemoteImage(
            f"{name}-image",
            name=f"{args.prefix}-broker:local",
            build=docker.RemoteImageBuildArgs(
                context=str(root), dockerfile="Dockerfile", labels={"org.keybroker": "broker"}
            ),
            triggers={"sources": source_digest(root)},
            keep_locally=True,
            opts=child,
        )
        run = docker.Volume(
            f"{name}-run",
            name=f"{args.prefix}-broker-run",
            labels=labels(docker.VolumeLabelArgs, args.environment, "broker"),
            opts=child,
        )
        envs = {
            "KEYBROKER_VAULT_ADDR": args.vault_address,
            "KEYBROKER_VAULT_CACERT": CA_FILE,
            "KEYBROKER_VAULT_WRAPPED_SECRET_ID_FILE": WRAPPED_SECRET_ID_FILE,
            "KEYBROKER_LISTEN": f"0.0.0.0:{CONTAINER_PORT}",  # published per publish_address
            **args.settings,
        }
        uploads = [
            docker.ContainerUploadArgs(
                file=WRAPPED_SECRET_ID_FILE,
                content=pulumi.Output.secret(args.wrapped_secret_id),
                permissions="0400",
                owner=BROKER_UID,
                group=BROKER_UID,
            ),
            docker.ContainerUploadArgs(file=CA_FILE, content=args.ca_cert_pem, permissions="0444"),
        ]
        if args.secret_settings is not None:
            envs["KEYBROKER_CONFIG_FILE"] = SECRET_CONFIG_FILE
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
        seed = docker.Container(
            f"{name}-seed",
            name=f"{args.prefix}-broker-seed",
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
            labels=labels(docker.ContainerLabelArgs, args.environment, "broker-seed"),
            opts=child,
        )
        role_env = pulumi.Output.from_input(args.role_id).apply(
            lambda role_id: f"KEYBROKER_VAULT_ROLE_ID={role_id}"
        )
        self.container = docker.Container(
            name,
            name=f"{args.prefix}-broker",
            hostname=f"{args.prefix}-broker",
            image=image.image_id,  # the built image's content id: pinned by digest
            envs=[f"{k}={v}" for k, v in sorted(envs.items())] + [role_env],
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
                docker.ContainerNetworksAdvancedArgs(name=args.internal_network),
                docker.ContainerNetworksAdvancedArgs(name=args.edge_network),
            ],
            ports=[
                docker.ContainerPortArgs(
                    internal=CONTAINER_PORT,
                    external=args.port,
                    ip=args.publish_address,
                    protocol="tcp",
                )
            ],
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
                # A new seed (a rotated secret-id, a new CA) must restart the broker,
                # which reads the files once at start: tie the broker to the seed.
                docker.ContainerLabelArgs(label="keybroker.seed", value=seed.id),
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[seed]),
        )
        host = url_host(deploy_host(args.publish_address))
        self.url = pulumi.Output.from_input(f"http://{host}:{args.port}")
        self.register_outputs({"url": self.url})
