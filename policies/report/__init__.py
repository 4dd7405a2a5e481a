"""Renderers for `policy check` (text, json, sarif) and `policy matrix` (text, json,
html). They only format the report objects of `policies.report.model`."""

from __future__ import annotations

from policies.report.model import (
    Cell,
    CheckReport,
    Level,
    MatrixReport,
    RuleInfo,
    Violation,
)

CHECK_FORMATS = ("text", "json", "sarif")
MATRIX_FORMATS = ("text", "json", "html")


# Renderers are imported on use: rich (text) costs a few hundred ms to import, which
# a JSON or SARIF run in CI should not pay.


def render_check(report: CheckReport, output_format: str) -> str:
    if output_format == "json":
        from policies.report import json_report

        return json_report.render_check(report)
    if output_format == "sarif":
        from policies.report import sarif

        return sarif.render_check(report)
    if output_format == "text":
        from policies.report import text

        return text.render_check(report)
    raise ValueError(f"unknown format {output_format!r} (expected {', '.join(CHECK_FORMATS)})")


def render_matrix(matrix: MatrixReport, output_format: str) -> str:
    if output_format == "json":
        from policies.report import json_report

        return json_report.render_matrix(matrix)
    if output_format == "html":
        from policies.report import html

        return html.render_matrix(matrix)
    if output_format == "text":
        from policies.report import text

        return text.render_matrix(matrix)
    raise ValueError(f"unknown format {output_format!r} (expected {', '.join(MATRIX_FORMATS)})")


__all__ = [
    "CHECK_FORMATS",
    "MATRIX_FORMATS",
    "Cell",
    "CheckReport",
    "Level",
    "MatrixReport",
    "RuleInfo",
    "Violation",
    "render_check",
    "render_matrix",
]
