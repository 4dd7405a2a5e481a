"""Identifier validation (docs/contracts.md §2 "Identifiers").

Every identifier that becomes part of a Vault path goes through here first, so that no
request can name a path outside its own key: no `..`, no `/` (raw or `%2f`), no NUL or
control characters, no look-alike unicode. The checks are allow-lists (ASCII patterns,
the enabled exchange set), not deny-lists; the deny-list helpers below only exist to give
a precise message for the raw request path.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from typing import cast
from urllib.parse import unquote

from broker.names import ROLES, Role

__all__ = [
    "ACCOUNT_PATTERN",
    "EXCHANGE_PATTERN",
    "ROLES",
    "InvalidIdentifier",
    "Role",
    "check_raw_path",
    "validate_account",
    "validate_exchange",
    "validate_name",
    "validate_role",
]

ACCOUNT_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}", re.ASCII)
# ccxt ids are lower-case ASCII letters and digits; the enabled set is the real allow-list.
EXCHANGE_PATTERN = re.compile(r"[a-z0-9]{1,32}", re.ASCII)
NAME_MAX = 64

# Unicode categories a key name may not contain: controls, format characters (bidi
# overrides, zero-width joiners), surrogates, private use, unassigned, line/paragraph
# separators. Vault's custom_metadata also accepts printable characters only.
_FORBIDDEN_NAME_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


class InvalidIdentifier(ValueError):
    """An identifier failed validation. The message never repeats the raw input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def validate_account(value: str) -> str:
    if not isinstance(value, str) or not ACCOUNT_PATTERN.fullmatch(value):
        raise InvalidIdentifier(
            "account",
            "must match ^[a-z0-9][a-z0-9_-]{0,63}$ (ASCII lower-case letters, digits, _ and -)",
        )
    return value


def validate_exchange(value: str, enabled: Collection[str]) -> str:
    if not isinstance(value, str) or not EXCHANGE_PATTERN.fullmatch(value):
        raise InvalidIdentifier("exchange", "must be a ccxt exchange id such as binance")
    if value not in enabled:
        raise InvalidIdentifier("exchange", f"{value} is not an enabled exchange")
    return value


def validate_role(value: str) -> Role:
    if value not in ROLES:
        raise InvalidIdentifier("role", "must be site or robot")
    return cast(Role, value)


def validate_name(value: str) -> str:
    """1 to 64 printable characters; spaces allowed, but not at either end."""
    if not isinstance(value, str) or not 1 <= len(value) <= NAME_MAX:
        raise InvalidIdentifier("name", f"must be 1 to {NAME_MAX} characters")
    for char in value:
        category = unicodedata.category(char)
        if category in _FORBIDDEN_NAME_CATEGORIES or (category == "Zs" and char != " "):
            raise InvalidIdentifier(
                "name", f"must not contain control or invisible characters (U+{ord(char):04X})"
            )
    if value != value.strip():
        raise InvalidIdentifier("name", "must not start or end with whitespace")
    return value


def check_raw_path(raw_path: bytes) -> None:
    """Reject request paths whose segments decode to something a router would mis-split.

    ASGI servers percent-decode the path before routing, so `a%2fb` arrives as `a/b` and
    `%2e%2e` as `..`. The raw bytes still show the original segments: each one must
    decode to a segment without `/`, `\\`, NUL or control characters, and not be `.`/`..`.
    """
    try:
        text = raw_path.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidIdentifier("path", "must be ASCII (percent-encode other bytes)") from None
    segments = text.split("/")
    if "" in segments[1:-1]:  # `a//b`: an empty identifier, never a valid one
        raise InvalidIdentifier("path", "must not contain empty segments")
    for raw_segment in segments:
        try:
            segment = unquote(raw_segment, errors="strict")
        except UnicodeDecodeError:
            raise InvalidIdentifier("path", "must be valid percent-encoded UTF-8") from None
        if segment in {".", ".."}:
            raise InvalidIdentifier("path", "must not contain . or .. segments")
        if "/" in segment or "\\" in segment:
            raise InvalidIdentifier("path", "must not contain encoded slashes")
        if any(unicodedata.category(c) in {"Cc", "Cf"} for c in segment):
            raise InvalidIdentifier("path", "must not contain control characters")
