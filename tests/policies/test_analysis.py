"""Exact analysis: Vault's matching quirks (docs/facts/vault.md §1.4), patterns, excepts.

Each expectation is Vault's documented behaviour; the analysis must reproduce it
because it asks the ACL evaluator about representative paths."""

from __future__ import annotations

import pytest

from policies.analysis import (
    PatternError,
    Principal,
    coverage,
    find_granted,
    find_missing,
    validate_pattern,
)
from policies.analysis.classes import representatives
from policies.hcl import parse_policy


def principal(*texts: str) -> Principal:
    return Principal("p", [parse_policy(t, name=f"p{i}") for i, t in enumerate(texts)])


def rule(path: str, *caps: str) -> str:
    quoted = ", ".join(f'"{c}"' for c in caps)
    return f'path "{path}" {{ capabilities = [{quoted}] }}\n'


def test_glob_matches_mid_segment() -> None:
    # `sec*` matches `secret/...` (§1.4 quirk).
    p = principal(rule("sec*", "read"))
    hit = find_granted(p, "secret/*", ["read"])
    assert hit is not None and hit.path.startswith("secret/")
    assert find_granted(p, "other/*", ["read"]) is None


def test_glob_does_not_match_its_own_parent() -> None:
    # `secret/foo/*` does not match `secret/foo`.
    p = principal(rule("secret/foo/*", "read"))
    assert find_granted(p, "secret/foo", ["read"]) is None
    assert find_missing(p, "secret/foo/*", ["read"]) is None


def test_plus_rule_and_trailing_slash() -> None:
    # `a/+` does not match `a/b/` (one segment more), `a/+/` matches `a/b/`.
    p = principal(rule("a/+", "read"))
    assert find_granted(p, "a/+/", ["read"]) is None
    assert find_missing(p, "a/+", ["read"]) is None
    q = principal(rule("a/+/", "read"))
    assert find_missing(q, "a/+/", ["read"]) is None


def test_plus_rule_also_matches_an_empty_last_segment() -> None:
    # Vault's `+` accepts any segment, the empty one too: `a/+/+` reaches `a/b/`.
    p = principal(rule("a/+/+", "update"))
    hit = find_granted(p, "a/*", ["update"], excepts=["a/+/+"])
    assert hit is not None and hit.path.endswith("/")


def test_list_appends_a_slash() -> None:
    # LIST on `a/b` is authorised against `a/b/`; a `+` rule reaches it through the
    # trimmed lookup, an exact `a/b/` rule directly.
    p = principal(rule("a/b/", "list"))
    assert find_missing(p, "a/b", ["list"]) is None
    assert find_granted(p, "a/b", ["read"]) is None


def test_exact_beats_every_glob_including_deny() -> None:
    p = principal(rule("k/*", "deny"), rule("k/a/b", "read"))
    hit = find_granted(p, "k/*", ["read"])
    assert hit is not None and hit.path == "k/a/b"
    assert hit.rule is not None and hit.rule.kind == "exact"


def test_only_one_rule_applies_no_union_across_patterns() -> None:
    # `a/+/c` (read) and `a/b/*` (list): at a/b/c the glob `a/b/*` wins (later first
    # wildcard), so read is NOT held there although another pattern grants it.
    p = principal(rule("a/+/c", "read"), rule("a/b/*", "list"))
    hit = find_missing(p, "a/+/c", ["read"])
    assert hit is not None and hit.path == "a/b/c"


def test_deny_with_higher_priority_holds() -> None:
    p = principal(rule("s/*", "read"), rule("s/robot/*", "deny"))
    assert find_granted(p, "s/robot/*", ["read", "list"]) is None
    assert find_granted(p, "s/site/*", ["read"]) is not None


def test_same_key_across_policies_is_a_union() -> None:
    p = principal(rule("a/+", "read"), rule("a/+", "list"))
    assert find_missing(p, "a/+", ["read", "list"]) is None


def test_sudo_is_the_applied_rules_root_privs() -> None:
    # Either lookup counts: a LIST on `sys/x` is authorised against `sys/x/`.
    p = principal(rule("sys/x/*", "read", "sudo"))
    hit = find_granted(p, "*", ["sudo"])
    assert hit is not None and hit.capability == "sudo" and hit.path.startswith("sys/x")
    assert find_granted(p, "sys/y/*", ["sudo"]) is None


def test_required_parameters_refuse_the_plain_request_only() -> None:
    text = 'path "a/+" {\n  capabilities = ["update"]\n  required_parameters = ["v"]\n}\n'
    p = principal(text)
    assert find_granted(p, "a/+", ["update"]) is not None  # the capability is held
    assert find_missing(p, "a/+", ["update"]) is not None  # but not without "v"


def test_excepts_remove_paths() -> None:
    p = principal(rule("auth/token/lookup-self", "read"))
    assert find_granted(p, "auth/*", ["read"], excepts=["auth/token/lookup-self"]) is None
    assert find_granted(p, "auth/*", ["read"]) is not None


def test_counterexamples_read_like_paths() -> None:
    p = principal(rule("exchange-keys/data/+/+/+", "read"))
    hit = find_granted(p, "exchange-keys/data/robot/*", ["read"])
    assert hit is not None and hit.path == "exchange-keys/data/robot/x/x"


def test_coverage_levels() -> None:
    p = principal(rule("a/b/*", "read"), rule("a/+/*", "list"))
    cov = coverage(p, "a/*", ["read", "list", "update"])
    assert cov["read"].level == "some" and cov["read"].granted_example.startswith("a/b/")
    assert cov["update"].level == "none"
    all_cov = coverage(p, "a/b/*", ["read"])
    assert all_cov["read"].level == "all"


def test_representatives_match_the_pattern_and_are_few() -> None:
    p = principal(rule("a/+/c", "read"), rule("a/b*", "list"), rule("z/*", "read"))
    pattern = validate_pattern("a/*")
    reps = list(representatives(pattern, p.shapes))
    assert reps and all(pattern.matches(r) for r in reps)
    assert len(reps) < 60
    assert not any(r.startswith("z") for r in reps)


@pytest.mark.parametrize("bad", ["", "a/*/b", "a/+*", "a//b", "a*b"])
def test_invalid_patterns(bad: str) -> None:
    with pytest.raises(PatternError):
        validate_pattern(bad)


def test_pattern_plus_is_a_non_empty_segment() -> None:
    shape = validate_pattern("a/+/+")
    assert shape.matches("a/b/c")
    assert not shape.matches("a/b/")
    assert not shape.matches("a//c")
    assert validate_pattern("a/*").matches("a/")


def test_plus_inside_a_segment_is_literal() -> None:
    # `a/b+c` is a plain exact rule; `a/+x/*` is a segment-table rule whose `+x` part
    # only matches literally (docs/facts/vault.md §1.1).
    p = principal(rule("a/b+c", "read"), rule("a/+x/*", "list"))
    hit = find_granted(p, "a/+", ["read"])
    assert hit is not None and hit.path == "a/b+c"
    hit = find_granted(p, "a/*", ["list"])
    assert hit is not None and hit.path.startswith("a/+x")  # LIST on a/+x is a/+x/
    assert find_granted(p, "a/y/*", ["list"]) is None


def test_root_policy_holds_everything() -> None:
    root = Principal("root", [parse_policy("", name="root")])
    hit = find_granted(root, "sys/*", ["sudo"])
    assert hit is not None and hit.rule is None
    assert find_missing(root, "*", ["read", "sudo"]) is None
