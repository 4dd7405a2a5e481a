"""Vault server configuration (HCL) for one node of the cluster.

Follows docs/facts/vault.md §6 (DOC configuration/*.mdx): integrated Raft storage with a
`retry_join` stanza per peer, a TLS listener, `disable_mlock` always written out (Vault
1.20+ refuses to start with Raft when it is left implicit), and an `awskms` seal. No
credential ever goes into this file: the seal reads AWS credentials from the standard
chain (instance role or a mounted shared-credentials file).
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
class ServerConfig:
    node_index: int
    nodes: int
    host_prefix: str
    disable_mlock: bool
    kms_key_id: str
    aws_region: str
    aws_endpoint_url: str | None = None
    tls_min_version: str = "tls12"


def _q(value: str) -> str:
    # JSON string quoting is valid HCL string quoting for the characters we emit.
    return json.dumps(value)


def render(config: ServerConfig) -> str:
    """The HCL text of /vault/config/vault.hcl for one node."""
    me = node_host(config.host_prefix, config.node_index)
    lines = [
        "# Rendered by infra/vault_hcl.py; do not edit in the container.",
        "ui = false",
        f"disable_mlock = {str(config.disable_mlock).lower()}",
        f"api_addr = {_q(f'https://{me}:{API_PORT}')}",
        f"cluster_addr = {_q(f'https://{me}:{CLUSTER_PORT}')}",
        "",
        'storage "raft" {',
        f"  path = {_q(DATA_DIR)}",
        f"  node_id = {_q(me)}",
    ]
    for peer in range(config.nodes):
        if peer == config.node_index:
            continue
        host = node_host(config.host_prefix, peer)
        lines += [
            "  retry_join {",
            f"    leader_api_addr = {_q(f'https://{host}:{API_PORT}')}",
            f"    leader_ca_cert_file = {_q(CA_FILE)}",
            f"    leader_tls_servername = {_q(host)}",
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
    lines += ["}", ""]
    return "\n".join(lines)


def audit_devices() -> tuple[AuditDevice, ...]:
    """Two independent sinks: a file on the node's log volume, and the container's stdout."""
    return (
        AuditDevice(path="file", type="file", options={"file_path": f"{LOG_DIR}/audit.log"}),
        AuditDevice(path="stdout", type="file", options={"file_path": "stdout"}),
    )
