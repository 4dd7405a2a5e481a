"""The policy parser: Vault's `vault/policy_test.go` cases plus HCL1/JSON syntax."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.hcl import PolicyParseError, parse_duration_second, parse_policy
from policies.model import PathRule

VECTORS = Path(__file__).parent / "vectors"

# hashicorp/vault vault/policy_test.go@8272fcfc `rawPolicy`, after strings.TrimSpace.
RAW_POLICY = (VECTORS / "policy_parse_raw.hcl").read_text().strip()


def _caps(rule: PathRule) -> list[str]:
    return sorted(rule.capabilities)


def test_policy_parse_matches_vault_policy_test() -> None:
    """TestPolicy_Parse: one PathRule per stanza, in order, with Vault's field values."""
    expected = json.loads((VECTORS / "policy_parse.json").read_text())
    policy = parse_policy(RAW_POLICY)
    assert policy.name == expected["name"]
    got = [
        {
            "key": r.acl_key,
            "kind": r.acl_kind,
            "capabilities": _caps(r),
            "legacy_policy": r.legacy_policy,
            "min_wrapping_ttl": r.min_wrapping_ttl,
            "max_wrapping_ttl": r.max_wrapping_ttl,
            "allowed_parameters": r.allowed_parameters,
            "denied_parameters": r.denied_parameters,
            "required_parameters": list(r.required_parameters),
            "mfa_methods": list(r.mfa_methods),
        }
        for r in policy.rules
    ]
    assert got == expected["rules"]


def test_policy_parse_line_numbers_are_the_path_keywords() -> None:
    policy = parse_policy(RAW_POLICY, file="dev.hcl")
    lines = [i for i, line in enumerate(RAW_POLICY.splitlines(), 1) if line.startswith("path ")]
    assert [r.line for r in policy.rules] == lines
    assert {r.file for r in policy.rules} == {"dev.hcl"}
    assert {r.policy for r in policy.rules} == {"dev"}


@pytest.mark.parametrize(
    "vector",
    json.loads((VECTORS / "policy_parse_errors.json").read_text()),
    ids=lambda v: v["source"].rsplit(" ", 1)[-1],
)
def test_parse_error_vector(vector: dict[str, Any]) -> None:
    with pytest.raises(PolicyParseError) as info:
        parse_policy(vector["policy"], file="bad.hcl")
    err = info.value
    for fragment in vector["error_contains"]:
        assert fragment in err.vault_message
    assert err.line == vector["line"]
    assert err.file == "bad.hcl"
    assert str(err).startswith(f"bad.hcl:{vector['line']}: failed to parse policy: ")


def test_invalid_key_line_is_that_of_the_assignment() -> None:
    """CheckHCLKeys reports `item.Assign.Line`, the line of the `=`."""
    with pytest.raises(PolicyParseError) as info:
        parse_policy('path "a" {\n  bogus\n  = ["read"]\n}\n')
    assert 'path "a": invalid key "bogus" on line 3' in info.value.vault_message


def test_duplicate_path_blocks_stay_separate_stanzas() -> None:
    text = (
        'path "a/*" {\n  capabilities = ["read"]\n}\n\npath "a/*" {\n  capabilities = ["list"]\n}\n'
    )
    policy = parse_policy(text)
    assert [(r.path, _caps(r), r.line) for r in policy.rules] == [
        ("a/*", ["read"], 1),
        ("a/*", ["list"], 5),
    ]


def test_deny_short_circuits_the_rest_of_the_stanza() -> None:
    """policy.go: `deny` -> `goto PathFinished`: later capabilities, parameters and
    wrapping TTLs of that stanza are neither validated nor kept."""
    rule = parse_policy(
        'path "x" {\n capabilities = ["deny", "banana"]\n'
        ' allowed_parameters = { "a" = [] }\n min_wrapping_ttl = "nonsense"\n}'
    ).rules[0]
    assert rule.capabilities == frozenset({"deny"})
    assert rule.allowed_parameters is None and rule.min_wrapping_ttl == 0
    with pytest.raises(PolicyParseError, match='invalid capability "banana"'):
        parse_policy('path "x" { capabilities = ["read", "banana", "deny"] }')


def test_legacy_policy_expands_and_combines_with_capabilities() -> None:
    rules = parse_policy(
        'path "a" { policy = "read"\n capabilities = ["update"] }\n'
        'path "b" { policy = "write" }\npath "c" { policy = "sudo" }\n'
        'path "d" { policy = "deny"\n capabilities = ["read"] }\n'
    ).rules
    assert [_caps(r) for r in rules] == [
        ["list", "read", "update"],
        ["create", "delete", "list", "read", "update"],
        ["create", "delete", "list", "read", "sudo", "update"],
        ["deny"],
    ]
    assert [r.legacy_policy for r in rules] == ["read", "write", "sudo", "deny"]


def test_parameter_keys_are_lower_cased_and_values_typed() -> None:
    rule = parse_policy(
        'path "p" {\n capabilities = ["update"]\n allowed_parameters = {\n'
        '  "MiXed" = ["v", 1, 2.5, true, {"k" = "v"}, [1, 2],]\n }\n'
        " denied_parameters = {}\n}"
    ).rules[0]
    assert rule.allowed_parameters == {"mixed": ["v", 1, 2.5, True, {"k": "v"}, [1, 2]]}
    assert rule.denied_parameters == {}
    value = rule.allowed_parameters["mixed"]
    assert type(value[1]) is int and type(value[3]) is bool


def test_repeated_keys_accumulate_like_hcl_decoder() -> None:
    """HCL's decoder appends repeated list keys and merges repeated maps."""
    rule = parse_policy(
        'path "p" {\n capabilities = ["read"]\n capabilities = ["list"]\n'
        ' allowed_parameters = { "a" = ["x"] }\n allowed_parameters = { "a" = ["y"], "b" = [] }\n}'
    ).rules[0]
    assert _caps(rule) == ["list", "read"]
    assert rule.allowed_parameters == {"a": ["x", "y"], "b": []}


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        (300, 300),
        ("300", 300),
        ("300s", 300),
        ("5m", 300),
        ("1h", 3600),
        ("1h30m", 5400),
        ("1.5h", 5400),
        ("250ms", 0.25),
        ("2d", 172800),
        ("", 0),
        ("-5", -5),
        ("1m0.5s", 60.5),
        (2.9, 2),  # Go: time.Duration(2.9) * time.Second truncates
    ],
)
def test_wrapping_ttl_forms(raw: Any, seconds: float) -> None:
    assert parse_duration_second(raw) == pytest.approx(seconds)


@pytest.mark.parametrize("raw", ["abc", "5x", "1h-", True, "s", "1_0", ".s", "xd", [1]])
def test_bad_wrapping_ttl_is_a_parse_error(raw: Any) -> None:
    value = json.dumps(raw)
    with pytest.raises(PolicyParseError, match="error parsing max_wrapping_ttl"):
        parse_policy(f'path "p" {{\n capabilities = ["read"]\n max_wrapping_ttl = {value}\n}}')


def test_comments_heredocs_and_idents() -> None:
    text = """
# hash comment
// slash comment
/* block
   comment */
path "secret/data/*" { # trailing
  comment = <<EOT
  free text, "quotes" and } braces
EOT
  capabilities = [
    "read",   // the data
    "list",
  ]
}
path secret_ident {
  comment = <<-EOT
    indented
    EOT
  capabilities = ["read"]
}
"""
    rules = parse_policy(text).rules
    assert [(r.path, _caps(r), r.line) for r in rules] == [
        ("secret/data/*", ["list", "read"], 6),
        ("secret_ident", ["read"], 15),
    ]


def test_string_escapes_and_leading_slash() -> None:
    rule = parse_policy('path "/a\\u0062c/\\"q\\"" { capabilities = ["read"] }').rules[0]
    assert rule.path == 'abc/"q"'


def test_plus_star_is_forbidden_with_the_stripped_path() -> None:
    with pytest.raises(PolicyParseError) as info:
        parse_policy('path "/x/+*" { capabilities = ["read"] }')
    assert info.value.vault_message == "path \"x/+*\": invalid use of wildcards ('+*' is forbidden)"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('path "a" { capabilities = "read" }', "unknown slice type"),
        ('path "a" {\n capabilities = ["read"]\n', "object expected closing RBRACE"),
        ('path "a {\n}', "literal not terminated"),
        ('path "a" "b" = {}', "nested object expected"),
        ("path = [1,,]", "unexpected token while parsing list"),
        ('path "a" { capabilities = [1] }', 'invalid capability "1"'),
        ('name = "x"\npath = 3', "cannot check HCL keys"),
        ('path "a" { control_group = {} }', "no control group factors provided"),
    ],
)
def test_malformed_documents(text: str, fragment: str) -> None:
    with pytest.raises(PolicyParseError) as info:
        parse_policy(text)
    assert fragment in info.value.vault_message
    assert info.value.line is not None


def test_json_policy_is_equivalent_and_keeps_lines() -> None:
    text = json.dumps(
        {
            "name": "j",
            "path": {
                "secret/*": {"capabilities": ["read"], "allowed_parameters": {"K": ["v"]}},
                "secret/x": {"policy": "write", "min_wrapping_ttl": "1m"},
            },
        },
        indent=2,
    )
    policy = parse_policy(text)
    assert policy.name == "j"
    assert [(r.path, _caps(r)) for r in policy.rules] == [
        ("secret/*", ["read"]),
        ("secret/x", ["create", "delete", "list", "read", "update"]),
    ]
    assert policy.rules[0].allowed_parameters == {"k": ["v"]}
    assert policy.rules[1].min_wrapping_ttl == 60
    lines = text.splitlines()
    expected = [
        next(i for i, x in enumerate(lines, 1) if f'"{r.path}": {{' in x) for r in policy.rules
    ]
    assert [r.line for r in policy.rules] == expected == [4, 14]


def test_json_list_form_keeps_duplicate_paths() -> None:
    text = '{"path": [{"a": {"capabilities": ["read"]}}, {"a": {"capabilities": ["deny"]}}]}'
    assert [_caps(r) for r in parse_policy(text).rules] == [["read"], ["deny"]]


def test_name_argument_overrides_document_name() -> None:
    assert parse_policy('name = "inside"', name="outside").name == "outside"
    assert parse_policy('name = "inside"').name == "inside"
    assert parse_policy("").rules == ()


HCL_TOKENS = ["path", "name", "capabilities", "policy", '"read"', '"a/*"', "<<EOF\n", "EOF", "1"]
HCL_CHARS = st.sampled_from([*'{}[]=:,"\\#/*<-\n \t+.', *HCL_TOKENS, "true"])


@settings(max_examples=300, deadline=None)
@given(st.lists(HCL_CHARS, max_size=40).map("".join))
def test_any_text_parses_or_fails_with_a_typed_error(text: str) -> None:
    """Bad input never escapes as anything but PolicyParseError (with a line)."""
    try:
        parse_policy(text, file="fuzz.hcl")
    except PolicyParseError as exc:
        assert exc.file == "fuzz.hcl"
        assert str(exc).startswith("fuzz.hcl")


@settings(max_examples=150, deadline=None)
@given(
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5)),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=10,
    )
)
def test_any_json_document_parses_or_fails_with_a_typed_error(document: Any) -> None:
    with contextlib.suppress(PolicyParseError):
        parse_policy(json.dumps({"path": {"p": document}}))


DEEP = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize(
    "text",
    [
        'path "a" { allowed_parameters = { "k" = ' + DEEP + " } }",
        '{"path": {"a": {"allowed_parameters": {"k": ' + DEEP + "}}}}",
    ],
    ids=["hcl", "json"],
)
def test_hostile_nesting_is_a_parse_error(text: str) -> None:
    with pytest.raises(PolicyParseError, match="nest deeper than 64 levels"):
        parse_policy(text)


CONTROL_GROUP = """
path "secret/foo" {
  capabilities = ["read"]
  control_group = {
    ttl = "4h"
    factor "ops_manager" {
      %s
    }
  }
}
"""


@pytest.mark.parametrize(
    ("factor", "error"),
    [
        ('identity {\n group_names = ["managers"]\n approvals = 1\n }', None),
        (
            'identity {\n group_ids = ["g"]\n approvals = 2\n }\n'
            ' controlled_capabilities = ["read"]',
            None,
        ),
        ('identity {\n group_names = ["managers"]\n approvals = 0\n }', "approvals > 0"),
        ("identity {\n approvals = 1\n }", "more than one identity group"),
        ('controlled_capabilities = ["read"]', "no control_group factor provided"),
        (
            'identity {\n group_names = ["m"]\n approvals = 1\n }\n'
            ' controlled_capabilities = ["update"]',
            "must be a subset of the policy's capabilities",
        ),
    ],
)
def test_control_group_definitions_are_validated(factor: str, error: str | None) -> None:
    """policy.go validates control groups (Vault Enterprise) even though this engine,
    like Vault's OSS ACL, does not evaluate them."""
    text = CONTROL_GROUP % factor
    if error is None:
        assert parse_policy(text).rules[0].capabilities == frozenset({"read"})
    else:
        with pytest.raises(PolicyParseError, match=error):
            parse_policy(text)
