"""Acceptance rules: pure functions of (inspection, role, settings) -> reasons.

Exactly docs/contracts.md §4. No I/O, no clock unless given (`now`), no exchange knowledge:
adapters normalize, these rules judge. The order of the returned reasons is stable
(rights, unreported rights, IP, expiry) so that messages read the same for the same key.

IP whitelist entries are compared as networks: an entry covers a required egress
address or CIDR when the required network lies inside it. Entries masked by the
exchange (KuCoin shows `203.**.154`) cannot prove anything: `*` hides digits, so a
masked entry is only *consistent* with an address. See `_MaskedEntry`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Protocol

from broker.config import env_name
from broker.names import ROLES
from broker.reasons import Inspection, Reason, ReasonCode, Severity

EXPIRY_WARNING = timedelta(days=14)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class RuleSettings(Protocol):
    """The part of broker.config.Settings the rules read."""

    require_site_ip_restriction: bool

    def egress_for(self, role: str) -> list[str]: ...

    def futures_allowed(self, exchange: str) -> bool: ...

    def unverifiable_accepted(self, exchange: str) -> bool: ...


# Settings named in refusals, so that each one says what to change.
_EGRESS_SETTING = {
    "robot": env_name("robot_exchange_egress_ips"),
    "site": env_name("site_exchange_egress_ips"),
}
_ALLOW_FUTURES = env_name("allow_futures")
_ACCEPT_UNVERIFIABLE = env_name("accept_unverifiable")


def evaluate(
    inspection: Inspection, role: str, settings: RuleSettings, now: datetime | None = None
) -> list[Reason]:
    """Every reason for (or against) accepting the key, errors and warnings."""
    if role not in ROLES:
        raise ValueError(f"role must be site or robot, not {role!r}")
    reasons = permission_reasons(inspection, role, settings)
    reasons += unverified_reasons(inspection, role, settings)
    reasons += ip_reasons(inspection, role, settings)
    reasons += expiry_reasons(inspection, now or datetime.now(UTC))
    return reasons


def accepted(reasons: list[Reason]) -> bool:
    return not any(r.severity == "error" for r in reasons)


def permission_reasons(inspection: Inspection, role: str, settings: RuleSettings) -> list[Reason]:
    p = inspection.permissions
    exchange = inspection.exchange

    def error(code: ReasonCode, message: str) -> Reason:
        hint = inspection.hints.get(code)
        return Reason.error(code, f"{message} ({hint})" if hint else message)

    out: list[Reason] = []
    if p.withdraw:
        out.append(
            error(
                ReasonCode.WITHDRAW_ENABLED,
                "The key can withdraw funds: turn withdrawals off for this key at the exchange",
            )
        )
    if p.transfer:
        out.append(
            error(
                ReasonCode.TRANSFER_ENABLED,
                "The key can transfer funds: turn transfers off for this key at the exchange",
            )
        )
    if not p.read and "read" not in inspection.unverified:
        out.append(
            error(
                ReasonCode.READ_DISABLED,
                "The key cannot read account data: allow reading for this key at the exchange",
            )
        )
    if role == "site":
        if p.spot_trade or p.margin or p.futures:
            out.append(
                error(
                    ReasonCode.TRADE_ENABLED,
                    "A site key must be read-only, but it can trade: give the site a key "
                    "with read rights only",
                )
            )
    elif not p.spot_trade and "spot_trade" not in inspection.unverified:
        out.append(
            error(
                ReasonCode.TRADE_DISABLED,
                "No trading permission: a robot key must spot-trade; allow spot trading for "
                "this key at the exchange",
            )
        )
    if p.futures and not settings.futures_allowed(exchange):
        out.append(
            error(
                ReasonCode.FUTURES_ENABLED,
                "The key can trade futures, which is not allowed: remove its futures rights "
                f"at the exchange, or set {_ALLOW_FUTURES}=true (or ={exchange}) to accept them",
            )
        )
    return out


# Rights named in an `unverifiable` reason, the most dangerous first.
_SEVERITY_ORDER = ("withdraw", "transfer", "futures", "margin", "spot_trade", "read")


# What an unreadable right would make us refuse, per role: (wording, the role needs it).
def _matters(
    right: str, role: str, exchange: str, settings: RuleSettings
) -> tuple[str, bool] | None:
    if right == "withdraw":
        return "withdraw", False
    if right == "transfer":
        return "transfer funds", False
    if right == "futures" and (role == "site" or not settings.futures_allowed(exchange)):
        return "trade futures", False
    if right == "margin" and role == "site":
        return "trade on margin", False
    if right == "spot_trade":
        return "spot-trade", role == "robot"
    if right == "read":
        return "read account data", True
    return None


def _either(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def unverified_reasons(inspection: Inspection, role: str, settings: RuleSettings) -> list[Reason]:
    """One `unverifiable` reason for the rights the exchange cannot report that would
    decide the check: an error, or a warning where the operator accepts such keys."""
    exchange = inspection.exchange
    decisive = [
        found
        for right in _SEVERITY_ORDER
        if right in inspection.unverified
        and (found := _matters(right, role, exchange, settings)) is not None
    ]
    if not decisive:
        return []
    forbidden = [what for what, needed in decisive if not needed]
    needed = [what for what, need in decisive if need]
    unknown = _either([what for what, _ in decisive])
    checks = []
    if forbidden:
        checks.append(f"it cannot {_either(forbidden)}")
    if needed:
        checks.append(f"it can {_either(needed)}")
    confirm = f"make sure at the exchange that {' and that '.join(checks)}"
    said = f"{exchange} does not report whether the key can {unknown}"
    if settings.unverifiable_accepted(exchange):
        return [
            Reason(
                code=ReasonCode.UNVERIFIABLE,
                severity=Severity.WARNING,
                message=f"{said}; accepted because {_ACCEPT_UNVERIFIABLE} includes {exchange}: "
                f"{confirm}",
            )
        ]
    return [
        Reason.error(
            ReasonCode.UNVERIFIABLE,
            f"{said}; {confirm}, then ask the operator to set {_ACCEPT_UNVERIFIABLE}="
            f"{exchange} to accept such keys with a warning",
        )
    ]


# --- IP whitelist --------------------------------------------------------------------------


@dataclass(frozen=True)
class _MaskedEntry:
    """A whitelist entry the exchange partly hid, e.g. KuCoin's `203.**.154`.

    Each run of `*` stands for an unknown run of address characters (digits, dots,
    hex digits and colons: KuCoin's `**` hides two octets and the dot between them).
    Such an entry can say "this address is *possibly* listed" but never "listed":
    the hidden part is exactly what would prove it. The only unambiguous entry is one
    with nothing hidden, which is parsed as a plain address instead. Being the only
    configured egress consistent with the mask is not proof either (`203.**.10` is
    just as consistent with 203.99.99.10, an address the user may not control). So a
    consistent masked entry yields `ip_whitelist_unverifiable` (a warning), an
    inconsistent one `ip_whitelist_mismatch`, and it never covers a CIDR.
    """

    text: str

    def consistent_with(self, network: IPNetwork) -> bool:
        if network.num_addresses != 1:
            return False
        return _mask_pattern(self.text).fullmatch(str(network.network_address)) is not None


@lru_cache(maxsize=1024)
def _mask_pattern(text: str) -> re.Pattern[str]:
    return re.compile(
        "".join(
            "[0-9A-Fa-f.:]+" if chunk.startswith("*") else re.escape(chunk)
            for chunk in re.split(r"(\*+)", text)
            if chunk
        )
    )


@lru_cache(maxsize=4096)  # checks repeat the same few addresses; ipaddress parsing is slow
def _parse_entry(text: str) -> IPNetwork | _MaskedEntry | None:
    if "*" in text:
        return _MaskedEntry(text)
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return None  # not an address: counts as unknown, never as coverage


@lru_cache(maxsize=64)
def _networks(texts: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(text, strict=False) for text in texts)


def _covers(entry: IPNetwork, required: IPNetwork) -> bool:
    """`required` lies inside `entry` (same family, same leading prefix bits)."""
    if entry.version != required.version or entry.prefixlen > required.prefixlen:
        return False
    shift = entry.max_prefixlen - entry.prefixlen
    return int(required.network_address) >> shift == int(entry.network_address) >> shift


def ip_reasons(inspection: Inspection, role: str, settings: RuleSettings) -> list[Reason]:
    required = _networks(tuple(settings.egress_for(role)))
    setting = _EGRESS_SETTING[role]
    where = ", ".join(str(net) for net in required)
    unrestricted_is_error = role == "robot" or settings.require_site_ip_restriction

    def unrestricted(message: str) -> Reason:
        if unrestricted_is_error:
            return Reason.error(ReasonCode.IP_UNRESTRICTED, message)
        return Reason.warning(ReasonCode.IP_UNRESTRICTED, message)

    fix = (
        f"restrict it at the exchange to {where}"
        if required
        else f"restrict it at the exchange to your {role}'s egress addresses (and list them "
        f"in {setting})"
    )
    entries_text = inspection.ip_whitelist
    if inspection.ip_restricted is False or (entries_text is not None and not entries_text):
        return [unrestricted("The key has no IP whitelist: it works from any address; " + fix)]
    if entries_text is None:
        # The exchange does not disclose the list (Binance) or says nothing at all.
        if inspection.ip_restricted is None:
            return [
                Reason.warning(
                    ReasonCode.IP_WHITELIST_UNVERIFIABLE,
                    "The exchange does not report whether the key is IP-restricted",
                )
            ]
        if inspection.ip_whitelist_verified or not required:
            return []
        return [
            Reason.warning(
                ReasonCode.IP_WHITELIST_UNVERIFIABLE,
                "The exchange reports only that the key is IP-restricted, not the list; "
                "the configured egress addresses could not be confirmed",
            )
        ]

    parsed = [(text, _parse_entry(text)) for text in entries_text]
    if any(isinstance(e, IPNetwork) and e.prefixlen == 0 for _, e in parsed):
        return [unrestricted("The key's IP whitelist allows every address (0.0.0.0/0); " + fix)]

    out: list[Reason] = []
    missing: list[str] = []
    unconfirmed: list[str] = []
    for net in required:
        if any(isinstance(e, IPNetwork) and _covers(e, net) for _, e in parsed):
            continue
        if any(isinstance(e, _MaskedEntry) and e.consistent_with(net) for _, e in parsed):
            unconfirmed.append(str(net))
        else:
            missing.append(str(net))
    if missing:
        out.append(
            Reason.error(
                ReasonCode.IP_WHITELIST_MISMATCH,
                f"The key's IP whitelist lacks the {role} egress address(es) "
                + ", ".join(missing)
                + f": add them to the key at the exchange, or correct {setting} if the "
                "exchange sees your requests come from other addresses",
            )
        )
    if unconfirmed:
        out.append(
            Reason.warning(
                ReasonCode.IP_WHITELIST_UNVERIFIABLE,
                "The exchange masks the whitelist; these egress addresses match a masked "
                "entry but cannot be confirmed: " + ", ".join(unconfirmed),
            )
        )
    if required:
        extra = [text for text, e in parsed if not _within_egress(e, required)]
        if extra:
            out.append(
                Reason.warning(
                    ReasonCode.IP_WHITELIST_EXTRA,
                    f"The key's IP whitelist allows addresses beyond the {role} egress set: "
                    + ", ".join(extra),
                )
            )
    return out


def _within_egress(entry: IPNetwork | _MaskedEntry | None, required: tuple[IPNetwork, ...]) -> bool:
    if entry is None:
        return False
    if isinstance(entry, _MaskedEntry):
        return any(entry.consistent_with(net) for net in required if net.num_addresses == 1)
    return any(_covers(net, entry) for net in required)


# --- expiry --------------------------------------------------------------------------------


def expiry_reasons(inspection: Inspection, now: datetime) -> list[Reason]:
    expires_at = inspection.expires_at
    if expires_at is None:
        return []
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    if expires_at <= now:
        return [
            Reason.error(
                ReasonCode.KEY_EXPIRED,
                f"The key expired at {expires_at:%Y-%m-%d}: create a new key at the exchange",
            )
        ]
    if expires_at - now <= EXPIRY_WARNING:
        return [
            Reason.warning(
                ReasonCode.KEY_EXPIRING, f"The key expires on {expires_at:%Y-%m-%d %H:%M} UTC"
            )
        ]
    return []
