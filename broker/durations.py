"""Vault's duration syntax, the one parser every part of keybroker uses.

Vault takes a TTL as "an integer number of seconds or a Go duration format string"
(docs/facts/vault.md §4.3); its decoders use go-secure-stdlib
`parseutil.ParseDurationSecond`, which also accepts `<n>d` days, and Go's
`time.ParseDuration` ("90s", "14m59s", "1h30m", "1.5h", "250ms"). Settings, policy
documents (`min/max_wrapping_ttl`, §1.1), devvault's request parameters and the runtime
client all parse with the functions below. Standard library only: the client-only
install imports this module (docs/client.md).
"""

from __future__ import annotations

import re

__all__ = [
    "DurationError",
    "format_duration",
    "go_duration",
    "parse_duration",
    "parse_duration_second",
    "parse_go_duration",
]

# Go's time.ParseDuration units (both spellings of micro).
_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]*)")
_INT = re.compile(r"[+-]?[0-9]+")


class DurationError(ValueError):
    """Not a duration. The message quotes Go's own wording where Go has one."""


def parse_go_duration(text: str) -> float:
    """Go's `time.ParseDuration`, in seconds: "1h30m", "300s", "1.5h", "250ms", "-2m"."""
    body = text[1:] if text[:1] in ("+", "-") else text
    sign = -1.0 if text.startswith("-") else 1.0
    if body == "0":
        return 0.0
    if not body:
        raise DurationError(f'time: invalid duration "{text}"')
    total, pos = 0.0, 0
    while pos < len(body):
        match = _PART.match(body, pos)
        assert match is not None  # the pattern also matches the empty string
        number, unit = match.group(1), match.group(2)
        if number in ("", "."):
            raise DurationError(f'time: invalid duration "{text}"')
        if not unit:
            raise DurationError(f'time: missing unit in duration "{text}"')
        if unit not in _UNITS:
            raise DurationError(f'time: unknown unit "{unit}" in duration "{text}"')
        total += float(number) * _UNITS[unit]
        pos = match.end()
    return sign * total


def parse_duration_second(value: object) -> float:
    """`parseutil.ParseDurationSecond`, in seconds, exactly as Vault decodes a TTL.

    Numbers are whole seconds (a float is truncated, as Go's `time.Duration(f) *
    time.Second`); strings are "" (0), an integer of seconds, `<n>d` days, or a Go
    duration. Negative values pass through: callers decide whether they are allowed.
    """
    if isinstance(value, bool):
        raise DurationError("could not parse duration from input")
    if isinstance(value, int):
        return float(value)
    if isinstance(value, float):
        return float(int(value))
    if isinstance(value, str):
        if value == "":
            return 0.0
        if _INT.fullmatch(value):
            return float(int(value))
        if value.endswith("d"):
            days = value[:-1]
            if not _INT.fullmatch(days):
                raise DurationError(f'strconv.ParseInt: parsing "{days}": invalid syntax')
            return float(int(days)) * 86400
        return parse_go_duration(value)
    raise DurationError("could not parse duration from input")


def parse_duration(value: str | int | float) -> float:
    """Seconds of a setting or an API TTL: `300`, `"300"`, `"90s"`, `"14m59s"`, `"1h30m"`,
    `"250ms"`, `"2d"`. Surrounding blanks are ignored; empty and negative values are
    refused. Numbers are taken as they are (`0.5` stays half a second)."""
    if isinstance(value, bool):
        raise DurationError("a duration, not a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise DurationError("an empty duration (use e.g. 90s, 5m, 1h30m)")
        try:
            seconds = parse_duration_second(text)
        except DurationError as exc:
            raise DurationError(f"not a duration: {exc} (use e.g. 90s, 5m, 1h30m)") from None
    else:
        raise DurationError(f"a duration, not {type(value).__name__}")
    if seconds < 0:
        raise DurationError("a duration cannot be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact spelling Vault accepts: 300 -> "5m", 90 -> "90s", 5400 -> "90m"."""
    whole = int(seconds)
    for unit, size in (("h", 3600), ("m", 60)):
        if whole and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def go_duration(seconds: float) -> str:
    """Go's `time.Duration.String()` for whole seconds: `0s`, `5m0s`, `1h30m0s`."""
    total = int(seconds)
    if total == 0:
        return "0s"
    sign = "-" if total < 0 else ""
    hours, rest = divmod(abs(total), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{sign}{minutes}m{secs}s"
    return f"{sign}{secs}s"
