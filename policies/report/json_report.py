"""JSON reports (docs/contracts.md §5)."""

from __future__ import annotations

from policies.report.jsonout import dumps
from policies.report.model import CheckReport, MatrixReport


def render_check(report: CheckReport) -> str:
    doc = {
        "passed": report.passed,
        "violations": [v.as_json() for v in report.violations],
        # Extensions: findings that do not fail the check, and what was checked.
        "warnings": [v.as_json() for v in report.warnings],
        "checked": {
            "policies": report.policies,
            "invariants": report.invariants_checked,
            "rules": [r.id for r in report.rules],
        },
        "invariants": [
            {"id": inv.id, "statement": inv.statement, "holds": not inv.violations}
            for inv in report.invariant_results
        ],
        # Extension: every credential a principal can obtain beyond its own token.
        "reach": [
            {
                "principal": e.principal,
                "credential": e.credential,
                "chain": e.chain,
                "via": [step.as_json() for step in e.via],
            }
            for e in report.reach
        ],
    }
    return dumps(doc, depth=2)


def render_matrix(matrix: MatrixReport) -> str:
    rows = []
    for label, pattern in matrix.rows:
        access = {}
        for principal in matrix.principals:
            cell = matrix.cells[(principal, pattern)]
            access[principal] = {
                cap: {
                    "level": cell.levels[cap],
                    "example": cell.examples.get(cap),
                    "granted_by": cell.sources.get(cap, []),
                }
                for cap in matrix.capabilities
                if cell.levels[cap] != "none"
            }
            # Effective reach: held only through escalation, with the chain.
            for cap, reached in cell.reached.items():
                access[principal][cap] = {
                    "level": reached.level,
                    "example": reached.example,
                    "granted_by": [],
                    "via": reached.chain,
                }
        rows.append({"label": label, "pattern": pattern, "access": access})
    doc = {
        "principals": {p: matrix.principal_policies[p] for p in matrix.principals},
        "capabilities": matrix.capabilities,
        "rows": rows,
        "invariants": [
            {
                "id": inv.id,
                "statement": inv.statement,
                "holds": not inv.violations,
                "violations": [v.as_json() for v in inv.violations],
            }
            for inv in matrix.invariants
        ],
    }
    return dumps(doc, depth=4)
