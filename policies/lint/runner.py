"""Run every registered lint rule over a policy set and its principals."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from broker.names import DEFAULT_MOUNT as DEFAULT_KV_MOUNT
from policies.analysis import Principal, shape_of
from policies.lint.base import LintContext, LintFinding, registry
from policies.model import Policy


def kv_v2_mounts(policies: Sequence[Policy]) -> frozenset[str]:
    """Mounts that look like KV v2 (some rule names `<mount>/data/` or `<mount>/metadata/`),
    plus keybroker's own mount."""
    mounts = {DEFAULT_KV_MOUNT}
    for policy in policies:
        for stanza in policy.rules:
            parts = shape_of(stanza.path).parts
            if len(parts) >= 2 and parts[1] in {"data", "metadata"} and parts[0] != "+":
                mounts.add(parts[0])
    return frozenset(mounts)


def run_lint(
    policies: Sequence[Policy],
    principals: Mapping[str, Sequence[Policy]],
    admin_policies: frozenset[str] = frozenset(),
    compiled: Iterable[Principal] = (),
) -> list[LintFinding]:
    """`compiled`: ACLs the caller already built for some policy sets, reused."""
    ctx = LintContext(admin_policies=admin_policies, kv_v2_mounts=kv_v2_mounts(policies))
    for principal in compiled:
        ctx.remember(principal)
    findings: list[LintFinding] = []
    seen: set[tuple[str, str | None, int]] = set()
    for rule in registry.rules:
        for policy in policies:
            findings.extend(rule.check_policy(policy, ctx))
        for name, members in principals.items():
            for f in rule.check_principal(name, list(members), ctx):
                # A stanza shared by several principals is reported once.
                key = (f.rule_id, f.stanza.file, f.stanza.line)
                if key not in seen:
                    seen.add(key)
                    findings.append(f)
    return findings
