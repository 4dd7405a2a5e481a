"""Exact analysis vs brute force over random policies and patterns (hypothesis).

The brute force asks the ONE evaluator (`policies.acl.ACL`, via `Principal.may/must`)
about every request path of a finite domain. Rule literals are drawn from {a, ab};
the domain's segments {a, b, aa, ab, abb} hit every class a segment can fall in for
those literals (equal to a or ab, starting with a or ab but longer, starting with
neither), and its depth reaches the longest key + 2, so the domain holds a witness
whenever one exists: the two answers must agree exactly, not only one way.
"""

from __future__ import annotations

import itertools
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies.analysis import Principal, coverage, find_granted, find_missing, validate_pattern
from policies.hcl import parse_policy

LITERALS = ["a", "ab"]
DOMAIN_SEGMENTS = ["a", "b", "aa", "ab", "abb"]
CAPS = ["read", "list", "create", "update", "delete", "sudo"]

part = st.sampled_from([*LITERALS, "+"])


@st.composite
def glob_key(draw: st.DrawFn, max_parts: int = 2) -> str:
    parts = draw(st.lists(part, min_size=1, max_size=max_parts))
    tail = draw(st.sampled_from(["", "", "*", "/*", "/"]))
    key = "/".join(parts) + tail
    return key.replace("+*", "+/*")


@st.composite
def stanza(draw: st.DrawFn) -> str:
    key = draw(glob_key())
    if draw(st.integers(0, 9)) == 0:
        return f'path "{key}" {{ capabilities = ["deny"] }}\n'
    caps = draw(st.lists(st.sampled_from(CAPS), min_size=1, max_size=4, unique=True))
    extra = ""
    roll = draw(st.integers(0, 14))
    # Wrapping bounds refuse the plain request; two stanzas on one key whose merged
    # bounds cross (max < min) refuse every request (docs/facts/vault.md §1.5).
    if roll == 0:
        extra = "  min_wrapping_ttl = 100\n"
    elif roll == 1:
        extra = "  max_wrapping_ttl = 50\n"
    elif roll == 2:
        extra = '  required_parameters = ["p"]\n'  # refuses the plain request only
    quoted = ", ".join(f'"{c}"' for c in caps)
    return f'path "{key}" {{\n  capabilities = [{quoted}]\n{extra}}}\n'


policy_texts = st.lists(
    st.lists(stanza(), min_size=1, max_size=4).map("".join), min_size=1, max_size=2
)


def domain(depth: int) -> list[str]:
    out: list[str] = []
    for n in range(1, depth + 1):
        for segs in itertools.product(DOMAIN_SEGMENTS, repeat=n):
            path = "/".join(segs)
            out += [path, path + "/"]
    return out


def brute(
    principal: Principal,
    pattern: str,
    caps: list[str],
    deny: bool,
    depth: int,
    excepts: list[str],
) -> bool:
    """True when some domain path matching `pattern` (and no except) is a violation."""
    shape = validate_pattern(pattern)
    excluded = [validate_pattern(e) for e in excepts]
    for path in domain(depth):
        if not shape.matches(path) or any(e.matches(path) for e in excluded):
            continue
        for cap in caps:
            if deny and principal.may(path, cap)[0]:
                return True
            if not deny and not principal.must(path, cap)[0]:
                return True
    return False


@settings(
    max_examples=int(os.environ.get("KB_BRUTE_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    texts=policy_texts,
    pattern=glob_key(max_parts=2),
    caps=st.lists(st.sampled_from(CAPS), min_size=1, max_size=3, unique=True),
    deny=st.booleans(),
    excepts=st.lists(glob_key(max_parts=2), max_size=2),
)
def test_exact_analysis_agrees_with_brute_force(
    texts: list[str], pattern: str, caps: list[str], deny: bool, excepts: list[str]
) -> None:
    policies = [parse_policy(t, name=f"p{i}") for i, t in enumerate(texts)]
    principal = Principal("p", policies)
    shapes = [*principal.shapes, *map(validate_pattern, [pattern, *excepts])]
    depth = max(len(s.parts) for s in shapes) + 2
    expected = brute(principal, pattern, caps, deny, depth, excepts)
    finder = find_granted if deny else find_missing
    found = finder(principal, pattern, caps, excepts)
    assert (found is not None) == expected, (texts, pattern, caps, deny, excepts, found)
    if found is not None:
        # The counterexample is a real one: in the pattern, and the evaluator agrees.
        assert validate_pattern(pattern).matches(found.path)
        assert not any(validate_pattern(e).matches(found.path) for e in excepts)
        if deny:
            assert principal.may(found.path, found.capability)[0]
        else:
            assert not principal.must(found.path, found.capability)[0]


@settings(
    max_examples=int(os.environ.get("KB_BRUTE_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(texts=policy_texts, pattern=glob_key(max_parts=2))
def test_matrix_coverage_agrees_with_brute_force(texts: list[str], pattern: str) -> None:
    """`coverage` (the matrix cells) says all/some/none exactly as the brute force."""
    policies = [parse_policy(t, name=f"p{i}") for i, t in enumerate(texts)]
    principal = Principal("p", policies)
    shape = validate_pattern(pattern)
    depth = max(len(s.parts) for s in [*principal.shapes, shape]) + 2
    paths = [p for p in domain(depth) if shape.matches(p)]
    cells = coverage(principal, pattern, CAPS)
    for cap in CAPS:
        held = [principal.may(p, cap)[0] for p in paths]
        expected = "all" if all(held) else "some" if any(held) else "none"
        assert cells[cap].level == expected, (texts, pattern, cap)
