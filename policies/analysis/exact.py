"""Exact answers over Vault glob patterns, decided by the one ACL evaluator.

`classes.representatives` yields finitely many concrete paths that cover every class
of paths the principal's rules can tell apart; each is decided by `policies.acl.ACL`
(the evaluator devvault and `policy eval` use). Nothing here re-implements Vault's
matching or priority: this module only chooses which paths to ask about, and reads
the capabilities of the rule the evaluator says applies.

What "principal P holds capability c at concrete path p" means:
- read, create, update, patch, delete, recover: the request `c` on `p`;
  list: the LIST request on `p`, whose path carries a trailing `/` (the HTTP layer
  adds it, docs/facts/vault.md §1.3); sudo: the rule applied to `p` (or to its LIST
  request) holds `sudo` (RootPrivs, §1.2).
- For `deny` questions ("may P ever do c at p?") c is held when the applied rule
  grants c and its wrapping-TTL bounds are satisfiable: some request (with the
  required parameters, a wrap TTL in range) gets through. Parameter constraints
  narrow what can be written, they do not take the capability away.
- For `allow` questions ("can P always do c at p?") the plain request, without
  parameters or response wrapping, must be allowed by `ACL.allow_operation`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from policies.acl import ACL, MergedRule
from policies.analysis.classes import representatives
from policies.analysis.glob import GlobShape, may_overlap, shape_of, validate_pattern
from policies.model import Policy

_LIST = "list"
_SUDO = "sudo"


def list_path(path: str) -> str:
    """The path a LIST request on `path` is authorised against (trailing `/` added)."""
    return path if path.endswith("/") else path + "/"


def _rule_shapes(acl: ACL) -> list[tuple[GlobShape, MergedRule]]:
    """The segment constraints of every rule key in the ACL's three tables."""
    shapes = [(GlobShape(k, tuple(k.split("/")), prefix=False), r) for k, r in acl.exact.items()]
    shapes += [(GlobShape(k + "*", tuple(k.split("/")), True), r) for k, r in acl.prefix.items()]
    shapes += [(shape_of(k), r) for k, r in acl.segment.items()]
    return shapes


def _grants_any(rule: MergedRule, capabilities: Iterable[str]) -> bool:
    return not rule.is_deny and any(c in rule.capabilities for c in capabilities)


class Principal:
    """A named set of policies compiled into one ACL, as a token holding them gets."""

    def __init__(self, name: str, policies: Sequence[Policy]) -> None:
        self.name = name
        self.policies = tuple(policies)
        self.acl = ACL(self.policies)
        self.rules = _rule_shapes(self.acl)
        self.shapes = [shape for shape, _ in self.rules]
        self._relevant: dict[GlobShape, list[tuple[GlobShape, MergedRule]]] = {}

    # The evaluator's verdicts for one concrete path -----------------------------
    def applied_rule(self, path: str, capability: str) -> MergedRule | None:
        """The one rule Vault applies when `capability` is exercised on `path`."""
        if capability == _LIST:
            return self.acl.select(list_path(path), _LIST)
        op = "read" if capability == _SUDO else capability
        return self.acl.select(path, op)

    def may(self, path: str, capability: str) -> tuple[bool, MergedRule | None]:
        """Can SOME request exercise `capability` on `path`? (and the deciding rule)"""
        if self.acl.is_root:
            return True, None
        if capability == _SUDO:
            for lookup in ("read", _LIST):
                rule = self.applied_rule(path, lookup)
                if rule is not None and rule.root_privs and not rule.is_deny:
                    return True, rule
            return False, self.applied_rule(path, "read")
        rule = self.applied_rule(path, capability)
        if rule is None or rule.is_deny or capability not in rule.capabilities:
            return False, rule
        lo, hi = rule.min_wrapping_ttl, rule.max_wrapping_ttl
        if lo > 0 and hi > 0 and hi < lo:  # Vault then denies every request on the rule
            return False, rule
        return True, rule

    def must(self, path: str, capability: str) -> tuple[bool, MergedRule | None]:
        """Is the plain request (no parameters, no wrapping) for `capability` allowed?"""
        if capability == _SUDO:
            return self.may(path, capability)
        if capability == _LIST:
            result = self.acl.allow_operation(list_path(path), _LIST)
        else:
            result = self.acl.allow_operation(path, capability)
        return result.allowed, result.rule

    def relevant_rules(self, pattern: GlobShape) -> list[tuple[GlobShape, MergedRule]]:
        """Rules whose key could match some path of `pattern` (or its LIST variants).
        Dropping the others is sound: they never match, so they never decide."""
        cached = self._relevant.get(pattern)
        if cached is None:
            cached = [(s, r) for s, r in self.rules if may_overlap(s, pattern)]
            self._relevant[pattern] = cached
        return cached

    def could_grant(self, pattern: str, capabilities: Iterable[str]) -> bool:
        """False when no rule that can apply on `pattern` holds any of `capabilities`:
        then no path of the pattern has them, whatever the priorities."""
        if self.acl.is_root:
            return True
        caps = tuple(capabilities)
        shape = validate_pattern(pattern)
        return any(_grants_any(r, caps) for _, r in self.relevant_rules(shape))

    def paths(self, pattern: str, excepts: Sequence[str] = ()) -> Iterator[str]:
        """Representative concrete paths of `pattern` minus the `excepts` patterns."""
        shape = validate_pattern(pattern)
        excluded = [e for p in excepts if may_overlap(e := validate_pattern(p), shape)]
        relevant = [s for s, _ in self.relevant_rules(shape)]
        for path in representatives(shape, [*relevant, *excluded]):
            if not any(e.matches(path) for e in excluded):
                yield path


@dataclass(frozen=True)
class Counterexample:
    """A concrete path where the answer is the unwelcome one."""

    path: str
    capability: str
    rule: MergedRule | None  # the rule Vault applies there; None when no rule matches


def find_granted(
    principal: Principal,
    pattern: str,
    capabilities: Iterable[str],
    excepts: Sequence[str] = (),
) -> Counterexample | None:
    """A path matching `pattern` (and no `excepts`) where the principal may use one of
    `capabilities`; None when there is none: the `deny` question, decided exactly."""
    caps = tuple(capabilities)
    if not principal.could_grant(pattern, caps):
        return None
    for path in principal.paths(pattern, excepts):
        for cap in caps:
            held, rule = principal.may(path, cap)
            if held:
                return Counterexample(path, cap, rule)
    return None


def find_missing(
    principal: Principal,
    pattern: str,
    capabilities: Iterable[str],
    excepts: Sequence[str] = (),
) -> Counterexample | None:
    """A path matching `pattern` where the plain request for one of `capabilities` is
    refused; None when every such path allows all of them: the `allow` question."""
    caps = tuple(capabilities)
    for path in principal.paths(pattern, excepts):
        for cap in caps:
            allowed, rule = principal.must(path, cap)
            if not allowed:
                return Counterexample(path, cap, rule)
    return None


@dataclass
class Coverage:
    """How much of a pattern one capability reaches: "all", "some" or "none"."""

    capability: str
    granted_example: str | None = None
    missing_example: str | None = None
    rules: list[MergedRule] = field(default_factory=list)

    @property
    def level(self) -> str:
        if self.granted_example is None:
            return "none"
        return "some" if self.missing_example is not None else "all"


def coverage(
    principal: Principal, pattern: str, capabilities: Iterable[str]
) -> dict[str, Coverage]:
    """For each capability: does the principal hold it on every, some or no path of
    `pattern` (the `may` sense), with one example path of each kind."""
    out = {cap: Coverage(cap) for cap in capabilities}
    for path in principal.paths(pattern):
        for cap, cov in out.items():
            held, rule = principal.may(path, cap)
            if held:
                cov.granted_example = cov.granted_example or path
                if rule is not None and all(rule is not r for r in cov.rules):
                    cov.rules.append(rule)
            else:
                cov.missing_example = cov.missing_example or path
    return out
