"""Where each Vault node and broker replica runs: round-robin over the stack's Docker
hosts, so that N nodes on N hosts never share one (a host failure costs one node)."""

from __future__ import annotations

from infra.config import DockerHost


def place(count: int, hosts: tuple[DockerHost, ...]) -> list[DockerHost]:
    """The host of item 0..count-1."""
    return [hosts[i % len(hosts)] for i in range(count)]
