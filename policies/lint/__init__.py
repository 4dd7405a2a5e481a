"""Built-in lint rules for Vault ACL policies (ids KB1xx), see docs/policy-checks.md."""

from policies.lint import rules as _rules  # noqa: F401  (registers the rules)
from policies.lint.base import LintContext, LintFinding, LintRule, Severity, registry
from policies.lint.runner import kv_v2_mounts, run_lint

__all__ = [
    "LintContext",
    "LintFinding",
    "LintRule",
    "Severity",
    "kv_v2_mounts",
    "registry",
    "run_lint",
]
