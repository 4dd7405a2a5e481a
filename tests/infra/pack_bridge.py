"""Runs the keybroker policy pack in-process over a mocked program run.

Follows docs/facts/pulumi.md §4: policies are called directly (`policy.validate(args,
report)`), props are the engine's camelCase inputs with secrets unwrapped to plaintext
(as CrossGuard's Analyze does with `deserialize_properties(..., proxy_secrets=False)`),
resource policies see one resource at a time, stack policies see them all.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
)

from policies.pack.rules import POLICIES
from tests.infra.harness import ProgramRun, unwrap


@dataclass(frozen=True)
class Violation:
    policy: str
    level: EnforcementLevel
    urn: str
    message: str


def _opts() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])


def resources_of(run: ProgramRun) -> list[PolicyResource]:
    out = []
    for reg in run.resources:
        props = {k: v for k, v in unwrap(copy.deepcopy(reg.inputs)).items() if k != "__provider"}
        urn = f"urn:pulumi:test::keybroker::{reg.typ}::{reg.name}"
        out.append(PolicyResource(reg.typ, props, urn, reg.name, _opts(), None, None, [], {}))
    return out


def evaluate(
    resources: list[PolicyResource], config: dict[str, dict[str, Any]] | None = None
) -> list[Violation]:
    found: list[Violation] = []
    for policy in POLICIES:
        policy_config = (config or {}).get(policy.name, {})
        level = policy.enforcement_level or EnforcementLevel.ADVISORY

        def report(
            message: str, urn: str | None = None, *, _p: Any = policy, _l: Any = level, _u: str = ""
        ) -> None:
            found.append(Violation(_p.name, _l, urn or _u, message))

        if isinstance(policy, ResourceValidationPolicy):
            for res in resources:
                args = ResourceValidationArgs(
                    res.resource_type,
                    res.props,
                    res.urn,
                    res.name,
                    res.opts,
                    None,
                    policy_config,
                )
                result = policy.validate(
                    args, lambda m, u=None, _res=res: report(m, u, _u=_res.urn)
                )
                if asyncio.iscoroutine(result):
                    asyncio.run(result)
        else:
            result = policy.validate(StackValidationArgs(resources, policy_config), report)
            if asyncio.iscoroutine(result):
                asyncio.run(result)
    return found


def mandatory(violations: list[Violation]) -> list[Violation]:
    return [v for v in violations if v.level == EnforcementLevel.MANDATORY]
