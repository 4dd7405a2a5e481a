"""Binance: GET /sapi/v1/account/apiRestrictions (docs/facts/exchanges.md, Binance).

Quirks: only `ipRestrict` is readable (the IP list endpoints were discontinued
2021-11-17), so the whitelist is never known; -2015 means "invalid key, IP or
permission" and Binance does not say which.

Key kinds: HMAC, and the asymmetric RSA and Ed25519 keys, whose secret is a PEM private
key. ccxt's binance `sign()` signs with `rsa()` (PKCS#1 v1.5 SHA-256) when the PEM is
longer than 120 characters and with `eddsa()` otherwise; `precheck` loads the PEM and
refuses, without a request, one that ccxt would sign with the wrong algorithm.
"""

from __future__ import annotations

from typing import Any

from broker.custody.material import BINANCE_RSA_MIN_LEN
from broker.exchanges.base import (
    UNREADABLE_PEM,
    Adapter,
    Credentials,
    from_timestamp,
    load_private_pem,
    require_dict,
)
from broker.exchanges.errors import CLOCK_SKEW, WRONG_SECRET, reason
from broker.reasons import Inspection, Permissions, Reason, ReasonCode


class BinanceAdapter(Adapter):
    id = "binance"
    error_codes = {
        "-2015": ReasonCode.INVALID_CREDENTIALS,
        "-2014": ReasonCode.INVALID_CREDENTIALS,
        "-2008": ReasonCode.INVALID_CREDENTIALS,
        "-1022": ReasonCode.INVALID_CREDENTIALS,
        "-1002": ReasonCode.INVALID_CREDENTIALS,
        "-1003": ReasonCode.RATE_LIMITED,
        "-1021": ReasonCode.EXCHANGE_UNAVAILABLE,
        "-1001": ReasonCode.EXCHANGE_UNAVAILABLE,
    }
    error_messages = {
        "-2015": "Binance refused the request (-2015): the API key is invalid, the broker's "
        "IP is not whitelisted, or the key lacks permission; Binance does not say which",
        "-1022": WRONG_SECRET,
        "-1021": CLOCK_SKEW,
    }

    def precheck(self, credentials: Credentials) -> Reason | None:
        if "PRIVATE KEY" not in credentials.secret:
            return super().precheck(credentials)
        problem = pem_problem(credentials.secret)
        if problem is None:
            return None
        return reason(ReasonCode.INVALID_CREDENTIALS, self.id, problem)

    async def inspect(self, exchange: Any, credentials: Credentials) -> Inspection:
        return parse(await exchange.sapi_get_account_apirestrictions())


def pem_problem(secret: str) -> str | None:
    """Why ccxt cannot sign Binance requests with this PEM secret; None when it can."""
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    private = load_private_pem(secret)
    if private is None:
        return UNREADABLE_PEM
    as_rsa = len(secret) >= BINANCE_RSA_MIN_LEN  # ccxt's choice (module docstring)
    if isinstance(private, rsa.RSAPrivateKey) and as_rsa:
        return None
    if isinstance(private, ed25519.Ed25519PrivateKey) and not as_rsa:
        return None
    if isinstance(private, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        return "the PEM is formatted so that ccxt would sign with the wrong algorithm"
    return "Binance API keys are HMAC, RSA or Ed25519; this private key is neither"


def parse(answer: Any) -> Inspection:
    data = require_dict(answer, "apiRestrictions")
    flag = lambda name: data.get(name) is True  # noqa: E731 - absent means not granted
    spot = flag("enableSpotAndMarginTrading")
    permissions = Permissions(
        read=flag("enableReading"),
        # FIX API trading places orders too.
        spot_trade=spot or flag("enableFixApiTrade"),
        margin=flag("enableMargin"),
        futures=flag("enableFutures")
        or flag("enableVanillaOptions")
        or flag("enablePortfolioMarginTrading"),
        withdraw=flag("enableWithdrawals"),
        transfer=flag("enableInternalTransfer") or flag("permitsUniversalTransfer"),
    )
    expires_at = None
    # Spot trading of a key without whitelisted IPs lapses after 30 days.
    expiry_ms = data.get("tradingAuthorityExpirationTime")
    if spot and isinstance(expiry_ms, int | float) and expiry_ms > 0:
        expires_at = from_timestamp(expiry_ms / 1000, "tradingAuthorityExpirationTime")
    return Inspection(
        exchange="binance",
        permissions=permissions,
        ip_restricted=flag("ipRestrict"),
        ip_whitelist=None,  # not readable since 2021-11-17
        expires_at=expires_at,
    )
