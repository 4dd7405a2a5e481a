"""SARIF 2.1.0 for code-scanning tools (docs/facts/pulumi.md §6).

Plain dicts, not sarif-om (whose suppression field predates the final 2.1.0 names).
`ruleId` is stable across runs (lint id or invariant id), locations are file:line of
the offending stanza, `partialFingerprints` lets GitHub deduplicate between runs.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from policies.report.jsonout import dumps
from policies.report.model import CheckReport, ViaStep, Violation

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SARIF_VERSION = "2.1.0"
_SECURITY_SEVERITY = {"error": "8.0", "warning": "5.0", "note": "2.0"}


@functools.lru_cache(maxsize=4096)
def _uri(file: str) -> str:
    path = Path(file)
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.resolve().as_uri()


def _fingerprint(v: Violation) -> str:
    key = "\x1f".join([v.id, v.principal or "", v.capability or "", v.policy or "", v.message])
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _location(file: str | None, line: int | None, text: str) -> dict[str, object]:
    location: dict[str, object] = {"message": {"text": text}}
    if file:
        location["physicalLocation"] = {
            "artifactLocation": {"uri": _uri(file)},
            "region": {"startLine": max(line or 1, 1)},
        }
    return location


def _code_flow(v: Violation) -> dict[str, object]:
    """The escalation chain as one thread flow: each edge at the stanza that opens it,
    then the final capability (SARIF 2.1.0 §3.36-3.38)."""
    steps: list[ViaStep] = list(v.via)
    locations = [
        {
            "location": _location(
                s.file,
                s.line,
                f"{s.holder}: {s.capability} {s.path} -> {s.edge} -> "
                + ("admin-equivalent" if s.gains is None else ", ".join(s.gains)),
            ),
            "kinds": ["acquire"],
        }
        for s in steps
    ]
    locations.append(
        {"location": _location(None, None, f"{v.capability} {v.path}"), "kinds": ["use"]}
    )
    return {
        "message": {"text": v.chain},
        "threadFlows": [{"locations": locations}],
    }


def render_check(report: CheckReport, *, tool_version: str = "0.1.0") -> str:
    rules = [
        {
            "id": r.id,
            "name": r.name,
            "shortDescription": {"text": r.name},
            "fullDescription": {"text": r.description},
            "help": {"text": r.description},
            "defaultConfiguration": {"level": r.level},
            "properties": {
                "security-severity": _SECURITY_SEVERITY[r.level],
                "tags": ["security", "vault-acl"],
            },
        }
        for r in report.rules
    ]
    index = {r.id: i for i, r in enumerate(report.rules)}
    results = []
    for v in report.findings:
        result: dict[str, object] = {
            "ruleId": v.id,
            "ruleIndex": index[v.id],
            "level": v.level,
            "message": {"text": v.message},
            "partialFingerprints": {"keybrokerFinding/v1": _fingerprint(v)},
            "properties": {
                "principal": v.principal,
                "capability": v.capability,
                "path": v.path,
                "policy": v.policy,
            },
        }
        if v.via:
            result["codeFlows"] = [_code_flow(v)]
        if v.file:
            result["locations"] = [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(v.file)},
                        "region": {"startLine": max(v.line or 1, 1)},
                    }
                }
            ]
        results.append(result)
    doc = {
        "version": SARIF_VERSION,
        "$schema": SARIF_SCHEMA,
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "keybroker-policy-check",
                        "version": tool_version,
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }
    return dumps(doc, depth=4)
