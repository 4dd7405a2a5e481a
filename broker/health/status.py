"""One status per stored key, from the intake result and the latest verification.

Pure functions (no I/O, the clock is an argument). The broker computes the status it
stores and shows; the consumer runs the same function on its own verification to decide
at once whether to stop using the key (docs/key-health.md). Only reason *codes* enter:
they are our own vocabulary (broker/reasons.py), never text from an exchange.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from broker.names import HEALTH_STOP_ON
from broker.reasons import ReasonCode
from broker.rules import EXPIRY_WARNING


class KeyStatus(StrEnum):
    CONNECTED = "connected"
    EXPIRES_SOON = "expires_soon"
    EXPIRED = "expired"
    RIGHTS_CHANGED = "rights_changed"
    REVOKED_AT_EXCHANGE = "revoked_at_exchange"
    IP_NOT_ALLOWED = "ip_not_allowed"
    TEMPORARILY_UNAVAILABLE = "temporarily_unavailable"
    UNVERIFIED = "unverified"


# The right a refusal says changed, as `rights_changed` names it.
RIGHT_OF: dict[ReasonCode, str] = {
    ReasonCode.WITHDRAW_ENABLED: "withdraw",
    ReasonCode.TRANSFER_ENABLED: "transfer",
    ReasonCode.TRADE_ENABLED: "trade",  # a site key that can now trade
    ReasonCode.FUTURES_ENABLED: "futures",
    ReasonCode.TRADE_DISABLED: "no_trade",
    ReasonCode.READ_DISABLED: "no_read",
    ReasonCode.IP_UNRESTRICTED: "ip_unrestricted",  # the whitelist was removed
    ReasonCode.UNVERIFIABLE: "unverifiable",
}
_TEMPORARY = frozenset({ReasonCode.EXCHANGE_UNAVAILABLE, ReasonCode.RATE_LIMITED})
_REVOKED = frozenset({ReasonCode.INVALID_CREDENTIALS})
_IP = frozenset({ReasonCode.IP_NOT_ALLOWED, ReasonCode.IP_WHITELIST_MISMATCH})


@dataclass(frozen=True)
class Health:
    """A key's status and what it is about: `rights` for rights_changed, `days` for
    expires_soon, `codes` the reason codes it was computed from."""

    status: KeyStatus
    rights: tuple[str, ...] = ()
    days: int | None = None
    codes: tuple[str, ...] = field(default=())

    @property
    def detail(self) -> str:
        if self.rights:
            return ",".join(self.rights)
        if self.days is not None:
            return f"{self.days}d"
        return ""


def from_check(
    accepted: bool,
    errors: Iterable[ReasonCode],
    expires_at: datetime | None,
    now: datetime,
) -> Health:
    """The status a check outcome means (intake's or a consumer's verification).

    `errors`: the error-severity reason codes. A retryable failure says nothing about the
    key, so it wins; then the key is gone, then refused from this address, then expired,
    then a right that changed; an accepted key is connected or expires soon.
    """
    codes = tuple(dict.fromkeys(errors))
    found = frozenset(codes)
    names = tuple(c.value for c in codes)
    if found & _TEMPORARY:
        return Health(KeyStatus.TEMPORARILY_UNAVAILABLE, codes=names)
    if found & _REVOKED:
        return Health(KeyStatus.REVOKED_AT_EXCHANGE, codes=names)
    if found & _IP:
        return Health(KeyStatus.IP_NOT_ALLOWED, codes=names)
    if ReasonCode.KEY_EXPIRED in found or (expires_at is not None and expires_at <= now):
        return Health(KeyStatus.EXPIRED, codes=names)
    rights = tuple(RIGHT_OF[c] for c in codes if c in RIGHT_OF)
    if rights:
        return Health(KeyStatus.RIGHTS_CHANGED, rights=rights, codes=names)
    if not accepted:  # an error this module has no status for: the key does not work
        return Health(KeyStatus.REVOKED_AT_EXCHANGE, codes=names)
    if expires_at is not None and expires_at - now <= EXPIRY_WARNING:
        days = max(0, int((expires_at - now).total_seconds() // 86400))
        return Health(KeyStatus.EXPIRES_SOON, days=days, codes=names)
    return Health(KeyStatus.CONNECTED, codes=names)


def stale(last_seen: datetime, now: datetime, interval_s: float) -> bool:
    """No verification within twice the schedule: the status is no longer known."""
    return (now - last_seen).total_seconds() > 2 * interval_s


# --- which statuses make a consumer stop using a key ----------------------------------------

# `status` stops on any detail; `status:right` only for that right (rights_changed).
DEFAULT_STOP_ON: frozenset[str] = frozenset(HEALTH_STOP_ON)


def parse_stop_on(items: Iterable[str]) -> frozenset[str]:
    """Validated stop entries; a typo must not silently disable a stop (ValueError)."""
    out = set()
    for item in items:
        status, _, right = item.strip().partition(":")
        if status not in KeyStatus._value2member_map_:
            raise ValueError(f"unknown key status {status!r} in stop list")
        if right and (status != KeyStatus.RIGHTS_CHANGED or right not in RIGHT_OF.values()):
            raise ValueError(
                f"{item!r}: only rights_changed takes a right ({sorted(set(RIGHT_OF.values()))})"
            )
        out.add(item.strip())
    return frozenset(out)


def stops(health: Health, stop_on: frozenset[str]) -> bool:
    if health.status.value in stop_on:
        return True
    return any(f"{health.status.value}:{right}" in stop_on for right in health.rights)
