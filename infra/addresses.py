"""How the deploying machine and URLs refer to the host's published ports."""

from __future__ import annotations


def deploy_host(publish_address: str) -> str:
    """Where the deploying machine reaches a port published on `publish_address`."""
    return "127.0.0.1" if publish_address in ("0.0.0.0", "::") else publish_address


def url_host(host: str) -> str:
    """`host` as it goes into a URL (IPv6 literals in brackets)."""
    return f"[{host}]" if ":" in host else host
