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


def _literal_first(shape: GlobShape) -> str | None:
    """The first segment's literal when it must equal it (not `+`, not a glob's end)."""
    if not shape.parts or shape.parts[0] == "+" or (shape.prefix and len(shape.parts) == 1):
        return None
    return shape.parts[0]


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
        # By pattern text: a pattern's shape is a function of its text (`shape_of`).
        self._relevant: dict[str, list[tuple[GlobShape, MergedRule]]] = {}
        # Rules by their first segment when it is a plain literal; the rest (`+`, or a
        # glob ending in the first segment) can overlap any pattern. Most patterns name
        # their mount first, so most rules are ruled out without a closer look.
        self._order = {id(r): n for n, (_, r) in enumerate(self.rules)}
        self._by_first: dict[str, list[tuple[GlobShape, MergedRule]]] = {}
        self._any_first: list[tuple[GlobShape, MergedRule]] = []
        for shape, rule in self.rules:
            if _literal_first(shape) is None:
                self._any_first.append((shape, rule))
            else:
                self._by_first.setdefault(shape.parts[0], []).append((shape, rule))

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
        cached = self._relevant.get(pattern.text)
        if cached is None:
            first = _literal_first(pattern)
            same_first: Sequence[tuple[GlobShape, MergedRule]] = ()
            if first is not None:
                same_first = self._by_first.get(first, ())
            pool: Sequence[tuple[GlobShape, MergedRule]] = self.rules
            if first is not None:
                pool = [*same_first, *self._any_first] if self._any_first else same_first
            cached = [(s, r) for s, r in pool if may_overlap(s, pattern)]
            if same_first and self._any_first:  # keep the rules' table order
                order = self._order
                cached.sort(key=lambda sr: order[id(sr[1])])
            self._relevant[pattern.text] = cached
        return cached

    def could_grant(self, pattern: str, capabilities: Iterable[str]) -> bool:
        """False when no rule that can apply on `pattern` holds any of `capabilities`:
        then no path of the pattern has them, whatever the priorities."""
        if self.acl.is_root:
            return True
        caps = tuple(capabilities)
        shape = validate_pattern(pattern)
        return any(_grants_any(r, caps) for _, r in self.relevant_rules(shape))

    def paths(
        self,
        pattern: str,
        excepts: Sequence[str] = (),
        granting: Sequence[str] | None = None,
    ) -> Iterator[str]:
        """Representative concrete paths of `pattern` minus the `excepts` patterns.

        With `granting` (capabilities), only paths some rule granting one of them may
        match (or their LIST variants): the others cannot hold them, whatever the
        priorities, so the `deny` question need not visit them."""
        shape = validate_pattern(pattern)
        excluded = [e for p in excepts if may_overlap(e := validate_pattern(p), shape)]
        rules = self.relevant_rules(shape)
        relevant = [s for s, _ in rules]
        wanted = None
        if granting is not None and not self.acl.is_root:
            wanted = [s for s, r in rules if _grants_any(r, granting)]
        for path in representatives(shape, [*relevant, *excluded], wanted):
            if not any(e.matches(path) for e in excluded):
                yield path


@dataclass(frozen=True)
class Counterexample:
    """A concrete path where the answer is the unwelcome one."""

    path: str
    capability: str
    rule: MergedRule | None  # the rule Vault applies there; None when no rule matches


# Answers, shared between principals: an answer depends only on the rules that can
# match a path of the pattern (the others never decide), and of a rule `may` and
# `must` read nothing but its key, table, whether it denies, which of the asked
# capabilities it holds, its wrapping bounds and (`must`) whether it requires
# parameters. Principals with the same relevant rules, in this sense, are answered
# once: common in large policy sets, where most principals hold no rule on a pattern.
_ANSWERS: dict[tuple[object, ...], tuple[str, str] | None] = {}
_ANSWERS_MAX = 1 << 16


def clear_answer_cache() -> None:
    """Forget shared answers (benchmarks measure cold runs)."""
    _ANSWERS.clear()


_UNKNOWN = object()


def _shared(
    question: str,
    principal: Principal,
    shape: GlobShape,
    caps: tuple[str, ...],
    excepts: tuple[str, ...],
    rules: list[tuple[GlobShape, MergedRule]],
) -> Counterexample | None:
    """The `question` ("may": find_granted, "must": find_missing) answered once per
    key; the counterexample's rule is this principal's own, for the blame. `rules`:
    the principal's relevant rules for `shape`."""
    if principal.acl.is_root:  # no rules: every path is held, whatever it is
        key: tuple[object, ...] = (question, True, shape.text, caps, excepts)
    else:
        asked = frozenset(caps)
        key = (
            question,
            False,
            shape.text,
            caps,
            excepts,
            tuple(
                [
                    (
                        r.kind,
                        r.key,
                        r.is_deny,
                        asked & r.capabilities,
                        r.min_wrapping_ttl,
                        r.max_wrapping_ttl,
                        bool(r.required_parameters),
                    )
                    for _, r in rules
                ]
            ),
        )
    known = _ANSWERS.get(key, _UNKNOWN)
    if known is None:
        return None
    if known is not _UNKNOWN:
        assert isinstance(known, tuple)
        verdict = principal.may if question == "may" else principal.must
        held, rule = verdict(*known)
        if held == (question == "may"):  # always, by the argument above
            return Counterexample(known[0], known[1], rule)
    if question == "may":
        found = _first_granted(principal, shape.text, caps, excepts)
    else:
        found = _first_missing(principal, shape.text, caps, excepts)
    if len(_ANSWERS) >= _ANSWERS_MAX:
        _ANSWERS.clear()
    _ANSWERS[key] = None if found is None else (found.path, found.capability)
    return found


def find_granted(
    principal: Principal,
    pattern: str,
    capabilities: Iterable[str],
    excepts: Sequence[str] = (),
) -> Counterexample | None:
    """A path matching `pattern` (and no `excepts`) where the principal may use one of
    `capabilities`; None when there is none: the `deny` question, decided exactly."""
    return granted_on(principal, validate_pattern(pattern), tuple(capabilities), tuple(excepts))


def granted_on(
    principal: Principal, shape: GlobShape, caps: tuple[str, ...], excepts: tuple[str, ...] = ()
) -> Counterexample | None:
    """`find_granted` for a pattern already validated: the form for asking many
    principals the same question (`policy check` asks each principal of an invariant)."""
    if principal.acl.is_root:
        return _shared("may", principal, shape, caps, excepts, [])
    rules = principal.relevant_rules(shape)
    for _, r in rules:
        if not r.is_deny and not r.capabilities.isdisjoint(caps):
            return _shared("may", principal, shape, caps, excepts, rules)
    return None  # no rule that can apply holds any of them (see `could_grant`)


def _first_granted(
    principal: Principal, pattern: str, caps: tuple[str, ...], excepts: Sequence[str]
) -> Counterexample | None:
    for path in principal.paths(pattern, excepts, granting=caps):
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
    shape = validate_pattern(pattern)
    rules = [] if principal.acl.is_root else principal.relevant_rules(shape)
    return _shared("must", principal, shape, tuple(capabilities), tuple(excepts), rules)


def _first_missing(
    principal: Principal, pattern: str, caps: tuple[str, ...], excepts: Sequence[str]
) -> Counterexample | None:
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
