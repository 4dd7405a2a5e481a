"""Human-readable reports: rich tables (plain text when not on a terminal)."""

from __future__ import annotations

import io
import shutil

from rich.console import Console
from rich.table import Table

from policies.report.model import CheckReport, MatrixReport, Violation

_LEVEL_STYLE = {"error": "bold red", "warning": "yellow", "note": "cyan"}
_CELL_MARK = {"all": "●", "some": "◐", "none": "·"}
_ORDER = {"error": 0, "warning": 1, "note": 2}
# Above this many rows a rich table costs seconds (it measures every cell to lay out
# the columns); the findings are then printed one per line block, in the same order.
RICH_TABLE_MAX_ROWS = 200


def _console(buf: io.StringIO) -> Console:
    width = max(shutil.get_terminal_size((160, 40)).columns, 100)
    return Console(file=buf, width=width, highlight=False, soft_wrap=False)


def render_check(report: CheckReport) -> str:
    buf = io.StringIO()
    console = _console(buf)
    findings = sorted(report.findings, key=lambda v: (_ORDER[v.level], v.file or "", v.line or 0))
    if len(findings) > RICH_TABLE_MAX_ROWS:
        buf.write(_plain_findings(findings))
    elif findings:
        table = Table(title="keybroker policy check", show_lines=False)
        # Ids, paths and locations stay whole so they can be copied; "why" wraps.
        for column in ("level", "id", "principal", "cap", "counterexample", "where"):
            table.add_column(column, no_wrap=column in {"id", "counterexample", "where"})
        table.add_column("why", overflow="fold", ratio=1)
        for v in findings:
            where = f"{v.file}:{v.line}" if v.file else "-"
            table.add_row(
                f"[{_LEVEL_STYLE[v.level]}]{v.level}[/]",
                v.id,
                v.principal or "-",
                v.capability or "-",
                v.path,
                where,
                v.detail or v.message,
            )
        console.print(table)
    if report.reach:
        console.print("[bold]escalation routes[/] (credentials a principal can obtain):")
        for entry in report.reach:
            console.print(f"  {entry.chain}", markup=False, highlight=False)
    if len(report.invariant_results) > RICH_TABLE_MAX_ROWS:
        for inv in report.invariant_results:
            buf.write(f"{'✗' if inv.violations else '✓'} {inv.id}  {inv.statement}\n")
    elif report.invariant_results:
        proven = Table(title="invariants", show_header=True, box=None, pad_edge=False)
        proven.add_column("")
        proven.add_column("id", no_wrap=True)
        proven.add_column("statement", overflow="fold", ratio=1)
        for inv in report.invariant_results:
            mark = "[bold red]✗[/]" if inv.violations else "[green]✓[/]"
            proven.add_row(mark, inv.id, inv.statement)
        console.print(proven)
    verdict = "[bold green]PASS[/]" if report.passed else "[bold red]FAIL[/]"
    console.print(
        f"{verdict}: {len(report.violations)} violation(s), {len(report.warnings)} warning(s); "
        f"{report.invariants_checked} invariant(s) over {len(report.policies)} "
        f"policies, {sum(1 for r in report.rules if r.id.startswith('KB'))} lint rules"
    )
    return buf.getvalue()


def _plain_findings(findings: list[Violation]) -> str:
    lines = [f"keybroker policy check: {len(findings)} findings"]
    for v in findings:
        where = f"{v.file}:{v.line}" if v.file else "-"
        lines.append(
            f"{v.level}  {v.id}  {v.principal or '-'}  {v.capability or '-'}  {v.path}  {where}"
        )
        lines.append(f"    {v.detail or v.message}")
    return "\n".join(lines) + "\n"


def render_matrix(matrix: MatrixReport) -> str:
    buf = io.StringIO()
    console = _console(buf)
    caps = matrix.capabilities
    table = Table(title="keybroker policy matrix: who can do what where")
    table.add_column("path class", overflow="fold")
    table.add_column("pattern", overflow="fold", style="dim")
    for principal in matrix.principals:
        table.add_column(principal, overflow="fold")
    chains: dict[str, None] = {}
    for label, pattern in matrix.rows:
        row = [label, pattern]
        for principal in matrix.principals:
            cell = matrix.cells[(principal, pattern)]
            held = [
                f"{c}{'' if cell.levels[c] == 'all' else '?'}"
                for c in caps
                if cell.levels[c] != "none"
            ]
            for c in caps:
                if c in cell.reached:
                    reached = cell.reached[c]
                    held.append(f"^{c}{'' if reached.level == 'all' else '?'}")
                    chains.setdefault(reached.chain, None)
            row.append(" ".join(held) if held else "·")
        table.add_row(*row)
    console.print(table)
    console.print(
        "cap = on every path of the class; cap? = on some paths only; · = nothing; "
        "^cap = only through escalation (a token, secret-id or policy the principal "
        "can create):"
    )
    for chain in chains:
        console.print(f"  ^ {chain}", markup=False, highlight=False)
    return buf.getvalue()
