"""ACL semantics beyond Vault's test tables: lookup quirks (docs/facts/vault.md §1.4),
merging (§1.5), parameter matching (§1.6), and properties checked with hypothesis."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.acl import ACL, ACLError, candidate_priority
from policies.hcl import parse_policy, render_policy
from policies.model import CAPABILITIES, PathRule, Policy
from policies.params import (
    JSONNumber,
    globbed_strings_match,
    go_deep_equal,
    value_in_allowed_list,
    value_in_denied_list,
)


def acl(*texts: str) -> ACL:
    return ACL.from_texts(texts)


# ------------------------------------------------------------------ root, empty


def test_root_alone_allows_everything_and_cannot_be_combined() -> None:
    root = Policy(name="root", rules=())
    result = ACL([root]).allow_operation("sys/seal", "update")
    assert (result.allowed, result.root_privs, result.is_root) == (True, True, True)
    assert result.granting_policies == ["root"]
    with pytest.raises(ACLError, match="other policies present along with root"):
        ACL([root, parse_policy('path "a" { capabilities = ["read"] }')])


def test_empty_and_deleted_policies_deny_everything_but_help() -> None:
    empty = ACL([None, parse_policy("")])
    assert not empty.allow_operation("secret/x", "read").allowed
    assert empty.allow_operation("secret/x", "help").allowed
    assert empty.capabilities("secret/x") == ["deny"]
    assert empty.select("secret/x", "read") is None


def test_unknown_operation_is_denied() -> None:
    a = acl('path "x" { capabilities = ["read", "update"] }')
    assert not a.allow_operation("x", "frobnicate").allowed
    assert a.allow_operation("x", "renew").allowed  # revoke/renew/rollback need update


# ---------------------------------------------------------------- lookup quirks


def test_exact_rule_beats_any_glob_and_globs_are_plain_prefixes() -> None:
    a = acl(
        'path "secret/foo" { capabilities = ["read"] }\n'
        'path "secret/*" { capabilities = ["update"] }\n'
        'path "sec*" { capabilities = ["delete"] }\n'
        'path "secret/foo/*" { capabilities = ["list"] }'
    )
    assert a.capabilities("secret/foo") == ["read"]
    assert a.capabilities("secret/foobar") == ["update"]
    assert a.capabilities("secretive") == ["delete"]
    assert a.capabilities("secret/foo/x") == ["list"]
    # capabilities() looks up like LIST, which first tries the exact rule without `/`.
    assert a.capabilities("secret/foo/") == ["read"]


def test_list_lookups_trim_the_trailing_slash() -> None:
    """LIST tries the exact rule without `/`, then non-exact rules without `/`."""
    a = acl(
        'path "kv/metadata/site/+" { capabilities = ["list"] }\n'
        'path "kv/exact" { capabilities = ["list"] }'
    )
    assert a.allow_operation("kv/metadata/site/binance/", "list").allowed
    assert not a.allow_operation("kv/metadata/site/binance/", "read").allowed
    assert a.allow_operation("kv/exact/", "list").allowed
    assert not a.allow_operation("kv/exact/", "read").allowed


def test_only_one_rule_applies_never_a_union_across_patterns() -> None:
    a = acl(
        'path "secret/+/x" { capabilities = ["read"] }\n'
        'path "secret/a/*" { capabilities = ["update"] }'
    )
    # prefix `secret/a/` (first glob at 9) outranks `secret/+/x` (first `+` at 7)
    assert a.capabilities("secret/a/x") == ["update"]
    assert a.select("secret/a/x", "read").key == "secret/a/"


def test_candidates_and_priority_explain_select() -> None:
    a = acl(
        'path "foo/+/+/*" { capabilities = ["read"] }\n'
        'path "foo/+/bar/baz" { capabilities = ["update"] }\n'
        'path "foo/*" { capabilities = ["list"] }'
    )
    candidates = a.non_exact_candidates("foo/bar/bar/baz")
    assert {c.key for c in candidates} == {"foo/+/+/*", "foo/+/bar/baz", "foo/"}
    best = max(candidates, key=candidate_priority)
    assert best is a.select("foo/bar/bar/baz", "update")
    assert best.key == "foo/+/bar/baz"


def test_leading_slashes_are_stripped_from_request_paths() -> None:
    assert acl('path "/a/b" { capabilities = ["read"] }').allow_operation("//a/b", "read").allowed


def test_literal_plus_inside_a_segment_is_not_a_wildcard() -> None:
    a = acl('path "foo/a+b" { capabilities = ["read"] }\npath "x/+y" { capabilities = ["read"] }')
    assert a.exact.keys() == {"foo/a+b"} and a.segment.keys() == {"x/+y"}
    assert a.allow_operation("x/+y", "read").allowed
    assert not a.allow_operation("x/zy", "read").allowed


# ----------------------------------------------------------------------- merging


def test_deny_wins_regardless_of_order_and_keeps_sources() -> None:
    grant = 'path "s/*" { capabilities = ["read", "sudo"] }'
    deny = 'path "s/*" { capabilities = ["deny"] }'
    for texts in ((grant, deny), (deny, grant)):
        a = acl(*texts)
        result = a.allow_operation("s/x", "read")
        assert (result.allowed, result.root_privs) == (False, False)
        assert a.capabilities("s/x") == ["deny"]
        assert len(a.prefix["s/"].sources) == 2


def test_merged_wrapping_bounds_that_cross_deny_every_request() -> None:
    a = acl(
        'path "w" { capabilities = ["read"]\n min_wrapping_ttl = 100\n max_wrapping_ttl = 200 }',
        'path "w" { capabilities = ["read"]\n min_wrapping_ttl = 300\n max_wrapping_ttl = 400 }',
    )
    rule = a.exact["w"]
    assert (rule.min_wrapping_ttl, rule.max_wrapping_ttl) == (100, 200)
    assert a.allow_operation("w", "read", wrap_ttl=150).allowed
    b = acl(
        'path "w" { capabilities = ["read"]\n max_wrapping_ttl = 200 }',
        'path "w" { capabilities = ["read"]\n min_wrapping_ttl = 300 }',
    )
    assert not any(b.allow_operation("w", "read", wrap_ttl=t).allowed for t in (100, 250, 350))


def test_parameter_checks_apply_only_to_data_operations() -> None:
    a = acl('path "p" { capabilities = ["read", "list", "delete"]\n required_parameters = ["X"] }')
    assert not a.allow_operation("p", "read").allowed
    assert not a.allow_operation("p", "read", {"X": 1}).allowed  # looked up as "x"
    assert a.allow_operation("p", "read", {"x": 1}).allowed
    assert a.allow_operation("p", "list").allowed
    assert a.allow_operation("p", "delete").allowed


# ------------------------------------------------------------- value matching


@pytest.mark.parametrize(
    ("item", "value", "expected"),
    [
        ("*", "*", True),
        ("*", "x", False),
        ("a*", "abc", True),
        ("*c", "abc", True),
        ("*b*", "abc", True),
        ("**", "", True),
        ("abc", "abc", True),
        ("a*", "ba", False),
    ],
)
def test_globbed_strings_match(item: str, value: str, expected: bool) -> None:
    assert globbed_strings_match(item, value) is expected


def test_go_deep_equal_is_type_strict() -> None:
    assert not go_deep_equal(True, 1)
    assert not go_deep_equal(1, 1.0)
    assert not go_deep_equal(0, False)
    assert go_deep_equal({"a": [1, "b"]}, {"a": [1, "b"]})
    assert not go_deep_equal({"a": 1}, {"a": 1, "b": 2})
    assert go_deep_equal(None, None) and not go_deep_equal(None, "")


def test_lists_and_comma_strings() -> None:
    allowed = ["good", "fine*"]
    assert value_in_allowed_list(["good", "fine-ish"], allowed)
    assert not value_in_allowed_list(["good", "bad"], allowed)
    assert value_in_allowed_list("good, finer", allowed)
    assert value_in_allowed_list("", allowed)  # "" splits to [] (vacuously allowed)
    assert value_in_allowed_list([], allowed)
    assert value_in_denied_list("ok,bad", ["bad"])
    assert value_in_denied_list(["ok", "bad"], ["bad"])
    assert not value_in_denied_list([], ["bad"])
    assert value_in_denied_list("anything", [])


def test_json_numbers_behave_like_vault_over_http() -> None:
    """Vault decodes HTTP bodies with UseNumber: json.Number never equals a policy int
    and is not a string for globbing."""
    assert not value_in_allowed_list(JSONNumber("1"), [1])
    assert not value_in_allowed_list(JSONNumber("1"), ["*"])
    assert value_in_allowed_list(1, [1])


# ------------------------------------------------------------------ properties

SEGMENTS = st.sampled_from(["a", "b", "+", "ab", ""])
CAPS = st.sets(st.sampled_from(CAPABILITIES), max_size=4)


@st.composite
def rule_paths(draw: st.DrawFn) -> str:
    path = "/".join(draw(st.lists(SEGMENTS, min_size=1, max_size=4)))
    if draw(st.booleans()) and not path.endswith("+"):
        path += "*"
    return path


@st.composite
def policy_texts(draw: st.DrawFn) -> str:
    stanzas = []
    for _ in range(draw(st.integers(1, 5))):
        caps = sorted(draw(CAPS)) or ["deny"]
        if draw(st.integers(0, 5)) == 0:
            caps = ["deny"]
        quoted = ", ".join(f'"{c}"' for c in caps)
        stanzas.append(f'path "{draw(rule_paths())}" {{ capabilities = [{quoted}] }}')
    return "\n".join(stanzas)


REQUEST_PATHS = st.lists(st.sampled_from(["a", "b", "ab", "abc", ""]), min_size=1, max_size=5).map(
    "/".join
)


@settings(max_examples=80, deadline=None)
@given(st.lists(policy_texts(), min_size=1, max_size=4), REQUEST_PATHS)
def test_decisions_do_not_depend_on_policy_order(texts: list[str], path: str) -> None:
    forward, backward = acl(*texts), acl(*reversed(texts))
    assert forward.capabilities(path) == backward.capabilities(path)
    for op in ("read", "list", "update", "create", "delete", "patch", "recover"):
        assert (
            forward.allow_operation(path, op).allowed == backward.allow_operation(path, op).allowed
        )


@settings(max_examples=80, deadline=None)
@given(st.lists(policy_texts(), min_size=1, max_size=3), REQUEST_PATHS)
def test_selected_rule_matches_and_exact_rules_win(texts: list[str], path: str) -> None:
    a = acl(*texts)
    rule = a.select(path, "read")
    path = path.lstrip("/")  # select() strips leading slashes like AllowOperation
    if path in a.exact:
        assert rule is a.exact[path]
    elif rule is not None:
        assert rule.matches(path)
        assert rule is max(a.non_exact_candidates(path), key=candidate_priority)
    else:
        assert a.non_exact_candidates(path) == []


SCALARS = st.one_of(
    st.text(max_size=6),
    st.integers(-1000, 1000),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6).filter(
        lambda f: "e" not in repr(f)
    ),
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.text(min_size=1, max_size=4), SCALARS, max_size=3),
)
PARAMS = st.dictionaries(
    st.text(alphabet="abcxyz_*", min_size=1, max_size=5), st.lists(VALUES, max_size=3), max_size=3
)


@st.composite
def path_rules(draw: st.DrawFn) -> PathRule:
    path = draw(rule_paths())
    caps = draw(CAPS)
    if not caps or draw(st.integers(0, 6)) == 0:
        return PathRule(path=path, capabilities=frozenset({"deny"}))
    low = draw(st.integers(0, 600))
    high = draw(st.one_of(st.just(0), st.integers(max(low, 1), 1200)))
    return PathRule(
        path=path,
        capabilities=frozenset(caps),
        allowed_parameters=draw(st.one_of(st.none(), PARAMS)),
        denied_parameters=draw(st.one_of(st.none(), PARAMS)),
        required_parameters=tuple(draw(st.lists(st.text(max_size=5), max_size=2))),
        min_wrapping_ttl=float(low),
        max_wrapping_ttl=float(high),
        mfa_methods=tuple(draw(st.lists(st.text(max_size=5), max_size=2))),
    )


def _comparable(rule: PathRule) -> tuple[Any, ...]:
    return (
        rule.path,
        rule.capabilities,
        rule.allowed_parameters,
        rule.denied_parameters,
        rule.required_parameters,
        rule.min_wrapping_ttl,
        rule.max_wrapping_ttl,
        rule.mfa_methods,
    )


@settings(max_examples=120, deadline=None)
@given(st.text(alphabet="abc-_", max_size=6), st.lists(path_rules(), max_size=4))
def test_parse_of_render_round_trips(name: str, rules: list[PathRule]) -> None:
    policy = Policy(name=name, rules=tuple(rules))
    parsed = parse_policy(render_policy(policy))
    assert parsed.name == name
    assert [_comparable(r) for r in parsed.rules] == [_comparable(r) for r in rules]
    for got, original in zip(parsed.rules, rules, strict=True):
        # `==` above treats True == 1; Go's DeepEqual (and so Vault) does not.
        assert go_deep_equal(got.allowed_parameters, original.allowed_parameters)
        assert go_deep_equal(got.denied_parameters, original.denied_parameters)


@settings(max_examples=80, deadline=None)
@given(st.lists(policy_texts(), min_size=1, max_size=4), REQUEST_PATHS)
def test_segment_index_finds_exactly_the_matching_rules(texts: list[str], path: str) -> None:
    """The segment trie is only an index: it returns what testing every rule returns."""
    a = acl(*texts)
    expected = {r.key for r in a.segment.values() if r.matches(path)}
    found = [c.key for c in a.non_exact_candidates(path) if c.kind == "segment"]
    assert sorted(found) == sorted(expected)
