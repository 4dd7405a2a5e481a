"""Docker networks: an internal one for Vault <-> Vault and broker <-> Vault traffic,
and an edge one for published ports and egress (KMS for the seal, exchanges for the
broker). Docker does not publish ports of containers on `internal` networks, hence two.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from infra.components.labels import labels


@dataclass(frozen=True)
class NetworkArgs:
    prefix: str  # e.g. keybroker-dev
    environment: str


class Network(pulumi.ComponentResource):
    internal_name: pulumi.Output[str]
    edge_name: pulumi.Output[str]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("keybroker:infra:Network", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        internal = docker.Network(
            f"{name}-internal",
            name=f"{args.prefix}-internal",
            driver="bridge",
            internal=True,  # no route out: only the containers attached can talk here
            attachable=False,
            labels=labels(docker.NetworkLabelArgs, args.environment, "network"),
            opts=child,
        )
        edge = docker.Network(
            f"{name}-edge",
            name=f"{args.prefix}-edge",
            driver="bridge",
            internal=False,
            labels=labels(docker.NetworkLabelArgs, args.environment, "network"),
            opts=child,
        )
        self.internal_name = internal.name
        self.edge_name = edge.name
        self.register_outputs({"internal_name": internal.name, "edge_name": edge.name})
