"""Lint rules: registry metadata, and each rule fires on its mistake and not on the fix."""

from __future__ import annotations

import pytest

from policies.hcl import parse_policy
from policies.lint import registry, run_lint


def lint(text: str, admin: frozenset[str] = frozenset()) -> set[str]:
    policy = parse_policy(text, name="p", file="p.hcl")
    return {f.rule_id for f in run_lint([policy], {"p": [policy]}, admin)}


def test_registry_metadata() -> None:
    ids = [r.id for r in registry.rules]
    assert len(ids) >= 10 and len(set(ids)) == len(ids)
    for r in registry.rules:
        assert r.id.startswith("KB") and r.name and r.rationale
        assert "\n" not in r.rationale and len(r.rationale) <= 100
        assert r.severity in {"error", "warning", "note"}


def st(path: str, *caps: str, extra: str = "") -> str:
    quoted = ", ".join(f'"{c}"' for c in caps)
    return f'path "{path}" {{\n  capabilities = [{quoted}]\n{extra}}}\n'


REQ = '  required_parameters = ["x"]\n'
CASES = [
    ("KB101", st("sys/*", "read"), st("sys/health", "read")),
    ("KB101", st("s*", "read"), st("secret/*", "read")),
    ("KB102", st("a/b", "read", "sudo"), st("a/b", "read")),
    ("KB103", 'path "a/b" { policy = "read" }', st("a/b", "read", "list")),
    ("KB104", st("kv/*", "read"), st("kv/data/app/*", "read")),
    ("KB104", st("kv/+/x", "read"), st("kv/data/+", "read")),
    ("KB105", st("sys/policies/acl/x", "update"), st("sys/policies/acl/x", "read")),
    ("KB105", st("auth/approle/role/+", "create"), st("auth/approle/login", "update")),
    ("KB106", st("*", "list"), st("a/*", "list")),
    ("KB106", st("+/x", "read"), st("a/+/x", "read")),
    ("KB107", st("exchange-keys/data/*", "read"), st("exchange-keys/data/site/*", "read")),
    ("KB108", st("exchange-keys/data/s/a/b", "update", extra=REQ), st("t/k", "update", extra=REQ)),
    # Bounds cross only once the two stanzas for "a" merge (lesser wins for both).
    (
        "KB109",
        st("a", "read", extra="  min_wrapping_ttl = 100\n")
        + st("a", "read", extra="  max_wrapping_ttl = 50\n"),
        st("a", "read", extra="  min_wrapping_ttl = 10\n  max_wrapping_ttl = 50\n"),
    ),
    ("KB109", st("a/", "list", extra="  max_wrapping_ttl = 50\n"), st("a", "read")),
    ("KB110", st("auth/token/create", "update"), st("auth/token/create/site", "update")),
    ("KB110", st("auth/token/create/*", "update"), st("auth/token/lookup-self", "read")),
    # `a/*` beats `a/+/*` everywhere (same first wildcard, both globs, fewer `+`).
    ("KB111", st("a/*", "read") + st("a/+/*", "list"), st("a/*", "read") + st("a/+/x", "list")),
    ("KB112", st("a/*", "deny") + st("a/b/c", "read"), st("a/*", "deny") + st("b/c", "read")),
]


@pytest.mark.parametrize(("rule_id", "bad", "good"), CASES)
def test_rule_fires_on_the_mistake_only(rule_id: str, bad: str, good: str) -> None:
    assert rule_id in lint(bad)
    assert rule_id not in lint(good)


def test_admin_policies_may_hold_sudo() -> None:
    text = 'path "sys/mounts/x" { capabilities = ["update", "sudo"] }'
    assert {"KB102", "KB105"} <= lint(text)
    assert not {"KB102", "KB105"} & lint(text, admin=frozenset({"p"}))


def test_finding_points_at_the_stanza_with_a_concrete_path() -> None:
    policy = parse_policy(
        '# comment\n\npath "exchange-keys/+/x" {\n  capabilities = ["read"]\n}\n',
        name="p",
        file="p.hcl",
    )
    (finding,) = [f for f in run_lint([policy], {}) if f.rule_id == "KB104"]
    assert finding.stanza.line == 3 and finding.stanza.file == "p.hcl"
    assert finding.path == "exchange-keys/x/x"


def test_odd_but_valid_keys_do_not_break_the_rules() -> None:
    # Vault takes `*` before the end literally and accepts `//`; lint must not crash.
    text = st("a/*/b", "deny") + st("a//b", "deny") + st("a/*/c", "read") + st("q//r", "read")
    lint(text)
