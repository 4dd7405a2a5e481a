"""What makes `policy check` fast must not change an answer (docs/policy-checks.md,
Performance): answers shared between principals, and an enumeration that leaves no
garbage for the collector the command pauses."""

from __future__ import annotations

import gc

import pytest

from policies.analysis import Principal, find_granted, find_missing
from policies.analysis.classes import representatives
from policies.analysis.exact import clear_answer_cache
from policies.check import gc_paused, run_check
from policies.hcl import parse_policy


def principal(text: str, name: str = "p") -> Principal:
    return Principal(name, [parse_policy(text, name=name)])


@pytest.fixture(autouse=True)
def _cold() -> None:
    clear_answer_cache()


def test_allow_answer_not_shared_with_a_rule_that_requires_parameters() -> None:
    # Same key, same capabilities: only `required_parameters` tells them apart, and a
    # plain request (no parameters) is refused on the first.
    strict = principal(
        'path "a/*" {\n  capabilities = ["read"]\n  required_parameters = ["v"]\n}\n'
    )
    plain = principal('path "a/*" { capabilities = ["read"] }\n')
    assert find_missing(strict, "a/*", ["read"]) is not None
    assert find_missing(plain, "a/*", ["read"]) is None
    clear_answer_cache()
    assert find_missing(plain, "a/*", ["read"]) is None
    assert find_missing(strict, "a/*", ["read"]) is not None


def test_allow_answer_not_shared_with_a_wrapping_bound() -> None:
    wrapped = principal('path "a/*" {\n  capabilities = ["read"]\n  min_wrapping_ttl = "1s"\n}\n')
    plain = principal('path "a/*" { capabilities = ["read"] }\n')
    assert find_missing(plain, "a/*", ["read"]) is None
    assert find_missing(wrapped, "a/*", ["read"]) is not None


def test_shared_answer_blames_each_principal_its_own_rule() -> None:
    # Same relevant rules for `read` (the extra `list` on one is not asked about): one
    # enumeration, but each counterexample names the asker's own stanza.
    first = principal('path "a/*" { capabilities = ["read"] }\n', "first")
    second = principal('path "a/*" { capabilities = ["read", "list"] }\n', "second")
    one = find_granted(first, "a/*", ["read"])
    two = find_granted(second, "a/*", ["read"])
    assert one is not None and two is not None
    assert (one.path, one.capability) == (two.path, two.capability)
    assert one.rule is not None and one.rule.sources[0].policy == "first"
    assert two.rule is not None and two.rule.sources[0].policy == "second"


def test_shared_deny_answer_distinguishes_a_deny_on_the_same_key() -> None:
    grants = principal('path "a/b" { capabilities = ["read"] }\n', "grants")
    denies = principal('path "a/b" { capabilities = ["deny"] }\n', "denies")
    assert find_granted(grants, "a/*", ["read"]) is not None
    assert find_granted(denies, "a/*", ["read"]) is None


def test_enumeration_leaves_no_reference_cycles() -> None:
    # The command pauses the cyclic collector; an enumeration that made a cycle each
    # time (a recursive closure did) would pile up garbage for the collector instead.
    p = principal(
        'path "a/+/c" { capabilities = ["read"] }\npath "a/b/*" { capabilities = ["list"] }\n'
    )
    shape = p.shapes[0]
    gc.collect()
    with gc_paused():
        for _ in range(50):
            assert list(representatives(shape, p.shapes))
            find_granted(p, "a/*", ["read", "list"])
        clear_answer_cache()
        assert gc.collect() == 0


def test_command_restores_the_collector(capsys: pytest.CaptureFixture[str]) -> None:
    assert gc.isenabled()
    assert run_check(None, None, "json") == 0
    assert gc.isenabled()
    assert '"passed": true' in capsys.readouterr().out
    gc.disable()
    try:
        run_check(None, None, "json")
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()
