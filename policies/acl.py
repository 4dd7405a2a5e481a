"""Vault's ACL evaluator, reproduced exactly (`vault/acl.go`, docs/facts/vault.md §1.2-1.9).

`ACL(policies)` compiles parsed policies like Vault's `NewACL`: three rule tables
(exact paths, `*` prefixes, `+` segment patterns) whose entries merge every stanza with
the same key, within one policy and across policies. `allow_operation` then decides a
request like `ACL.AllowOperation`: ONE rule applies (exact match first, then the
highest-priority glob/segment candidate; capabilities are never unioned across
different patterns), followed by the capability, wrapping-TTL and parameter checks.

Transport-free: paths are logical paths after Vault's HTTP layer (a LIST request
already carries its trailing `/`), operations are Vault's logical operations.

Public API (other parts depend on it):
- `ACL(policies)`, `ACL.from_texts(texts)`; `acl.allow_operation(...) -> ACLResult`;
  `acl.capabilities(path)`; `acl.select(path, operation) -> MergedRule | None`.
- Introspection for exact analysis: `acl.exact`, `acl.prefix`, `acl.segment`
  (key -> MergedRule; treat them as read-only), `acl.is_root`, `acl.longest_prefix`,
  `acl.non_exact_candidates(path)` with `candidate_priority` (the applied rule is their
  maximum), `MergedRule.matches(path)`, and `acl.check_bare_mount(mount_path)`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from policies.model import CAPABILITIES, DENY, PathRule, Policy
from policies.params import value_in_allowed_list, value_in_denied_list

__all__ = [
    "ACL",
    "ACLError",
    "ACLResult",
    "MergedRule",
    "Priority",
    "candidate_priority",
]

ROOT_POLICY = "root"
# Logical operation -> the capability it needs (acl.go `AllowOperation` switch).
_OP_CAPABILITY: dict[str, str] = {
    "read": "read",
    "list": "list",
    "update": "update",
    "delete": "delete",
    "create": "create",
    "patch": "patch",
    "recover": "recover",
    "revoke": "update",
    "renew": "update",
    "rollback": "update",
}
# Operations whose request data is checked against parameter constraints.
_PARAM_CHECKED_OPS = frozenset({"read", "update", "create", "patch", "recover"})

# Priority among non-exact candidates: a larger tuple wins (acl.go `less`).
#   (first `+`/`*` position, not a prefix, -number of `+` segments, len(wcPath), wcPath)
Priority = tuple[int, int, int, int, str]


class ACLError(ValueError):
    """A set of policies Vault's `NewACL` refuses (root combined with others)."""


@dataclass
class MergedRule:
    """All stanzas that share one key in one of Vault's rule tables, merged (§1.5).

    `key` is the table key: the path for exact rules, the path without its trailing `*`
    for prefix rules, the full path (with any trailing `*`) for segment rules.
    `capabilities` holds "deny" alone when any merged stanza denied. `sources` lists
    the contributing stanzas in policy order (for file:line attribution), including
    stanzas that a deny made irrelevant. `granting` maps each capability to the names
    of the policies that granted it, in order (Vault's GrantingPoliciesMap).
    """

    key: str
    kind: str  # "exact" | "prefix" | "segment"
    capabilities: frozenset[str]
    allowed_parameters: dict[str, list[Any]] | None = None
    denied_parameters: dict[str, list[Any]] | None = None
    required_parameters: tuple[str, ...] = ()
    min_wrapping_ttl: float = 0.0
    max_wrapping_ttl: float = 0.0
    sources: tuple[PathRule, ...] = ()
    granting: dict[str, tuple[str, ...]] = field(default_factory=dict)
    mfa_methods: tuple[str, ...] = ()
    subscribe_event_types: tuple[str, ...] = ()
    # Segment-rule matching data, precomputed once.
    is_prefix: bool = False
    wc_path: str = ""
    parts: tuple[str, ...] = ()
    wildcards: int = 0
    first_wildcard: int = 0

    @property
    def is_deny(self) -> bool:
        return DENY in self.capabilities

    @property
    def root_privs(self) -> bool:
        """Vault's RootPrivs for a request this rule decides: it holds `sudo`."""
        return "sudo" in self.capabilities

    def matches(self, path: str) -> bool:
        """Whether this rule, looked up as Vault looks up its table, covers `path`."""
        if self.kind == "exact":
            return path == self.key
        if self.kind == "prefix":
            return path.startswith(self.key)
        return _segment_match(self, path.split("/"))

    def priority(self) -> Priority:
        """`candidate_priority(self)`; meaningless for exact rules (they always win)."""
        return candidate_priority(self)


def candidate_priority(rule: MergedRule) -> Priority:
    """The sort key Vault uses between matching prefix/segment candidates: the
    candidate with the LARGEST key is the one applied (acl.go `less`, §1.4):
    later first `+`/`*`; then no trailing `*`; then fewer `+` segments; then the longer
    pattern; then the lexicographically larger pattern."""
    if rule.kind == "prefix":
        n = len(rule.key)
        return (n, 0, 0, n, rule.key)
    return (
        rule.first_wildcard,
        0 if rule.is_prefix else 1,
        -rule.wildcards,
        len(rule.wc_path),
        rule.wc_path,
    )


def _segment_match(rule: MergedRule, path_parts: Sequence[str]) -> bool:
    parts = rule.parts
    n = len(parts)
    if len(path_parts) < n or (not rule.is_prefix and len(path_parts) != n):
        return False
    last = n - 1
    for i, part in enumerate(parts):
        if part == "+" or part == path_parts[i]:
            continue
        if rule.is_prefix and i == last and path_parts[i].startswith(part):
            continue
        return False
    return True


class _SegmentNode:
    __slots__ = ("ends", "globs", "literal", "plus")

    def __init__(self) -> None:
        self.literal: dict[str, _SegmentNode] = {}
        self.plus: _SegmentNode | None = None
        self.ends: list[MergedRule] = []  # rules without trailing `*` ending here
        self.globs: list[tuple[str, MergedRule]] = []  # (last part, rule) for `...*` rules


class _SegmentTrie:
    """Segment rules indexed by their segments, so a lookup visits only rules whose
    leading segments fit the path (same answers as testing each rule in turn)."""

    def __init__(self, rules: Iterable[MergedRule]) -> None:
        self.root = _SegmentNode()
        for rule in rules:
            node = self.root
            walk = rule.parts[:-1] if rule.is_prefix else rule.parts
            for part in walk:
                if part == "+":
                    node.plus = node.plus or _SegmentNode()
                    node = node.plus
                else:
                    node = node.literal.setdefault(part, _SegmentNode())
            if rule.is_prefix:
                # The last part of a `...*` rule matches any path segment it is a prefix
                # of. (`+*` is rejected by the parser; a hand-built rule ending in `+*`
                # matches any segment there, as in `_segment_match`.)
                last = rule.parts[-1]
                node.globs.append(("" if last == "+" else last, rule))
            else:
                node.ends.append(rule)

    def matches(self, parts: list[str]) -> list[MergedRule]:
        out: list[MergedRule] = []
        n = len(parts)
        stack = [(self.root, 0)]
        while stack:
            node, depth = stack.pop()
            if depth == n:
                out.extend(node.ends)
                continue
            segment = parts[depth]
            for last, rule in node.globs:
                if segment.startswith(last):
                    out.append(rule)
            child = node.literal.get(segment)
            if child is not None:
                stack.append((child, depth + 1))
            if node.plus is not None:
                stack.append((node.plus, depth + 1))
        return out


@dataclass
class ACLResult:
    """What `allow_operation` decided. `rule` is the one rule Vault applied (None when
    no rule matched, for `help`, and for root). `granting_policies` are the names of
    the policies that granted the needed capability on that rule (set as soon as the
    capability check passes, as Vault does, even if a later check denies)."""

    allowed: bool
    root_privs: bool
    granting_policies: list[str] = field(default_factory=list)
    rule: MergedRule | None = None
    is_root: bool = False
    mfa_methods: tuple[str, ...] = ()


def _new_merged(rule: PathRule) -> MergedRule:
    kind = rule.acl_kind
    key = rule.acl_key
    merged = MergedRule(
        key=key,
        kind=kind,
        capabilities=rule.capabilities,
        allowed_parameters=_copy_params(rule.allowed_parameters),
        denied_parameters=_copy_params(rule.denied_parameters),
        required_parameters=tuple(rule.required_parameters),
        min_wrapping_ttl=rule.min_wrapping_ttl,
        max_wrapping_ttl=rule.max_wrapping_ttl,
        sources=(rule,),
        granting=_granting({}, rule),
        mfa_methods=tuple(rule.mfa_methods),
        subscribe_event_types=tuple(rule.subscribe_event_types),
    )
    if kind == "segment":
        merged.first_wildcard = key.find("+")
        merged.is_prefix = key.endswith("*")
        merged.wc_path = key[:-1] if merged.is_prefix else key
        merged.parts = tuple(merged.wc_path.split("/"))
        merged.wildcards = sum(1 for p in merged.parts if p == "+")
    return merged


def _copy_params(params: Mapping[str, list[Any]] | None) -> dict[str, list[Any]] | None:
    return None if params is None else {k: list(v) for k, v in params.items()}


def _granting(current: dict[str, tuple[str, ...]], rule: PathRule) -> dict[str, tuple[str, ...]]:
    out = dict(current)
    for cap in rule.capabilities:
        out[cap] = (*out.get(cap, ()), rule.policy)
    return out


def _merge_params(
    existing: dict[str, list[Any]] | None, new: Mapping[str, list[Any]] | None
) -> dict[str, list[Any]] | None:
    """NewACL's parameter merge: an empty list on either side wins (any value);
    otherwise the NEW stanza's values come first, then the existing ones."""
    if not new:
        return existing
    if existing is None:
        return _copy_params(new)
    merged = dict(existing)
    for key, values in new.items():
        if len(values) == 0 or (key in merged and len(merged[key]) == 0):
            merged[key] = []
        else:
            merged[key] = list(values) + merged.get(key, [])
    return merged


def _merge(existing: MergedRule, rule: PathRule) -> None:
    """Fold one more stanza into an existing rule, exactly as NewACL does."""
    existing.sources = (*existing.sources, rule)
    if existing.is_deny:
        return  # an explicit deny already holds: nothing else is saved
    if rule.is_deny:
        existing.capabilities = frozenset({DENY})
        existing.allowed_parameters = None
        existing.denied_parameters = None
        return
    existing.capabilities = existing.capabilities | rule.capabilities
    existing.granting = _granting(existing.granting, rule)
    # Lesser wins for both bounds: "the lowest value specified for each" (policies.mdx).
    if rule.max_wrapping_ttl > 0 and (
        existing.max_wrapping_ttl == 0 or rule.max_wrapping_ttl < existing.max_wrapping_ttl
    ):
        existing.max_wrapping_ttl = rule.max_wrapping_ttl
    if rule.min_wrapping_ttl > 0 and (
        existing.min_wrapping_ttl == 0 or rule.min_wrapping_ttl < existing.min_wrapping_ttl
    ):
        existing.min_wrapping_ttl = rule.min_wrapping_ttl
    existing.allowed_parameters = _merge_params(
        existing.allowed_parameters, rule.allowed_parameters
    )
    existing.denied_parameters = _merge_params(existing.denied_parameters, rule.denied_parameters)
    if rule.required_parameters:
        required = list(existing.required_parameters)
        required += [p for p in rule.required_parameters if p not in required]
        existing.required_parameters = tuple(required)
    if rule.mfa_methods:
        existing.mfa_methods = _remove_duplicates([*existing.mfa_methods, *rule.mfa_methods])
    # Vault only merges event types into a rule that already has some (acl.go quirk).
    if rule.subscribe_event_types and existing.subscribe_event_types:
        existing.subscribe_event_types = _remove_duplicates(
            [*existing.subscribe_event_types, *rule.subscribe_event_types]
        )


def _remove_duplicates(items: Iterable[str]) -> tuple[str, ...]:
    """strutil.RemoveDuplicates(items, false): trimmed, no empties, unique, sorted."""
    return tuple(sorted({item.strip() for item in items if item.strip()}))


class ACL:
    """A compiled set of policies (Vault's `NewACL`). Build once, query many times.

    `None` entries are ignored (a deleted or unknown policy acts as an empty policy).
    A policy named "root" makes a root ACL (everything allowed); combined with any
    other policy it raises `ACLError("other policies present along with root")`.
    """

    def __init__(self, policies: Sequence[Policy | None]) -> None:
        present = [p for p in policies if p is not None]
        self.policies: tuple[Policy, ...] = tuple(present)
        self.is_root = False
        self.exact: dict[str, MergedRule] = {}
        self.prefix: dict[str, MergedRule] = {}
        self.segment: dict[str, MergedRule] = {}
        for policy in present:
            if policy.name == ROOT_POLICY:
                if len(present) != 1:
                    raise ACLError("other policies present along with root")
                self.is_root = True
            for rule in policy.rules:
                table = getattr(self, rule.acl_kind)
                existing = table.get(rule.acl_key)
                if existing is None:
                    table[rule.acl_key] = _new_merged(rule)
                else:
                    _merge(existing, rule)
        # Lookup indexes: prefix lengths longest first; segment rules in a segment trie.
        self._prefix_lengths = sorted({len(k) for k in self.prefix}, reverse=True)
        self._segment_trie = _SegmentTrie(r for k, r in self.segment.items() if k != "")

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> ACL:
        """Compile policy documents given as text (names come from their `name` key)."""
        from policies.hcl import parse_policy

        return cls([parse_policy(text) for text in texts])

    # ------------------------------------------------------------------ lookup
    def longest_prefix(self, path: str) -> MergedRule | None:
        """The prefix rule with the longest key that `path` starts with (radix LongestPrefix)."""
        n = len(path)
        for length in self._prefix_lengths:
            if length <= n:
                rule = self.prefix.get(path[:length])
                if rule is not None:
                    return rule
        return None

    def non_exact_candidates(self, path: str) -> list[MergedRule]:
        """Every prefix/segment candidate Vault weighs for `path` (at most one prefix
        rule: the longest). Vault applies `max(candidates, key=candidate_priority)`."""
        out: list[MergedRule] = []
        longest = self.longest_prefix(path)
        if longest is not None:
            out.append(longest)
        if self.segment:
            out.extend(self._segment_trie.matches(path.split("/")))
        return out

    def _non_exact(self, path: str) -> MergedRule | None:
        """acl.go `CheckAllowedFromNonExactPaths(path, false)`."""
        if not self.segment:
            return self.longest_prefix(path)
        candidates = self.non_exact_candidates(path)
        if not candidates:
            return None
        return max(candidates, key=candidate_priority)

    def select(self, path: str, operation: str) -> MergedRule | None:
        """The ONE rule Vault applies to `operation` on `path` (§1.4), or None."""
        path = path.lstrip("/")
        rule = self.exact.get(path)
        if rule is not None:
            return rule
        if operation == "list":
            trimmed = path[:-1] if path.endswith("/") else path
            rule = self.exact.get(trimmed)
            if rule is not None:
                return rule
            if path.endswith("/"):
                rule = self._non_exact(trimmed)
                if rule is not None:
                    return rule
        return self._non_exact(path)

    # ---------------------------------------------------------------- decisions
    def allow_operation(
        self,
        path: str,
        operation: str,
        params: Mapping[str, Any] | None = None,
        wrap_ttl: float | None = None,
    ) -> ACLResult:
        """Decide one request as Vault's `ACL.AllowOperation` does.

        `params` is the request data (keys as sent; values as decoded JSON), `wrap_ttl`
        the requested response-wrapping TTL in seconds (None: no wrapping requested).
        Unknown operations are denied, as in Vault.
        """
        if self.is_root:
            return ACLResult(True, True, [ROOT_POLICY], None, is_root=True)
        if operation == "help":
            return ACLResult(True, False)
        rule = self.select(path, operation)
        if rule is None:
            return ACLResult(False, False)
        caps = rule.capabilities
        result = ACLResult(False, "sudo" in caps, rule=rule, mfa_methods=rule.mfa_methods)
        needed = _OP_CAPABILITY.get(operation)
        if needed is None or needed not in caps:
            return result
        result.granting_policies = list(rule.granting.get(needed, ()))
        if rule.max_wrapping_ttl > 0 and (wrap_ttl is None or wrap_ttl > rule.max_wrapping_ttl):
            return result
        if rule.min_wrapping_ttl > 0 and (wrap_ttl is None or wrap_ttl < rule.min_wrapping_ttl):
            return result
        if (
            rule.min_wrapping_ttl != 0
            and rule.max_wrapping_ttl != 0
            and rule.max_wrapping_ttl < rule.min_wrapping_ttl
        ):
            return result
        if operation in _PARAM_CHECKED_OPS and not _params_allowed(rule, params or {}):
            return result
        result.allowed = True
        return result

    def check_bare_mount(self, path: str) -> MergedRule | None:
        """acl.go `CheckAllowedFromNonExactPaths(path, bareMount=true)`: for a mount
        path with a trailing `/`, a non-deny segment rule that grants something on the
        mount or below it, else None. Reproduces Vault, including that a prefix rule
        only counts when the ACL has no segment rules at all."""
        longest = self.longest_prefix(path)
        if not self.segment:
            return longest
        path_parts = path.split("/")
        for key, rule in self.segment.items():
            if key == "":
                continue
            segments: list[str] = []
            parts = rule.parts
            last = len(parts) - 1
            for i, part in enumerate(parts):
                if i >= len(path_parts):
                    break
                if part == "+" or part == path_parts[i]:
                    segments.append(path_parts[i])
                elif rule.is_prefix and i == last and path_parts[i].startswith(part):
                    segments.extend(path_parts[i:])
                # a mismatch is not fatal in bare-mount mode (Vault skips `continue`)
                if i == len(path_parts) - 2:
                    joined = "/".join(segments) + "/"
                    if joined.startswith(path) and not rule.is_deny and rule.capabilities:
                        return rule
                    break
        return None

    def capabilities(self, path: str) -> list[str]:
        """`sys/capabilities` for `path`: a LIST-style lookup, Vault's ordering (§1.9);
        ["root"] for root, ["deny"] when denied or nothing is granted."""
        if self.is_root:
            return [ROOT_POLICY]
        rule = self.select(path, "list")
        if rule is None or rule.is_deny:
            return [DENY]
        ordered = [c for c in CAPABILITIES if c in rule.capabilities]
        return ordered or [DENY]


def _params_allowed(rule: MergedRule, data: Mapping[str, Any]) -> bool:
    """The parameter part of AllowOperation's CHECK (§1.6)."""
    for name in rule.required_parameters:
        if name.lower() not in data:
            return False
    if len(data) == 0:
        return True
    denied = rule.denied_parameters
    if denied:
        if "*" in denied:
            return False
        for key, value in data.items():
            values = denied.get(key.lower())
            if values is not None and value_in_denied_list(value, values):
                return False
    allowed = rule.allowed_parameters
    if not allowed:
        return True
    allowed_all = "*" in allowed
    if allowed_all and len(allowed) == 1:
        return True
    for key, value in data.items():
        values = allowed.get(key.lower())
        if values is None:
            if not allowed_all:
                return False
        elif not value_in_allowed_list(value, values):
            return False
    return True
