"""One Docker engine of the stack: its pulumi-docker provider and its two networks.

Every Docker resource is created through the provider of the host it lives on (config
`dockerHosts`); the single default host uses the ambient provider (DOCKER_HOST or the
local socket), which keeps a one-host stack's resource names as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_docker as docker

from infra.components.network import Network, NetworkArgs
from infra.config import DockerHost


@dataclass(frozen=True)
class HostResources:
    host: DockerHost
    provider: docker.Provider | None
    internal_network: pulumi.Output[str]
    edge_network: pulumi.Output[str]
    single: bool  # the stack has this host only

    def opts(self, parent: pulumi.Resource | None = None, **extra: Any) -> pulumi.ResourceOptions:
        """Options placing a resource on this host."""
        return pulumi.ResourceOptions(parent=parent, provider=self.provider, **extra)

    def suffix(self) -> str:
        """Resource-name suffix: none on a single-host stack."""
        return "" if self.single else f"-{self.host.name}"


def host_resources(
    hosts: tuple[DockerHost, ...], prefix: str, environment: str
) -> list[HostResources]:
    single = len(hosts) == 1 and hosts[0].docker_host is None
    out = []
    for host in hosts:
        provider = (
            None
            if single
            else docker.Provider(f"docker-{host.name}", host=host.docker_host or None)
        )
        suffix = "" if single else f"-{host.name}"
        network = Network(
            f"network{suffix}",
            NetworkArgs(prefix=prefix, environment=environment),
            opts=pulumi.ResourceOptions(providers=[provider] if provider else None),
        )
        out.append(HostResources(host, provider, network.internal_name, network.edge_name, single))
    return out
