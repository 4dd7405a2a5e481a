"""Effective reach: every credential a principal can hold, by any route Vault offers.

A principal starts with one token (its policies). A *route* (policies/analysis/routes.py)
turns a capability on some request path into another credential: `update` on
`auth/token/create/<role>` mints a token with the role's allowed policies, `update` on
an AppRole's `secret-id` logs in as that role, a write on `sys/policies/acl/*` makes any
policy ("admin-equivalent"). Routes are data: a capability on a new path (e.g. Transit
keys) needs a new Route, not new code here.

Each credential is analysed on its own, exactly as Vault evaluates a token: the policies
of one token are merged into one ACL, and two tokens never pool their policies. The
closure is a breadth-first walk, so the first chain found to any credential is a
shortest one. Whether a route is open is decided by the same exact analysis as the
invariants (policies/analysis/exact.py), over every concrete path of the route's
patterns.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from policies.analysis.exact import Principal
from policies.model import PathRule, Policy

ADMIN = "admin-equivalent"
# An ACL built from a policy named "root" allows everything (policies/acl.py): the
# stand-in for "any policy", which includes whatever admin policy the Vault holds.
_ROOT = Policy(name="root", rules=())


@dataclass(frozen=True)
class Route:
    """One way Vault lets a capability become another credential.

    `needs`: alternatives; each is a set of capabilities that must ALL be held on one
    concrete path matching one of `patterns` (e.g. update AND sudo on token create).
    `gains`: the policies of the credential obtained; None means any policy.
    """

    kind: str  # e.g. "token-role", "approle-secret-id", "policy-write"
    label: str  # e.g. "token role keybroker-site"
    patterns: tuple[str, ...]
    needs: tuple[tuple[str, ...], ...]
    gains: tuple[str, ...] | None
    doc: str  # the Vault document (and our summary of it) that makes this an edge
    notes: tuple[str, ...] = ()  # e.g. bound CIDRs: they limit where, not who


@dataclass(frozen=True)
class Hop:
    """One step of a chain: the holder used `capability` on `path` through `route`."""

    route: Route
    path: str
    capability: str  # e.g. "update" or "update+sudo"
    stanza: PathRule | None  # the holder's stanza that grants it (None: admin-equivalent)


@dataclass(frozen=True)
class Credential:
    """A token a principal can hold: its own (no hops) or one reached by a chain."""

    policies: frozenset[str]
    admin: bool
    via: tuple[Hop, ...]

    @property
    def label(self) -> str:
        return ADMIN if self.admin else ", ".join(sorted(self.policies)) or "(no policy)"

    @property
    def key(self) -> tuple[bool, frozenset[str]]:
        return (self.admin, frozenset() if self.admin else self.policies)


def chain_text(principal: str, via: Sequence[Hop], final: str = "") -> str:
    """`broker -> token role keybroker-site -> keybroker-site-read -> read a/b`."""
    parts = [principal]
    for hop in via:
        gained = ADMIN if hop.route.gains is None else ", ".join(hop.route.gains)
        parts += [hop.route.label, gained or "(no policy)"]
    if final:
        parts.append(final)
    return " -> ".join(parts)


class Reach:
    """Closures over `routes` for principals made of `policies` (one policy directory)."""

    def __init__(self, policies: Sequence[Policy], routes: Sequence[Route]) -> None:
        self.by_name = {p.name: p for p in policies}
        self.routes = tuple(routes)
        self._compiled: dict[tuple[bool, frozenset[str]], Principal] = {}
        self._closures: dict[frozenset[str], list[Credential]] = {}

    def principal(self, credential: Credential, name: str = "") -> Principal:
        """The compiled ACL of `credential` (cached: the same set is compiled once)."""
        key = credential.key
        found = self._compiled.get(key)
        if found is None:
            if credential.admin:
                found = Principal(name or ADMIN, [_ROOT])
            else:
                # A policy the directory does not hold acts as an empty one (Vault
                # ignores unknown policy names on a token).
                held = [self.by_name[n] for n in sorted(credential.policies) if n in self.by_name]
                found = Principal(name or credential.label, held)
            self._compiled[key] = found
        return found

    def own(self, policies: Sequence[str]) -> Credential:
        return Credential(frozenset(policies), False, ())

    def closure(self, policies: Sequence[str]) -> list[Credential]:
        """The principal's own credential first, then every reachable one, shortest
        chains first. Each credential (policy set) appears once."""
        start = policies if isinstance(policies, frozenset) else frozenset(policies)
        cached = self._closures.get(start)
        if cached is not None:
            return cached
        first = self.own(policies)
        out = [first]
        seen = {first.key}
        queue = [first]
        while queue:
            current = queue.pop(0)
            if current.admin:
                continue  # nothing lies beyond "any policy"
            for hop in self.hops(current):
                gains = hop.route.gains
                target = Credential(frozenset(gains or ()), gains is None, (*current.via, hop))
                if target.key in seen:
                    continue
                seen.add(target.key)
                out.append(target)
                queue.append(target)
        self._closures[start] = out
        return out

    def hops(self, credential: Credential) -> Iterator[Hop]:
        """The routes open to `credential`, each with a concrete path it can use."""
        principal = self.principal(credential)
        for route in self.routes:
            hop = _open(principal, route)
            if hop is not None:
                yield hop


def _open(principal: Principal, route: Route) -> Hop | None:
    for pattern in route.patterns:
        for needed in route.needs:
            if not all(principal.could_grant(pattern, (cap,)) for cap in needed):
                continue
            for path in principal.paths(pattern, granting=needed):
                held = [principal.may(path, cap) for cap in needed]
                if all(ok for ok, _ in held):
                    rule = held[0][1]
                    stanza = None
                    if rule is not None:
                        stanza = next(
                            (
                                s
                                for s in rule.sources
                                if not s.is_deny and needed[0] in s.capabilities
                            ),
                            rule.sources[0] if rule.sources else None,
                        )
                    return Hop(route, path, "+".join(needed), stanza)
    return None
