"""The adapter interface: one module per exchange turns its self-inspection answer into
one normalized `Inspection` (broker/reasons.py).

An adapter knows three things about its exchange, and nothing else:
- which ccxt implicit method(s) read the calling key's own rights (docs/facts/exchanges.md),
- how that answer maps onto read / spot_trade / margin / futures / withdraw / transfer,
  IP whitelist and expiry,
- which of the exchange's error codes ccxt files under a misleading exception class.

Transport (URLs, sessions, timeouts) lives in client.py, orchestration in checker.py.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from broker.exchanges import errors
from broker.reasons import Inspection, Reason, ReasonCode

if TYPE_CHECKING:
    from ccxt.async_support.base.exchange import Exchange


@dataclass(frozen=True)
class Credentials:
    """A key as the user hands it over. repr()/str() never show any part of a secret."""

    api_key: str = field(repr=False)
    secret: str = field(repr=False)
    passphrase: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        has_passphrase = self.passphrase is not None
        return f"Credentials(api_key={mask_api_key(self.api_key)!r}, passphrase={has_passphrase})"

    __str__ = __repr__


def mask_api_key(api_key: str) -> str:
    """At most the first 4 and last 4 characters (docs/contracts.md §3 api_key_masked), and
    never more than half the key, so short keys are not all but revealed."""
    shown = min(4, len(api_key) // 4)
    if shown == 0:
        return "****"
    return f"{api_key[:shown]}...{api_key[-shown:]}"


class InspectionFailed(Exception):
    """An adapter recognised an error answer that ccxt let through as data.

    Carries only our own fixed Reason text, never exchange text (which may echo key ids).
    """

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason.code.value)
        self.reason = reason


class Adapter(ABC):
    """One exchange. Subclasses set the class attributes and implement `inspect`."""

    id: ClassVar[str]
    requires_passphrase: ClassVar[bool] = False
    # Signed requests one check sends (the sandbox counts them; tests assert it).
    requests_per_check: ClassVar[int] = 1
    # Exchange error code (as found by `error_code`) -> the contract's reason code.
    error_codes: ClassVar[dict[str, ReasonCode]] = {}
    # Human words for the codes above where the exchange's own meaning is worth telling.
    error_messages: ClassVar[dict[str, str]] = {}

    def precheck(self, credentials: Credentials) -> Reason | None:
        """Refusals decided without talking to the exchange (key format, missing parts)."""
        if self.requires_passphrase and not credentials.passphrase:
            return Reason.error(
                ReasonCode.INVALID_CREDENTIALS, f"{self.id} keys need their passphrase"
            )
        if "PRIVATE KEY" in credentials.secret:
            # ccxt would sign asymmetrically. Adapters that inspect such keys (Binance
            # RSA/Ed25519, Bybit RSA, Coinbase CDP) override this; the rest refuse them.
            return Reason.error(
                ReasonCode.NON_HMAC_KEY,
                f"{self.id}: the secret is a private key (RSA/EC/Ed25519); only HMAC keys "
                "are accepted: create an HMAC key at the exchange",
            )
        return None

    @abstractmethod
    async def inspect(self, exchange: Exchange, credentials: Credentials) -> Inspection:
        """Send the self-inspection request(s) and normalize the answer."""

    def map_error(self, exc: BaseException) -> Reason:
        """The contract reason for an exception raised while inspecting."""
        if isinstance(exc, InspectionFailed):
            return exc.reason
        known = self.known_error(self.error_code(error_body(exc)))
        if known is not None:
            return known
        return errors.reason_for_exception(exc, self.id)

    def known_error(self, code: str | None) -> Reason | None:
        """Our reason for one of this exchange's own error codes; None when unmapped."""
        if code is None or code not in self.error_codes:
            return None
        return errors.reason(self.error_codes[code], self.id, self.error_messages.get(code))

    def error_code(self, body: Any) -> str | None:
        """The exchange's error code in an error body (most use a top-level `code`)."""
        if isinstance(body, dict) and body.get("code") is not None:
            return str(body["code"])
        return None


UNREADABLE_PEM = (
    "the private key cannot be read: paste the whole unencrypted PEM key, with its BEGIN "
    "and END lines"
)


def load_private_pem(secret: str) -> object | None:
    """The private key of a PEM secret ccxt would sign with; None when it cannot be read.
    (The caller words the refusal: never any part of the secret.)"""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        return load_pem_private_key(secret.encode(), password=None)
    except (ValueError, TypeError):
        return None


def error_body(exc: BaseException) -> Any:
    """The JSON body ccxt put in its exception message (`"<id> <body>"`), if any."""
    text = str(exc)
    start = text.find("{")
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(text[start:])
    except ValueError:
        return None
    return value


def split_list(value: Any) -> list[str]:
    """`"a, b,,c"` -> `["a", "b", "c"]`; lists pass through; None/"" -> []."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple):
        return [str(part).strip() for part in value if str(part).strip()]
    raise InspectionFailed(errors.unexpected_shape("ip/permission list"))


def whitelist(value: Any) -> tuple[bool, list[str]]:
    """(ip_restricted, ip_whitelist) from a reported list or comma-separated string
    (`split_list`); `*` alone means "any IP"."""
    entries = [entry for entry in split_list(value) if entry != "*"]
    return bool(entries), entries


def payload(answer: Any, what: str, *, ok: str, code: str = "code", data: str = "data") -> Any:
    """The `data` member of an answer whose `code` member reads `ok`.

    The exchange's error codes reach us as ccxt exceptions (`map_error`); an answer that
    still carries another code is not the documented success shape, so nothing is read.
    """
    body = require_dict(answer, what)
    if str(body.get(code)) != ok:
        raise InspectionFailed(errors.unexpected_shape(f"{what} {code}"))
    return body.get(data)


def own_entry(
    listing: Any, what: str, *, match: str, api_key: str, exchange: str, detail: str
) -> dict[str, Any]:
    """The calling key's entry in an answer listing the account's keys (HTX, Deribit):
    the one entry whose `match` field is our api key; none or several is unverifiable."""
    if not isinstance(listing, list):
        raise InspectionFailed(errors.unexpected_shape(what))
    own = [entry for entry in listing if isinstance(entry, dict) and entry.get(match) == api_key]
    if len(own) != 1:
        raise InspectionFailed(errors.reason(ReasonCode.UNVERIFIABLE, exchange, detail))
    return own[0]


def from_timestamp(seconds: float, what: str) -> datetime:
    """A UTC time from epoch seconds; absurd values are a shape error, not a crash."""
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise InspectionFailed(errors.unexpected_shape(what)) from None


def require_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InspectionFailed(errors.unexpected_shape(what))
    return value
