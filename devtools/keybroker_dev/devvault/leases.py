"""Lease TTLs of a mount: its own default and max, or the server's (docs/facts/vault.md §4.5).

CODE vault/dynamic_system_view.go `fetchTTLs`: a mount's default_lease_ttl and
max_lease_ttl apply when non-zero, the server's (768h unless configured, DOC
configuration/index.mdx) otherwise. CODE sdk/framework/lease.go `CalculateTTL` caps a
token's TTL by that max (or a smaller role/explicit max) and uses that default when no
TTL was asked for; the mount is the token store's (`auth/token/`) for tokens created
there and the auth method's mount for tokens from a login.
"""

from __future__ import annotations

from dataclasses import dataclass

SYSTEM_DEFAULT_LEASE_TTL = 768 * 3600.0
SYSTEM_MAX_LEASE_TTL = 768 * 3600.0


@dataclass
class LeaseConfig:
    """One mount's tuned TTLs in seconds; 0 means "the server's"."""

    default_lease_ttl: float = 0.0
    max_lease_ttl: float = 0.0

    @property
    def default_ttl(self) -> float:
        return self.default_lease_ttl or SYSTEM_DEFAULT_LEASE_TTL

    @property
    def max_ttl(self) -> float:
        return self.max_lease_ttl or SYSTEM_MAX_LEASE_TTL
