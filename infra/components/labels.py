"""Docker labels every keybroker resource carries.

The policy pack keys on them: `keybroker.role` tells a Vault node from the broker,
`keybroker.environment` tells dev (loopback-only ports) from prod, and `keybroker.host`
(set on containers) names the Docker host, for the spread rule.
"""

from __future__ import annotations

from typing import TypeVar

import pulumi_docker as docker

# One home for the label names: the policy pack that reads them.
from policies.pack.props import ENVIRONMENT_LABEL, HOST_LABEL, ROLE_LABEL

__all__ = ["ENVIRONMENT_LABEL", "HOST_LABEL", "ROLE_LABEL", "labels"]

LabelArgs = TypeVar(
    "LabelArgs", docker.ContainerLabelArgs, docker.NetworkLabelArgs, docker.VolumeLabelArgs
)


def labels(kind: type[LabelArgs], environment: str, role: str) -> list[LabelArgs]:
    return [
        kind(label=ROLE_LABEL, value=role),
        kind(label=ENVIRONMENT_LABEL, value=environment),
    ]
