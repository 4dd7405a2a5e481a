"""Duration parameters of devvault's API: keybroker's one duration parser
(broker/durations.py, Vault's `parseutil.ParseDurationSecond`), answering a malformed
value with a 400 that names the field, as Vault's field decoder does.
"""

from __future__ import annotations

from broker.durations import DurationError, go_duration, parse_duration_second
from keybroker_dev.devvault.errors import bad_request

__all__ = ["go_duration", "parse_duration"]


def parse_duration(value: object, field: str = "ttl") -> float:
    """Seconds; absent or "" is 0; malformed or negative is a 400 naming the field."""
    if value is None:
        return 0.0
    try:
        seconds = parse_duration_second(value.strip() if isinstance(value, str) else value)
    except DurationError:
        raise bad_request(f"invalid duration {value!r} for {field!r}") from None
    if seconds < 0:
        raise bad_request(f"{field!r} cannot be negative")
    return seconds
