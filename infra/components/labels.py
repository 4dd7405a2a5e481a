"""Docker labels every keybroker resource carries.

The policy pack keys on them: `keybroker.role` tells a Vault node from the broker and
`keybroker.environment` tells dev (loopback-only ports) from prod.
"""

from __future__ import annotations

from typing import TypeVar

import pulumi_docker as docker

ROLE_LABEL = "keybroker.role"
HOST_LABEL = "keybroker.host"  # the Docker host (config dockerHosts) a container runs on
ENVIRONMENT_LABEL = "keybroker.environment"

LabelArgs = TypeVar(
    "LabelArgs", docker.ContainerLabelArgs, docker.NetworkLabelArgs, docker.VolumeLabelArgs
)


def labels(kind: type[LabelArgs], environment: str, role: str) -> list[LabelArgs]:
    return [
        kind(label=ROLE_LABEL, value=role),
        kind(label=ENVIRONMENT_LABEL, value=environment),
    ]
