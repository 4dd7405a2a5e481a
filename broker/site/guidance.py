"""What the page tells a user: each role's rules, what to do about each refusal reason,
and what each key status means (docs/key-page.md).

The rules themselves live in broker/rules.py and the settings; this module only words
them for people. Statuses beyond `active` come from key health (issue 15) when the key
view carries them; an unknown status is shown by its code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from broker.config import Settings
from broker.names import Role
from broker.reasons import ReasonCode

Tone = Literal["ok", "warn", "bad", "neutral"]

# What the user should do about each reason code (every code has an entry: a test checks).
ADVICE: dict[ReasonCode, str] = {
    ReasonCode.INVALID_CREDENTIALS: (
        "Copy the API key, the secret (and the passphrase, where asked) again exactly as the "
        "exchange showed them, and check that the key still exists at the exchange."
    ),
    ReasonCode.IP_NOT_ALLOWED: (
        "The exchange refused the request because of the key's IP whitelist: add the "
        "addresses listed for this key to it."
    ),
    ReasonCode.WITHDRAW_ENABLED: (
        "Create a new key at the exchange with withdrawals switched off, and enter that key."
    ),
    ReasonCode.TRANSFER_ENABLED: (
        "Create a new key at the exchange with transfers between accounts switched off, and "
        "enter that key."
    ),
    ReasonCode.READ_DISABLED: "Switch on the read (view) permission of the key.",
    ReasonCode.TRADE_ENABLED: (
        "The site key must be read-only: create a key without trading rights for it."
    ),
    ReasonCode.TRADE_DISABLED: "The robot's key needs spot trading: switch trading on.",
    ReasonCode.FUTURES_ENABLED: "Switch off futures and derivatives rights on the key.",
    ReasonCode.IP_UNRESTRICTED: (
        "Restrict the key to IP addresses at the exchange (the addresses are listed here)."
    ),
    ReasonCode.IP_WHITELIST_MISMATCH: (
        "Add every address listed for this key to the key's IP whitelist."
    ),
    ReasonCode.KEY_EXPIRED: "The key has expired: create a new key and enter it.",
    ReasonCode.UNVERIFIABLE: (
        "The exchange did not tell us what the key may do; create a standard API key with "
        "the rights listed here and try again."
    ),
    ReasonCode.UNSUPPORTED_EXCHANGE: "This exchange is not enabled on this site.",
    ReasonCode.NON_HMAC_KEY: (
        "Create a system-generated (HMAC) key instead of an RSA or Ed25519 one."
    ),
    ReasonCode.SECRET_NOT_IMPORTABLE: (
        "This platform keeps keys inside Vault's signing engine, which cannot hold this "
        "secret's size or format: create a standard (HMAC) key at the exchange."
    ),
    ReasonCode.METADATA_DAMAGED: (
        "The stored record of this key cannot be read: submit the key again (or delete it); "
        "the platform's operators have been told through the audit log."
    ),
    ReasonCode.KEY_EXPIRING: "Plan to replace the key before it expires.",
    ReasonCode.IP_WHITELIST_EXTRA: (
        "Consider removing whitelist addresses that are not listed here."
    ),
    ReasonCode.IP_WHITELIST_UNVERIFIABLE: (
        "Make sure the key's whitelist holds the addresses listed here."
    ),
    ReasonCode.EXCHANGE_UNAVAILABLE: (
        "The exchange did not answer; nothing was stored. Try again in a minute."
    ),
    ReasonCode.RATE_LIMITED: (
        "The exchange asked us to slow down; nothing was stored. Try again in a minute."
    ),
}


def advice_for(code: str) -> str:
    try:
        return ADVICE[ReasonCode(code)]
    except ValueError:
        return ""


@dataclass(frozen=True)
class StatusText:
    label: str
    tone: Tone
    meaning: str


# `active`: stored after a successful check (broker/intake.py). The others are key
# health's statuses (issue 15), shown as soon as the key view carries them.
STATUSES: dict[str, StatusText] = {
    "active": StatusText("Accepted", "ok", "Checked with the exchange and stored."),
    "connected": StatusText("Connected", "ok", "The robot is using this key."),
    "expires_soon": StatusText("Expires soon", "warn", "Replace the key before it expires."),
    "expired": StatusText("Expired", "bad", "Create a new key and enter it."),
    "rights_changed": StatusText(
        "Rights changed", "bad", "The key's rights changed at the exchange: check them."
    ),
    "revoked_at_exchange": StatusText(
        "Revoked at the exchange", "bad", "The exchange no longer knows this key: enter a new one."
    ),
    "ip_not_allowed": StatusText(
        "IP not allowed", "bad", "Add the robot's addresses to the key's IP whitelist."
    ),
    "temporarily_unavailable": StatusText(
        "Temporarily unavailable", "warn", "The exchange is not answering; no action needed yet."
    ),
    "unverified": StatusText("Not verified yet", "neutral", "Waiting for the first check."),
}


def status_text(status: str) -> StatusText:
    return STATUSES.get(status, StatusText(status.replace("_", " "), "neutral", ""))


@dataclass(frozen=True)
class RoleRules:
    title: str
    rights: str
    whitelist: str
    addresses: tuple[str, ...]


def role_rules(role: Role, exchange: str, settings: Settings) -> RoleRules:
    """The rules broker/rules.py applies to `role` on `exchange`, in words, with the
    settings' values (the exchange-side egress addresses a whitelist must hold)."""
    addresses = tuple(settings.egress_for(role))
    if role == "site":
        needed = "required" if settings.require_site_ip_restriction else "recommended"
        # A whitelist the exchange lists must hold the site's addresses (broker/rules.py).
        whitelist = f"An IP whitelist is {needed}" + (
            "; if the key has one, it must hold these addresses:" if addresses else "."
        )
        return RoleRules(
            "Site key",
            "Read-only: no trading, no withdrawals, no transfers.",
            whitelist,
            addresses,
        )
    futures = "futures allowed" if settings.futures_allowed(exchange) else "no futures"
    return RoleRules(
        "Robot key",
        f"Read and spot trading; no withdrawals, no transfers, {futures}.",
        "The key's IP whitelist must hold these addresses:",
        addresses,
    )
