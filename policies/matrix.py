"""`keybroker policy matrix`: principals x path classes x capabilities, decided exactly."""

from __future__ import annotations

import sys
from pathlib import Path

from policies.acl import ACLError
from policies.analysis import PatternError, coverage
from policies.analysis.escalation import chain_text
from policies.check import (
    EXIT_ERROR,
    Inputs,
    check_invariant,
    display_path,
    load_inputs,
    statement,
)
from policies.hcl import PolicyParseError
from policies.invariants import InvariantsError
from policies.report import Cell, MatrixReport, render_matrix
from policies.report.model import InvariantStatus, Reached

MATRIX_CAPABILITIES = ["read", "list", "create", "update", "patch", "delete", "sudo"]
# Rows when the invariants file has no `matrix:` section.
DEFAULT_ROWS: list[tuple[str, str]] = [
    ("site key data", "exchange-keys/data/site/+/+"),
    ("robot key data", "exchange-keys/data/robot/+/+"),
    ("site key metadata", "exchange-keys/metadata/site/+/+"),
    ("robot key metadata", "exchange-keys/metadata/robot/+/+"),
    ("anything under exchange-keys/", "exchange-keys/*"),
    ("auth methods and tokens", "auth/*"),
    ("anything under sys/", "sys/*"),
    ("anything", "*"),
]


def build_matrix(policies_dir: Path | None, invariants_file: Path | None) -> MatrixReport:
    inputs = load_inputs(policies_dir, invariants_file)
    rows = [(c.label, c.path) for c in inputs.invariants.path_classes] or DEFAULT_ROWS
    cells: dict[tuple[str, str], Cell] = {}
    for name, principal in inputs.principals.items():
        for _, pattern in rows:
            cov = coverage(principal, pattern, MATRIX_CAPABILITIES)
            sources: dict[str, list[str]] = {}
            for cap, c in cov.items():
                where = []
                for rule in c.rules:
                    for stanza in rule.sources:
                        if not stanza.is_deny and cap in stanza.capabilities:
                            where.append(f"{display_path(stanza.file)}:{stanza.line}")
                if where:
                    sources[cap] = list(dict.fromkeys(where))
            levels = {cap: c.level for cap, c in cov.items()}
            cells[(name, pattern)] = Cell(
                levels=levels,
                examples={cap: c.granted_example for cap, c in cov.items() if c.granted_example},
                sources=sources,
                reached=_reached(inputs, name, pattern, levels),
            )
    principals = inputs.principals.items()
    return MatrixReport(
        principals=list(inputs.principals),
        principal_policies={n: [p.name for p in pr.policies] for n, pr in principals},
        rows=rows,
        capabilities=MATRIX_CAPABILITIES,
        cells=cells,
        invariants=[
            InvariantStatus(inv.id, statement(inv), check_invariant(inv, inputs))
            for inv in inputs.invariants.invariants
        ],
    )


def _reached(inputs: Inputs, name: str, pattern: str, direct: dict[str, str]) -> dict[str, Reached]:
    """Capabilities held on the class through escalation beyond the direct grants: for
    each, the widest level reached and the shortest chain that reaches it."""
    out: dict[str, Reached] = {}
    for credential in inputs.closure(name)[1:]:
        cov = coverage(inputs.reach.principal(credential), pattern, MATRIX_CAPABILITIES)
        for cap, c in cov.items():
            if c.level == "none" or direct[cap] == "all" or c.granted_example is None:
                continue
            if direct[cap] == "some" and c.level == "some":
                continue  # nothing wider than what the principal already holds
            known = out.get(cap)
            if known is None or (known.level == "some" and c.level == "all"):
                chain = chain_text(name, credential.via)
                out[cap] = Reached(c.level, c.granted_example, chain)
    return out


def run_matrix(policies_dir: Path | None, invariants_file: Path | None, output_format: str) -> int:
    try:
        matrix = build_matrix(policies_dir, invariants_file)
    except (PolicyParseError, InvariantsError, PatternError, ACLError, OSError) as exc:
        print(f"keybroker policy matrix: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    sys.stdout.write(render_matrix(matrix, output_format))
    return 0
