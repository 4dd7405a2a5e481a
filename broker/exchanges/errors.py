"""Shared mapping from ccxt exceptions to the contract's reason codes (docs/contracts.md §4).

ccxt's class hierarchy (docs/facts/exchanges.md, "ccxt cross-cutting facts"):
PermissionDenied < AuthenticationError < ExchangeError; RateLimitExceeded, DDoSProtection,
ExchangeNotAvailable (> OnMaintenance), InvalidNonce, RequestTimeout < NetworkError.
Exchange-specific misfilings (MEXC 700006 as BadRequest, Kraken bad signature as
ExchangeError, ...) are corrected in each adapter's `error_codes` before this runs.

Messages are ours, fixed per code: exception texts from ccxt hold URLs and response
bodies that can carry the api key (HTX puts it in the query string), so they never
reach a Reason.
"""

from __future__ import annotations

from broker.reasons import Reason, ReasonCode, Severity

MESSAGES: dict[ReasonCode, str] = {
    ReasonCode.INVALID_CREDENTIALS: "Invalid key: the exchange refused the key, secret or "
    "passphrase; check them, and that the key is still active at the exchange",
    ReasonCode.IP_NOT_ALLOWED: "IP not allowed: the exchange refused the broker's IP for this "
    "key; add the broker's egress address to the key's IP whitelist at the exchange",
    ReasonCode.READ_DISABLED: "The key cannot read account data: allow reading for this key "
    "at the exchange",
    ReasonCode.KEY_EXPIRED: "The key has expired: create a new key at the exchange",
    ReasonCode.UNVERIFIABLE: "The key's rights cannot be read from the exchange",
    ReasonCode.EXCHANGE_UNAVAILABLE: "Exchange unavailable: try again later",
    ReasonCode.RATE_LIMITED: "The exchange is rate limiting requests: try again later",
}

# Fixed details several exchanges' error codes share (`Adapter.error_messages`).
WRONG_SECRET = "Invalid key: the signature was refused (wrong secret)"
WRONG_PASSPHRASE = "Invalid key: the passphrase was refused"
CLOCK_SKEW = "the exchange rejected the request time (clock skew or delay); try again"

_WARNINGS = frozenset(
    {
        ReasonCode.KEY_EXPIRING,
        ReasonCode.IP_WHITELIST_EXTRA,
        ReasonCode.IP_WHITELIST_UNVERIFIABLE,
    }
)


def reason(code: ReasonCode, exchange: str, detail: str | None = None) -> Reason:
    """A Reason with our fixed wording, optionally a fixed exchange-specific detail."""
    text = f"{exchange}: {detail or MESSAGES.get(code, code.value)}"
    severity = Severity.WARNING if code in _WARNINGS else Severity.ERROR
    return Reason(code=code, severity=severity, message=text)


def unexpected_shape(what: str) -> Reason:
    """The exchange answered, but not in its documented shape: treat as unavailable."""
    return Reason.error(
        ReasonCode.EXCHANGE_UNAVAILABLE,
        f"unexpected answer from the exchange ({what}); the key was not checked",
    )


def reason_for_exception(exc: BaseException, exchange: str) -> Reason:
    """Default mapping by ccxt exception class (most specific first)."""
    import ccxt  # here, not at import time: `Credentials` users need not load ccxt (~1 s)

    if isinstance(exc, ccxt.RateLimitExceeded | ccxt.DDoSProtection):
        return reason(ReasonCode.RATE_LIMITED, exchange)
    if isinstance(exc, ccxt.InvalidNonce):
        # Timestamp outside the exchange's window: our clock or a slow path, not the key.
        return reason(ReasonCode.EXCHANGE_UNAVAILABLE, exchange, CLOCK_SKEW)
    if isinstance(exc, ccxt.NetworkError | TimeoutError):
        return reason(ReasonCode.EXCHANGE_UNAVAILABLE, exchange)
    if isinstance(exc, ccxt.AccountSuspended):
        return reason(ReasonCode.INVALID_CREDENTIALS, exchange, "the account is suspended")
    if isinstance(exc, ccxt.PermissionDenied):
        return reason(
            ReasonCode.INVALID_CREDENTIALS,
            exchange,
            "the exchange refused the key (missing permission or IP not allowed)",
        )
    if isinstance(exc, ccxt.AuthenticationError):
        return reason(ReasonCode.INVALID_CREDENTIALS, exchange)
    # Anything else (unmapped exchange errors, unexpected shapes): the key was not
    # checked, so it must not be accepted; retryable rather than a verdict on the key.
    return reason(
        ReasonCode.EXCHANGE_UNAVAILABLE,
        exchange,
        "unexpected error answer from the exchange; the key was not checked",
    )
