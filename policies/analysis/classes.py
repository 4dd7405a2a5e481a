"""Finitely many representative paths that stand for every concrete path of a pattern.

Why this is exact (the argument docs/policy-checks.md spells out):

Every rule key and every pattern is a `GlobShape`: per segment position, a part that
is `+` (anything), a literal the segment must equal, or (last part of a glob) a
literal the segment must start with; plus a segment-count condition (`== m` or
`>= m`). Vault decides a request from which rules match the request path and, for
`list`, the path with a `/` appended or removed (docs/facts/vault.md §1.4); rule
priority depends on the keys only. So two paths that every shape treats alike at
every position, with the same segment count (up to a bound) and the same
"last segment empty" flag, get the same answer from the evaluator.

At one position, let P be the literals of the shapes still able to match, plus ""
and the pattern's own literal. A segment s is characterised by which members of P
it equals and which it starts with. Take x = the longest member of P that s starts
with. Either s == x, or s starts with exactly the members of P that x + f starts
with, where f is a character that occurs in no member of P (so no longer literal can
be a prefix of x + f), and equals none of them. Hence {x, x + f : x in P} covers
every class; duplicates (same answers for every live shape) are dropped.

Segment counts: with M the most parts of any live shape, a path of M + 2 or more
segments, and its `list` variants (one segment more or less), is longer than every
exact or non-glob key and satisfies every `>=` condition, so all such lengths behave
alike and M + 2 stands for them.

The enumeration walks positions depth first and drops a shape as soon as a chosen
segment contradicts it, so only combinations some rule can tell apart are built;
where no live shape constrains a position, one filler (and the empty segment, when
it can be last) stands for every segment.

Request paths: no leading "/" (Vault strips it), no empty segment except a trailing
one (`a//b` never reaches Vault's ACL), so the empty segment is only ever tried last.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence

from policies.analysis.glob import WILDCARD, GlobShape

# Preferred filler characters, so counterexamples read like `.../robot/x/x`.
_FRESH = "xyzqkjvw0123456789_~"


def _fresh_char(literals: set[str]) -> str:
    joined = "".join(literals)
    if _FRESH[0] not in joined:  # the common case, without building a set
        return _FRESH[0]
    used = set(joined)
    for ch in _FRESH:
        if ch not in used:
            return ch
    # Beyond the preferred set: any character that is not a path separator.
    code = 0x100
    while chr(code) in used:
        code += 1
    return chr(code)


def _candidates(
    i: int, live: Sequence[GlobShape], pattern: GlobShape, wanted_ids: set[int] | None = None
) -> Iterator[tuple[str, list[GlobShape]]]:
    """One segment per class at position i, with the shapes that stay live after it.

    Lazy: the walk usually stops at the first counterexample, so the classes after the
    one it takes are never built. With `wanted_ids`, non-empty segments that no wanted
    shape accepts are left out (see `representatives`); the empty segment is always
    kept for the caller to judge."""
    constrained: list[GlobShape] = []
    unconstrained: list[GlobShape] = []
    for s in live:
        (constrained if i < len(s.parts) else unconstrained).append(s)
    own = pattern.literal_at(i)
    pinned = own is not None and not (pattern.prefix and i == len(pattern.parts) - 1)
    if pinned:
        # The pattern fixes this segment: a single class, nothing to choose.
        assert own is not None
        if i == 0 and own == "":
            return
        yield own, [s for s in constrained if s.accepts(i, own)] + unconstrained
        return
    if not constrained:
        # No live rule looks at this segment: one non-empty class, plus the empty one
        # (a trailing "/") where the pattern admits it.
        in_pattern = i < len(pattern.parts)
        if in_pattern and own:
            yield own, unconstrained  # the pattern's own prefix literal, e.g. `sys/audit*`
            return
        yield "x", unconstrained
        if i > 0 and (not in_pattern or own == ""):
            yield "", unconstrained
        return
    # GlobShape.accepts at position i, unrolled: (part, is `+`, is a glob's last part).
    tests = []
    literals = {""}
    for s in constrained:
        part = s.parts[i]
        wild = part == WILDCARD
        tests.append((part, wild, s.prefix and i == len(s.parts) - 1))
        if not wild:
            literals.add(part)
    if own is not None:
        literals.add(own)
    fresh = _fresh_char(literals)
    # Fillers first, then literals, the empty segment last: the first member of each
    # class is the one reported, and `robot/x/x` reads better than `robot//`. ("" is a
    # literal, so `fresh` alone is a filler.)
    middle = sorted(literals | {lit + fresh for lit in literals})
    middle.remove("")
    middle.remove(fresh)
    candidates = [fresh, *middle, ""]
    in_pattern = i < len(pattern.parts)
    seen: set[tuple[bool, ...]] = set()
    screen: list[GlobShape] | None = None  # wanted shapes that look at this segment
    if wanted_ids is not None and not any(id(s) in wanted_ids for s in unconstrained):
        screen = [s for s in constrained if id(s) in wanted_ids]
    for seg in candidates:
        if i == 0 and seg == "":
            continue  # Vault strips leading "/": no request path starts with an empty segment
        if in_pattern and not pattern.admits(i, seg):
            continue
        if screen is not None and seg and not any(s.accepts(i, seg) for s in screen):
            continue
        verdicts = tuple(
            [
                wild or (seg.startswith(part) if glob_end else seg == part)
                for part, wild, glob_end in tests
            ]
        )
        # The empty segment also matters as the last one (list adds or trims a "/").
        signature = (*verdicts, seg == "")
        if signature in seen:
            continue
        seen.add(signature)
        survivors = [s for s, ok in zip(constrained, verdicts, strict=True) if ok]
        yield seg, survivors + unconstrained


def representatives(
    pattern: GlobShape,
    shapes: Sequence[GlobShape],
    wanted: Collection[GlobShape] | None = None,
) -> Iterator[str]:
    """Concrete paths matching `pattern`, at least one per class `shapes` can tell apart.

    `shapes`: every rule key of the principal, and every other pattern whose verdict
    on the path matters (e.g. `except` patterns). Each yielded path matches `pattern`.

    `wanted` (members of `shapes`, by identity): only paths that one of them may match
    are of interest, e.g. the rules that grant a capability when the question is "is it
    ever held?". A branch is cut once no wanted shape accepts its prefix: no path below
    it, nor its LIST variant (one more `/`), can match one. The variant one `/` shorter
    is the parent prefix, so a trailing empty segment is still tried when a wanted
    shape accepted the parent.
    """
    wanted_ids = None if wanted is None else {id(s) for s in wanted}
    start = list(shapes)
    yield from _walk(pattern, wanted_ids, 0, [], start, _any_wanted(wanted_ids, start))


def _any_wanted(wanted_ids: set[int] | None, live: list[GlobShape]) -> bool:
    return wanted_ids is None or any(id(s) in wanted_ids for s in live)


# A module-level function, not a closure: a recursive closure refers to itself through
# its cell, so every enumeration would leave a reference cycle for the collector.
def _walk(
    pattern: GlobShape,
    wanted_ids: set[int] | None,
    i: int,
    prefix: list[str],
    live: list[GlobShape],
    parent: bool,
) -> Iterator[str]:
    bound = max([len(s.parts) for s in live] + [len(pattern.parts)]) + 2
    for seg, survivors in _candidates(i, live, pattern, wanted_ids):
        here = _any_wanted(wanted_ids, survivors)
        if not here and not (seg == "" and parent):
            continue
        segments = [*prefix, seg]
        n = i + 1
        if pattern.accepts_length(n):
            yield "/".join(segments)
        # An empty segment can only be the last one (a trailing "/"): no "a//b".
        longer_allowed = seg != "" and (pattern.prefix or n < len(pattern.parts))
        if here and longer_allowed and n < bound:
            yield from _walk(pattern, wanted_ids, i + 1, segments, survivors, here)
