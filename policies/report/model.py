"""What `policy check` and `policy matrix` found, independent of any output format."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Level = Literal["error", "warning", "note"]


@dataclass(frozen=True)
class RuleInfo:
    """A check that can report: a lint rule (KB1xx) or an invariant (its id)."""

    id: str
    name: str
    description: str
    level: Level


@dataclass(frozen=True)
class Violation:
    id: str  # lint rule id or invariant id
    principal: str | None
    capability: str | None
    path: str  # a concrete counterexample path
    policy: str | None
    file: str | None
    line: int | None
    message: str
    level: Level = "error"
    # Why, in a few words, for the text table (the message says it in full).
    detail: str = ""

    def as_json(self) -> dict[str, object]:
        """The record of docs/contracts.md §5 (`policy check --format json`)."""
        return {
            "id": self.id,
            "principal": self.principal,
            "capability": self.capability,
            "path": self.path,
            "policy": self.policy,
            "file": self.file,
            "line": self.line,
            "message": self.message,
        }


@dataclass(frozen=True)
class InvariantStatus:
    id: str
    statement: str
    violations: list[Violation]


@dataclass
class CheckReport:
    rules: list[RuleInfo]
    findings: list[Violation] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)
    invariants_file: str | None = None
    invariants_checked: int = 0
    invariant_results: list[InvariantStatus] = field(default_factory=list)

    @property
    def violations(self) -> list[Violation]:
        return [v for v in self.findings if v.level == "error"]

    @property
    def warnings(self) -> list[Violation]:
        return [v for v in self.findings if v.level != "error"]

    @property
    def passed(self) -> bool:
        return not self.violations


@dataclass(frozen=True)
class Cell:
    """One principal on one path class: capability -> "all" | "some" | "none"."""

    levels: dict[str, str]
    examples: dict[str, str]  # capability -> a path where it is held
    sources: dict[str, list[str]]  # capability -> "file:line" of the granting stanzas


@dataclass
class MatrixReport:
    principals: list[str]
    principal_policies: dict[str, list[str]]
    rows: list[tuple[str, str]]  # (label, pattern)
    capabilities: list[str]
    cells: dict[tuple[str, str], Cell]  # (principal, pattern) -> cell
    invariants: list[InvariantStatus] = field(default_factory=list)
