"""Request-parameter value matching, as Vault's `vault/acl.go` does it.

Functions `valueInAllowedParameterList`, `valueInDeniedParameterList` and
`valueInParameterList` (docs/facts/vault.md §1.6), with the default (non-legacy) list
handling that Vault uses since 1.21 (`VAULT_LEGACY_EXACT_MATCHING_ON_LIST` unset).

Go's `reflect.DeepEqual` is type-strict, Python's `==` is not (`True == 1`,
`1 == 1.0`): `go_deep_equal` restores the Go behaviour for the value shapes a decoded
policy or request can hold (None, bool, int, float, str, list, dict).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class JSONNumber(str):
    """A number exactly as it arrived in a JSON request body, kept as its text.

    Vault decodes HTTP request bodies with `json.Decoder.UseNumber()`, so request numbers
    are `json.Number` values: neither a Go string (a glob never matches them) nor equal
    to an `int` from a policy under `reflect.DeepEqual`. A Vault-compatible server can
    wrap decoded numbers in this type to get the same answers; plain Python ints and
    floats behave like the Go ints and floats of Vault's own unit tests.
    """

    __slots__ = ()


def globbed_strings_match(item: str, val: str) -> bool:
    """`strutil.GlobbedStringsMatch`: `*x*` contains, `*x` suffix, `x*` prefix, else equal."""
    if len(item) < 2:
        return val == item
    starts = item.startswith("*")
    ends = item.endswith("*")
    if starts and ends:
        return item[1:-1] in val
    if starts:
        return val.endswith(item[1:])
    if ends:
        return val.startswith(item[:-1])
    return val == item


def _is_str(value: Any) -> bool:
    return isinstance(value, str) and not isinstance(value, JSONNumber)


def go_deep_equal(a: Any, b: Any) -> bool:
    """`reflect.DeepEqual` for decoded JSON/HCL values: equal types and equal contents."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, JSONNumber) or isinstance(b, JSONNumber):
        return isinstance(a, JSONNumber) and isinstance(b, JSONNumber) and str(a) == str(b)
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if isinstance(a, int) or isinstance(b, int):
        return type(a) is type(b) and a == b
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, float) and isinstance(b, float) and a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        if len(a) != len(b):
            return False
        return all(k in b and go_deep_equal(v, b[k]) for k, v in a.items())
    if _is_list(a) and _is_list(b):
        return len(a) == len(b) and all(go_deep_equal(x, y) for x, y in zip(a, b, strict=True))
    return False


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def value_in_parameter_list(value: Any, items: Sequence[Any]) -> bool:
    """`valueInParameterList`: nil matches nil, strings glob, anything else DeepEqual."""
    for item in items:
        if item is None or value is None:
            if item is None and value is None:
                return True
        elif _is_str(item):
            if _is_str(value) and globbed_strings_match(item, value):
                return True
        elif go_deep_equal(item, value):
            return True
    return False


def parse_comma_string_slice(value: str) -> list[str]:
    """`parseutil.ParseCommaStringSlice` on a string: "" -> [], else split on "," and trim."""
    if value == "":
        return []
    return [part.strip() for part in value.split(",")]


def value_in_allowed_list(value: Any, items: Sequence[Any]) -> bool:
    """`valueInAllowedParameterList`: an empty list allows anything; lists and comma
    strings are allowed when EVERY element is (so `""` is vacuously allowed)."""
    if len(items) == 0:
        return True
    if value_in_parameter_list(value, items):
        return True
    if _is_list(value) and not isinstance(value, JSONNumber):
        return all(value_in_parameter_list(v, items) for v in value)
    if _is_str(value):
        return all(value_in_parameter_list(v, items) for v in parse_comma_string_slice(value))
    return False


def value_in_denied_list(value: Any, items: Sequence[Any]) -> bool:
    """`valueInDeniedParameterList`: an empty list denies anything; lists and comma
    strings are denied when ANY element is."""
    if len(items) == 0:
        return True
    if value_in_parameter_list(value, items):
        return True
    if _is_list(value):
        return any(value_in_parameter_list(v, items) for v in value)
    if _is_str(value):
        return any(value_in_parameter_list(v, items) for v in parse_comma_string_slice(value))
    return False
