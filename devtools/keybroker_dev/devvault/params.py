"""Typed reading of request parameters, with Vault-style 400s for bad values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keybroker_dev.devvault.errors import bad_request


def as_bool(data: Mapping[str, Any], key: str, default: bool) -> bool:
    value = data.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "false", "0"):
        return value.lower() in ("true", "1")
    if isinstance(value, int):
        return value != 0
    raise bad_request(f"invalid value for {key!r}: expected a boolean")


def as_int(data: Mapping[str, Any], key: str, default: int = 0) -> int:
    value = data.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise bad_request(f"invalid value for {key!r}: expected an integer")
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise bad_request(f"invalid value for {key!r}: expected an integer") from exc


def as_str(data: Mapping[str, Any], key: str, default: str = "") -> str:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise bad_request(f"invalid value for {key!r}: expected a string")
    return str(value)


def as_str_list(data: Mapping[str, Any], key: str) -> list[str] | None:
    """A list of strings or a comma-separated string (Vault's CommaStringSlice); None if absent."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise bad_request(f"invalid value for {key!r}: expected a list of strings")


def as_str_map(data: Mapping[str, Any], key: str) -> dict[str, str] | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_request(f"invalid value for {key!r}: expected a map")
    return {str(k): str(v) for k, v in value.items()}
