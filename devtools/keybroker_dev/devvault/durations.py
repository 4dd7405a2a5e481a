"""Vault's duration syntax: integer seconds or Go durations (`90s`, `5m`, `1h30m`).

DOC api-docs/index.mdx: TTL parameters take "an integer number of seconds or a Go
duration format string"; policy_test.go accepts `300`, `"300s"`, `"1h"`.
"""

from __future__ import annotations

import re

from keybroker_dev.devvault.errors import bad_request

_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object, field: str = "ttl") -> float:
    """Seconds; a malformed value is a 400 naming the field."""
    if value is None or value == "":
        return 0.0
    if isinstance(value, bool):
        raise bad_request(f"invalid value for {field!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip()
        if re.fullmatch(r"\d+", text):
            seconds = float(text)
        else:
            pos, seconds = 0, 0.0
            for match in _PART.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNITS[match.group(2)]
                pos = match.end()
            if pos != len(text) or not text:
                raise bad_request(f"invalid duration {text!r} for {field!r}")
    if seconds < 0:
        raise bad_request(f"{field!r} cannot be negative")
    return seconds


def go_duration(seconds: float) -> str:
    """Format like Go's time.Duration.String(): `0s`, `5m0s`, `1h30m0s`."""
    total = int(seconds)
    if total == 0:
        return "0s"
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
