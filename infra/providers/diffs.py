"""The `diff` answer every provider gives: which watched properties changed.

Pulumi asks `diff` whether a resource changes and which properties force a
replacement (docs/facts/pulumi.md §2); the providers never delete before replacing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pulumi import dynamic


def changed(
    olds: dict[str, Any], news: dict[str, Any], keys: Iterable[str], *, blank_is_none: bool = False
) -> list[str]:
    """The `keys` whose values differ; with `blank_is_none`, "" and None count as equal
    (optional inputs that may come back from state either way)."""

    def value(props: dict[str, Any], key: str) -> Any:
        found = props.get(key)
        return (found or None) if blank_is_none else found

    return [k for k in keys if value(olds, k) != value(news, k)]


def diff_result(replaces: list[str], updates: list[str] | None = None) -> dynamic.DiffResult:
    """A change when any key moved; the changed `replaces` keys force a new resource,
    the changed `updates` keys are applied in place."""
    return dynamic.DiffResult(
        changes=bool(replaces or updates), replaces=replaces, delete_before_replace=False
    )
