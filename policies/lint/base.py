"""Lint rule plumbing: one small class per rule, collected by a registry (Checkov style).

A rule looks at one policy at a time (`check_policy`; a `StanzaRule` at each of its
stanzas, `check_stanza`) or at the policy set of one principal (`check_principal`); it
yields `LintFinding`s that point at the stanza (file and line) and name a concrete path
the stanza reaches.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import ClassVar, Literal

from policies.analysis import Counterexample, Principal, find_granted, shape_of
from policies.analysis.glob import example_path, may_overlap
from policies.model import ANALYSED_CAPABILITIES, PathRule, Policy

Severity = Literal["error", "warning", "note"]
WRITE_CAPABILITIES: tuple[str, ...] = ("create", "update", "patch", "delete", "sudo")
# Every operation a capability grants (help needs none), and sudo.
ALL_CAPABILITIES = ANALYSED_CAPABILITIES


@dataclass(frozen=True)
class LintFinding:
    rule_id: str
    message: str
    stanza: PathRule
    path: str  # a concrete path the stanza reaches
    capability: str | None = None
    principal: str | None = None


@dataclass
class LintContext:
    """What rules may know beyond the policy text."""

    admin_policies: frozenset[str] = frozenset()
    kv_v2_mounts: frozenset[str] = frozenset()
    _single: dict[int, Principal] = field(default_factory=dict)
    _compiled: dict[tuple[int, ...], Principal] = field(default_factory=dict)

    def principal(self, name: str, policies: Sequence[Policy]) -> Principal:
        """`policies` compiled into one ACL, once per policy set (the caller's
        principals can be handed in with `remember`)."""
        key = tuple(id(p) for p in policies)
        found = self._compiled.get(key)
        if found is None:
            found = self._compiled[key] = Principal(name, policies)
        return found

    def remember(self, principal: Principal) -> None:
        """Reuse an ACL already compiled for this policy set."""
        self._compiled.setdefault(tuple(id(p) for p in principal.policies), principal)

    def stanza_reaches(
        self, stanza: PathRule, pattern: str, capabilities: Iterable[str]
    ) -> Counterexample | None:
        """Could this stanza ON ITS OWN grant one of `capabilities` on some path of
        `pattern`? Decided exactly by the analysis, over a one-stanza policy."""
        if stanza.is_deny or not may_overlap(shape_of(stanza.path), shape_of(pattern)):
            return None
        principal = self._single.get(id(stanza))
        if principal is None:
            lone = Policy(name=stanza.policy or "stanza", rules=(stanza,), file=stanza.file)
            principal = Principal(stanza.policy or "stanza", [lone])
            self._single[id(stanza)] = principal
        return find_granted(principal, pattern, tuple(capabilities))

    def first_reach(
        self, stanza: PathRule, patterns: Iterable[str], capabilities: Iterable[str]
    ) -> Counterexample | None:
        """`stanza_reaches` for the first of `patterns` the stanza reaches, if any."""
        wanted = tuple(capabilities)
        for pattern in patterns:
            hit = self.stanza_reaches(stanza, pattern, wanted)
            if hit:
                return hit
        return None


class LintRule:
    """Base class: subclasses set the metadata and override one of the checks."""

    id: ClassVar[str]
    name: ClassVar[str]
    rationale: ClassVar[str]  # one line: why this matters
    severity: ClassVar[Severity] = "error"

    def check_policy(self, policy: Policy, ctx: LintContext) -> Iterator[LintFinding]:
        return iter(())

    def check_principal(
        self, name: str, policies: list[Policy], ctx: LintContext
    ) -> Iterator[LintFinding]:
        return iter(())

    def finding(
        self,
        stanza: PathRule,
        message: str,
        path: str | None = None,
        capability: str | None = None,
        principal: str | None = None,
    ) -> LintFinding:
        concrete = path or example_path(stanza.path)  # a path, never a pattern
        return LintFinding(self.id, message, stanza, concrete, capability, principal)

    def reach_finding(
        self, stanza: PathRule, hit: Counterexample, message: str, principal: str | None = None
    ) -> LintFinding:
        """A finding at the path and capability the analysis found granted."""
        return self.finding(stanza, message, hit.path, hit.capability, principal)


class StanzaRule(LintRule):
    """A rule that judges each stanza of a policy on its own (`check_stanza`)."""

    admin_exempt: ClassVar[bool] = False  # True: admin policies may do this

    def check_policy(self, policy: Policy, ctx: LintContext) -> Iterator[LintFinding]:
        if self.admin_exempt and policy.name in ctx.admin_policies:
            return
        for stanza in policy.rules:
            yield from self.check_stanza(stanza, policy, ctx)

    def check_stanza(
        self, stanza: PathRule, policy: Policy, ctx: LintContext
    ) -> Iterator[LintFinding]:
        raise NotImplementedError


class Registry:
    """All lint rules, in id order."""

    def __init__(self) -> None:
        self._rules: dict[str, LintRule] = {}

    def register(self, cls: type[LintRule]) -> type[LintRule]:
        if cls.id in self._rules:
            raise ValueError(f"duplicate lint rule id {cls.id}")
        self._rules[cls.id] = cls()
        return cls

    @cached_property
    def rules(self) -> list[LintRule]:
        return [self._rules[k] for k in sorted(self._rules)]

    def get(self, rule_id: str) -> LintRule:
        return self._rules[rule_id]


registry = Registry()


def grants(stanza: PathRule) -> frozenset[str]:
    """The capabilities a stanza grants (nothing when it denies)."""
    return frozenset() if stanza.is_deny else stanza.capabilities
