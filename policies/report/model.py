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
class ViaStep:
    """One escalation edge of a chain: the holder used `capability` on `path` (granted
    by file:line) through `edge`, and so obtained a credential holding `gains`."""

    kind: str  # the route kind, e.g. "token-role", "approle-secret-id", "policy-write"
    edge: str  # e.g. "token role keybroker-site"
    holder: str  # who took the step: the principal, or the policies of a gained token
    capability: str  # e.g. "update", "update+sudo"
    path: str  # a concrete request path where the holder has it
    policy: str | None
    file: str | None
    line: int | None
    gains: tuple[str, ...] | None  # None: any policy (admin-equivalent)
    doc: str
    notes: tuple[str, ...] = ()

    def as_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "edge": self.edge,
            "holder": self.holder,
            "capability": self.capability,
            "path": self.path,
            "policy": self.policy,
            "file": self.file,
            "line": self.line,
            "gains": list(self.gains) if self.gains is not None else "admin-equivalent",
            "doc": self.doc,
            "notes": list(self.notes),
        }


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
    # The escalation chain when the capability is held through another credential
    # (empty: the principal's own token holds it).
    via: tuple[ViaStep, ...] = ()
    chain: str = ""  # the chain in one line: "broker -> token role x -> p -> read a/b"

    def as_json(self) -> dict[str, object]:
        """The record of docs/contracts.md §5 (`policy check --format json`), plus
        `via` (the escalation chain, [] when direct) and `chain` when there is one."""
        doc: dict[str, object] = {
            "id": self.id,
            "principal": self.principal,
            "capability": self.capability,
            "path": self.path,
            "policy": self.policy,
            "file": self.file,
            "line": self.line,
            "message": self.message,
            "via": [step.as_json() for step in self.via],
        }
        if self.chain:
            doc["chain"] = self.chain
        return doc


@dataclass(frozen=True)
class InvariantStatus:
    id: str
    statement: str
    violations: list[Violation]


@dataclass(frozen=True)
class ReachEntry:
    """A credential a principal can obtain, and the chain to it."""

    principal: str
    credential: str  # its policies, or "admin-equivalent"
    chain: str
    via: tuple[ViaStep, ...]


@dataclass
class CheckReport:
    rules: list[RuleInfo]
    findings: list[Violation] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)
    invariants_file: str | None = None
    invariants_checked: int = 0
    invariant_results: list[InvariantStatus] = field(default_factory=list)
    reach: list[ReachEntry] = field(default_factory=list)  # escalations, per principal

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
class Reached:
    """A capability a principal holds on a path class only through escalation."""

    level: str  # "all" | "some": on every path of the class, or on some
    example: str  # a path where it is held
    chain: str  # e.g. "site-backend -> token role keybroker-site -> keybroker-site-read"


@dataclass(frozen=True)
class Cell:
    """One principal on one path class: capability -> "all" | "some" | "none"."""

    levels: dict[str, str]
    examples: dict[str, str]  # capability -> a path where it is held
    sources: dict[str, list[str]]  # capability -> "file:line" of the granting stanzas
    # Effective reach beyond the direct grants: capability -> how it is reached.
    reached: dict[str, Reached] = field(default_factory=dict)


@dataclass
class MatrixReport:
    principals: list[str]
    principal_policies: dict[str, list[str]]
    rows: list[tuple[str, str]]  # (label, pattern)
    capabilities: list[str]
    cells: dict[tuple[str, str], Cell]  # (principal, pattern) -> cell
    invariants: list[InvariantStatus] = field(default_factory=list)
