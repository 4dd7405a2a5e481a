"""Exact analysis of Vault ACL policies over glob patterns (see docs/policy-checks.md).

`Principal(name, policies)` compiles the policies with the one ACL evaluator;
`find_granted` answers `deny` invariants, `find_missing` answers `allow` invariants,
`coverage` feeds the access matrix. Answers are exact: no sampling.
"""

from policies.analysis.exact import (
    Counterexample,
    Coverage,
    Principal,
    coverage,
    find_granted,
    find_missing,
    granted_on,
    list_path,
)
from policies.analysis.glob import GlobShape, PatternError, shape_of, validate_pattern

__all__ = [
    "Counterexample",
    "Coverage",
    "GlobShape",
    "PatternError",
    "Principal",
    "coverage",
    "find_granted",
    "find_missing",
    "granted_on",
    "list_path",
    "shape_of",
    "validate_pattern",
]
