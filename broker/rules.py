"""Acceptance rules: pure functions of (inspection, role, settings) -> reasons.

Exactly docs/contracts.md §4. No I/O, no clock unless given (`now`), no exchange knowledge:
adapters normalize, these rules judge. The order of the returned reasons is stable
(blocking, rights, IP, expiry) so that messages read the same for the same key.

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

from broker.names import ROLES
from broker.reasons import Inspection, Reason, ReasonCode

EXPIRY_WARNING = timedelta(days=14)

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class RuleSettings(Protocol):
    """The part of broker.config.Settings the rules read."""

    robot_egress_ips: list[str]
    site_egress_ips: list[str]
    allow_futures: bool
    require_site_ip_restriction: bool


def evaluate(
    inspection: Inspection, role: str, settings: RuleSettings, now: datetime | None = None
) -> list[Reason]:
    """Every reason for (or against) accepting the key, errors and warnings."""
    if role not in ROLES:
        raise ValueError(f"role must be site or robot, not {role!r}")
    if inspection.blocking:
        # The rights could not be read (mexc) or the key cannot be used (CDP): nothing
        # else the inspection says is trustworthy enough to judge.
        return list(inspection.blocking)
    reasons = permission_reasons(inspection, role, settings)
    reasons += ip_reasons(inspection, role, settings)
    reasons += expiry_reasons(inspection, now or datetime.now(UTC))
    return reasons


def accepted(reasons: list[Reason]) -> bool:
    return not any(r.severity == "error" for r in reasons)


def permission_reasons(inspection: Inspection, role: str, settings: RuleSettings) -> list[Reason]:
    p = inspection.permissions
    out: list[Reason] = []
    if p.withdraw:
        out.append(Reason.error(ReasonCode.WITHDRAW_ENABLED, "The key can withdraw funds"))
    if p.transfer:
        out.append(Reason.error(ReasonCode.TRANSFER_ENABLED, "The key can transfer funds"))
    if not p.read:
        out.append(Reason.error(ReasonCode.READ_DISABLED, "The key cannot read account data"))
    if role == "site":
        if p.spot_trade or p.margin or p.futures:
            out.append(
                Reason.error(
                    ReasonCode.TRADE_ENABLED, "A site key must be read-only, but it can trade"
                )
            )
    elif not p.spot_trade:
        out.append(
            Reason.error(
                ReasonCode.TRADE_DISABLED, "No trading permission: a robot key must spot-trade"
            )
        )
    if p.futures and not settings.allow_futures:
        out.append(
            Reason.error(
                ReasonCode.FUTURES_ENABLED, "The key can trade futures, which is not allowed"
            )
        )
    return out


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
    egress_texts = settings.robot_egress_ips if role == "robot" else settings.site_egress_ips
    required = _networks(tuple(egress_texts))
    unrestricted_is_error = role == "robot" or settings.require_site_ip_restriction

    def unrestricted(message: str) -> Reason:
        if unrestricted_is_error:
            return Reason.error(ReasonCode.IP_UNRESTRICTED, message)
        return Reason.warning(ReasonCode.IP_UNRESTRICTED, message)

    entries_text = inspection.ip_whitelist
    if inspection.ip_restricted is False or (entries_text is not None and not entries_text):
        return [unrestricted("The key has no IP whitelist: it works from any address")]
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
        return [unrestricted("The key's IP whitelist allows every address (0.0.0.0/0)")]

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
                f"The key's IP whitelist lacks the {role} egress address(es): "
                + ", ".join(missing),
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
        return [Reason.error(ReasonCode.KEY_EXPIRED, f"The key expired at {expires_at:%Y-%m-%d}")]
    if expires_at - now <= EXPIRY_WARNING:
        return [
            Reason.warning(
                ReasonCode.KEY_EXPIRING, f"The key expires on {expires_at:%Y-%m-%d %H:%M} UTC"
            )
        ]
    return []
