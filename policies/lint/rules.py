"""The built-in lint rules. Each class: an id, a name, a one-line rationale, a severity.

Rules that talk about where a stanza reaches ask the exact analysis
(`LintContext.stanza_reaches`), so `sys*`, `+/...` and `*` are all seen for what they
cover, and every finding names a concrete path.
"""

from __future__ import annotations

from collections.abc import Iterator

from broker.names import ROLES
from policies.acl import ACL
from policies.analysis import PatternError, find_granted, shape_of
from policies.lint.base import (
    ALL_CAPABILITIES,
    WRITE_CAPABILITIES,
    LintContext,
    LintFinding,
    LintRule,
    StanzaRule,
    grants,
    registry,
)
from policies.model import PathRule, Policy

# Endpoints that decide who can do what: policies, auth methods and their roles,
# audit devices, mounts, raw storage, identity groups/entities (which carry policies).
ACCESS_CONTROL_PATTERNS: tuple[str, ...] = (
    "sys/policies/*",
    "sys/policy",
    "sys/policy/*",
    "sys/auth",
    "sys/auth/*",
    "sys/audit",
    "sys/audit/*",
    "sys/mounts",
    "sys/mounts/*",
    "sys/remount",
    "sys/raw",
    "sys/raw/*",
    "auth/+/role/*",
    "auth/+/roles/*",
    "auth/token/roles/*",
    "identity/entity/*",
    "identity/group/*",
)
TOKEN_CREATE_PATTERNS: tuple[str, ...] = ("auth/token/create", "auth/token/create-orphan")


def _is_glob(path: str) -> bool:
    shape = shape_of(path)
    return shape.prefix or "+" in shape.parts


@registry.register
class SysWildcardGrant(StanzaRule):
    id = "KB101"
    name = "wildcard grant on sys/"
    rationale = "A glob over sys/ hands out system endpoints nobody listed one by one."

    def check_stanza(
        self, stanza: PathRule, policy: Policy, ctx: LintContext
    ) -> Iterator[LintFinding]:
        if not _is_glob(stanza.path):
            return
        hit = ctx.stanza_reaches(stanza, "sys/*", ALL_CAPABILITIES)
        if hit:
            yield self.reach_finding(
                stanza,
                hit,
                f'glob "{stanza.path}" grants {hit.capability} on system path {hit.path}',
            )


@registry.register
class SudoOutsideAdmin(StanzaRule):
    id = "KB102"
    name = "sudo outside an admin policy"
    rationale = "sudo unlocks root-protected endpoints; only an admin policy should hold it."
    admin_exempt = True

    def check_stanza(
        self, stanza: PathRule, policy: Policy, ctx: LintContext
    ) -> Iterator[LintFinding]:
        if "sudo" in grants(stanza):
            yield self.finding(
                stanza,
                f'"{stanza.path}" grants sudo in non-admin policy {policy.name}',
                capability="sudo",
            )


@registry.register
class LegacyPolicySyntax(StanzaRule):
    id = "KB103"
    name = "legacy policy = syntax"
    rationale = 'policy = "write" silently grants read and list as well; spell out capabilities.'

    def check_stanza(
        self, stanza: PathRule, policy: Policy, ctx: LintContext
    ) -> Iterator[LintFinding]:
        if stanza.legacy_policy is not None:
            caps = ", ".join(sorted(stanza.capabilities))
            yield self.finding(
                stanza,
                f'"{stanza.path}" uses policy = "{stanza.legacy_policy}", which grants [{caps}]',
            )


@registry.register
class MountRootGrant(StanzaRule):
    id = "KB104"
    name = "grant at a mount root"
    rationale = "A glob right under a mount covers every sub-API (data, metadata, destroy, config)."

    def check_stanza(
        self, stanza: PathRule, policy: Policy, ctx: LintContext
    ) -> Iterator[LintFinding]:
        shape = shape_of(stanza.path)
        if not grants(stanza) or len(shape.parts) < 2 or shape.parts[0] in {"+", ""}:
            return
        second = shape.parts[1]
        at_root = second == "+" or (shape.prefix and len(shape.parts) == 2 and second == "")
        if at_root:
            yield self.finding(
                stanza,
                f'"{stanza.path}" grants {", ".join(sorted(grants(stanza)))} across every '
                f"sub-API of the {shape.parts[0]}/ mount",
            )


@registry.register
class AccessControlWrite(StanzaRule):
    id = "KB105"
    name = "write to policies, auth methods or roles"
    rationale = "Whoever writes policies, auth roles, audit devices or mounts owns the Vault."
    admin_exempt = True

    def check_stanza(
        self, stanza: PathRule, policy: Policy, ctx: LintContext
    ) -> Iterator[LintFinding]:
        hit = ctx.first_reach(stanza, ACCESS_CONTROL_PATTERNS, WRITE_CAPABILITIES)
        if hit:
            yield self.reach_finding(
                stanza,
                hit,
                f'"{stanza.path}" grants {hit.capability} on access-control path {hit.path}',
            )


@registry.register
class TopLevelWildcard(StanzaRule):
    id = "KB106"
    name = "wildcard at the top level"
    rationale = "A top-level * or + reaches every mount, sys/ and auth/ included."

    def check_stanza(
        self, stanza: PathRule, policy: Policy, ctx: LintContext
    ) -> Iterator[LintFinding]:
        shape = shape_of(stanza.path)
        top = shape.parts[0] == "+" or (shape.prefix and len(shape.parts) == 1)
        if top and grants(stanza):
            yield self.finding(
                stanza, f'"{stanza.path}" is a top-level wildcard that grants access'
            )


@registry.register
class BroadSecretGlob(LintRule):
    id = "KB107"
    name = "broad glob on a secret mount without a deny"
    rationale = "A glob above the role level of a KV mount reaches both site and robot keys."

    def check_policy(self, policy: Policy, ctx: LintContext) -> Iterator[LintFinding]:
        for mount in sorted(ctx.kv_v2_mounts):
            has_deny = any(s.is_deny and s.path.startswith(f"{mount}/") for s in policy.rules)
            if has_deny:
                continue
            for stanza in policy.rules:
                if not _is_glob(stanza.path):
                    continue
                # Reaching two different roles (and so every role) under data/ or metadata/.
                hits = [
                    ctx.stanza_reaches(stanza, f"{mount}/{api}/{role}/*", ALL_CAPABILITIES)
                    for api in ("data", "metadata")
                    for role in ROLES
                ]
                if (hits[0] and hits[1]) or (hits[2] and hits[3]):
                    yield self.finding(
                        stanza,
                        f'glob "{stanza.path}" spans every role of secret mount {mount}/ '
                        "and the policy has no deny there",
                        next(h.path for h in hits if h),
                    )


@registry.register
class ParametersOnKVv2(StanzaRule):
    id = "KB108"
    name = "parameter constraints on KV v2"
    rationale = "Vault ignores allowed/denied/required parameters for KV v2 data: false safety."

    def check_stanza(
        self, stanza: PathRule, policy: Policy, ctx: LintContext
    ) -> Iterator[LintFinding]:
        constrained = (
            stanza.allowed_parameters or stanza.denied_parameters or stanza.required_parameters
        )
        if not constrained or stanza.is_deny:
            return
        for mount in sorted(ctx.kv_v2_mounts):
            hit = ctx.stanza_reaches(stanza, f"{mount}/*", ALL_CAPABILITIES)
            if hit:
                yield self.finding(
                    stanza,
                    f'"{stanza.path}" sets parameter constraints on KV v2 mount {mount}/, '
                    "which does not support them",
                    hit.path,
                )
                return


@registry.register
class WrappingTTLOddity(LintRule):
    id = "KB109"
    name = "wrapping TTL oddity"
    rationale = "Crossed wrapping bounds deny everything; bounds on list/delete rules are dead."
    severity = "warning"

    def check_policy(self, policy: Policy, ctx: LintContext) -> Iterator[LintFinding]:
        # Bounds cross only after merging stanzas with the same key (lesser wins, §1.5).
        acl = ACL([policy])
        for table in (acl.exact, acl.prefix, acl.segment):
            for rule in table.values():
                lo, hi = rule.min_wrapping_ttl, rule.max_wrapping_ttl
                if lo > 0 and hi > 0 and hi < lo:
                    yield self.finding(
                        rule.sources[-1],
                        f'merged stanzas for "{rule.sources[0].path}" have max_wrapping_ttl '
                        f"{hi:g}s < min_wrapping_ttl {lo:g}s: every request is denied",
                    )
        for stanza in policy.rules:
            bounded = stanza.min_wrapping_ttl > 0 or stanza.max_wrapping_ttl > 0
            if bounded and grants(stanza) and grants(stanza) <= {"list", "delete"}:
                yield self.finding(
                    stanza,
                    f'"{stanza.path}" sets wrapping TTLs but grants only '
                    f"{', '.join(sorted(grants(stanza)))}, whose responses are not secrets",
                )


@registry.register
class TokenCreateWithoutRole(StanzaRule):
    id = "KB110"
    name = "token creation without a role"
    rationale = "Role-less auth/token/create mints tokens with any of the caller's policies."
    admin_exempt = True

    def check_stanza(
        self, stanza: PathRule, policy: Policy, ctx: LintContext
    ) -> Iterator[LintFinding]:
        patterns = TOKEN_CREATE_PATTERNS
        if _is_glob(stanza.path):
            # A glob over the role name picks any role, present or future.
            patterns = (*patterns, "auth/token/create/*")
        hit = ctx.first_reach(stanza, patterns, ("create", "update"))
        if hit:
            yield self.reach_finding(
                stanza,
                hit,
                f'"{stanza.path}" lets the holder create tokens at {hit.path} without a '
                "fixed token role",
            )


@registry.register
class StanzaNeverApplies(LintRule):
    id = "KB111"
    name = "stanza that never applies"
    rationale = "Higher-priority rules win on every path it covers: it is dead or misleading."
    severity = "warning"

    def check_policy(self, policy: Policy, ctx: LintContext) -> Iterator[LintFinding]:
        principal = ctx.principal(policy.name, [policy])
        for stanza in policy.rules:
            try:
                paths = list(principal.paths(stanza.path))
            except PatternError:
                continue  # a key such as `a/*/b` (literal star): not a pattern
            applies = any(
                stanza in (rule.sources if rule is not None else ())
                for path in paths
                for rule in (
                    principal.applied_rule(path, "read"),
                    principal.applied_rule(path, "list"),
                )
            )
            if paths and not applies:
                winner = principal.applied_rule(paths[0], "read")
                other = f' ("{winner.sources[0].path}" wins at {paths[0]})' if winner else ""
                yield self.finding(
                    stanza, f'"{stanza.path}" is never the rule Vault applies{other}', paths[0]
                )


@registry.register
class ShadowedDeny(LintRule):
    id = "KB112"
    name = "deny overridden by a higher-priority grant"
    rationale = "Only ONE rule applies per path: a more specific grant silently beats a deny glob."

    def check_principal(
        self, name: str, policies: list[Policy], ctx: LintContext
    ) -> Iterator[LintFinding]:
        principal = ctx.principal(name, policies)
        for policy in policies:
            for stanza in policy.rules:
                if not stanza.is_deny:
                    continue
                try:
                    hit = find_granted(principal, stanza.path, ALL_CAPABILITIES)
                except PatternError:
                    continue  # `a/*/b` (literal star) or `a//b`: not an analysable pattern
                if hit is None or hit.rule is None:
                    continue
                winner = hit.rule.sources[0]
                yield self.reach_finding(
                    stanza,
                    hit,
                    f'deny "{stanza.path}" does not hold at {hit.path}: "{winner.path}" '
                    f"({winner.policy}) applies there and grants {hit.capability}",
                    principal=name,
                )
