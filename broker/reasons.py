"""The vocabulary of a key check: reason codes (docs/contracts.md §4), permissions, results.

Shared by the exchange adapters, the acceptance rules, the HTTP API and `check-key`.
Nothing here may ever hold a secret: these objects end up in responses and audit lines.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from broker.names import Role


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


class ReasonCode(StrEnum):
    # Errors: the key is not accepted.
    INVALID_CREDENTIALS = "invalid_credentials"
    IP_NOT_ALLOWED = "ip_not_allowed"
    WITHDRAW_ENABLED = "withdraw_enabled"
    TRANSFER_ENABLED = "transfer_enabled"
    READ_DISABLED = "read_disabled"
    TRADE_ENABLED = "trade_enabled"
    TRADE_DISABLED = "trade_disabled"
    FUTURES_ENABLED = "futures_enabled"
    IP_UNRESTRICTED = "ip_unrestricted"  # error for robot keys; warning for site keys by default
    IP_WHITELIST_MISMATCH = "ip_whitelist_mismatch"
    KEY_EXPIRED = "key_expired"
    UNVERIFIABLE = "unverifiable"
    UNSUPPORTED_EXCHANGE = "unsupported_exchange"
    NON_HMAC_KEY = "non_hmac_key"
    # The secret cannot become a Transit key under `transit` custody (docs/custody.md).
    SECRET_NOT_IMPORTABLE = "secret_not_importable"
    # Warnings.
    KEY_EXPIRING = "key_expiring"
    IP_WHITELIST_EXTRA = "ip_whitelist_extra"
    IP_WHITELIST_UNVERIFIABLE = "ip_whitelist_unverifiable"
    # A stored key whose custom metadata the broker cannot parse (shown, never fatal).
    METADATA_DAMAGED = "metadata_damaged"
    # Retryable: answered 503 (exit 3), nothing stored.
    EXCHANGE_UNAVAILABLE = "exchange_unavailable"
    RATE_LIMITED = "rate_limited"


RETRYABLE_CODES = frozenset({ReasonCode.EXCHANGE_UNAVAILABLE, ReasonCode.RATE_LIMITED})


class Reason(BaseModel):
    model_config = ConfigDict(frozen=True)

    code: ReasonCode
    severity: Severity
    message: str

    @classmethod
    def error(cls, code: ReasonCode, message: str) -> Reason:
        return cls(code=code, severity=Severity.ERROR, message=message)

    @classmethod
    def warning(cls, code: ReasonCode, message: str) -> Reason:
        return cls(code=code, severity=Severity.WARNING, message=message)


class Permissions(BaseModel):
    """What the key may do, normalized across exchanges."""

    model_config = ConfigDict(frozen=True)

    read: bool = False
    spot_trade: bool = False
    margin: bool = False
    futures: bool = False
    withdraw: bool = False
    transfer: bool = False


class Inspection(BaseModel):
    """One exchange's answer about a key, normalized by its adapter.

    `ip_restricted` None: the exchange does not say. `ip_whitelist` None: the exchange
    does not disclose the list (Binance says only "restricted"). Entries may be masked
    by the exchange (KuCoin: `203.**.154`) and are kept as reported.
    `ip_whitelist_verified`: the adapter proved the broker's own egress is listed
    (e.g. the signed call itself succeeded from a whitelisted address).
    """

    model_config = ConfigDict(frozen=True)

    exchange: str
    permissions: Permissions
    ip_restricted: bool | None = None
    ip_whitelist: list[str] | None = None
    ip_whitelist_verified: bool = False
    expires_at: datetime | None = None
    # Rights (Permissions field names) the exchange does not report; their value in
    # `permissions` means nothing. The rules refuse them as `unverifiable` where they
    # would decide the check, unless the operator accepts them for that exchange.
    unverified: frozenset[str] = frozenset()
    # Exchange-specific advice on how to clear a refusal (OKX: futures come with the
    # account mode), appended to that reason's message.
    hints: dict[ReasonCode, str] = Field(default_factory=dict)


class CheckResult(BaseModel):
    """docs/contracts.md §3 CheckResult."""

    accepted: bool
    exchange: str
    role: Role
    permissions: Permissions
    ip_restricted: bool | None
    ip_whitelist: list[str] | None
    expires_at: datetime | None
    reasons: list[Reason]
    # False when the check ended before the exchange said anything about the key: the
    # all-false permissions then mean "unknown", not "none" (not part of the JSON).
    _rights_read: bool = PrivateAttr(default=True)

    @property
    def rights_read(self) -> bool:
        return self._rights_read

    @classmethod
    def refused(cls, exchange: str, role: Role, reason: Reason) -> CheckResult:
        """A check that ended before any rights were read: one reason, nothing granted."""
        result = cls(
            accepted=False,
            exchange=exchange,
            role=role,
            permissions=Permissions(),
            ip_restricted=None,
            ip_whitelist=None,
            expires_at=None,
            reasons=[reason],
        )
        result._rights_read = False
        return result

    @property
    def retryable(self) -> bool:
        return any(r.code in RETRYABLE_CODES for r in self.reasons)
