"""Parsed Vault ACL policies: the data the parser produces and the evaluator consumes.

Follows Vault's `vault/policy.go` (docs/facts/vault.md §1.1). Owned by the ACL engine;
other modules (analysis, lint, devvault, the policy pack) only read these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Vault's capability names, in the order `sys/capabilities` reports them (§1.9).
CAPABILITIES: tuple[str, ...] = (
    "sudo",
    "read",
    "list",
    "update",
    "delete",
    "create",
    "patch",
    "subscribe",
    "recover",
)
DENY = "deny"
# Operations `ACL.allow_operation` decides (docs/contracts.md §5 `policy eval --op`).
OPERATIONS: tuple[str, ...] = (
    "read",
    "list",
    "create",
    "update",
    "patch",
    "delete",
    "recover",
    "help",
)
# What the analysis, the invariants and the lint rules ask about: every operation that
# needs a capability, plus sudo (the matched rule's root privileges).
ANALYSED_CAPABILITIES: tuple[str, ...] = (*(op for op in OPERATIONS if op != "help"), "sudo")


@dataclass(frozen=True)
class PathRule:
    """One `path "..." { ... }` stanza, as written (leading `/` stripped)."""

    path: str
    capabilities: frozenset[str]  # may hold "deny" (then nothing else matters)
    allowed_parameters: dict[str, list[Any]] | None = None  # keys lower-cased
    denied_parameters: dict[str, list[Any]] | None = None
    required_parameters: tuple[str, ...] = ()
    min_wrapping_ttl: float = 0.0  # seconds, 0 = unset
    max_wrapping_ttl: float = 0.0
    legacy_policy: str | None = None  # the old `policy = "read"` value, if used
    line: int = 0  # 1-based line of the `path` keyword
    policy: str = ""  # name of the policy that holds it
    file: str | None = None
    subscribe_event_types: tuple[str, ...] = ()
    mfa_methods: tuple[str, ...] = ()  # Enterprise; kept so ACL results can report them

    @property
    def has_segment_wildcards(self) -> bool:
        p = self.path
        return p == "+" or "/+" in p or p.startswith("+/")

    @property
    def is_prefix(self) -> bool:
        return self.path.endswith("*")

    @property
    def is_deny(self) -> bool:
        return DENY in self.capabilities

    @property
    def acl_kind(self) -> str:
        """Which of Vault's three rule tables holds this stanza (acl.go `NewACL`).

        "segment" when the path has `+` segments (a trailing `*` then stays in the key),
        "prefix" when it ends in `*` otherwise, "exact" for the rest.
        """
        if self.has_segment_wildcards:
            return "segment"
        if self.is_prefix:
            return "prefix"
        return "exact"

    @property
    def acl_key(self) -> str:
        """The key under which Vault stores this stanza: prefix rules lose their `*`."""
        if self.acl_kind == "prefix":
            return self.path[:-1]
        return self.path


@dataclass(frozen=True)
class Policy:
    name: str
    rules: tuple[PathRule, ...]
    file: str | None = None
    text: str = field(default="", repr=False)
