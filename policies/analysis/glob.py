"""Vault glob patterns split into segments: the vocabulary of the exact analysis.

A Vault path pattern (docs/facts/vault.md §1.1, §1.4) is a `/`-separated list of
parts. A part that is exactly `+` matches any one segment (the empty one too); a
trailing `*` makes the last part a prefix (`sec*` matches `secret/...`, `a/*` matches
`a/` and anything below it). Every other character is literal, `+` inside a part
(`a+b`) included. The same shapes describe rule keys and invariant patterns, so an
invariant pattern denotes exactly the paths a Vault rule with that key would match.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

WILDCARD = "+"


class PatternError(ValueError):
    """A pattern that Vault would refuse, or that has no defined meaning."""


@dataclass(frozen=True)
class GlobShape:
    """A pattern as segment constraints.

    `parts[i]` constrains segment i: `+` accepts any segment; the last part of a
    prefix pattern (`prefix=True`) accepts segments that start with it; any other part
    accepts only itself. A prefix pattern matches paths with at least `len(parts)`
    segments, any other pattern paths with exactly `len(parts)` segments.
    """

    text: str
    parts: tuple[str, ...]
    prefix: bool

    def __hash__(self) -> int:
        # Equal shapes have equal text; a str caches its hash, a tuple of parts does
        # not (shapes key the analysis' per-principal caches).
        return hash(self.text)

    def accepts(self, i: int, segment: str) -> bool:
        """Does `segment`, at position i < len(parts), satisfy this pattern's part i?"""
        part = self.parts[i]
        if part == WILDCARD:
            return True
        if self.prefix and i == len(self.parts) - 1:
            return segment.startswith(part)
        return segment == part

    def literal_at(self, i: int) -> str | None:
        """The literal text part i compares against, or None for `+` / beyond the end."""
        if i >= len(self.parts) or self.parts[i] == WILDCARD:
            return None
        return self.parts[i]

    def accepts_length(self, n: int) -> bool:
        return n >= len(self.parts) if self.prefix else n == len(self.parts)

    def admits(self, i: int, segment: str) -> bool:
        """Pattern semantics at position i: as `accepts`, but `+` stands for a
        non-empty segment (an account, an exchange), never the empty tail of `a/`."""
        if segment == "" and self.parts[i] == WILDCARD:
            return False
        return self.accepts(i, segment)

    def matches(self, path: str) -> bool:
        """Does the concrete request path fall under this invariant pattern?"""
        segments = path.split("/")
        if not self.accepts_length(len(segments)) or not is_request_path(path):
            return False
        return all(self.admits(i, segments[i]) for i in range(len(self.parts)))


def is_request_path(path: str) -> bool:
    """A path Vault's ACL can see: non-empty, no leading `/` (stripped), no `//`."""
    return bool(path) and not path.startswith("/") and "//" not in path


@lru_cache(maxsize=4096)
def shape_of(pattern: str) -> GlobShape:
    """Split a pattern the way Vault's `parsePaths` and `NewACL` read a rule key."""
    if "+*" in pattern:
        raise PatternError(f"invalid use of wildcards ('+*' is forbidden) in {pattern!r}")
    text = pattern[1:] if pattern.startswith("/") else pattern
    prefix = text.endswith("*")
    body = text[:-1] if prefix else text
    return GlobShape(text=text, parts=tuple(body.split("/")), prefix=prefix)


@lru_cache(maxsize=4096)
def validate_pattern(pattern: str) -> GlobShape:
    """An invariant pattern: Vault's glob syntax, `*` only last, no empty segment inside.

    Request paths never hold an empty segment except a trailing `/` (Go's ServeMux
    redirects `a//b` to `a/b` before Vault sees it), so a pattern that needs one
    would match nothing and is surely a typo.
    """
    shape = shape_of(pattern)
    if not shape.text:
        raise PatternError("empty pattern")
    body = shape.text[:-1] if shape.prefix else shape.text
    if "*" in body:
        raise PatternError(f"'*' is only allowed as the last character of a pattern: {pattern!r}")
    # The last part may be empty: `a/` (a list path) or `a/*` (anything below a/).
    if "" in shape.parts[:-1]:
        raise PatternError(f"empty path segment in pattern {pattern!r}")
    return shape


def example_path(pattern: str, filler: str = "x") -> str:
    """One concrete path the pattern matches: `+` and a trailing `*` become `filler`."""
    shape = shape_of(pattern)
    parts = [filler if p == WILDCARD else p for p in shape.parts]
    if shape.prefix:
        parts[-1] = parts[-1] + filler
    return "/".join(parts)


def may_overlap(a: GlobShape, b: GlobShape) -> bool:
    """A cheap necessary condition for two shapes to match a common path: their
    literals agree wherever both constrain a segment. False means surely disjoint."""
    a_parts, b_parts = a.parts, b.parts
    a_open = len(a_parts) - 1 if a.prefix else -1  # the position of a glob's last part
    b_open = len(b_parts) - 1 if b.prefix else -1
    for i in range(min(len(a_parts), len(b_parts))):
        x, y = a_parts[i], b_parts[i]
        if x in (y, WILDCARD) or y == WILDCARD:
            continue
        if i == a_open:
            ok = y.startswith(x) or (i == b_open and x.startswith(y))
        elif i == b_open:
            ok = x.startswith(y)
        else:
            ok = False
        if not ok:
            return False
    return True
