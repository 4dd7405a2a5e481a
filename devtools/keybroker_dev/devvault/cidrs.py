"""Bound CIDR lists (token_bound_cidrs, secret_id_bound_cidrs, cidr_list)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from keybroker_dev.devvault.errors import bad_request

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_cidrs(value: object, field: str) -> tuple[Network, ...]:
    """A list or a comma-separated string of IPs/CIDRs; a bare IP is a /32 (or /128)."""
    if value is None or value == "":
        return ()
    items: Iterable[object] = value.split(",") if isinstance(value, str) else value  # type: ignore[assignment]
    if not isinstance(items, list | tuple) and not isinstance(value, str):
        raise bad_request(f"invalid value for {field!r}")
    out: list[Network] = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise bad_request(f"invalid CIDR {text!r} in {field!r}") from exc
    return tuple(out)


def addr_allowed(remote_addr: str, cidrs: tuple[Network, ...]) -> bool:
    """No CIDRs: any address. Otherwise the client's address must fall in one of them."""
    if not cidrs:
        return True
    try:
        ip = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    return any(ip.version == net.version and ip in net for net in cidrs)


def cidr_strings(cidrs: tuple[Network, ...]) -> list[str]:
    return [str(c) for c in cidrs]
