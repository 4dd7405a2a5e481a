"""Vault server configuration (HCL) for one node of the cluster.

Follows docs/facts/vault.md §6 (DOC configuration/*.mdx): integrated Raft storage with a
`retry_join` stanza per peer, a TLS listener, `disable_mlock` always written out (Vault
1.20+ refuses to start with Raft when it is left implicit), an `awskms` seal, and a
`telemetry` stanza for Prometheus (docs/deploy.md "Deploy facts"). No credential ever
goes into this file: the seal reads AWS credentials from the standard chain (instance
role, or the shared-credentials file the stack uploads for Vault's user).

Addresses: on one Docker host, nodes find each other by their container names on the
internal network; across hosts, each node advertises the host address and ports it
publishes (`NodeAddress`), and Raft runs over the cluster port, which Vault always
protects with mutual TLS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from broker.layout import AuditDevice

TLS_DIR = "/vault/config/tls"
CA_FILE = f"{TLS_DIR}/ca.pem"
CERT_FILE = f"{TLS_DIR}/tls.crt"
KEY_FILE = f"{TLS_DIR}/tls.key"
DATA_DIR = "/vault/file"
LOG_DIR = "/vault/logs"
API_PORT = 8200
CLUSTER_PORT = 8201


def node_host(stack_prefix: str, index: int) -> str:
    """DNS name of node `index` on the internal network (its container alias)."""
    return f"{stack_prefix}-vault-{index}"


@dataclass(frozen=True)
class NodeAddress:
    """How the other nodes reach one node: API and cluster URLs, and the TLS name."""

    api_addr: str
    cluster_addr: str
    tls_name: str


def internal_address(stack_prefix: str, index: int) -> NodeAddress:
    """A node on the same Docker host, by its container name on the internal network."""
    host = node_host(stack_prefix, index)
    return NodeAddress(f"https://{host}:{API_PORT}", f"https://{host}:{CLUSTER_PORT}", host)


def published_address(
    stack_prefix: str, index: int, host_address: str, api_port: int, cluster_port: int
) -> NodeAddress:
    """A node on another Docker host, through the ports its host publishes."""
    host = f"[{host_address}]" if ":" in host_address else host_address
    return NodeAddress(
        f"https://{host}:{api_port}",
        f"https://{host}:{cluster_port}",
        node_host(stack_prefix, index),
    )


@dataclass(frozen=True)
class ServerConfig:
    node_index: int
    addresses: tuple[NodeAddress, ...]  # every node's, in node order
    host_prefix: str
    disable_mlock: bool
    kms_key_id: str
    aws_region: str
    aws_endpoint_url: str | None = None  # as seen from inside the container
    telemetry_retention_s: int = 24 * 3600
    # Seal migration to Shamir (docs/deploy.md "Rotate"): the seal stanza gets
    # disabled = "true" so that `vault operator unseal -migrate` can move off the key.
    seal_disabled: bool = False
    tls_min_version: str = "tls12"


def _q(value: str) -> str:
    # JSON string quoting is valid HCL string quoting for the characters we emit.
    return json.dumps(value)


def render(config: ServerConfig) -> str:
    """The HCL text of /vault/config/vault.hcl for one node."""
    me = node_host(config.host_prefix, config.node_index)
    mine = config.addresses[config.node_index]
    lines = [
        "# Rendered by infra/vault_hcl.py; do not edit in the container.",
        "ui = false",
        f"disable_mlock = {str(config.disable_mlock).lower()}",
        f"api_addr = {_q(mine.api_addr)}",
        f"cluster_addr = {_q(mine.cluster_addr)}",
        "",
        'storage "raft" {',
        f"  path = {_q(DATA_DIR)}",
        f"  node_id = {_q(me)}",
    ]
    for peer, address in enumerate(config.addresses):
        if peer == config.node_index:
            continue
        lines += [
            "  retry_join {",
            f"    leader_api_addr = {_q(address.api_addr)}",
            f"    leader_ca_cert_file = {_q(CA_FILE)}",
            f"    leader_tls_servername = {_q(address.tls_name)}",
            "  }",
        ]
    lines += [
        "}",
        "",
        'listener "tcp" {',
        f"  address = {_q(f'0.0.0.0:{API_PORT}')}",
        f"  cluster_address = {_q(f'0.0.0.0:{CLUSTER_PORT}')}",
        f"  tls_cert_file = {_q(CERT_FILE)}",
        f"  tls_key_file = {_q(KEY_FILE)}",
        f"  tls_min_version = {_q(config.tls_min_version)}",
        "}",
        "",
        'seal "awskms" {',
        f"  region = {_q(config.aws_region)}",
        f"  kms_key_id = {_q(config.kms_key_id)}",
    ]
    if config.aws_endpoint_url:
        lines.append(f"  endpoint = {_q(config.aws_endpoint_url)}")
    if config.seal_disabled:
        lines.append('  disabled = "true"')
    lines += [
        "}",
        "",
        # Prometheus metrics at /v1/sys/metrics (authenticated); the retention must
        # outlast the scrape interval, and 0 would switch Prometheus metrics off.
        "telemetry {",
        f"  prometheus_retention_time = {_q(f'{config.telemetry_retention_s}s')}",
        "  disable_hostname = true",
        "}",
        "",
    ]
    return "\n".join(lines)


def audit_devices() -> tuple[AuditDevice, ...]:
    """Two independent sinks: a file on the node's log volume, and the container's stdout."""
    return (
        AuditDevice(path="file", type="file", options={"file_path": f"{LOG_DIR}/audit.log"}),
        AuditDevice(path="stdout", type="file", options={"file_path": "stdout"}),
    )
