"""What the page tells a user: each role's rules, what to do about each refusal reason,
and what each key status means (docs/key-page.md).

The rules themselves live in broker/rules.py and the settings, the statuses in
broker/health/status.py (key health, docs/key-health.md); this module only words them
for people. An unknown status or right is shown by its code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from broker.config import Settings
from broker.health.status import RIGHT_OF, KeyStatus
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
    meaning: str  # "{consumer}": the robot or the site, whichever uses the key's role


# `active`: the key view's own status, for a view without key health (an older broker).
# The others are key health's statuses: a test checks that every KeyStatus is here.
STATUSES: dict[str, StatusText] = {
    "active": StatusText("Accepted", "ok", "Checked with the exchange and stored."),
    KeyStatus.CONNECTED: StatusText(
        "Connected", "ok", "The key works and has the right permissions."
    ),
    KeyStatus.EXPIRES_SOON: StatusText(
        "Expires soon", "warn", "Create a new key at the exchange and enter it before then."
    ),
    KeyStatus.EXPIRED: StatusText(
        "Expired", "bad", "The key has expired: create a new key and enter it."
    ),
    KeyStatus.RIGHTS_CHANGED: StatusText(
        "Rights changed",
        "bad",
        "The key's permissions changed at the exchange: set them back, or create a new key "
        "with the rights listed here and enter it.",
    ),
    KeyStatus.REVOKED_AT_EXCHANGE: StatusText(
        "Revoked at the exchange",
        "bad",
        "The exchange no longer accepts this key (deleted there?): enter a new one.",
    ),
    KeyStatus.IP_NOT_ALLOWED: StatusText(
        "IP not allowed",
        "bad",
        "The exchange refused {consumer}'s address: add the addresses listed here to the "
        "key's IP whitelist.",
    ),
    KeyStatus.TEMPORARILY_UNAVAILABLE: StatusText(
        "Temporarily unavailable",
        "warn",
        "The exchange did not answer {consumer}'s check; no action needed yet.",
    ),
    KeyStatus.UNVERIFIED: StatusText(
        "Not verified",
        "neutral",
        "{consumer} has not checked this key for a while; if it stays so, tell support.",
    ),
}

# The rights `rights_changed` names (broker/health/status.py RIGHT_OF), in words.
RIGHTS: dict[str, str] = {
    RIGHT_OF[ReasonCode.WITHDRAW_ENABLED]: "withdrawals enabled",
    RIGHT_OF[ReasonCode.TRANSFER_ENABLED]: "transfers enabled",
    RIGHT_OF[ReasonCode.TRADE_ENABLED]: "trading enabled",
    RIGHT_OF[ReasonCode.FUTURES_ENABLED]: "futures enabled",
    RIGHT_OF[ReasonCode.TRADE_DISABLED]: "trading disabled",
    RIGHT_OF[ReasonCode.READ_DISABLED]: "reading disabled",
    RIGHT_OF[ReasonCode.IP_UNRESTRICTED]: "IP whitelist removed",
    RIGHT_OF[ReasonCode.UNVERIFIABLE]: "the exchange no longer says what the key may do",
}

CONSUMER: dict[str, str] = {"robot": "the robot", "site": "the site"}


def _consumer(role: str) -> str:
    return CONSUMER.get(role, "its user")


def status_text(status: str, role: str = "robot") -> StatusText:
    found = STATUSES.get(status, StatusText(status.replace("_", " "), "neutral", ""))
    meaning = found.meaning.replace("{consumer}", _consumer(role))
    return StatusText(found.label, found.tone, meaning[:1].upper() + meaning[1:])


@dataclass(frozen=True)
class HealthText:
    """A key's health (the key view's `health`, docs/key-health.md) in words."""

    status: str
    label: str  # with the detail: "Expires in 6 days", "Rights changed: withdrawals enabled"
    tone: Tone
    meaning: str  # what it means and what to do
    checked: str  # whose verification it is from, and when (or that none came yet)
    requested: str = ""  # a "Check now" still waiting for the consumer, or ""

    @property
    def state(self) -> str:
        """Changes whenever anything shown changes: static/page.js compares it."""
        return "|".join((self.status, self.label, self.meaning, self.checked, self.requested))

    def to_json(self) -> dict[str, str]:
        return {**self.__dict__, "state": self.state}


def when(value: str) -> str:
    """An ISO time from the broker, in UTC for people; anything else as it came."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.utcoffset() is None:
        return value
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def rights_text(rights: list[str]) -> str:
    return ", ".join(RIGHTS.get(r, r.replace("_", " ")) for r in rights)


def health_label(health: dict[str, Any]) -> str:
    """The status with its detail: days left, or the rights that changed."""
    status = str(health.get("status", ""))
    label = status_text(status).label
    days = health.get("expires_in_days")
    if status == KeyStatus.EXPIRES_SOON and isinstance(days, int):
        return "Expires today" if days == 0 else f"Expires in {days} day{'s' * (days != 1)}"
    if status == KeyStatus.RIGHTS_CHANGED and health.get("rights"):
        return f"{label}: {rights_text(list(health['rights']))}"
    return label


def health_text(view: dict[str, Any]) -> HealthText:
    """The key view's health in words; a view without one shows its own `status`."""
    role = str(view.get("role", ""))
    health = view.get("health")
    if not isinstance(health, dict):
        plain = status_text(str(view.get("status", "")), role)
        return HealthText(str(view.get("status", "")), plain.label, plain.tone, plain.meaning, "")
    status = str(health.get("status", ""))
    text = status_text(status, role)
    who = _consumer(role)
    meaning = text.meaning
    if health.get("stop"):
        meaning += (
            f" {who[:1].upper() + who[1:]} has stopped using this key: enter a new key, or "
            "undo the change at the exchange and its next check resumes it."
        )
    verified = health.get("verified_at")
    checked = (
        f"Checked by {who} at {when(str(verified))}."
        if verified
        else f"Not yet checked by {who}: it checks a key when it first loads it."
    )
    asked = health.get("requested_at")
    requested = f"Check requested at {when(str(asked))}; waiting for {who}." if asked else ""
    return HealthText(status, health_label(health), text.tone, meaning, checked, requested)


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
