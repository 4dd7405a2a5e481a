"""Human-readable reports: rich tables (plain text when not on a terminal)."""

from __future__ import annotations

import io
import shutil

from rich.console import Console
from rich.table import Table

from policies.report.model import CheckReport, MatrixReport

_LEVEL_STYLE = {"error": "bold red", "warning": "yellow", "note": "cyan"}
_CELL_MARK = {"all": "●", "some": "◐", "none": "·"}


def _console(buf: io.StringIO) -> Console:
    width = max(shutil.get_terminal_size((160, 40)).columns, 100)
    return Console(file=buf, width=width, highlight=False, soft_wrap=False)


def render_check(report: CheckReport) -> str:
    buf = io.StringIO()
    console = _console(buf)
    if report.findings:
        table = Table(title="keybroker policy check", show_lines=False)
        # Ids, paths and locations stay whole so they can be copied; "why" wraps.
        for column in ("level", "id", "principal", "cap", "counterexample", "where"):
            table.add_column(column, no_wrap=column in {"id", "counterexample", "where"})
        table.add_column("why", overflow="fold", ratio=1)
        order = {"error": 0, "warning": 1, "note": 2}
        for v in sorted(report.findings, key=lambda v: (order[v.level], v.file or "", v.line or 0)):
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
    if report.invariant_results:
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


def render_matrix(matrix: MatrixReport) -> str:
    buf = io.StringIO()
    console = _console(buf)
    caps = matrix.capabilities
    table = Table(title="keybroker policy matrix: who can do what where")
    table.add_column("path class", overflow="fold")
    table.add_column("pattern", overflow="fold", style="dim")
    for principal in matrix.principals:
        table.add_column(principal, overflow="fold")
    for label, pattern in matrix.rows:
        row = [label, pattern]
        for principal in matrix.principals:
            cell = matrix.cells[(principal, pattern)]
            held = [
                f"{c}{'' if cell.levels[c] == 'all' else '?'}"
                for c in caps
                if cell.levels[c] != "none"
            ]
            row.append(" ".join(held) if held else "·")
        table.add_row(*row)
    console.print(table)
    console.print("cap = on every path of the class; cap? = on some paths only; · = nothing")
    return buf.getvalue()
